"""A deterministic synthetic "art styles" image set for the demo and the tests.

``artpulse demo-data`` calls :func:`generate_demo_dataset`. Each style is a small painting
procedure with randomised parameters (palette, number and size of shapes, stroke length,
lighting); the styles differ in colour, contrast and texture the way real ones do, but
their parameter ranges overlap, every image gets sensor-like noise, exposure jitter and a
random JPEG quality, and a share of images borrow the background or palette of another
style. So the task is learnable from the features and not trivial.

Image ``i`` of style ``s`` is drawn from a generator seeded with ``(seed, s, i)``: asking
for fewer images per class gives a prefix of the bigger set, on any machine.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES: tuple[str, ...] = (
    "baroque",
    "cubism",
    "expressionism",
    "impressionism",
    "minimalism",
    "pop_art",
)
DEFAULT_SIZE = 256
DEFAULT_PER_CLASS = 300
DEFAULT_SEED = 7
#: Share of images that take their background or palette from another style.
DEFAULT_MIX_RATE = 0.15

Color = tuple[int, int, int]
Painter = Callable[[np.random.Generator, int, "Palette"], Image.Image]


@dataclass(frozen=True)
class Palette:
    """Ranges colours of a style are drawn from (hue wraps around 0..1)."""

    hue_centres: tuple[float, ...]
    hue_spread: float
    saturation: tuple[float, float]
    value: tuple[float, float]

    def colour(self, rng: np.random.Generator) -> Color:
        centre = self.hue_centres[int(rng.integers(len(self.hue_centres)))]
        hue = (centre + rng.uniform(-self.hue_spread, self.hue_spread)) % 1.0
        sat = rng.uniform(*self.saturation)
        val = rng.uniform(*self.value)
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        return (int(r * 255), int(g * 255), int(b * 255))


PALETTES: dict[str, Palette] = {
    "baroque": Palette((0.06, 0.09, 0.02), 0.05, (0.35, 0.8), (0.25, 0.85)),
    "cubism": Palette((0.08, 0.12, 0.58), 0.06, (0.15, 0.5), (0.3, 0.75)),
    "expressionism": Palette((0.0, 0.33, 0.6, 0.15, 0.8), 0.1, (0.55, 1.0), (0.45, 1.0)),
    "impressionism": Palette((0.55, 0.3, 0.15, 0.85), 0.12, (0.2, 0.55), (0.65, 0.98)),
    "minimalism": Palette((0.0, 0.1, 0.55, 0.6), 0.2, (0.0, 0.35), (0.55, 0.97)),
    "pop_art": Palette((0.0, 0.16, 0.62, 0.9, 0.5), 0.03, (0.75, 1.0), (0.8, 1.0)),
}


def _background(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    """A vertical gradient between two palette colours."""
    top = np.array(palette.colour(rng), dtype=np.float64)
    bottom = np.array(palette.colour(rng), dtype=np.float64)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    rows = (top * (1 - t) + bottom * t).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(rows, (size, size, 3)).copy(), "RGB")


def _paint_baroque(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Chiaroscuro: a dark ground, a few warm lit figures, soft light falling off.
    dark = Palette(palette.hue_centres, 0.05, (0.3, 0.8), (0.04, 0.4))
    image = _background(rng, size, dark)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0.15, 0.85, 2) * size
        rx, ry = rng.uniform(0.06, 0.22, 2) * size
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=palette.colour(rng))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(3, 9)))
    yy, xx = np.mgrid[0:size, 0:size] / size
    lx, ly = rng.uniform(0.2, 0.8, 2)
    light = np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / rng.uniform(0.04, 0.15))
    lit = np.asarray(image, dtype=np.float64) * (0.35 + 0.9 * light[..., None])
    return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8), "RGB")


def _paint_cubism(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Faceted planes: overlapping polygons in muted earth and grey-blue tones, hard edges.
    image = _background(rng, size, palette)
    draw = ImageDraw.Draw(image)
    outline = rng.random() < 0.6
    for _ in range(int(rng.integers(10, 28))):
        cx, cy = rng.uniform(0, 1, 2) * size
        radius = rng.uniform(0.1, 0.35) * size
        corners = int(rng.integers(3, 6))
        start = rng.uniform(0, 2 * math.pi)
        points = [
            (
                cx + radius * rng.uniform(0.5, 1) * math.cos(start + 2 * math.pi * k / corners),
                cy + radius * rng.uniform(0.5, 1) * math.sin(start + 2 * math.pi * k / corners),
            )
            for k in range(corners)
        ]
        draw.polygon(
            points,
            fill=palette.colour(rng),
            outline=(40, 35, 30) if outline else None,
            width=int(rng.integers(1, 3)),
        )
    return image


def _paint_expressionism(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Gestural: many thick strokes and drips in clashing saturated colours.
    image = _background(rng, size, palette)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(40, 120))):
        x, y = rng.uniform(0, 1, 2) * size
        points = [(x, y)]
        for _ in range(int(rng.integers(2, 6))):
            x += rng.normal(0, 0.12) * size
            y += rng.normal(0, 0.12) * size
            points.append((x, y))
        draw.line(points, fill=palette.colour(rng), width=int(rng.integers(2, 14)))
    for _ in range(int(rng.integers(20, 80))):
        x, y = rng.uniform(0, 1, 2) * size
        r = rng.uniform(1, 5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=palette.colour(rng))
    return image


def _paint_impressionism(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Broken colour: a light ground covered in short soft dabs of related pastel hues.
    image = _background(rng, size, palette)
    draw = ImageDraw.Draw(image)
    length = rng.uniform(4, 10)
    for _ in range(int(rng.integers(400, 900))):
        x, y = rng.uniform(0, 1, 2) * size
        angle = rng.normal(0.4, 0.3)
        dx, dy = length * math.cos(angle), length * math.sin(angle)
        draw.line((x, y, x + dx, y + dy), fill=palette.colour(rng), width=int(rng.integers(2, 5)))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))


def _paint_minimalism(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Colour fields: one to three large flat areas, rarely an accent.
    image = Image.new("RGB", (size, size), palette.colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = rng.uniform(0.0, 0.6, 2) * size
        x1, y1 = x0 + rng.uniform(0.2, 0.6) * size, y0 + rng.uniform(0.2, 0.6) * size
        draw.rectangle((x0, y0, x1, y1), fill=palette.colour(rng))
    if rng.random() < 0.3:
        accent = Palette((rng.uniform(0, 1),), 0.0, (0.6, 0.9), (0.5, 0.9))
        y = rng.uniform(0.1, 0.9) * size
        draw.rectangle((0, y, size, y + rng.uniform(2, 8)), fill=accent.colour(rng))
    return image


def _paint_pop_art(rng: np.random.Generator, size: int, palette: Palette) -> Image.Image:
    # Flat saturated primaries, bold black outlines and a halftone dot screen.
    image = Image.new("RGB", (size, size), palette.colour(rng))
    draw = ImageDraw.Draw(image)
    step = int(rng.integers(8, 16))
    dot = step * rng.uniform(0.2, 0.4)
    dot_colour = palette.colour(rng)
    x0, y0 = rng.uniform(0, 0.5, 2) * size
    x1, y1 = x0 + rng.uniform(0.3, 0.6) * size, y0 + rng.uniform(0.3, 0.6) * size
    for gx in np.arange(x0, x1, step):
        for gy in np.arange(y0, y1, step):
            draw.ellipse((gx - dot, gy - dot, gx + dot, gy + dot), fill=dot_colour)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        r = rng.uniform(0.1, 0.25) * size
        box = (cx - r, cy - r, cx + r, cy + r)
        width = int(rng.integers(3, 8))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=palette.colour(rng), outline=(0, 0, 0), width=width)
        else:
            draw.rectangle(box, fill=palette.colour(rng), outline=(0, 0, 0), width=width)
    return image


PAINTERS: dict[str, Painter] = {
    "baroque": _paint_baroque,
    "cubism": _paint_cubism,
    "expressionism": _paint_expressionism,
    "impressionism": _paint_impressionism,
    "minimalism": _paint_minimalism,
    "pop_art": _paint_pop_art,
}


def render_image(
    style: str,
    index: int,
    *,
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    mix_rate: float = DEFAULT_MIX_RATE,
    exposure: float = 1.0,
) -> bytes:
    """JPEG bytes of image ``index`` of ``style`` (deterministic).

    ``exposure`` scales brightness after everything random is drawn, so the same image at
    another exposure differs only in brightness: a controlled input drift.
    """
    style_index = STYLES.index(style)
    rng = np.random.default_rng([seed, style_index, index])
    palette = PALETTES[style]
    if rng.random() < mix_rate:
        # Borrow another style's palette: the shapes stay, the colours mislead.
        other = STYLES[int(rng.integers(len(STYLES)))]
        palette = PALETTES[other]
    image = PAINTERS[style](rng, size, palette)
    if rng.random() < 0.3:
        # A soft reproduction (a photo of the painting slightly out of focus).
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    pixels = np.asarray(image, dtype=np.float64)
    # Exposure and contrast jitter, then sensor noise.
    gain = rng.uniform(0.75, 1.25)
    pivot = pixels.mean()
    pixels = ((pixels - pivot) * rng.uniform(0.7, 1.3) + pivot * gain) * exposure
    pixels += rng.normal(0, rng.uniform(2, 10), pixels.shape)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
    return buffer.getvalue()


def iter_demo_items(per_class: int, styles: tuple[str, ...] = STYLES) -> Iterator[tuple[str, int]]:
    """(style, index) pairs in generation order."""
    for style in styles:
        for index in range(per_class):
            yield style, index


def generate_demo_dataset(
    out_dir: Path,
    *,
    per_class: int = DEFAULT_PER_CLASS,
    seed: int = DEFAULT_SEED,
    size: int = DEFAULT_SIZE,
    mix_rate: float = DEFAULT_MIX_RATE,
    exposure: float = 1.0,
    styles: tuple[str, ...] = STYLES,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``out_dir/<style>/<style>_<index>.jpg`` for every style; return the count."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    unknown = [s for s in styles if s not in PAINTERS]
    if unknown:
        raise ValueError(f"unknown styles {unknown}; known: {', '.join(STYLES)}")
    written = 0
    for style, index in iter_demo_items(per_class, styles):
        target = out_dir / style
        target.mkdir(parents=True, exist_ok=True)
        data = render_image(
            style, index, seed=seed, size=size, mix_rate=mix_rate, exposure=exposure
        )
        (target / f"{style}_{index:04d}.jpg").write_bytes(data)
        written += 1
        if progress is not None:
            progress(1)
    return written

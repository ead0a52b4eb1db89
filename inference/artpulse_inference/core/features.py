"""Image features shared by training and serving.

This is the one place that turns an image into the feature row a model sees. The training
pipeline (``artpulse train``) and the inference server (``/predict-image``) both call
:func:`decode_image` and then :func:`extract_features`, so the same file gives the same row
in both places (a parity test checks it).

Every feature is a float normalised to 0..1 and the column order is :data:`FEATURE_NAMES`;
a registered model's signature uses exactly these names.

Speed: JPEGs are decoded straight at reduced scale (Pillow's ``draft``, which lets libjpeg
skip most of the inverse DCT work) and every image is brought to the fixed
:data:`IMAGE_SIZE` before any arithmetic, so the cost per image does not grow with the
upload's resolution. The arithmetic is vectorised numpy over a whole batch.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

#: Every image is resized to this (width, height) before features are computed.
IMAGE_SIZE: tuple[int, int] = (64, 64)

#: Default decode limits (the server passes its own settings).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000

#: The six hue sectors of the hue histogram, centred on these hues.
HUE_SECTORS: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")

#: Column order of a feature row. A model's signature uses these names.
FEATURE_NAMES: tuple[str, ...] = (
    "hue_mean",
    "hue_concentration",
    "saturation_mean",
    "saturation_std",
    "value_mean",
    "value_std",
    "contrast",
    "edge_density",
    "gradient_mean",
    "laplacian_mean",
    "luminance_entropy",
    "colorfulness",
    "red_mean",
    "green_mean",
    "blue_mean",
    *(f"hue_hist_{sector}" for sector in HUE_SECTORS),
)

# A luminance step above this (0..1 scale, between neighbouring pixels at IMAGE_SIZE)
# counts as an edge pixel.
EDGE_THRESHOLD = 0.1
_ENTROPY_BINS = 32
# Largest possible Hasselt-Suesstrunk colourfulness for channels in 0..1.
_MAX_COLORFULNESS = 1.3 * math.sqrt(2.0)

FloatArray = npt.NDArray[np.float64]


class ImageDecodeError(ValueError):
    """The bytes are not an image we accept; the message says why in one line."""


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode image bytes into an RGB image of :data:`IMAGE_SIZE`.

    Refuses empty input, more than ``max_bytes`` bytes, more than ``max_pixels`` pixels
    (checked on the header, before any pixel is decoded: a decompression bomb never
    allocates) and anything Pillow cannot read, with an :class:`ImageDecodeError`.
    """
    if not data:
        raise ImageDecodeError("empty image: no bytes received")
    if len(data) > max_bytes:
        raise ImageDecodeError(f"image too large: {len(data)} bytes, the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageDecodeError(f"image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image too large: {width}x{height} = {width * height} pixels, "
                    f"the limit is {max_pixels}"
                )
            # JPEG only (a no-op for other formats): decode at the smallest DCT scale that
            # is still at least IMAGE_SIZE.
            image.draft("RGB", IMAGE_SIZE)
            image.load()
            return prepare_image(image)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image: the format is not recognised") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from exc


def prepare_image(image: Image.Image) -> Image.Image:
    """Bring an image to RGB at :data:`IMAGE_SIZE` (no-op when it already is)."""
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Composite on white so transparent areas do not turn into arbitrary colours.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            image = image.convert("RGB")
    if image.size != IMAGE_SIZE:
        image = image.resize(IMAGE_SIZE, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def extract_features(image: Image.Image) -> dict[str, float]:
    """Features of one image, keyed by :data:`FEATURE_NAMES` (in that order)."""
    row = extract_features_batch([image])[0]
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


def extract_features_batch(images: Sequence[Image.Image]) -> FloatArray:
    """Feature matrix of shape ``(len(images), len(FEATURE_NAMES))``, float64, values 0..1."""
    if len(images) == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    prepared = [prepare_image(image) for image in images]
    rgb = np.stack([np.asarray(im, dtype=np.uint8) for im in prepared]).astype(np.float64) / 255.0
    hsv = (
        np.stack([np.asarray(im.convert("HSV"), dtype=np.uint8) for im in prepared]).astype(
            np.float64
        )
        / 255.0
    )
    lum = (
        np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in prepared]).astype(
            np.float64
        )
        / 255.0
    )
    return _features_from_arrays(rgb, hsv, lum)


def features_from_path(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, float]:
    """Read, decode and featurise one image file (the same path the server takes)."""
    data = Path(path).read_bytes()
    return extract_features(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels))


def features_matrix_from_bytes(
    blobs: Sequence[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FloatArray:
    """Decode and featurise many images at once (raises on the first bad one)."""
    images = [decode_image(b, max_bytes=max_bytes, max_pixels=max_pixels) for b in blobs]
    return extract_features_batch(images)


def _features_from_arrays(rgb: FloatArray, hsv: FloatArray, lum: FloatArray) -> FloatArray:
    """The arithmetic: ``rgb``/``hsv`` are (n, H, W, 3), ``lum`` is (n, H, W), all 0..1."""
    n = rgb.shape[0]
    axes = (1, 2)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]

    # Hue is an angle: average it on the circle, weighted by saturation (grey pixels have
    # no meaningful hue). The resultant length says how concentrated the hues are.
    weight_sum = sat.sum(axis=axes)
    safe = np.where(weight_sum > 1e-9, weight_sum, 1.0)
    angle = hue * (2.0 * math.pi)
    cos_m = (sat * np.cos(angle)).sum(axis=axes) / safe
    sin_m = (sat * np.sin(angle)).sum(axis=axes) / safe
    has_hue = weight_sum > 1e-9
    hue_mean = np.where(has_hue, np.mod(np.arctan2(sin_m, cos_m) / (2.0 * math.pi), 1.0), 0.0)
    hue_conc = np.where(has_hue, np.sqrt(cos_m**2 + sin_m**2), 0.0)

    # Hue histogram over six sectors centred on red, yellow, ... magenta.
    sector = np.floor(np.mod(hue + 1.0 / 12.0, 1.0) * 6.0).astype(np.int64)
    sector = np.clip(sector, 0, 5)
    hist = np.zeros((n, 6), dtype=np.float64)
    flat_sector = sector.reshape(n, -1)
    flat_sat = sat.reshape(n, -1)
    for k in range(6):
        hist[:, k] = np.where(flat_sector == k, flat_sat, 0.0).sum(axis=1)
    hist = np.where(has_hue[:, None], hist / safe[:, None], 0.0)

    # Luminance structure: global contrast, edges, fine texture.
    contrast = lum.std(axis=axes) * 2.0  # the std of values in 0..1 is at most 0.5
    gx = np.diff(lum, axis=2)[:, :-1, :]
    gy = np.diff(lum, axis=1)[:, :, :-1]
    magnitude = np.sqrt(gx**2 + gy**2)
    edge_density = (magnitude > EDGE_THRESHOLD).mean(axis=axes)
    gradient_mean = magnitude.mean(axis=axes) / math.sqrt(2.0)
    centre = lum[:, 1:-1, 1:-1]
    laplacian = (
        4.0 * centre - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] - lum[:, 1:-1, 2:]
    )
    laplacian_mean = np.abs(laplacian).mean(axis=axes) / 4.0

    bins = np.minimum((lum * _ENTROPY_BINS).astype(np.int64), _ENTROPY_BINS - 1).reshape(n, -1)
    offsets = (np.arange(n, dtype=np.int64) * _ENTROPY_BINS)[:, None]
    counts = np.bincount((bins + offsets).ravel(), minlength=n * _ENTROPY_BINS).reshape(
        n, _ENTROPY_BINS
    )
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -plogp.sum(axis=1) / math.log(_ENTROPY_BINS)

    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    colorfulness = (
        np.sqrt(rg.std(axis=axes) ** 2 + yb.std(axis=axes) ** 2)
        + 0.3 * np.sqrt(rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2)
    ) / _MAX_COLORFULNESS

    columns = [
        hue_mean,
        hue_conc,
        sat.mean(axis=axes),
        sat.std(axis=axes) * 2.0,
        val.mean(axis=axes),
        val.std(axis=axes) * 2.0,
        contrast,
        edge_density,
        gradient_mean,
        laplacian_mean,
        entropy,
        colorfulness,
        red.mean(axis=axes),
        green.mean(axis=axes),
        blue.mean(axis=axes),
        *(hist[:, k] for k in range(6)),
    ]
    out = np.stack(columns, axis=1)
    # Rounding can push a bounded statistic a hair outside 0..1.
    # (+ 0.0 turns a -0.0 into 0.0.)
    clipped: FloatArray = np.clip(out, 0.0, 1.0) + 0.0
    return clipped

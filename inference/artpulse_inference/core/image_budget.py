"""What decoding an image will cost in memory, computed from its header alone.

:func:`artpulse_inference.core.image_decode.decode_image` calls :func:`decode_cost` on the
lazily opened image (Pillow has read the header, no pixel yet) and refuses the image when
the cost is over its budget, before ``load()`` allocates anything. The same module says
which full-size conversions :func:`~artpulse_inference.core.image_decode.prepare_image`
makes before it reduces the image (:func:`full_size_modes`), so the cost counted here is
the cost paid there by construction.

The arithmetic is width x height x bands x bytes per sample, with three facts of Pillow
and libjpeg that a plain reading of the header would miss:

- Pillow keeps 2- and 3-band 8-bit images (LA, PA, RGB, YCbCr...) in 4 bytes a pixel, and
  a 1-bit image in 1 byte a pixel: a 20000x20000 1-bit PNG of 48 KB is 400 MB decoded.
- Images that are not RGB or greyscale are converted at full size before they can be
  reduced: a palette image becomes RGB(A), an alpha image is premultiplied (one more
  4-byte copy), 16-bit greyscale is scaled to 8 bits.
- A progressive JPEG keeps every DCT coefficient of the full-resolution image while it
  decodes (2 bytes per coefficient, 64 per 8x8 block of each component), even when
  ``draft()`` asks for a 1/8 scale output: a 48-megapixel progressive JPEG of 400 KB
  costs 144 MB (4:2:0) or 288 MB (4:4:4), a baseline one 3 MB.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass

from PIL import Image

#: Pillow's ``reducing_gap`` for the final resize: the image is first reduced by an integer
#: factor to at least this many times the target size, then resampled bilinearly.
REDUCING_GAP = 2.0

# Bytes of one pixel in Pillow's memory, by mode (Pillow pads 2- and 3-band 8-bit images
# to 4 bytes; "1" is stored as one byte a pixel).
_FOUR_BYTE_MODES = frozenset(
    {"RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "LA", "La", "PA"}
)
# A JPEG DCT coefficient is a 16-bit JCOEF; a block is 8x8 of them.
_COEFFICIENT_BYTES_PER_BLOCK = 64 * 2


def bytes_per_sample(mode: str) -> int:
    """Bytes of one sample of one band: 2 for ``I;16*``, 4 for ``I``/``F``, else 1."""
    if mode.startswith("I;16"):
        return 2
    if mode in ("I", "F") or mode.startswith("I;32"):
        return 4
    return 1


def stored_pixel_bytes(mode: str) -> int:
    """Bytes Pillow allocates per pixel for an image of ``mode``."""
    if mode in _FOUR_BYTE_MODES:
        return 4
    return Image.getmodebands(mode) * bytes_per_sample(mode)


def is_transparent(mode: str, info: Container[object]) -> bool:
    """Whether the image has alpha to composite: an alpha band, or a transparent colour
    in a palette or greyscale image (an RGB image's transparent colour is ignored)."""
    return mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "1") and "transparency" in info
    )


def full_size_modes(mode: str, transparent: bool) -> tuple[str, ...]:
    """The modes an image of ``mode`` is converted to, in order, at full size, before it
    can be reduced (``Image.reduce`` accepts L, RGB, CMYK, I, F and the premultiplied
    RGBa/La, not palette, 1-bit or 16-bit images).

    Examples: ``RGB`` -> ``()``; ``RGBA`` -> ``("RGBa",)``; ``P`` with a transparent
    colour -> ``("RGBA", "RGBa")``; ``P`` without -> ``("RGB",)``; ``1`` -> ``("L",)``;
    ``I;16`` -> ``("I;16", "L")`` (scaled to 0..255, then 8-bit).
    """
    if mode.startswith("I;16"):
        return ("I;16", "L")
    if mode in ("RGBA", "RGBa"):
        return ("RGBa",) if mode == "RGBA" else ()
    if mode in ("LA", "La"):
        return ("La",) if mode == "LA" else ()
    if mode == "PA" or (transparent and mode in ("P", "L", "1")):
        return ("RGBA", "RGBa")
    if mode == "P":
        return ("RGB",)
    if mode == "1":
        return ("L",)
    return ()


def reduction_factor(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The integer factors Pillow's ``resize(target, reducing_gap=REDUCING_GAP)`` reduces
    by first (1 when the image is already small).

    Example: 6300x6300 to 64x64 -> (49, 49), the reduced image is 129x129.
    """
    return (
        int(size[0] / target[0] / REDUCING_GAP) or 1,
        int(size[1] / target[1] / REDUCING_GAP) or 1,
    )


def progressive_jpeg_coefficient_bytes(
    size: tuple[int, int], sampling: list[tuple[int, int]]
) -> int:
    """libjpeg's whole-image coefficient buffer for a progressive JPEG of ``size``
    (before ``draft``) with per-component ``(h, v)`` sampling factors.

    Example: 8000x6000 4:2:0 (``[(2, 2), (1, 1), (1, 1)]``): 750,000 luma blocks and
    2 x 187,500 chroma blocks of 128 bytes = 144,000,000 bytes.
    """
    if not sampling:
        return 0
    max_h = max(h for h, _ in sampling)
    max_v = max(v for _, v in sampling)
    total = 0
    for h, v in sampling:
        blocks_x = math.ceil(math.ceil(size[0] * h / max_h) / 8)
        blocks_y = math.ceil(math.ceil(size[1] * v / max_v) / 8)
        total += blocks_x * blocks_y * _COEFFICIENT_BYTES_PER_BLOCK
    return total


@dataclass(frozen=True, slots=True)
class DecodeCost:
    """Bytes a decode will allocate; every figure is from the header."""

    source_width: int  # as the header says
    source_height: int
    width: int  # as it will be decoded (a JPEG's draft scale)
    height: int
    mode: str
    format: str
    decoded_bytes: int  # the pixel buffer load() fills
    conversion_bytes: int  # full-size copies made before the first reduction
    decoder_bytes: int  # libjpeg's coefficient buffer of a progressive JPEG
    reduced_bytes: int  # the image after the integer reduction

    @property
    def total_bytes(self) -> int:
        return self.decoded_bytes + self.conversion_bytes + self.decoder_bytes + self.reduced_bytes

    def describe(self) -> str:
        """One line: what the image is and where the bytes go.

        Example: ``6300x6300 PNG in mode RGBA needs 317,586,564 bytes (6300 x 6300 x 4
        bytes a pixel (4 bands x 1 byte) = 158,760,000 decoded, 158,760,000 in full-size
        conversions)``.
        """
        bands = Image.getmodebands(self.mode)
        sample = bytes_per_sample(self.mode)
        stored = stored_pixel_bytes(self.mode)
        layout = (
            f"{bands} band{'s' if bands > 1 else ''} x {sample} byte{'s' if sample > 1 else ''}"
        )
        if stored != bands * sample:
            layout += f", stored in {stored}"
        parts = [
            f"{self.width} x {self.height} x {stored} byte{'s' if stored > 1 else ''} a pixel "
            f"({layout}) "
            f"= {self.decoded_bytes:,} decoded"
        ]
        if self.conversion_bytes:
            parts.append(f"{self.conversion_bytes:,} in full-size conversions")
        if self.decoder_bytes:
            parts.append(f"{self.decoder_bytes:,} of progressive JPEG coefficients")
        what = f"{self.source_width}x{self.source_height} {self.format}"
        if (self.source_width, self.source_height) != (self.width, self.height):
            what += f" (decoded at {self.width}x{self.height})"
        return f"{what} in mode {self.mode} needs {self.total_bytes:,} bytes ({', '.join(parts)})"


def decode_cost(
    image: Image.Image, target: tuple[int, int], *, full_size: tuple[int, int] | None = None
) -> DecodeCost:
    """The cost of loading ``image`` (opened, not loaded; after any ``draft``) and
    bringing it to ``target``.

    ``full_size`` is the size before ``draft`` (a progressive JPEG's coefficient buffer
    is at that size); it defaults to the current size.
    """
    width, height = image.size
    mode = image.mode
    pixels = width * height
    decoded = pixels * stored_pixel_bytes(mode)
    conversions = sum(
        pixels * stored_pixel_bytes(m)
        for m in full_size_modes(mode, is_transparent(mode, image.info))
    )
    decoder = 0
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        layers = getattr(image, "layer", [])
        sampling = [(int(layer[1]), int(layer[2])) for layer in layers]
        decoder = progressive_jpeg_coefficient_bytes(full_size or image.size, sampling)
    fx, fy = reduction_factor(image.size, target)
    reduced = math.ceil(width / fx) * math.ceil(height / fy) * 4
    source = full_size or image.size
    return DecodeCost(
        source_width=source[0],
        source_height=source[1],
        width=width,
        height=height,
        mode=mode,
        format=image.format or "unknown",
        decoded_bytes=decoded,
        conversion_bytes=conversions,
        decoder_bytes=decoder,
        reduced_bytes=reduced,
    )

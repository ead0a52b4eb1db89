"""Hostile and ordinary images, built here byte by byte or with Pillow.

Used by ``test_security_images.py`` (each attack POSTed to /predict-image and
/demo/predict) and by ``loadtest/bench_hostile_images.py`` (the worst of them, many at
once, against a real server process). PNGs are written chunk by chunk with zlib, so a
header can say what an attacker wants (huge dimensions, animation, 16 bits, Adam7) while
the file stays a few kilobytes; JPEG headers are written marker by marker for the same
reason.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types.
GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6
_CHANNELS = {GREY: 1, RGB: 3, PALETTE: 1, GREY_ALPHA: 2, RGBA: 4}
# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _row_bytes(width: int, depth: int, color_type: int) -> int:
    return (width * _CHANNELS[color_type] * depth + 7) // 8


def zero_png(
    width: int,
    height: int,
    *,
    depth: int = 8,
    color_type: int = RGBA,
    interlace: bool = False,
    before_idat: bytes = b"",
    palette_entries: int = 0,
) -> bytes:
    """A valid PNG whose pixels are all zero: tiny on disk, ``width x height`` decoded.

    ``before_idat`` is inserted after IHDR (acTL, iCCP, zTXt...). A palette image gets a
    PLTE of ``palette_entries`` (default 16) black entries.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlace))
    compressor = zlib.compressobj(9)
    parts: list[bytes] = []
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    for x0, y0, dx, dy in passes:
        pass_width = (width - x0 + dx - 1) // dx
        pass_height = (height - y0 + dy - 1) // dy
        if pass_width <= 0 or pass_height <= 0:
            continue
        row = b"\x00" * (1 + _row_bytes(pass_width, depth, color_type))
        for _ in range(pass_height):
            parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    chunks = [png_chunk(b"IHDR", ihdr), before_idat]
    if color_type == PALETTE:
        chunks.append(png_chunk(b"PLTE", b"\x00\x00\x00" * (palette_entries or 16)))
    chunks += [png_chunk(b"IDAT", b"".join(parts)), png_chunk(b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunks)


def actl(frames: int) -> bytes:
    """An APNG animation-control chunk announcing ``frames`` frames."""
    return png_chunk(b"acTL", struct.pack(">II", frames, 0))


def fctl(sequence: int, width: int, height: int) -> bytes:
    return png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 1, 10, 0, 0))


def iccp_bomb(decompressed_bytes: int) -> bytes:
    """An iCCP chunk whose profile inflates to ``decompressed_bytes`` (a zlib bomb)."""
    compressed = _zeros_deflated(decompressed_bytes)
    return png_chunk(b"iCCP", b"bomb\x00\x00" + compressed)


def ztxt_bombs(count: int, decompressed_bytes: int) -> bytes:
    """``count`` zTXt chunks, each inflating to ``decompressed_bytes``."""
    compressed = _zeros_deflated(decompressed_bytes)
    return b"".join(
        png_chunk(b"zTXt", f"k{i}".encode() + b"\x00\x00" + compressed) for i in range(count)
    )


@cache
def _zeros_deflated(size: int) -> bytes:
    compressor = zlib.compressobj(9)
    block = b"\x00" * (1 << 20)
    out = [
        compressor.compress(block[: min(len(block), size - i)]) for i in range(0, size, len(block))
    ]
    return b"".join(out) + compressor.flush()


def lying_png(declared: int, actual: int) -> bytes:
    """IHDR says ``declared`` x ``declared`` RGB; the IDAT holds ``actual`` x ``actual``."""
    data = zero_png(actual, actual, color_type=RGB)
    ihdr = struct.pack(">IIBBBBB", declared, declared, 8, RGB, 0, 0, 0)
    start = len(PNG_SIGNATURE)
    ihdr_end = start + 8 + 13 + 4
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + data[ihdr_end:]


def jpeg_header(width: int, height: int, *, progressive: bool, components: int = 3) -> bytes:
    """Start of a JPEG up to its first scan: what Pillow reads on open. 4:4:4 sampling,
    so a progressive one costs libjpeg 6 bytes a pixel (3 components) in coefficients."""
    sof = 0xC2 if progressive else 0xC0
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    sof_body = struct.pack(">BHHB", 8, height, width, components) + comps
    dqt = b"\x00" + bytes(range(1, 65))
    sos_body = bytes([components]) + b"".join(bytes([i + 1, 0]) for i in range(components))
    sos_body += b"\x00\x3f\x00"

    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    return (
        b"\xff\xd8"
        + segment(0xDB, dqt)
        + segment(sof, sof_body)
        + segment(0xDA, sos_body)
        + b"\x00" * 64
        + b"\xff\xd9"
    )


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (640, 480), seed: int = 3) -> Image.Image:
    """A smooth random RGB picture, something like a photo to the feature extractor."""
    rng = np.random.default_rng(seed)
    small = (rng.random((size[1] // 16 + 1, size[0] // 16 + 1, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)


@cache
def worst_inputs() -> dict[str, bytes]:
    """The cheapest-to-send, costliest-to-decode inputs (what the benchmark sends).

    Today's decoder spends 317 MB on the first (decoded + composited at full size), 400 MB
    on the second, 144 MB of coefficients on the third, each a file of under 160 KB.
    """
    return {
        "png-rgba-6300x6300": zero_png(6300, 6300, color_type=RGBA),
        "png-1bit-6000x6000": zero_png(6000, 6000, depth=1, color_type=GREY),
        "png-palette-transparent-4000x4000": zero_png(
            4000, 4000, color_type=PALETTE, before_idat=png_chunk(b"tRNS", b"\x00")
        ),
        "png-16bit-grey-6000x6000": zero_png(6000, 6000, depth=16, color_type=GREY),
        "png-interlaced-rgba-6000x6000": zero_png(6000, 6000, color_type=RGBA, interlace=True),
        "jpeg-progressive-6000x6000": jpeg_header(6000, 6000, progressive=True),
    }

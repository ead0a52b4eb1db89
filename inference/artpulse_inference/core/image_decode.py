"""Image bytes to the RGB working image the features are computed on, within a budget.

Called by :mod:`artpulse_inference.core.features` (re-exported there), so the training
pipeline (``artpulse train``, through ``training.dataset``) and the inference server
(``/predict-image``, ``/demo/predict``, through ``server.image_decoding``) decode a file
the same way and get the same row.

Everything from an upload is hostile. Before a pixel is decoded, the header is checked
against three limits: the upload's bytes, its pixel count, and the bytes the decode will
allocate (:mod:`artpulse_inference.core.image_budget`: width x height x bands x bytes per
sample, plus the full-size conversions and a progressive JPEG's coefficient buffer). An
image over a limit is refused with :class:`ImageTooLarge` naming its dimensions and the
budget; ``load()`` is never called for it.

Then the image is made small before anything else: JPEGs are decoded at reduced scale
(Pillow's ``draft``, down to 1/8), every image is reduced by an integer factor to about
twice :data:`IMAGE_SIZE` in its own mode, and only then converted to RGB and composited
on white, so a palette, alpha or 16-bit image is never converted or composited at full
size beyond what :func:`~artpulse_inference.core.image_budget.full_size_modes` counts.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageChops, ImageFile, PngImagePlugin, UnidentifiedImageError

from .image_budget import decode_cost, full_size_modes, is_transparent, reduction_factor

#: Every image is brought to this (width, height) before features are computed.
IMAGE_SIZE: tuple[int, int] = (64, 64)

#: Pillow plugins allowed to open an upload. A JPEG with extra pictures (MPO, written by
#: some cameras) is opened by the JPEG plugin; only its first picture is decoded.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG")

#: Default decode limits (the server passes its own settings; training uses these).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
#: 48 MiB: a 12-megapixel RGB PNG (4000x3000 at Pillow's 4 bytes a pixel = 45.8 MiB), a
#: 3-megapixel RGBA PNG (decoded plus its premultiplied copy), a 12-megapixel progressive
#: JPEG, or any baseline JPEG up to DEFAULT_MAX_PIXELS (decoded at 1/8 scale: 40 MP is
#: about 2.5 MB). The feature image itself is 64x64 (16 KiB); the rest is headroom for
#: real photos, which are decoded at full size when the format has no reduced decoding.
DEFAULT_MAX_DECODED_BYTES = 48 * 1024 * 1024

#: Text and ICC chunks of a PNG are read on open, before the budget check: cap them.
PNG_MAX_TEXT_CHUNK_BYTES = 1024 * 1024
PNG_MAX_TEXT_MEMORY_BYTES = 1024 * 1024


class ImageDecodeError(ValueError):
    """The bytes are not an image we accept; the message says why in one line."""


class ImageTooLarge(ImageDecodeError):
    """Too many bytes, pixels or decoded bytes; the message names the measure and limit.

    ``limit`` is the keyword of :func:`decode_image` that refused it: ``"max_bytes"``,
    ``"max_pixels"`` or ``"max_decoded_bytes"``.
    """

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def configure_pillow(max_pixels: int) -> None:
    """Align Pillow's process-wide limits with ours (the server calls it once at start).

    Pillow raises its own ``DecompressionBombError`` above twice ``MAX_IMAGE_PIXELS`` and
    only warns between one and two times; the warning is silenced because
    :func:`decode_image` refuses those images itself, with their dimensions. Truncated
    images stay errors. Idempotent.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    PngImagePlugin.MAX_TEXT_CHUNK = PNG_MAX_TEXT_CHUNK_BYTES
    PngImagePlugin.MAX_TEXT_MEMORY = PNG_MAX_TEXT_MEMORY_BYTES


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> Image.Image:
    """Decode JPEG or PNG bytes into an RGB image of :data:`IMAGE_SIZE`.

    Refuses, with an :class:`ImageDecodeError` (:class:`ImageTooLarge` for the limits):
    empty input; more than ``max_bytes`` bytes; more than ``max_pixels`` pixels; a decode
    that would allocate more than ``max_decoded_bytes``; an animated PNG; anything that
    is not a JPEG or PNG; corrupt or truncated data. The limits are checked on the
    header, before any pixel is decoded.
    """
    if not data:
        raise ImageDecodeError("empty image: no bytes received")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"image too large: {len(data)} bytes, the limit is {max_bytes}", limit="max_bytes"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageDecodeError(f"image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"image too large: {width}x{height} = {width * height} pixels, "
                f"the limit is {max_pixels}",
                limit="max_pixels",
            )
        frames = int(getattr(image, "n_frames", 1))
        if image.format == "PNG" and frames > 1:
            raise ImageDecodeError(f"animated PNG refused ({frames} frames): send a still image")
        # JPEG only (a no-op for PNG): decode at the smallest DCT scale that is still at
        # least IMAGE_SIZE. The budget is then counted on the reduced size.
        image.draft("RGB", IMAGE_SIZE)
        cost = decode_cost(image, IMAGE_SIZE, full_size=(width, height))
        if cost.total_bytes > max_decoded_bytes:
            raise ImageTooLarge(
                f"image too large to decode: {cost.describe()}; "
                f"the budget is {max_decoded_bytes:,} bytes",
                limit="max_decoded_bytes",
            )
        image.load()
        return prepare_image(image)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            f"image too large: refused as a decompression bomb: {exc}", limit="max_pixels"
        ) from exc
    except UnidentifiedImageError as exc:
        kind = _claimed_format(data)
        if kind:
            # Pillow reports a broken header (bad CRC, cut short) as "not identified".
            raise ImageDecodeError(
                f"corrupt or truncated image: the {kind} header cannot be read"
            ) from exc
        raise ImageDecodeError(
            "not an image: the format is not recognised (JPEG and PNG are accepted)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {_one_line(exc)}") from exc


def prepare_image(image: Image.Image) -> Image.Image:
    """Bring an image to RGB at :data:`IMAGE_SIZE` (no-op when it already is).

    Order: the full-size conversions ``reduce`` needs (and no others), the integer
    reduction, then RGB (alpha composited on white) at the reduced size, then the
    bilinear resample. For an RGB or greyscale image this gives the same pixels as
    ``convert("RGB").resize(IMAGE_SIZE, BILINEAR, reducing_gap=2.0)``.
    """
    if image.mode == "RGB" and image.size == IMAGE_SIZE:
        return image
    for mode in full_size_modes(image.mode, is_transparent(image.mode, image.info)):
        image = _convert(image, mode)
    fx, fy = reduction_factor(image.size, IMAGE_SIZE)
    # The part of the reduced image that covers the original: Pillow's own resize uses
    # this box after its reduction step, so the result is the same pixel for pixel.
    box = (0.0, 0.0, image.width / fx, image.height / fy)
    if fx > 1 or fy > 1:
        image = image.reduce((fx, fy))
    image = _to_rgb(image)
    if image.size != IMAGE_SIZE or fx > 1 or fy > 1:
        image = image.resize(IMAGE_SIZE, Image.Resampling.BILINEAR, box=box)
    return image


def _convert(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        # 16-bit greyscale to 0..255 (Pillow's own conversion clips at 255).
        return image.point(lambda value: value / 257)
    return image.convert(mode)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from a (small) image; premultiplied alpha is composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBa", "La"):
        # Over white: colour x alpha (already premultiplied) + white x (1 - alpha).
        *colour, alpha = image.split()
        white_share = ImageChops.invert(alpha)
        bands = [ImageChops.add(band, white_share) for band in colour]
        if len(bands) == 1:
            return bands[0].convert("RGB")
        return Image.merge("RGB", bands)
    return image.convert("RGB")


def _claimed_format(data: bytes) -> str | None:
    """The accepted format the first bytes claim to be, if any."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

"""Feature extraction on small known images, decode refusals, and row stability."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from artpulse_inference.core.features import (
    FEATURE_NAMES,
    IMAGE_SIZE,
    ImageDecodeError,
    decode_image,
    extract_features,
    extract_features_batch,
    features_matrix_from_bytes,
)
from PIL import Image

CASES = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "training" / "feature_cases.yaml").read_text()
)


def draw(spec: dict[str, Any]) -> Image.Image:
    width, height = IMAGE_SIZE
    kind = spec["kind"]
    if kind == "solid":
        return Image.new("RGB", IMAGE_SIZE, tuple(spec["color"]))
    if kind == "halves":
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        pixels[:, : width // 2] = spec["left"]
        pixels[:, width // 2 :] = spec["right"]
        return Image.fromarray(pixels, "RGB")
    if kind == "checker":
        yy, xx = np.mgrid[0:height, 0:width] // spec["cell"]
        mask = ((yy + xx) % 2).astype(bool)
        pixels = np.where(mask[..., None], spec["b"], spec["a"]).astype(np.uint8)
        return Image.fromarray(pixels, "RGB")
    raise ValueError(kind)


def encode(image: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noisy_image(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = (rng.random((size[1] // 8, size[0] // 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.Resampling.BILINEAR)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_known_images_have_the_expected_features(case: dict[str, Any]) -> None:
    features = extract_features(draw(case["image"]))
    for name, expected in case["expect"].items():
        assert features[name] == pytest.approx(expected, abs=case["tolerance"]), name


def test_rows_follow_feature_names_and_stay_in_range() -> None:
    images = [noisy_image(seed) for seed in range(12)]
    X = extract_features_batch(images)
    assert X.shape == (12, len(FEATURE_NAMES))
    assert X.dtype == np.float64
    assert np.isfinite(X).all()
    assert X.min() >= 0.0
    assert X.max() <= 1.0
    assert list(extract_features(images[0])) == list(FEATURE_NAMES)


def test_a_row_does_not_depend_on_its_batch() -> None:
    # Training featurises in batches, the server one image at a time: bit-identical rows.
    images = [noisy_image(seed) for seed in range(10)]
    together = extract_features_batch(images)
    alone = np.vstack([extract_features_batch([image]) for image in images])
    in_threes = np.vstack([extract_features_batch(images[i : i + 3]) for i in range(0, 10, 3)])
    assert np.array_equal(together, alone)
    assert np.array_equal(together, in_threes)


def test_empty_batch_has_the_right_shape() -> None:
    assert extract_features_batch([]).shape == (0, len(FEATURE_NAMES))


def test_decoding_brings_any_size_and_mode_to_the_feature_size() -> None:
    for image in (
        noisy_image(1, (256, 256)),
        noisy_image(2, (640, 480)),
        noisy_image(3, (40, 30)),
    ):
        for fmt in ("JPEG", "PNG"):
            decoded = decode_image(encode(image, fmt))
            assert decoded.size == IMAGE_SIZE
            assert decoded.mode == "RGB"
    grey = decode_image(encode(Image.new("L", (100, 100), 90), "PNG"))
    assert grey.mode == "RGB"


def test_transparent_pixels_count_as_white() -> None:
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    features = extract_features(decode_image(encode(rgba, "PNG")))
    assert features["saturation_mean"] == pytest.approx(0.0, abs=0.01)
    assert features["value_mean"] == pytest.approx(1.0, abs=0.01)


def test_decoding_is_deterministic_and_matches_the_batch_path() -> None:
    blobs = [encode(noisy_image(seed), "JPEG", quality=85) for seed in range(5)]
    one_by_one = np.vstack(
        [np.array([list(extract_features(decode_image(b)).values())]) for b in blobs]
    )
    assert np.array_equal(features_matrix_from_bytes(blobs), one_by_one)


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (b"", {}, "empty image"),
        (b"this is not an image at all", {}, "not an image"),
        (b"x" * 2000, {"max_bytes": 1000}, "2000 bytes, the limit is 1000"),
        (png_header(50_000, 50_000), {}, "decompression bomb"),
        (png_header(300, 300), {"max_pixels": 200 * 200}, "the limit is 40000"),
    ],
    ids=["empty", "garbage", "too-many-bytes", "bomb", "too-many-pixels"],
)
def test_bad_input_is_refused_with_a_clear_message(
    data: bytes, options: dict[str, int], message: str
) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, **options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_truncated_jpeg_is_refused() -> None:
    data = encode(noisy_image(4), "JPEG")
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(ImageDecodeError, ValueError)

"""Image features shared by training and serving.

This is the one place that turns an image into the feature row a model sees. The training
pipeline (``artpulse train``) and the inference server (``/predict-image``) both call
:func:`decode_image` and then :func:`extract_features`, so the same file gives the same row
in both places (a parity test checks it). Decoding, with its memory budget, lives in
:mod:`artpulse_inference.core.image_decode` and is re-exported here.

Every feature is a float normalised to 0..1 and the column order is :data:`FEATURE_NAMES`;
a registered model's signature uses exactly these names.

Speed: JPEGs are decoded straight at reduced scale (Pillow's ``draft``, which lets libjpeg
skip most of the inverse DCT work) and every image is brought to the fixed
:data:`IMAGE_SIZE` before any arithmetic, so the cost per image does not grow with the
upload's resolution. The arithmetic is vectorised numpy over a whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from .image_decode import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_PIXELS,
    IMAGE_SIZE,
    ImageDecodeError,
    ImageTooLarge,
    decode_image,
    prepare_image,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_PIXELS",
    "EDGE_THRESHOLD",
    "FEATURE_NAMES",
    "IMAGE_SIZE",
    "ImageDecodeError",
    "ImageTooLarge",
    "decode_image",
    "extract_features",
    "extract_features_batch",
    "features_from_path",
    "features_matrix_from_bytes",
    "prepare_image",
]

#: Column order of a feature row. A model's signature uses these names.
#: Chosen by ablation on the demo set (see inference/README-training.md): per-channel RGB
#: means and a six-sector hue histogram were tried and removed, they added no accuracy.
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
)

# A luminance step above this (0..1 scale, between neighbouring pixels at IMAGE_SIZE)
# counts as an edge pixel.
EDGE_THRESHOLD = 0.1
_ENTROPY_BINS = 32
# Largest possible Hasselt-Suesstrunk colourfulness for channels in 0..1.
_MAX_COLORFULNESS = 1.3 * math.sqrt(2.0)

FloatArray = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]

# Lookup tables for the 8-bit arithmetic. Pillow's HSV hue h in 0..255 is h/255 of the
# circle (red 0, yellow 42, green 85, blue 170, magenta 212).
_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS_SQ = _LEVELS * _LEVELS
_HUE_ANGLE = _LEVELS / 255.0 * (2.0 * math.pi)
_HUE_COS = np.cos(_HUE_ANGLE)
_HUE_SIN = np.sin(_HUE_ANGLE)
_EDGE_THRESHOLD_SQ = (EDGE_THRESHOLD * 255.0) ** 2
_SQRT_LUT = np.sqrt(np.arange(2 * 255 * 255 + 1, dtype=np.float64))


def extract_features(image: Image.Image) -> dict[str, float]:
    """Features of one image, keyed by :data:`FEATURE_NAMES` (in that order)."""
    row = extract_features_batch([image])[0]
    return {name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)}


def extract_features_batch(images: Sequence[Image.Image]) -> FloatArray:
    """Feature matrix of shape ``(len(images), len(FEATURE_NAMES))``, float64, values 0..1."""
    if len(images) == 0:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    prepared = [prepare_image(image) for image in images]
    rgb = np.stack([np.asarray(im, dtype=np.uint8) for im in prepared])
    hsv = np.stack([np.asarray(im.convert("HSV"), dtype=np.uint8) for im in prepared])
    lum = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in prepared])
    return _features_from_arrays(rgb, hsv, lum)


def features_from_path(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> dict[str, float]:
    """Read, decode and featurise one image file (the same path the server takes)."""
    data = Path(path).read_bytes()
    image = decode_image(
        data, max_bytes=max_bytes, max_pixels=max_pixels, max_decoded_bytes=max_decoded_bytes
    )
    return extract_features(image)


def features_matrix_from_bytes(
    blobs: Sequence[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> FloatArray:
    """Decode and featurise many images at once (raises on the first bad one)."""
    images = [
        decode_image(
            b, max_bytes=max_bytes, max_pixels=max_pixels, max_decoded_bytes=max_decoded_bytes
        )
        for b in blobs
    ]
    return extract_features_batch(images)


def _features_from_arrays(rgb: U8Array, hsv: U8Array, lum: U8Array) -> FloatArray:
    """The arithmetic on 8-bit arrays: ``rgb``/``hsv`` are (n, H, W, 3), ``lum`` is (n, H, W).

    Sums run on integers or on 256-bin histograms (via ``bincount``), which is both fast
    and exact, so a row does not depend on which batch the image came in.
    """
    n, height, width = lum.shape
    pixels = height * width
    hue = hsv[..., 0].reshape(n, pixels).astype(np.int64)
    sat = hsv[..., 1].reshape(n, pixels).astype(np.int64)
    val = hsv[..., 2].reshape(n, pixels).astype(np.int64)
    offsets = (np.arange(n, dtype=np.int64) * 256)[:, None]

    # Hue is an angle: average it on the circle, weighted by saturation (grey pixels have
    # no meaningful hue). The resultant length says how concentrated the hues are.
    # hue_weight[i, h] = total saturation of image i's pixels with hue h.
    hue_weight = _per_image_bincount(hue + offsets, n, weights=sat) / 255.0
    weight_sum = hue_weight.sum(axis=1)
    has_hue = weight_sum > 1e-9
    safe = np.where(has_hue, weight_sum, 1.0)
    # Row-wise sums rather than matrix products: BLAS picks different kernels for different
    # batch sizes, and a row must not depend on the batch it came in.
    cos_m = (hue_weight * _HUE_COS).sum(axis=1) / safe
    sin_m = (hue_weight * _HUE_SIN).sum(axis=1) / safe
    hue_mean = np.where(has_hue, np.mod(np.arctan2(sin_m, cos_m) / (2.0 * math.pi), 1.0), 0.0)
    hue_conc = np.where(has_hue, np.sqrt(cos_m**2 + sin_m**2), 0.0)

    sat_mean, sat_std = _mean_std_from_hist(_per_image_bincount(sat + offsets, n), pixels)
    val_mean, val_std = _mean_std_from_hist(_per_image_bincount(val + offsets, n), pixels)
    lum_flat = lum.reshape(n, pixels).astype(np.int64)
    lum_hist = _per_image_bincount(lum_flat + offsets, n)
    _, lum_std = _mean_std_from_hist(lum_hist, pixels)
    contrast = lum_std * 2.0  # the std of values in 0..1 is at most 0.5

    # Luminance entropy over 32 bins (8 grey levels each).
    coarse = lum_hist.reshape(n, _ENTROPY_BINS, 256 // _ENTROPY_BINS).sum(axis=2) / pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(coarse > 0, coarse * np.log(coarse), 0.0)
    entropy = -plogp.sum(axis=1) / math.log(_ENTROPY_BINS)

    # Edges and fine texture, on integer luminance differences.
    grey = lum.astype(np.int32)
    gx = np.diff(grey, axis=2)[:, :-1, :]
    gy = np.diff(grey, axis=1)[:, :, :-1]
    magnitude_sq = gx * gx + gy * gy
    edge_density = (magnitude_sq > _EDGE_THRESHOLD_SQ).mean(axis=(1, 2))
    gradient_mean = _SQRT_LUT[magnitude_sq].mean(axis=(1, 2)) / (255.0 * math.sqrt(2.0))
    laplacian = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    laplacian_mean = np.abs(laplacian).sum(axis=(1, 2)) / (laplacian[0].size * 4.0 * 255.0)

    # Hasselt & Suesstrunk colourfulness, with rg = R - G and yb2 = R + G - 2B (= 2 * yb).
    channels = rgb.reshape(n, pixels, 3).astype(np.int64)
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    rg = red - green
    yb2 = red + green - 2 * blue
    rg_mean, rg_std = _mean_std_from_sums(rg.sum(axis=1), (rg * rg).sum(axis=1), pixels)
    yb2_mean, yb2_std = _mean_std_from_sums(yb2.sum(axis=1), (yb2 * yb2).sum(axis=1), pixels)
    colorfulness = (
        np.sqrt(rg_std**2 + (yb2_std / 2.0) ** 2)
        + 0.3 * np.sqrt(rg_mean**2 + (yb2_mean / 2.0) ** 2)
    ) / (255.0 * _MAX_COLORFULNESS)

    columns = [
        hue_mean,
        hue_conc,
        sat_mean,
        sat_std * 2.0,
        val_mean,
        val_std * 2.0,
        contrast,
        edge_density,
        gradient_mean,
        laplacian_mean,
        entropy,
        colorfulness,
    ]
    out = np.stack(columns, axis=1)
    # Rounding can push a bounded statistic a hair outside 0..1 (+ 0.0 turns -0.0 into 0.0).
    clipped: FloatArray = np.clip(out, 0.0, 1.0) + 0.0
    return clipped


def _per_image_bincount(
    index: npt.NDArray[np.int64], n: int, weights: npt.NDArray[np.int64] | None = None
) -> FloatArray:
    """256-bin histogram per image; ``index`` already carries the image offset (i * 256)."""
    counts = np.bincount(
        index.ravel(),
        weights=None if weights is None else weights.ravel(),
        minlength=n * 256,
    )
    return counts.reshape(n, 256).astype(np.float64)


def _mean_std_from_hist(hist: FloatArray, pixels: int) -> tuple[FloatArray, FloatArray]:
    """Mean and std (0..1 scale) of 8-bit values from their per-image histograms."""
    return _mean_std_from_sums(
        (hist * _LEVELS).sum(axis=1), (hist * _LEVELS_SQ).sum(axis=1), pixels, scale=255.0
    )


def _mean_std_from_sums(
    total: npt.ArrayLike, total_sq: npt.ArrayLike, count: int, *, scale: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    mean = np.asarray(total, dtype=np.float64) / count
    var = np.asarray(total_sq, dtype=np.float64) / count - mean * mean
    return mean / scale, np.sqrt(np.maximum(var, 0.0)) / scale

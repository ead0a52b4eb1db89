"""Finding labelled images on disk and turning them into a feature matrix.

Layout: ``<dataset-dir>/<label>/**/<image>`` (the folder name is the label). Used by
``artpulse train``, ``artpulse retrain`` and the feature benchmark.

Features go through exactly the code the server runs for ``/predict-image``
(:func:`artpulse_inference.core.features.decode_image` then ``extract_features_batch``),
so a file gives the same row in training and in serving. Batches are spread over a
process pool: decoding and the numpy work are CPU-bound and hold the GIL.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from artpulse_inference.core.features import (
    FEATURE_NAMES,
    ImageDecodeError,
    decode_image,
    extract_features_batch,
)
from artpulse_inference.training.errors import DatasetError

# What core.image_decode accepts (JPEG and PNG), the same as the server.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
CHUNK_SIZE = 64

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LabelledImages:
    paths: tuple[Path, ...]
    labels: tuple[str, ...]

    def fingerprint(self) -> str:
        """A short hash of the file list (relative names and sizes): which data a run saw."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels, strict=True):
            digest.update(f"{label}/{path.name}:{path.stat().st_size}\n".encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SkippedImage:
    path: Path
    reason: str


def discover_images(dataset_dir: Path) -> LabelledImages:
    """Every image file under ``dataset_dir/<label>/``, sorted, with its label."""
    if not dataset_dir.exists():
        raise DatasetError(f"dataset directory not found: {dataset_dir}")
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset path is not a directory: {dataset_dir}")
    paths: list[Path] = []
    labels: list[str] = []
    for label_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
        if label_dir.name.startswith("."):
            continue
        for path in sorted(label_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                if any(part.startswith(".") for part in path.relative_to(dataset_dir).parts):
                    continue
                paths.append(path)
                labels.append(label_dir.name)
    if not paths:
        raise DatasetError(
            f"no images in {dataset_dir}: expected <label>/<image> files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return LabelledImages(tuple(paths), tuple(labels))


def discover_unlabelled_images(directory: Path) -> tuple[Path, ...]:
    """Every image file anywhere under ``directory`` (recent inputs for drift checks)."""
    if not directory.is_dir():
        raise DatasetError(f"image directory not found: {directory}")
    found = tuple(
        sorted(
            p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
    )
    if not found:
        raise DatasetError(f"no images in {directory}")
    return found


def _features_of_chunk(
    paths: Sequence[Path],
) -> tuple[npt.NDArray[np.float64], list[int], list[SkippedImage]]:
    """Features of the readable images of a chunk; (matrix, kept indexes, skipped)."""
    images = []
    kept: list[int] = []
    skipped: list[SkippedImage] = []
    for i, path in enumerate(paths):
        try:
            images.append(decode_image(path.read_bytes()))
            kept.append(i)
        except ImageDecodeError as exc:
            skipped.append(SkippedImage(path, str(exc)))
        except OSError as exc:
            skipped.append(SkippedImage(path, f"cannot read file: {exc.strerror or exc}"))
    return extract_features_batch(images), kept, skipped


def extract_features_from_paths(
    paths: Sequence[Path],
    *,
    workers: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
) -> tuple[npt.NDArray[np.float64], list[int], list[SkippedImage]]:
    """Feature matrix of the readable images among ``paths``.

    Returns ``(X, kept, skipped)``: ``X[k]`` belongs to ``paths[kept[k]]``; unreadable
    files are listed in ``skipped`` (the caller decides whether that is fatal).
    ``workers`` defaults to the number of CPUs; 1 (or a small input) runs in-process.
    """
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    chunks = [list(paths[i : i + chunk_size]) for i in range(0, len(paths), chunk_size)]
    results: list[tuple[npt.NDArray[np.float64], list[int], list[SkippedImage]]] = []
    if n_workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            results.append(_features_of_chunk(chunk))
            if progress:
                progress(len(chunk))
    else:
        with ProcessPoolExecutor(max_workers=min(n_workers, len(chunks))) as pool:
            # map keeps the order; results are consumed as they complete in order.
            for chunk, result in zip(chunks, pool.map(_features_of_chunk, chunks), strict=True):
                results.append(result)
                if progress:
                    progress(len(chunk))
    matrices: list[npt.NDArray[np.float64]] = []
    kept_all: list[int] = []
    skipped_all: list[SkippedImage] = []
    for chunk_index, (matrix, kept, skipped) in enumerate(results):
        offset = chunk_index * chunk_size
        matrices.append(matrix)
        kept_all.extend(offset + i for i in kept)
        skipped_all.extend(skipped)
    X = np.vstack(matrices) if matrices else np.zeros((0, len(FEATURE_NAMES)))
    return X, kept_all, skipped_all

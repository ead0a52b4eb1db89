"""``artpulse drift``: compare recent inputs with a model's training baseline.

Recent inputs are a JSON Lines file, one feature row per line, either flat
(``{"hue_mean": 0.1, ...}``) or wrapped as the server's ``/predict`` request and
``/predict-image`` response carry it (``{"features": {...}}``); or a directory of images,
featurised with the serving code. The baseline is the model's
``baseline_feature_stats.json`` run artifact (or a local copy). The numbers come from
:mod:`artpulse_inference.core.drift`, exactly what the server exports as
``artpulse_drift_score``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artpulse_inference.core.drift import drift_score, psi_per_feature
from artpulse_inference.training.dataset import (
    discover_unlabelled_images,
    extract_features_from_paths,
)
from artpulse_inference.training.errors import DatasetError, DriftInputError

DEFAULT_THRESHOLD = 0.25


def read_inputs_jsonl(path: Path, feature_names: Sequence[str]) -> npt.NDArray[np.float64]:
    """Feature rows of a JSONL file, columns in ``feature_names`` order."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError as exc:
        raise DriftInputError(f"inputs file not found: {path}") from exc
    except OSError as exc:
        raise DriftInputError(f"cannot read inputs file {path}: {exc.strerror or exc}") from exc
    rows: list[list[float]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DriftInputError(f"{path} line {number}: not JSON ({exc.msg})") from exc
        rows.append(_row(record, feature_names, f"{path} line {number}"))
    if not rows:
        raise DriftInputError(f"{path} has no input rows")
    return np.asarray(rows, dtype=np.float64)


def _row(record: Any, names: Sequence[str], where: str) -> list[float]:
    if isinstance(record, Mapping) and isinstance(record.get("features"), Mapping):
        record = record["features"]
    if not isinstance(record, Mapping):
        raise DriftInputError(f"{where}: expected an object of feature values")
    missing = [n for n in names if n not in record]
    if missing:
        raise DriftInputError(f"{where}: missing features {missing}")
    values: list[float] = []
    for name in names:
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DriftInputError(f"{where}: feature {name!r} is not a number ({value!r})")
        values.append(float(value))
    return values


def read_inputs(
    path: Path, feature_names: Sequence[str], *, workers: int | None = None
) -> npt.NDArray[np.float64]:
    """Rows from a JSONL file, or features of every image in a directory."""
    if path.is_dir():
        images = discover_unlabelled_images(path)
        X, _, skipped = extract_features_from_paths(images, workers=workers)
        if skipped:
            raise DatasetError(f"unreadable image {skipped[0].path}: {skipped[0].reason}")
        return X
    return read_inputs_jsonl(path, feature_names)


def drift_report(
    baseline: Mapping[str, Any], X: npt.ArrayLike, *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """PSI per feature, the aggregated score and whether it is over ``threshold``."""
    matrix = np.asarray(X, dtype=np.float64)
    psi = psi_per_feature(baseline, matrix)
    score = drift_score(psi)
    ranked = sorted(psi.items(), key=lambda item: item[1], reverse=True)
    return {
        "drift_score": round(score, 6),
        "threshold": threshold,
        "drifted": score > threshold,
        "n_samples": int(matrix.shape[0]) if matrix.ndim == 2 else 0,
        "baseline_samples": baseline.get("n_samples"),
        "psi": {name: round(value, 6) for name, value in ranked},
    }


def baseline_matches(baseline: Mapping[str, Any], feature_names: Sequence[str]) -> bool:
    return list(baseline.get("feature_names", [])) == list(feature_names)

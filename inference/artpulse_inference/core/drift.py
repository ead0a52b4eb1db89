"""Feature drift: the training baseline and the Population Stability Index against it.

``artpulse train`` calls :func:`compute_baseline` on the training features and logs the
result as the run artifact ``baseline_feature_stats.json``. The inference server (and
``artpulse drift`` / ``artpulse retrain``) load that file and call :func:`psi_per_feature`
on recent feature rows, then :func:`drift_score` for the one number the rollout gate
``maxDriftScore`` compares against.

Baseline format (JSON)::

    {"feature_names": [...], "n_samples": N, "n_bins": B,
     "features": {name: {"mean", "std", "min", "max",
                         "bin_edges": [e0, ..., ek], "bin_fractions": [f1, ..., fk]}}}

Bins are quantile bins of the training data (so each holds about the same share of it),
with duplicate edges merged (a feature that is often exactly 0 gets fewer bins). The outer
edges are 0 and 1, the feature range; values outside it are counted in the outer bins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Default number of quantile bins per feature.
DEFAULT_BINS = 10
#: Proportions are floored at this before the log, so an empty bin gives a large but
#: finite PSI instead of infinity.
PSI_EPSILON = 1e-4

FloatArray = npt.NDArray[np.float64]


def compute_baseline(
    X: npt.ArrayLike, names: Sequence[str], *, n_bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """Per-feature statistics and quantile bins of the training matrix ``X`` (rows x names)."""
    matrix = _as_matrix(X, len(names))
    if matrix.shape[0] == 0:
        raise ValueError("cannot compute a drift baseline from zero samples")
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    features: dict[str, dict[str, Any]] = {}
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    for j, name in enumerate(names):
        column = matrix[:, j]
        inner = np.unique(np.quantile(column, quantiles))
        inner = inner[(inner > 0.0) & (inner < 1.0)]
        edges = np.concatenate(([0.0], inner, [1.0]))
        fractions = _bin_fractions(column, edges)
        features[name] = {
            "mean": float(column.mean()),
            "std": float(column.std()),
            "min": float(column.min()),
            "max": float(column.max()),
            "bin_edges": [float(e) for e in edges],
            "bin_fractions": [float(f) for f in fractions],
        }
    return {
        "feature_names": list(names),
        "n_samples": int(matrix.shape[0]),
        "n_bins": n_bins,
        "features": features,
    }


def psi_per_feature(baseline: Mapping[str, Any], X: npt.ArrayLike) -> dict[str, float]:
    """PSI of each baseline feature for the rows of ``X`` (columns in the baseline's order).

    PSI = sum over bins of (actual - expected) * ln(actual / expected). Rules of thumb:
    below 0.1 no real change, 0.1..0.25 a moderate shift, above 0.25 a significant one.
    Returns an empty dict when ``X`` has no rows (no data is not a measurement).
    """
    names: list[str] = list(baseline["feature_names"])
    matrix = _as_matrix(X, len(names))
    if matrix.shape[0] == 0:
        return {}
    result: dict[str, float] = {}
    for j, name in enumerate(names):
        stats = baseline["features"][name]
        edges = np.asarray(stats["bin_edges"], dtype=np.float64)
        expected = np.asarray(stats["bin_fractions"], dtype=np.float64)
        actual = _bin_fractions(matrix[:, j], edges)
        result[name] = psi(expected, actual)
    return result


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI between two proportion vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_EPSILON)
    if e.shape != a.shape:
        raise ValueError(f"bin count mismatch: expected {e.shape}, actual {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def drift_score(psi: Mapping[str, float]) -> float:
    """One drift number from per-feature PSI: the mean of the largest quarter of the values.

    Why not the max: with a few hundred rows one feature's PSI is noisy, and the max of
    twenty noisy values sits well above zero. Why not the mean: a real shift usually moves
    a handful of related features (all colour ones, all texture ones), and averaging it
    with twenty unaffected features would hide it. The top quarter (at least one value)
    keeps the score on PSI's usual scale for a shift that touches several features.
    An empty mapping (no data) scores 0.0.
    """
    values = sorted((float(v) for v in psi.values()), reverse=True)
    if not values:
        return 0.0
    k = max(1, math.ceil(len(values) / 4))
    return float(sum(values[:k]) / k)


def bin_counts(baseline: Mapping[str, Any], X: npt.ArrayLike) -> dict[str, list[int]]:
    """Raw counts per baseline bin (for callers that accumulate counts over time)."""
    names: list[str] = list(baseline["feature_names"])
    matrix = _as_matrix(X, len(names))
    out: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        edges = np.asarray(baseline["features"][name]["bin_edges"], dtype=np.float64)
        out[name] = [int(c) for c in _bin_counts(matrix[:, j], edges)]
    return out


def psi_from_counts(
    baseline: Mapping[str, Any], counts: Mapping[str, Sequence[int]]
) -> dict[str, float]:
    """PSI per feature from accumulated bin counts (see :func:`bin_counts`)."""
    result: dict[str, float] = {}
    for name, feature_counts in counts.items():
        c = np.asarray(feature_counts, dtype=np.float64)
        total = c.sum()
        if total <= 0:
            continue
        result[name] = psi(baseline["features"][name]["bin_fractions"], c / total)
    return result


def _as_matrix(X: npt.ArrayLike, n_columns: int) -> FloatArray:
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim == 1 and matrix.size == 0:
        matrix = matrix.reshape(0, n_columns)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != n_columns:
        raise ValueError(f"expected a matrix with {n_columns} columns, got shape {matrix.shape}")
    return matrix


def _bin_counts(column: FloatArray, edges: FloatArray) -> npt.NDArray[np.int64]:
    # Bins are [e0, e1), [e1, e2), ..., [e_{k-1}, e_k]; out-of-range values go to the ends.
    index = np.searchsorted(edges[1:-1], column, side="right")
    return np.bincount(index, minlength=len(edges) - 1).astype(np.int64)


def _bin_fractions(column: FloatArray, edges: FloatArray) -> FloatArray:
    counts = _bin_counts(column, edges).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts

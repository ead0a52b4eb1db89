"""Feature bounds: refuse (or clamp) values far outside the training baseline's range.

``routers/predict.py`` calls :meth:`FeatureBoundsPolicy.apply` on the validated matrix of
``/predict`` and ``/demo/predict`` rows. A finite but absurd value (``1e308``) makes a
linear model overflow to NaN; bounds stop it at the door with a 422 that names the row,
the column and the allowed range.

The allowed range of a feature is the training ``[min, max]`` widened on each side by
``FEATURE_BOUNDS_MARGIN`` times its scale, ``max(max - min, |min|, |max|)`` (1 when that
is 0). With the default margin of 1, a feature trained on ``[0.02, 0.98]`` accepts
``[-0.96, 1.96]``: wide enough that real drift still reaches the drift monitor, narrow
enough that no value can overflow the model. ``FEATURE_BOUNDS`` chooses what happens
outside it: ``refuse`` (422, the default), ``clamp`` (predict on the nearest bound) or
``off``.

Bounds come from the baseline artifact the training logs (``core.drift.compute_baseline``
writes ``min`` and ``max`` per feature). A model without a baseline, or an old baseline
without them, is served without bounds for the features concerned, said once in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .model_store import LoadedModel, Matrix
from .validation import MAX_REPORTED_ERRORS, RequestValidationFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeatureBounds:
    """Allowed ``[low, high]`` per model column (``-inf``/``inf`` where none is known)."""

    names: tuple[str, ...]
    low: Matrix
    high: Matrix
    unbounded: tuple[str, ...]  # columns the baseline has no range for


def bounds_from_baseline(
    baseline: Mapping[str, Any] | None, feature_names: Sequence[str], margin: float
) -> FeatureBounds:
    """The allowed range of every column of ``feature_names`` (see the module docstring)."""
    names = tuple(feature_names)
    low = np.full(len(names), -np.inf)
    high = np.full(len(names), np.inf)
    stats: Mapping[str, Any] = {}
    if baseline is not None and isinstance(baseline.get("features"), Mapping):
        stats = baseline["features"]
    unbounded = []
    for j, name in enumerate(names):
        feature = stats.get(name)
        lo = _number(feature.get("min")) if isinstance(feature, Mapping) else None
        hi = _number(feature.get("max")) if isinstance(feature, Mapping) else None
        if lo is None or hi is None or lo > hi:
            unbounded.append(name)
            continue
        scale = max(hi - lo, abs(lo), abs(hi)) or 1.0
        low[j] = lo - margin * scale
        high[j] = hi + margin * scale
    return FeatureBounds(names, low, high, tuple(unbounded))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if np.isfinite(number) else None


class FeatureBoundsPolicy:
    """``FEATURE_BOUNDS`` applied to request matrices, with the bounds of the last model."""

    def __init__(self, mode: str, margin: float) -> None:
        self.mode = mode
        self.margin = margin
        self._model: LoadedModel | None = None
        self._bounds: FeatureBounds | None = None

    def bounds_for(self, model: LoadedModel) -> FeatureBounds:
        # One entry: the served model changes only on a reload.
        if self._model is not model or self._bounds is None:
            bounds = bounds_from_baseline(model.baseline, model.feature_names, self.margin)
            if self.mode != "off" and bounds.unbounded:
                why = "has no baseline" if model.baseline is None else "baseline has no min/max"
                log.warning(
                    "%s %s for %d feature(s) (%s): FEATURE_BOUNDS=%s not enforced for them",
                    model.uri,
                    why,
                    len(bounds.unbounded),
                    ", ".join(bounds.unbounded[:5]) + ("..." if len(bounds.unbounded) > 5 else ""),
                    self.mode,
                )
            self._model, self._bounds = model, bounds
        return self._bounds

    def apply(self, model: LoadedModel, X: Matrix) -> Matrix:
        """``X`` unchanged, clamped (``clamp``), or :class:`RequestValidationFailure`."""
        if self.mode == "off":
            return X
        bounds = self.bounds_for(model)
        outside = np.less(X, bounds.low) | np.greater(X, bounds.high)
        if not outside.any():
            return X
        if self.mode == "clamp":
            clipped: Matrix = np.clip(X, bounds.low, bounds.high)
            return clipped
        errors: list[dict[str, Any]] = []
        for i, j in zip(*np.nonzero(outside), strict=True):
            name = bounds.names[j]
            errors.append(
                {
                    "loc": ["body", "rows", int(i), name],
                    "msg": f"row {int(i)}, field {name!r}: {float(X[i, j]):g} is outside the "
                    f"allowed range [{bounds.low[j]:g}, {bounds.high[j]:g}] (the training "
                    f"range widened by FEATURE_BOUNDS_MARGIN={self.margin:g})",
                    "type": "out_of_range",
                }
            )
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        raise RequestValidationFailure(errors)

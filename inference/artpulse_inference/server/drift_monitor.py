"""Online drift: PSI of a rolling window of recent inputs against the training baseline.

The request path only appends feature rows (:meth:`DriftMonitor.record`, a deque append;
at most ``window_size * DRIFT_MAX_REQUEST_SHARE`` rows of one request, sampled). Only
production traffic is recorded (``ServerState.predict``): never the public demo.
A background task of the app calls :meth:`DriftMonitor.evaluate` every
``DRIFT_INTERVAL_SECONDS``: it computes per-feature PSI with ``core.drift`` over the last
``DRIFT_WINDOW_SIZE`` rows (once at least ``DRIFT_MIN_SAMPLES`` were seen), sets the
``artpulse_drift_score`` and ``artpulse_feature_drift_psi`` gauges, and appends one line
to the JSONL history file (the trend on /ops/summary and the input of ``artpulse drift``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artpulse_inference.core.drift import drift_score, psi_per_feature

from .metrics import ServerMetrics
from .model_store import LoadedModel, Matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DriftPoint:
    ts: float
    version: str
    score: float
    samples: int
    psi: dict[str, float]


def trend_of(scores: list[float]) -> str:
    """rising / falling / flat from the least-squares slope over the points (per point)."""
    if len(scores) < 3:
        return "unknown"
    y = np.asarray(scores, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    slope = float(np.polyfit(x, y, 1)[0])
    span = max(float(np.abs(y).max()), 0.05)
    # Relative to the level, so a slope that moves the score by under 1% a point is flat.
    if abs(slope) < 0.01 * span:
        return "flat"
    return "rising" if slope > 0 else "falling"


class DriftMonitor:
    def __init__(
        self,
        metrics: ServerMetrics,
        *,
        window_size: int,
        min_samples: int,
        history_path: str,
        trend_points: int,
        max_request_rows: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.metrics = metrics
        self.window_size = window_size
        # One request adds at most this many rows (a random sample of its rows), so a
        # single big request cannot replace the window (DRIFT_MAX_REQUEST_SHARE).
        self.max_request_rows = max(1, max_request_rows or window_size)
        self._rng = np.random.default_rng(seed)
        self.min_samples = min_samples
        self.history_path = Path(history_path) if history_path else None
        self._rows: deque[Matrix] = deque()
        self._row_count = 0
        self._model: LoadedModel | None = None
        self._columns: list[int] = []
        self.points: deque[DriftPoint] = deque(maxlen=trend_points)
        self.last: DriftPoint | None = None

    def set_model(self, model: LoadedModel) -> None:
        """Start over for a new model: its baseline is the new reference."""
        self._model = model
        self._rows.clear()
        self._row_count = 0
        self.last = None
        self.points.clear()
        self.metrics.clear_drift()
        if model.baseline is not None:
            index = {n: i for i, n in enumerate(model.feature_names)}
            self._columns = [index[n] for n in model.baseline["feature_names"]]

    @property
    def enabled(self) -> bool:
        return self._model is not None and self._model.baseline is not None

    def record(self, model: LoadedModel, X: Matrix) -> None:
        if model is not self._model or model.baseline is None:
            return
        if X.shape[0] > self.max_request_rows:
            picked = self._rng.choice(X.shape[0], self.max_request_rows, replace=False)
            X = X[np.sort(picked)]
        self._rows.append(X)
        self._row_count += X.shape[0]
        # Keep a little more than the window; trimmed exactly at evaluation.
        while self._rows and self._row_count - self._rows[0].shape[0] >= self.window_size:
            self._row_count -= self._rows.popleft().shape[0]

    def evaluate(self, now: float | None = None) -> DriftPoint | None:
        model = self._model
        if model is None or model.baseline is None or self._row_count < self.min_samples:
            return None
        X = np.concatenate(list(self._rows))[-self.window_size :]
        psi = psi_per_feature(model.baseline, X[:, self._columns])
        score = drift_score(psi)
        point = DriftPoint(
            now if now is not None else time.time(), model.version, score, int(X.shape[0]), psi
        )
        self.metrics.set_drift(model.name, model.version, score, psi)
        self.points.append(point)
        self.last = point
        self._append_history(model, point)
        return point

    def _append_history(self, model: LoadedModel, point: DriftPoint) -> None:
        if self.history_path is None:
            return
        line = {
            "ts": point.ts,
            "model": model.name,
            "version": point.version,
            "drift_score": point.score,
            "samples": point.samples,
            "psi": point.psi,
        }
        try:
            self.history_path.parent.mkdir(parents=True, exist_ok=True)
            with self.history_path.open("a") as fh:
                fh.write(json.dumps(line, separators=(",", ":")) + "\n")
        except OSError as exc:
            log.warning("cannot append drift history to %s: %s", self.history_path, exc)

    def summary(self) -> dict[str, Any]:
        scores = [p.score for p in self.points]
        last = self.last
        return {
            "enabled": self.enabled,
            "score": last.score if last else None,
            "samples": last.samples if last else self._row_count,
            "window_size": self.window_size,
            "min_samples": self.min_samples,
            "psi": last.psi if last else {},
            "trend": trend_of(scores),
            "history": [{"ts": p.ts, "score": p.score} for p in self.points],
        }

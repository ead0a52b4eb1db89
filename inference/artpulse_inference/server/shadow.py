"""Shadow mirroring: a share of served rows also goes to the shadow model, off the path.

With ``SHADOW_MODEL_URI`` set, ``routers/predict.py`` calls :meth:`ShadowMirror.offer`
after the response is computed. ``offer`` only samples and enqueues (dropping when the
queue is full), so the caller's latency and answer do not depend on the shadow model. A
background task predicts the queued rows with the shadow model in its own thread and
counts every row in ``artpulse_shadow_comparisons_total{outcome}``:

- ``agree`` / ``disagree``: the shadow model predicted / did not predict the served label;
- ``error``: the shadow model could not answer for the batch (it raised, needs a feature
  the served model does not have, or returned another number of labels), so every row of
  it counts. The cause goes to ``artpulse_shadow_errors_total{exception}`` (one per failed
  call): the exception's class name, ``MissingFeatures`` or ``WrongRowCount``; at most
  :data:`MAX_ERROR_CLASSES` distinct causes per process, later ones as ``other``.

The ``minShadowAgreement`` gate (``artpulse_operator.metrics.prometheus``) reads these
counters over its window: ``agree`` over all three outcomes, so an error is disagreement,
and ``minRequests`` counts the compared rows. ``artpulse_shadow_agreement_ratio`` is the
same ratio since the shadow model was loaded, for dashboards and ``/ops/summary``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from prometheus_client import Counter

from .metrics import ServerMetrics
from .model_store import LoadedModel, Matrix

log = logging.getLogger(__name__)

OUTCOMES = ("agree", "disagree", "error")
MAX_ERROR_CLASSES = 20  # distinct ``exception`` label values; more are ``OTHER_ERROR``
OTHER_ERROR = "other"


class ShadowMismatch(Exception):
    """The shadow model's input or answer does not fit the served batch (``cause`` names it)."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class ShadowMirror:
    def __init__(self, metrics: ServerMetrics, *, percent: float, queue_size: int) -> None:
        self.metrics = metrics
        self.percent = percent
        self.model: LoadedModel | None = None
        self._queue: asyncio.Queue[tuple[LoadedModel, Matrix, list[str]]] = asyncio.Queue(
            queue_size
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artpulse-shadow")
        self._task: asyncio.Task[None] | None = None
        self._random = random.Random()
        self.compared = 0  # rows judged: agreed, disagreed or errors
        self.agreed = 0
        self.dropped = 0
        self.errors = 0  # failed shadow calls
        self.error_rows = 0
        self._error_classes: set[str] = set()  # exported ``exception`` values (bounded)

    def set_model(self, model: LoadedModel | None) -> None:
        self.model = model
        self.compared = self.agreed = self.dropped = self.errors = self.error_rows = 0
        self.metrics.shadow_agreement.clear()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="artpulse-shadow")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def offer(self, primary: LoadedModel, X: Matrix, labels: list[str]) -> None:
        if self.model is None or self.percent <= 0:
            return
        if self.percent < 100 and self._random.random() * 100 >= self.percent:
            return
        try:
            self._queue.put_nowait((primary, X, labels))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            primary, X, labels = await self._queue.get()
            shadow = self.model
            if shadow is None:
                continue
            try:
                agree = await self._compare(loop, primary, shadow, X, labels)
            except Exception as exc:
                if shadow is self.model:
                    self._record_error(primary, shadow, len(labels), exc)
                continue
            if shadow is self.model:  # not swapped while predicting
                self._record(primary, shadow, len(labels), agree)

    async def _compare(
        self,
        loop: asyncio.AbstractEventLoop,
        primary: LoadedModel,
        shadow: LoadedModel,
        X: Matrix,
        labels: list[str],
    ) -> int:
        """Rows of ``X`` where ``shadow`` predicts the served ``labels``; raises when it cannot
        answer for every row (the caller counts all of them as errors)."""
        if shadow.feature_names != primary.feature_names:
            index = {n: i for i, n in enumerate(primary.feature_names)}
            missing = [n for n in shadow.feature_names if n not in index]
            if missing:
                raise ShadowMismatch("MissingFeatures", f"features not served: {missing[:5]}")
            X = X[:, [index[n] for n in shadow.feature_names]]
        result = await loop.run_in_executor(self._executor, shadow.predict, X)
        got = np.asarray(result.labels, dtype=object)
        if got.shape != (len(labels),):
            raise ShadowMismatch("WrongRowCount", f"{got.size} labels for {len(labels)} rows")
        return int(np.sum(got == np.asarray(labels, dtype=object)))

    def _children(self, primary: LoadedModel, shadow: LoadedModel) -> dict[str, Counter]:
        # All outcomes at once, so agree/(agree+disagree+error) has a numerator series (0)
        # even when every row failed: the gate then reads 0, not "no data".
        base = (primary.name, primary.version, self.metrics.track, shadow.version)
        return {o: self.metrics.shadow_comparisons.labels(*base, o) for o in OUTCOMES}

    def _record(self, primary: LoadedModel, shadow: LoadedModel, n: int, agree: int) -> None:
        self.compared += n
        self.agreed += agree
        children = self._children(primary, shadow)
        children["agree"].inc(agree)
        children["disagree"].inc(n - agree)
        children["error"].inc(0)
        self._set_ratio(primary, shadow)

    def _record_error(
        self, primary: LoadedModel, shadow: LoadedModel, n: int, exc: Exception
    ) -> None:
        """A candidate that cannot answer disagrees on every row it was given."""
        self.errors += 1
        self.error_rows += n
        self.compared += n
        cause = exc.cause if isinstance(exc, ShadowMismatch) else type(exc).__name__
        if cause not in self._error_classes:
            if len(self._error_classes) < MAX_ERROR_CLASSES:
                self._error_classes.add(cause)
            else:
                cause = OTHER_ERROR
        log.warning("shadow model %s failed on %d rows (%s): %s", shadow.uri, n, cause, exc)
        children = self._children(primary, shadow)
        children["agree"].inc(0)
        children["disagree"].inc(0)
        children["error"].inc(n)
        base = (primary.name, primary.version, self.metrics.track, shadow.version)
        self.metrics.shadow_errors.labels(*base, cause).inc()
        self._set_ratio(primary, shadow)

    def _set_ratio(self, primary: LoadedModel, shadow: LoadedModel) -> None:
        base = (primary.name, primary.version, self.metrics.track, shadow.version)
        self.metrics.shadow_agreement.labels(*base).set(self.agreed / self.compared)

    def summary(self) -> dict[str, Any]:
        return {
            "enabled": self.model is not None,
            "uri": self.model.uri if self.model else None,
            "version": self.model.version if self.model else None,
            "percent": self.percent,
            "compared_rows": self.compared,
            "agreement_ratio": (self.agreed / self.compared) if self.compared else None,
            "dropped": self.dropped,
            "errors": self.errors,
            "error_rows": self.error_rows,
        }

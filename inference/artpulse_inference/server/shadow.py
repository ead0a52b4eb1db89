"""Shadow mirroring: a share of served rows also goes to the shadow model, off the path.

With ``SHADOW_MODEL_URI`` set, ``routers/predict.py`` calls :meth:`ShadowMirror.offer`
after the response is computed. ``offer`` only samples and enqueues (dropping when the
queue is full), so the caller's latency does not depend on the shadow model. A
background task predicts the queued rows with the shadow model in its own thread and
updates ``artpulse_shadow_agreement_ratio`` (agreeing rows over compared rows since the
shadow model was loaded), which the ``minShadowAgreement`` gate reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .metrics import ServerMetrics
from .model_store import LoadedModel, Matrix

log = logging.getLogger(__name__)


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
        self.compared = 0
        self.agreed = 0
        self.dropped = 0
        self.errors = 0

    def set_model(self, model: LoadedModel | None) -> None:
        self.model = model
        self.compared = self.agreed = self.dropped = self.errors = 0
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
            if shadow.feature_names != primary.feature_names:
                index = {n: i for i, n in enumerate(primary.feature_names)}
                try:
                    X = X[:, [index[n] for n in shadow.feature_names]]
                except KeyError:
                    self.errors += 1
                    continue
            try:
                result = await loop.run_in_executor(self._executor, shadow.predict, X)
            except Exception as exc:
                self.errors += 1
                log.warning("shadow model %s failed: %s", shadow.uri, exc)
                continue
            if shadow is not self.model:  # swapped while predicting
                continue
            agree = int(
                np.sum(np.asarray(result.labels, dtype=object) == np.asarray(labels, dtype=object))
            )
            self._record(primary, shadow, len(labels), agree)

    def _record(self, primary: LoadedModel, shadow: LoadedModel, n: int, agree: int) -> None:
        self.compared += n
        self.agreed += agree
        base = (primary.name, primary.version, self.metrics.track, shadow.version)
        self.metrics.shadow_comparisons.labels(*base, "agree").inc(agree)
        self.metrics.shadow_comparisons.labels(*base, "disagree").inc(n - agree)
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
        }

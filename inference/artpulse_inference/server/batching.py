"""Micro-batching: concurrent prediction requests share one model call.

``routers/predict.py`` awaits :meth:`MicroBatcher.predict`. A single worker task drains
whatever is queued (up to ``max_rows`` rows for the same model), runs one model call in a
dedicated thread, and hands each caller its slice. There is no waiting window: a lone
request is served at once, and under load the requests that arrive while a call runs
form the next batch ("natural batching"). For tree ensembles, whose cost per call is
mostly fixed overhead, this is where the throughput comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .model_store import LoadedModel, Matrix, Prediction

ObserveFn = Callable[[LoadedModel, float, Prediction], None]


class MicroBatcher:
    def __init__(self, max_rows: int, observe: ObserveFn | None = None) -> None:
        self.max_rows = max_rows
        self._observe = observe
        self._queue: deque[tuple[LoadedModel, Matrix, asyncio.Future[Prediction]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: model calls are serialised anyway, and it keeps the GIL hand-offs few.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artpulse-predict")
        self.batches = 0
        self.rows = 0

    def start(self) -> None:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="artpulse-microbatcher"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, _, fut in self._queue:
            if not fut.done():
                fut.set_exception(RuntimeError("server shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, model: LoadedModel, X: Matrix) -> Prediction:
        if self._task is None or self._wakeup is None:
            self.start()
        assert self._wakeup is not None
        fut: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append((model, X, fut))
        self._wakeup.set()
        return await fut

    def _take_batch(self) -> list[tuple[LoadedModel, Matrix, asyncio.Future[Prediction]]]:
        first = self._queue.popleft()
        batch = [first]
        rows = first[1].shape[0]
        # Same model only (a reload may interleave old and new), never beyond max_rows.
        while (
            self._queue
            and self._queue[0][0] is first[0]
            and rows + self._queue[0][1].shape[0] <= self.max_rows
        ):
            item = self._queue.popleft()
            batch.append(item)
            rows += item[1].shape[0]
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take_batch()
                live = [item for item in batch if not item[2].done()]
                if not live:
                    continue
                model = live[0][0]
                X = live[0][1] if len(live) == 1 else np.concatenate([item[1] for item in live])
                started = time.perf_counter()
                try:
                    result = await loop.run_in_executor(self._executor, model.predict, X)
                except Exception as exc:
                    for _, _, fut in live:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                elapsed = time.perf_counter() - started
                self.batches += 1
                self.rows += X.shape[0]
                if self._observe is not None:
                    self._observe(model, elapsed, result)
                if len(live) == 1:
                    if not live[0][2].done():
                        live[0][2].set_result(result)
                    continue
                start = 0
                for _, x, fut in live:
                    end = start + x.shape[0]
                    if not fut.done():
                        proba = (
                            result.probabilities[start:end]
                            if result.probabilities is not None
                            else None
                        )
                        fut.set_result(Prediction(result.labels[start:end], proba))
                    start = end

"""Decoding uploaded images into feature rows, a bounded number at a time.

One :class:`ImageDecoder` per process, created by ``state.ServerState`` from the settings
and used by ``routers.predict.predict_image`` (``/predict-image`` and ``/demo/predict``).

Each decode runs in a worker thread (it is CPU work) and may allocate up to
``MAX_IMAGE_DECODED_BYTES`` (refused beforehand by the header budget in
``core.image_decode``). An ``asyncio.Semaphore`` of ``IMAGE_DECODE_CONCURRENCY`` slots
bounds how many run at once, so N concurrent hostile uploads cost at most
concurrency x budget; the others wait on the event loop holding only their bytes. A slot
is released when the thread finishes, not when the request goes away: a client that
disconnects mid-decode does not let one more decode start beside the one still running.
The decodes run on a pool of exactly that many threads (see ``__init__`` for why).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from artpulse_inference.core.features import decode_image, extract_features
from artpulse_inference.core.image_decode import configure_pillow


class ImageDecoder:
    """``await features(data)``: the feature row of an image upload (raises
    ``ImageDecodeError``), with at most ``concurrency`` decodes at a time."""

    def __init__(
        self, *, max_bytes: int, max_pixels: int, max_decoded_bytes: int, concurrency: int
    ) -> None:
        configure_pillow(max_pixels)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_decoded_bytes = max_decoded_bytes
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        # Threads of their own, as many as the slots: the C allocator keeps freed decode
        # buffers in per-thread arenas, so decoding on the shared pool's threads would let
        # every one of them hold a budget's worth of memory after its decode.
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="image-decode")
        # For /ops and the tests: decodes running and uploads waiting for a slot.
        self.active = 0
        self.waiting = 0

    async def features(self, data: bytes) -> dict[str, float]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self._threads, self._decode, data)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._finished)
        # shield: a cancelled request stops waiting, the slot stays taken until the
        # thread is done (the callback above releases it).
        return await asyncio.shield(future)

    def _decode(self, data: bytes) -> dict[str, float]:
        image = decode_image(
            data,
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            max_decoded_bytes=self.max_decoded_bytes,
        )
        return extract_features(image)

    def _finished(self, future: asyncio.Future[dict[str, float]]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved here, so an abandoned one is not logged
        self._release()

    def _release(self) -> None:
        self.active -= 1
        self._slots.release()

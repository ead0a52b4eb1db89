"""Rollout notifications out to tenants' webhooks (and, re-exported, the confirm-promotion gate).

Who calls it: the startup handler builds one :class:`Notifier`, ``start``s it and keeps it in
the runtime; the cleanup handler ``close``s it. The reconcile service ``submit``s the notices
of a pass after the status is written, and calls :func:`confirm_promotion`
(``notify.confirm``) while a promotion waits for the webhook's approval.

``submit`` never waits and never raises: notices go to an in-memory queue (bounded by
``max_queue`` notices in flight, beyond which they are dropped and counted) that a few worker
tasks deliver. A delivery that fails with a connect error, a timeout, 429 or 5xx is retried up
to ``max_attempts`` times with full-jitter backoff, waiting outside the workers so one slow
receiver holds a worker for one timeout at most. Other answers (4xx, redirects) fail at once.
Deliveries of one resource may arrive out of order; the payload's ``time`` orders them.
Notices still queued when the process stops are lost (they are not rollout state).

Counted in ``artpulse_operator_notifications_total{result}``: ``sent``, ``failed`` (given up,
refused, or abandoned at shutdown), ``dropped`` (queue full or notifier closed) and
``retried`` (one per retry scheduled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import httpx
from prometheus_client import CollectorRegistry, Counter

from artpulse_operator.engine.notifications import (
    RolloutNotice,
    WebhookTarget,
    backoff_delay,
    encode_body,
    payload_for,
    url_origin,
    wants,
)
from artpulse_operator.notify.confirm import confirm_promotion
from artpulse_operator.notify.delivery import Attempt, build_headers, post_once, url_allowed_by

__all__ = ["RESULTS", "Notifier", "SecretSource", "confirm_promotion", "new_client"]

_log = logging.getLogger(__name__)
RESULTS = ("sent", "failed", "dropped", "retried")
_DROP_LOG_INTERVAL_S = 60.0


class SecretSource(Protocol):
    """The HMAC key in Secret ``namespace/name`` under ``key``; None: it cannot be read (raise
    for a failure worth retrying)."""

    async def get(self, namespace: str, name: str, key: str) -> bytes | None: ...


def new_client(timeout_s: float = 5.0) -> httpx.AsyncClient:
    """The client for tenants' URLs: no redirects, and nothing from the environment
    (``trust_env=False``: no ``~/.netrc`` credentials, no proxy variables)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=timeout_s,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
    )


@dataclass(frozen=True)
class _Job:
    namespace: str
    target: WebhookTarget
    notice: RolloutNotice
    attempt: int = 1
    prepared: bool = False  # allowlist checked and HMAC key read
    secret: bytes | None = field(default=None, repr=False)


class Notifier:
    def __init__(
        self,
        client: httpx.AsyncClient | None,
        secrets: SecretSource,
        *,
        registry: CollectorRegistry | None = None,
        max_queue: int = 1000,
        max_attempts: int = 6,
        workers: int = 2,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        url_allowed: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.time,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
    ) -> None:
        self._own_client = client is None
        self._client = client if client is not None else new_client()
        self._secrets = secrets
        self._max_queue = max(1, max_queue)
        self._max_attempts = max(1, max_attempts)
        self._workers_wanted = max(1, workers)
        self._rand = rand
        self._sleep = sleep
        self._url_allowed = url_allowed
        self._clock = clock
        self._backoff = (backoff_base_s, backoff_cap_s)
        # Its own registry by default: the handler passes the one /metrics serves.
        self.registry = registry if registry is not None else CollectorRegistry()
        self._results = Counter(
            "artpulse_operator_notifications",
            "Webhook notifications by result (sent, failed, dropped, retried).",
            ["result"],
            registry=self.registry,
        )
        for result in RESULTS:
            self._results.labels(result)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()  # bounded by _pending
        self._pending = 0  # accepted, not yet sent or given up (queued, delivering, waiting)
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[None]] = set()
        self._closed = False
        self._last_drop_log = -_DROP_LOG_INTERVAL_S

    @property
    def pending(self) -> int:
        """Notices accepted and not yet sent or given up."""
        return self._pending

    @property
    def client(self) -> httpx.AsyncClient:
        """The client deliveries use (``confirm_promotion`` may share it while the notifier
        is open)."""
        return self._client

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (on the running loop); idempotent."""
        if self._workers or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(), name=f"artpulse-notifier-{i}")
            for i in range(self._workers_wanted)
        ]

    async def close(self, deadline_s: float = 10.0) -> None:
        """Refuse new notices, deliver what is pending for up to ``deadline_s``, then stop."""
        self._closed = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), deadline_s)
        tasks = [*self._workers, *self._waiting]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        if self._pending:
            _log.warning("%d notifications abandoned at shutdown", self._pending)
            self._results.labels("failed").inc(self._pending)
            self._pending = 0
            self._idle.set()
        if self._own_client:
            await self._client.aclose()

    # --- submitting ------------------------------------------------------------------------

    def submit(
        self, namespace: str, targets: Sequence[WebhookTarget], notice: RolloutNotice
    ) -> bool:
        """Queue ``notice`` for every target that wants it. False: at least one was dropped."""
        try:
            accepted = True
            for target in targets:
                if not wants(target, notice.kind):
                    continue
                if self._closed or self._pending >= self._max_queue:
                    self._results.labels("dropped").inc()
                    self._log_drop(namespace, notice)
                    accepted = False
                    continue
                self._pending += 1
                self._idle.clear()
                self._queue.put_nowait(_Job(namespace, target, notice))
            return accepted
        except Exception:
            _log.exception("notification of %s/%s not queued", namespace, notice.name)
            return False

    def _log_drop(self, namespace: str, notice: RolloutNotice) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            why = "the notifier is closed" if self._closed else f"{self._pending} are pending"
            _log.warning(
                "notification %s of %s/%s dropped: %s (logged once a minute)",
                notice.kind,
                namespace,
                notice.name,
                why,
            )

    # --- delivering ------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._deliver(job)
            except Exception:
                _log.exception("notification to webhook %r failed unexpectedly", job.target.name)
                self._finish("failed")

    def _finish(self, result: str) -> None:
        self._results.labels(result).inc()
        self._pending = max(0, self._pending - 1)
        if self._pending == 0:
            self._idle.set()

    def _fail(self, job: _Job, reason: str) -> None:
        _log.warning(
            "notification %s of %s/%s to webhook %r (%s) not sent: %s",
            job.notice.kind,
            job.namespace,
            job.notice.name,
            job.target.name,
            url_origin(job.target.url),
            reason,
        )
        self._finish("failed")

    async def _deliver(self, job: _Job) -> None:
        target = job.target
        if not job.prepared:
            if not url_allowed_by(self._url_allowed, target.url):
                return self._fail(job, "the URL is not in the operator's webhook allowlist")
            secret: bytes | None = None
            if target.secret_name is not None:
                try:
                    secret = await self._secrets.get(
                        job.namespace, target.secret_name, target.secret_key
                    )
                except Exception as exc:
                    return self._retry_or_fail(
                        job,
                        Attempt(
                            error=f"reading Secret {job.namespace}/{target.secret_name} "
                            f"failed ({type(exc).__name__})",
                            transient=True,
                        ),
                    )
                if secret is None:
                    return self._fail(
                        job,
                        f"Secret {job.namespace}/{target.secret_name} key {target.secret_key!r} "
                        "cannot be read; notifications are never sent unsigned",
                    )
            job = replace(job, prepared=True, secret=secret)
        body = encode_body(payload_for(target.format, job.notice))
        headers = build_headers(str(job.notice.kind), int(self._clock()), body, job.secret)
        attempt = await post_once(self._client, target.url, body, headers, target.timeout_s)
        if attempt.ok:
            return self._finish("sent")
        if attempt.retryable:
            return self._retry_or_fail(job, attempt)
        return self._fail(job, attempt.reason)

    def _retry_or_fail(self, job: _Job, attempt: Attempt) -> None:
        """Retry ``job`` after a backoff (waiting in a task of its own), or give up."""
        if job.attempt >= self._max_attempts:
            return self._fail(job, f"{attempt.reason}; gave up after {job.attempt} attempts")
        base, cap = self._backoff
        delay = backoff_delay(job.attempt, base, cap, self._rand)
        if attempt.retry_after is not None:
            delay = max(delay, min(attempt.retry_after, cap))
        self._results.labels("retried").inc()
        _log.debug("webhook %r: %s; retry in %.1fs", job.target.name, attempt.reason, delay)
        task = asyncio.get_running_loop().create_task(
            self._retry_later(replace(job, attempt=job.attempt + 1), delay)
        )
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _retry_later(self, job: _Job, delay: float) -> None:
        await self._sleep(delay)
        self._queue.put_nowait(job)

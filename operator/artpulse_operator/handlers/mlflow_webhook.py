"""``POST /webhooks/mlflow``: MLflow's signed alias webhooks wake the resources following a model.

Who calls it: the ``@kopf.on.startup`` handler mounts :func:`mlflow_webhook_route` on the
``HealthServer`` when ``ARTPULSE_MLFLOW_WEBHOOK_SECRET`` is set, with ``Runtime.wake_model`` as
``on_event``. Verification is pure (``engine.mlflow_events``); this module only reads the body
within its limit, maps a refusal to a status and counts the result.

Statuses: 202 ``{"resources": n}``; 400 malformed or not an alias event; 401 unsigned, forged or
stale; 409 a delivery id already received; 413 a body over the limit; 503 when waking failed (the
id is forgotten, so MLflow's retry of the same delivery is taken). MLflow retries only 429 and
5xx, so no refusal is retried. No status is a 500 and no body carries a traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from artpulse_operator.engine.mlflow_events import (
    MAX_BODY_BYTES,
    AliasEvent,
    EventRefused,
    Refusal,
    ReplayGuard,
    verify_delivery,
)

__all__ = ["EVENTS_METRIC", "WEBHOOK_PATH", "mlflow_webhook_route"]

_log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/mlflow"
EVENTS_METRIC = "artpulse_operator_mlflow_events"  # exported as ..._total{result}
ACCEPTED = "accepted"
WAKE_FAILED = "wake_failed"

_STATUS = {
    Refusal.TOO_LARGE: 413,
    Refusal.UNSIGNED: 401,
    Refusal.BAD_SIGNATURE: 401,
    Refusal.STALE: 401,
    Refusal.MALFORMED: 400,
    Refusal.UNKNOWN_EVENT: 400,
    Refusal.REPLAY: 409,
}

OnEvent = Callable[[AliasEvent], Awaitable[int]]


def mlflow_webhook_route(
    secret: bytes,
    on_event: OnEvent,
    *,
    registry: CollectorRegistry,
    tolerance_s: float = 300.0,
    max_body: int = MAX_BODY_BYTES,
    clock: Callable[[], float] = time.time,
    guard: ReplayGuard | None = None,
    path: str = WEBHOOK_PATH,
) -> web.RouteDef:
    """The route; ``on_event`` returns how many resources it woke. One call per registry."""
    replays = guard or ReplayGuard(window_s=tolerance_s)
    if replays.window_s < tolerance_s:
        raise ValueError("the replay window must cover the timestamp tolerance")
    events = Counter(
        EVENTS_METRIC,
        "MLflow webhook deliveries received, by result (accepted, a refusal, wake_failed).",
        ["result"],
        registry=registry,
    )
    for result in (ACCEPTED, WAKE_FAILED, *Refusal):
        events.labels(str(result))  # every series exists from the start, at 0

    async def receive(request: web.Request) -> web.Response:
        try:
            body = await _read_limited(request, max_body)
            event = verify_delivery(
                secret, request.headers, body, clock(), tolerance_s=tolerance_s, max_body=max_body
            )
            replays.admit(event, clock())
        except EventRefused as refused:
            events.labels(str(refused.reason)).inc()
            _log.info("MLflow webhook refused: %s", refused)
            return _json(_STATUS[refused.reason], {"error": str(refused.reason)})
        except Exception:  # a broken connection or a bug: never a 500 with a traceback
            events.labels(str(Refusal.MALFORMED)).inc()
            _log.exception("MLflow webhook could not be read")
            return _json(400, {"error": str(Refusal.MALFORMED)})
        try:
            woken = await on_event(event)
        except Exception:
            replays.release(event.delivery_id)
            events.labels(WAKE_FAILED).inc()
            _log.exception(
                "MLflow webhook %s: waking %s failed", event.delivery_id, event.model_name
            )
            return _json(503, {"error": WAKE_FAILED})
        events.labels(ACCEPTED).inc()
        _log.info(
            "MLflow alias %s of %s %s (version %s): %d resource(s) woken",
            event.alias,
            event.model_name,
            event.action,
            event.version,
            woken,
        )
        return _json(202, {"resources": woken})

    return web.post(path, receive)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The body, cut at ``limit + 1`` bytes (enough for the verifier to refuse it as too large)."""
    if request.content_length is not None and request.content_length > limit:
        raise EventRefused(Refusal.TOO_LARGE, f"Content-Length over {limit} bytes")
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await request.content.read(limit + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _json(status: int, payload: dict[str, object]) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")

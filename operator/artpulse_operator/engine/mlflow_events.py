"""MLflow's signed webhook deliveries of alias changes: verify, parse, refuse replays. No I/O.

Who calls it: ``handlers.mlflow_webhook`` (the ``POST /webhooks/mlflow`` route) verifies each
delivery here, then wakes the resources following the model. The event is only a wake-up: the
reconcile that follows reads the aliases from MLflow itself, so nothing in a delivery is trusted
beyond "look at this model now" (polling stays the fallback when a delivery is lost).

What MLflow 3 sends (``mlflow/webhooks/delivery.py``, ``_send_webhook_request``): a POST with
``Content-Type: application/json`` and

- ``X-MLflow-Delivery-Id``: a fresh uuid4 per delivery (a retry by urllib3 reuses it);
- ``X-MLflow-Timestamp``: whole Unix seconds, as a string;
- ``X-MLflow-Signature``: ``v1,`` + base64(HMAC-SHA256(secret, ``{id}.{timestamp}.{body}``)),
  only when the webhook has a secret (we refuse deliveries without one);
- body ``json.dumps({"entity": "model_version_alias", "action": "created" | "deleted",
  "timestamp": <ISO 8601>, "data": {"name": ..., "alias": ..., "version": ...}})``; a deleted
  alias has no ``version``; ``"workspace"`` is added when MLflow workspaces are on.

Worked example: secret ``b"0123456789abcdef"``, id ``d1``, timestamp ``1700000000``, body ``{}``:
the signed content is ``b"d1.1700000000.{}"`` and the header
``v1,Q/uXOjTPcUHor1WJPWN2Dvqt0vMw6rRX48wCUIzgfXg=`` (what MLflow's ``_generate_hmac_signature``
gives for the same inputs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ALIAS_ENTITY",
    "DELIVERY_ID_HEADER",
    "MAX_BODY_BYTES",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AliasAction",
    "AliasEvent",
    "EventRefused",
    "Refusal",
    "ReplayGuard",
    "check_secret",
    "sign",
    "verify_delivery",
]

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
ALIAS_ENTITY = "model_version_alias"
MAX_BODY_BYTES = 64 * 1024  # an alias payload is ~150 bytes
MAX_DELIVERY_ID_CHARS = 128  # a uuid4 is 36; bounds what the replay guard keeps
MIN_SECRET_BYTES = 16
_PLACEHOLDERS = ("changeme", "changethis", "placeholder", "example", "xxxxxxxx")


class AliasAction(StrEnum):
    CREATED = "created"  # set_registered_model_alias (a new alias or a moved one)
    DELETED = "deleted"  # delete_registered_model_alias


_ACTIONS = frozenset(a.value for a in AliasAction)


class Refusal(StrEnum):
    """Why a delivery was refused; the route maps each to a status and a counter label."""

    TOO_LARGE = "too_large"
    UNSIGNED = "unsigned"  # a header is missing
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"  # signed, but the timestamp is outside the tolerance (either side)
    MALFORMED = "malformed"
    UNKNOWN_EVENT = "unknown_event"  # signed and well formed, but not an alias event
    REPLAY = "replay"


class EventRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AliasEvent:
    delivery_id: str
    model_name: str
    alias: str
    version: str | None  # None when the alias was deleted
    action: AliasAction
    timestamp: int  # the signed X-MLflow-Timestamp, Unix seconds


def sign(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow computes for this delivery."""
    content = b".".join((delivery_id.encode(), timestamp.encode(), body))
    digest = hmac.new(secret, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def check_secret(secret: bytes) -> bytes:
    """The secret itself, or ``ValueError`` for a short or placeholder one."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the MLflow webhook secret must be at least {MIN_SECRET_BYTES} bytes")
    lowered = secret.lower()
    if len(set(secret)) < 4 or any(p.encode() in lowered for p in _PLACEHOLDERS):
        raise ValueError("the MLflow webhook secret is a placeholder; generate a random one")
    return secret


def verify_delivery(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: float = 300,
    max_body: int = MAX_BODY_BYTES,
) -> AliasEvent:
    """The alias event of one delivery, or :class:`EventRefused` saying why not.

    The signature is checked before the timestamp, so ``stale`` means a genuine delivery whose
    clock is off (or an old capture), never a forgery.
    """
    if len(body) > max_body:
        raise EventRefused(Refusal.TOO_LARGE, f"body over {max_body} bytes")
    lower = {k.lower(): v for k, v in headers.items()}
    delivery_id = lower.get(DELIVERY_ID_HEADER.lower(), "").strip()
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "").strip()
    signature = lower.get(SIGNATURE_HEADER.lower(), "").strip()
    missing = [
        name
        for name, value in (
            (DELIVERY_ID_HEADER, delivery_id),
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, signature),
        )
        if not value
    ]
    if missing:
        raise EventRefused(Refusal.UNSIGNED, f"missing {', '.join(missing)}")
    expected = sign(secret, delivery_id, timestamp, body).encode()
    # Standard Webhooks allows several space-separated signatures (secret rotation).
    if not any(hmac.compare_digest(expected, s.encode()) for s in signature.split()):
        raise EventRefused(Refusal.BAD_SIGNATURE, "signature does not match")
    if len(delivery_id) > MAX_DELIVERY_ID_CHARS:
        raise EventRefused(Refusal.MALFORMED, "delivery id too long")
    try:
        sent = int(timestamp)
    except ValueError:
        raise EventRefused(Refusal.MALFORMED, "timestamp is not whole seconds") from None
    if abs(now - sent) > tolerance_s:
        raise EventRefused(Refusal.STALE, f"timestamp {sent} is {now - sent:+.0f}s from now")
    return _parse(delivery_id, sent, body)


def _parse(delivery_id: str, timestamp: int, body: bytes) -> AliasEvent:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        raise EventRefused(Refusal.MALFORMED, "body is not JSON") from None
    if not isinstance(payload, dict):
        raise EventRefused(Refusal.MALFORMED, "body is not a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise EventRefused(Refusal.MALFORMED, "entity and action must be strings")
    if entity != ALIAS_ENTITY or action not in _ACTIONS:
        raise EventRefused(Refusal.UNKNOWN_EVENT, f"not an alias event: {entity}.{action}"[:200])
    if not isinstance(data, dict):
        raise EventRefused(Refusal.MALFORMED, "data must be an object")
    name, alias, version = data.get("name"), data.get("alias"), data.get("version")
    if not (isinstance(name, str) and name and isinstance(alias, str) and alias):
        raise EventRefused(Refusal.MALFORMED, "data.name and data.alias must be strings")
    kind = AliasAction(action)
    if kind is AliasAction.CREATED and not (isinstance(version, str) and version):
        raise EventRefused(Refusal.MALFORMED, "data.version must be a string")
    return AliasEvent(
        delivery_id=delivery_id,
        model_name=name,
        alias=alias,
        version=version if kind is AliasAction.CREATED else None,
        action=kind,
        timestamp=timestamp,
    )


@dataclass
class ReplayGuard:
    """Delivery ids seen within the window; a second delivery of one is refused.

    ``window_s`` must be at least the verifier's tolerance: an id is forgotten only once its
    signed timestamp is too old to pass :func:`verify_delivery` again. Memory is bounded by
    ``max_entries``; when full of live ids, the oldest arrivals are forgotten first (a replay
    then costs one extra reconcile, never a wrong decision, see the module docstring).
    """

    window_s: float = 300.0
    max_entries: int = 10_000
    _seen: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def admit(self, event: AliasEvent, now: float) -> None:
        """Remember ``event``'s delivery id, or :class:`EventRefused` (replay) if already seen."""
        self._prune(now)
        if event.delivery_id in self._seen:
            raise EventRefused(Refusal.REPLAY, f"delivery {event.delivery_id} already received")
        while len(self._seen) >= self.max_entries:
            del self._seen[next(iter(self._seen))]
        self._seen[event.delivery_id] = float(event.timestamp)

    def release(self, delivery_id: str) -> None:
        """Forget an id whose handling failed, so MLflow's retry (same id) is accepted."""
        self._seen.pop(delivery_id, None)

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        # Arrival order is nearly timestamp order: drop expired ids from the front, and
        # scan everything only when full.
        while self._seen and next(iter(self._seen.values())) < horizon:
            del self._seen[next(iter(self._seen))]
        if len(self._seen) >= self.max_entries:
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}

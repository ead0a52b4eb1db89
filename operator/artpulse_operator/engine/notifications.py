"""Rollout notifications and the confirm-promotion gate: the records, payloads and signatures.

Who calls it: the reconcile service turns a plan's Events into :class:`RolloutNotice` records
(:func:`notices_for`) and hands them to ``notify.webhooks.Notifier``; ``parse_targets`` and
``parse_confirm_target`` read the resource's webhook fields; receivers (and our tests) check a
delivery with :func:`verify`. Nothing here does I/O.

Signing, by example (secret ``b"k"``, timestamp ``1700000000``, body ``b'{"a":1}'``)::

    signed bytes   b'1700000000.{"a":1}'
    header         X-ArtPulse-Timestamp: 1700000000
                   X-ArtPulse-Signature: sha256=1b6ad1bc9bf48c52ce01939866d5877c
                                                6cc4e87ddad27e16673cb8c4964394a3

A receiver recomputes the HMAC over the timestamp and the *raw* body, compares in constant
time and refuses timestamps more than five minutes away from its clock (replays); the hex is
``printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k`` (one line, split here).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from artpulse_operator.engine.observations import GateDecision
from artpulse_operator.engine.rollout import EventSpec
from artpulse_operator.engine.status import AnalysisStatus, RolloutStatus, format_time
from artpulse_operator.engine.webhook_spec import (
    DEFAULT_SECRET_KEY,
    ConfirmTarget,
    RolloutEventKind,
    WebhookFormat,
    WebhookTarget,
    check_url,
    parse_confirm_target,
    parse_targets,
    url_origin,
)

__all__ = [
    "API_VERSION",
    "CONFIRM_EVENT",
    "DEFAULT_SECRET_KEY",
    "ConfirmTarget",
    "GateDecision",
    "RolloutEventKind",
    "RolloutNotice",
    "WebhookFormat",
    "WebhookTarget",
    "backoff_delay",
    "check_url",
    "encode_body",
    "generic_payload",
    "notice_kind",
    "notices_for",
    "parse_confirm_target",
    "parse_targets",
    "payload_for",
    "sign",
    "signing_headers",
    "slack_payload",
    "url_origin",
    "verify",
    "wants",
]

API_VERSION = "artpulse.io/v1alpha1"
CONFIRM_EVENT = "confirmPromotion"
SIGNATURE_PREFIX = "sha256="


# The engine's Event reasons that are worth telling a person about; the others (ScaledDown,
# StableChanged, ...) stay Kubernetes Events only.
_REASON_KINDS: Mapping[str, RolloutEventKind] = {
    "RolloutStarted": RolloutEventKind.STARTED,
    "StepStarted": RolloutEventKind.STEP,
    "StepAdvanced": RolloutEventKind.STEP,
    "PreviewStarted": RolloutEventKind.STEP,
    "ShadowStarted": RolloutEventKind.STEP,
    "Switched": RolloutEventKind.STEP,
    "Paused": RolloutEventKind.PAUSED,
    "Promoted": RolloutEventKind.PROMOTED,
    "RolledBack": RolloutEventKind.ROLLED_BACK,
    "Aborted": RolloutEventKind.ROLLED_BACK,
    "GatesFailed": RolloutEventKind.FAILED,
    "InvalidSpec": RolloutEventKind.FAILED,
}


def notice_kind(reason: str) -> RolloutEventKind | None:
    """The notification an Event reason becomes, or None (not worth a notification)."""
    return _REASON_KINDS.get(reason)


@dataclass(frozen=True)
class RolloutNotice:
    """One thing that happened to a rollout, as told to a webhook."""

    kind: RolloutEventKind
    namespace: str
    name: str
    model: str  # the MLflow registered model
    candidate_version: str | None
    stable_version: str | None
    weight: int | None
    phase: str
    message: str
    time: datetime
    evidence: Mapping[str, Any] = field(default_factory=dict)  # gate values, failed gates


def _evidence(analysis: AnalysisStatus) -> dict[str, Any]:
    values: dict[str, Any] = {
        "verdict": analysis.verdict,
        "p95LatencyMs": analysis.p95_latency_ms,
        "p95RatioToStable": analysis.p95_ratio_to_stable,
        "errorRate": analysis.error_rate,
        "driftScore": analysis.drift_score,
        "requests": analysis.requests,
        "shadowAgreement": analysis.shadow_agreement,
        "failedGates": list(analysis.failed_gates) or None,
        "failedChecks": analysis.failed_checks or None,
    }
    return {k: v for k, v in values.items() if v is not None}


def notices_for(
    events: Iterable[EventSpec],
    *,
    namespace: str,
    name: str,
    model: str,
    old: RolloutStatus,
    new: RolloutStatus,
    now: datetime,
) -> tuple[RolloutNotice, ...]:
    """The notices of one reconcile pass: one per Event whose reason :func:`notice_kind` knows.

    A promotion or rollback clears ``new.candidate``; the version it was about is ``old``'s.
    The evidence is the last gate check (``new``'s, or ``old``'s when the pass reset it).
    """
    candidate = new.candidate or old.candidate
    analysis = new.analysis if new.analysis.last_check_time is not None else old.analysis
    notices = []
    for event in events:
        kind = notice_kind(event.reason)
        if kind is None:
            continue
        notices.append(
            RolloutNotice(
                kind=kind,
                namespace=namespace,
                name=name,
                model=model,
                candidate_version=candidate.version if candidate else None,
                stable_version=new.stable.version if new.stable else None,
                weight=new.canary_weight,
                phase=str(new.phase),
                message=event.message,
                time=now,
                evidence=_evidence(analysis),
            )
        )
    return tuple(notices)


# --- payloads --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Evidence as JSON: numbers, strings, lists and objects kept; anything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def generic_payload(notice: RolloutNotice, event: str | None = None) -> dict[str, Any]:
    """The stable JSON schema of every delivery (``event``: :data:`CONFIRM_EVENT` for the gate)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "RolloutNotification",
        "event": event or str(notice.kind),
        "resource": {"namespace": notice.namespace, "name": notice.name},
        "model": {
            "name": notice.model,
            "candidateVersion": notice.candidate_version,
            "stableVersion": notice.stable_version,
        },
        "weight": notice.weight,
        "phase": notice.phase,
        "message": notice.message,
        "time": format_time(notice.time),
        "evidence": _jsonable(notice.evidence),
    }


def _slack_escape(text: str) -> str:
    # Slack's three control characters: a tenant's message must not become <!channel>.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: RolloutNotice) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification) and one section block."""
    resource = f"{notice.namespace}/{notice.name}"
    text = _slack_escape(f"[{notice.kind}] {resource}: {notice.message}")
    facts = {
        "Model": notice.model,
        "Candidate": notice.candidate_version,
        "Stable": notice.stable_version,
        "Weight": None if notice.weight is None else f"{notice.weight}%",
        "Phase": notice.phase,
    }
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)}"}
        for label, value in facts.items()
        if value is not None
    ]
    section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if fields:
        section["fields"] = fields
    return {"text": text, "blocks": [section]}


def payload_for(target_format: WebhookFormat, notice: RolloutNotice) -> dict[str, Any]:
    if target_format is WebhookFormat.SLACK:
        return slack_payload(notice)
    return generic_payload(notice)


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, keys sorted, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


# --- signatures ------------------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-ArtPulse-Signature`` value: ``sha256=`` and the HMAC of ``"<timestamp>." + body``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float | datetime,
    tolerance_s: float = 300.0,
) -> bool:
    """Whether a delivery is ours, unaltered and fresh (``now``: the receiver's clock)."""
    if not timestamp_header or not signature_header:
        return False
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        return False
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace"))


# --- retries ---------------------------------------------------------------------------------


def backoff_delay(
    attempt: int,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry): full jitter.

    A uniform draw in ``[0, min(cap, base * 2 ** (attempt - 1))]``; with base 1 and cap 60 the
    bounds are 1, 2, 4, 8, 16, 32, 60, 60, ... The jitter spreads the retries of many
    notices failing at once (a receiver restarting) instead of firing them together.
    """
    exponent = min(max(attempt, 1) - 1, 62)  # 2 ** 62 * base is far above any cap
    bound = min(cap, base * float(2**exponent))
    return bound * min(max(rand(), 0.0), 1.0)


def wants(target: WebhookTarget, kind: RolloutEventKind) -> bool:
    """Whether ``target`` subscribes to ``kind`` (no events listed: all of them)."""
    return not target.events or kind in target.events


def signing_headers(secret: bytes | None, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"X-ArtPulse-Timestamp": str(timestamp)}
    if secret is not None:
        headers["X-ArtPulse-Signature"] = sign(secret, timestamp, body)
    return headers

"""The typed ``.status`` of an ArtPulseModel: what the rollout engine remembers between reconciles.

Everything a restarted operator needs to resume a rollout lives here (step start times, check
counters, failed versions), never in memory. ``engine.rollout.plan`` reads a
:class:`RolloutStatus` and returns the next one; ``engine.desired`` renders the owned objects
from it (see :attr:`RolloutStatus.tracks`); the handlers write :meth:`RolloutStatus.to_dict`
to the status subresource and read it back with :meth:`RolloutStatus.from_dict`.

Keys are camelCase as in DESIGN.md section 2. ``to_dict`` writes every known key, with
``None`` for unset values, so a JSON merge patch also clears what was cleared in memory
(the API server drops nulls of non-nullable fields on a full update). ``from_dict``
tolerates missing keys and unknown values (a status written by an older operator), so it
never raises on a status the operator wrote itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

HISTORY_LIMIT = 10

# Track names as used in Deployment names (``<name>-<track>``) and the ``artpulse.io/track`` label.
TRACK_STABLE = "stable"
TRACK_CANARY = "canary"
TRACK_BLUE = "blue"
TRACK_GREEN = "green"


class Phase(StrEnum):
    """The rollout phase shown in ``kubectl get apm``."""

    PENDING = "Pending"  # nothing resolved yet (first reconcile, or no stable alias)
    STABLE = "Stable"  # serving the stable version, no rollout running
    SHADOWING = "Shadowing"  # candidate mirrored from stable pods, no live weight
    PROGRESSING = "Progressing"  # candidate gets live traffic and is analysed
    PAUSED = "Paused"  # spec.paused or the pause action: nothing moves
    PROMOTING = "Promoting"  # gates passed, waiting for the stable alias move to land in MLflow
    ROLLED_BACK = "RolledBack"  # the last candidate failed and was undone
    DEGRADED = "Degraded"  # gates failed but automatic rollback is off: waiting for a human
    FAILED = "Failed"  # the resource cannot be acted on (bad spec)


class RolloutResult(StrEnum):
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    REGISTRY_REACHABLE = "RegistryReachable"
    METRICS_REACHABLE = "MetricsReachable"
    CREDENTIALS_RESOLVED = "CredentialsResolved"  # engine.credentials.credentials_condition
    # Present only while the spec uses a deprecated spelling (engine.spec.Deprecation).
    DEPRECATED_FIELDS = "DeprecatedFields"


# metav1.Condition, as the CRD declares it (status.conditions): a reason is a CamelCase word
# of at most 1024 characters, a message at most 32768 characters, a status one of three words.
CONDITION_STATUSES = ("True", "False", "Unknown")
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
CONDITION_REASON_MAX = 1024
CONDITION_MESSAGE_MAX = 32768
_CONDITION_REASON = re.compile(CONDITION_REASON_PATTERN)
# lastTransitionTime is required; a condition read without one (written by hand or by an older
# operator) and never flipped since keeps this "unknown" time rather than failing the write.
UNKNOWN_TRANSITION_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``; microseconds kept so restarts keep exact timers."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """The inverse of :func:`format_time`; ``None`` for missing or malformed values."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _opt_str(value: object) -> str | None:
    if value is None:
        return None
    return str(value)


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    return _int(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class VersionRef:
    """A model version the operator serves or rolls out: ``models:/<name>/<version>``."""

    version: str
    alias: str | None = None
    uri: str | None = None
    run_id: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> VersionRef | None:
        if not d or d.get("version") in (None, ""):
            return None
        return cls(
            version=str(d["version"]),
            alias=_opt_str(d.get("alias")),
            uri=_opt_str(d.get("uri")),
            run_id=_opt_str(d.get("runId")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "alias": self.alias, "uri": self.uri, "runId": self.run_id}


@dataclass(frozen=True)
class TrackStatus:
    """What one track (Deployment ``<name>-<track>``) should run: the rendering contract.

    - ``version``: the model version its pods load (``None``: nothing to run yet).
    - ``weight``: percent of live traffic (0..100) routed to it; the weights of all tracks
      sum to 100 whenever any track is scaled.
    - ``scaled``: ``True`` runs ``serving.replicas`` pods (for the Replicas provider the
      replica split follows ``weight``), ``False`` scales the Deployment to zero.
    - ``shadow_uri``: ``SHADOW_MODEL_URI`` for the pods while shadowing, else ``None``.
    """

    version: VersionRef | None
    weight: int = 0
    scaled: bool = False
    shadow_uri: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackStatus:
        return cls(
            version=VersionRef.from_dict(_mapping(d.get("version"))),
            weight=_int(d.get("weight")),
            scaled=bool(d.get("scaled", False)),
            shadow_uri=_opt_str(d.get("shadowUri")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version.to_dict() if self.version else None,
            "weight": self.weight,
            "scaled": self.scaled,
            "shadowUri": self.shadow_uri,
        }


@dataclass(frozen=True)
class AnalysisStatus:
    """The last gate check and the counters of the running rollout.

    ``failed_checks`` and ``inconclusive_checks`` count over the whole rollout (reset when a
    rollout starts or on ``retry``); ``error_streak`` counts Error verdicts in a row;
    ``passed_checks_in_step`` counts passes since the current step (or shadow phase) began,
    which is what lets a step advance.
    """

    last_check_time: datetime | None = None
    verdict: str | None = None
    track: str | None = None
    version: str | None = None
    p95_latency_ms: float | None = None
    stable_p95_latency_ms: float | None = None
    p95_ratio_to_stable: float | None = None
    error_rate: float | None = None
    drift_score: float | None = None
    requests: float | None = None
    shadow_agreement: float | None = None
    failed_gates: tuple[str, ...] = ()
    failed_checks: int = 0
    inconclusive_checks: int = 0
    error_streak: int = 0
    passed_checks_in_step: int = 0
    message: str | None = None
    judge: Mapping[str, Any] | None = None  # the judge's evidence at the last check
    metrics: Mapping[str, Any] = field(default_factory=dict)  # custom metric name -> result

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AnalysisStatus:
        d = d or {}
        return cls(
            last_check_time=parse_time(d.get("lastCheckTime")),
            verdict=_opt_str(d.get("verdict")),
            track=_opt_str(d.get("track")),
            version=_opt_str(d.get("version")),
            p95_latency_ms=_opt_float(d.get("p95LatencyMs")),
            stable_p95_latency_ms=_opt_float(d.get("stableP95LatencyMs")),
            p95_ratio_to_stable=_opt_float(d.get("p95RatioToStable")),
            error_rate=_opt_float(d.get("errorRate")),
            drift_score=_opt_float(d.get("driftScore")),
            requests=_opt_float(d.get("requests")),
            shadow_agreement=_opt_float(d.get("shadowAgreement")),
            failed_gates=tuple(str(g) for g in _seq(d.get("failedGates"))),
            failed_checks=_int(d.get("failedChecks")),
            inconclusive_checks=_int(d.get("inconclusiveChecks")),
            error_streak=_int(d.get("errorStreak")),
            passed_checks_in_step=_int(d.get("passedChecksInStep")),
            message=_opt_str(d.get("message")),
            judge=dict(_mapping(d.get("judge"))) or None,
            metrics=dict(_mapping(d.get("metrics"))),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lastCheckTime": format_time(self.last_check_time),
            "verdict": self.verdict,
            "track": self.track,
            "version": self.version,
            "p95LatencyMs": self.p95_latency_ms,
            "stableP95LatencyMs": self.stable_p95_latency_ms,
            "p95RatioToStable": self.p95_ratio_to_stable,
            "errorRate": self.error_rate,
            "driftScore": self.drift_score,
            "requests": self.requests,
            "shadowAgreement": self.shadow_agreement,
            "failedGates": list(self.failed_gates),
            "failedChecks": self.failed_checks,
            "inconclusiveChecks": self.inconclusive_checks,
            "errorStreak": self.error_streak,
            "passedChecksInStep": self.passed_checks_in_step,
            "message": self.message,
            "judge": dict(self.judge) if self.judge else None,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True)
class RolloutRecord:
    """One finished (or the running) rollout, for ``lastRollout`` and ``history``."""

    version: str
    result: str | None = None  # RolloutResult value; None while running
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    strategy: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RolloutRecord | None:
        if not d or d.get("version") in (None, ""):
            return None
        return cls(
            version=str(d["version"]),
            result=_opt_str(d.get("result")),
            started_at=parse_time(d.get("startedAt")),
            finished_at=parse_time(d.get("finishedAt")),
            reason=_opt_str(d.get("reason")),
            strategy=_opt_str(d.get("strategy")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "result": self.result,
            "startedAt": format_time(self.started_at),
            "finishedAt": format_time(self.finished_at),
            "reason": self.reason,
            "strategy": self.strategy,
        }


def condition_reason(reason: str) -> str:
    """``reason`` if metav1.Condition accepts it, else its words in CamelCase.

    >>> condition_reason("RouteKindNotInstalled")
    'RouteKindNotInstalled'
    >>> condition_reason("secret not-found")
    'SecretNotFound'
    >>> condition_reason("")
    'Unknown'
    """
    if len(reason) <= CONDITION_REASON_MAX and _CONDITION_REASON.match(reason):
        return reason
    words = re.findall(r"[A-Za-z0-9]+", reason)
    camel = "".join(w[:1].upper() + w[1:] for w in words).lstrip("0123456789")
    return camel[:CONDITION_REASON_MAX] or "Unknown"


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition; ``last_transition_time`` moves only when ``status`` flips.

    :meth:`to_dict` always writes what metav1.Condition requires (type, status,
    lastTransitionTime, reason, message) in the shape the CRD accepts, whatever the fields hold:
    a status write the API server refuses would stop the rollout.
    """

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(d.get("type", "")),
            status=str(d.get("status", "Unknown")),
            reason=str(d.get("reason") or ""),
            message=str(d.get("message") or ""),
            last_transition_time=parse_time(d.get("lastTransitionTime")),
            observed_generation=_opt_int(d.get("observedGeneration")),
        )

    def to_dict(self) -> dict[str, Any]:
        ltt = self.last_transition_time or UNKNOWN_TRANSITION_TIME
        status = str(self.status)
        generation = self.observed_generation
        return {
            "type": str(self.type),
            "status": status if status in CONDITION_STATUSES else "Unknown",
            "reason": condition_reason(str(self.reason)),
            "message": str(self.message)[:CONDITION_MESSAGE_MAX],
            # metav1.Time has second precision; conditions follow the Kubernetes convention.
            "lastTransitionTime": format_time(ltt.replace(microsecond=0)),
            "observedGeneration": generation if generation is None or generation >= 0 else None,
        }


def set_condition(
    conditions: Iterable[Condition],
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> tuple[Condition, ...]:
    """Return ``conditions`` with ``type_`` set; the transition time changes only on a flip."""
    type_ = str(type_)  # plain str, also when given a ConditionType (it is serialised)
    status_str = str(status) if isinstance(status, str) else ("True" if status else "False")
    result: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            result.append(cond)
            continue
        found = True
        ltt = cond.last_transition_time if cond.status == status_str else now
        result.append(
            Condition(type_, status_str, reason, message, ltt or now, observed_generation)
        )
    if not found:
        result.append(Condition(type_, status_str, reason, message, now, observed_generation))
    return tuple(result)


def get_condition(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def remove_condition(conditions: Iterable[Condition], type_: str) -> tuple[Condition, ...]:
    """``conditions`` without ``type_`` (for a condition that is only present while it holds)."""
    return tuple(c for c in conditions if c.type != str(type_))


def _unique_conditions(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    """The first condition of each type, none without one: the CRD's list is a map keyed by
    type (a status stored before it was may hold duplicates)."""
    seen: set[str] = set()
    result: list[Condition] = []
    for cond in conditions:
        if cond.type and cond.type not in seen:
            seen.add(cond.type)
            result.append(cond)
    return tuple(result)


@dataclass(frozen=True)
class ShadowStatus:
    """The shadow phase: candidate mirrored from the stable pods, before any live weight."""

    uri: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    agreement: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ShadowStatus | None:
        if not d:
            return None
        return cls(
            uri=_opt_str(d.get("uri")),
            started_at=parse_time(d.get("startedAt")),
            completed_at=parse_time(d.get("completedAt")),
            agreement=_opt_float(d.get("agreement")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "startedAt": format_time(self.started_at),
            "completedAt": format_time(self.completed_at),
            "agreement": self.agreement,
        }


@dataclass(frozen=True)
class ActionRecord:
    """The last manual action taken from the ``artpulse.io/action`` annotation."""

    action: str
    time: datetime | None = None
    outcome: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ActionRecord | None:
        if not d or not d.get("action"):
            return None
        return cls(str(d["action"]), parse_time(d.get("time")), str(d.get("outcome") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "time": format_time(self.time), "outcome": self.outcome}


@dataclass(frozen=True)
class RolloutStatus:
    """The whole status of one ArtPulseModel (see the module docstring).

    Rendering contract for ``engine.desired``: :attr:`tracks` maps every track that should
    exist for the strategy (``stable`` and ``canary`` for Canary, ``stable`` for Single,
    ``blue`` and ``green`` for BlueGreen) to the version it runs, its traffic weight, whether
    it is scaled up and its shadow URI. ``canary_weight`` is the candidate's live weight as
    shown in ``kubectl get apm`` (for BlueGreen: the weight of the idle colour).
    An empty ``tracks`` (first reconcile, nothing resolved) means: render no workloads yet.
    """

    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    stable: VersionRef | None = None
    candidate: VersionRef | None = None
    previous: VersionRef | None = None  # BlueGreen: the old colour's version while it stays warm
    active_color: str | None = None
    canary_weight: int = 0
    current_step: int | None = None
    step_started_at: datetime | None = None
    rollout_started_at: datetime | None = None
    scale_down_at: datetime | None = None  # BlueGreen: when the old colour may scale to zero
    # Since when the candidate's workload is awaited before it gets live weight (None: not waiting).
    workload_wait_since: datetime | None = None
    # Since when promotion waits for the confirmPromotion webhook (None: not waiting).
    awaiting_confirmation_since: datetime | None = None
    paused_from: Phase | None = None  # the phase to go back to on resume
    paused_by: str | None = None  # "spec" | "action"
    tracks: Mapping[str, TrackStatus] = field(default_factory=dict)
    analysis: AnalysisStatus = field(default_factory=AnalysisStatus)
    shadow: ShadowStatus | None = None
    last_rollout: RolloutRecord | None = None
    history: tuple[RolloutRecord, ...] = ()
    conditions: tuple[Condition, ...] = ()
    failed_versions: tuple[str, ...] = ()
    last_action: ActionRecord | None = None
    message: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RolloutStatus:
        """Parse a status dict (as read from the API server); tolerant of missing keys."""
        d = d or {}
        try:
            phase = Phase(str(d.get("phase") or Phase.PENDING))
        except ValueError:
            phase = Phase.PENDING
        paused_from: Phase | None
        try:
            paused_from = Phase(str(d["pausedFrom"])) if d.get("pausedFrom") else None
        except ValueError:
            paused_from = None
        history: list[RolloutRecord] = []
        for item in _seq(d.get("history")):
            rec = RolloutRecord.from_dict(_mapping(item))
            if rec is not None:
                history.append(rec)
        return cls(
            phase=phase,
            observed_generation=_opt_int(d.get("observedGeneration")),
            stable=VersionRef.from_dict(_mapping(d.get("stable"))),
            candidate=VersionRef.from_dict(_mapping(d.get("candidate"))),
            previous=VersionRef.from_dict(_mapping(d.get("previous"))),
            active_color=_opt_str(d.get("activeColor")),
            canary_weight=_int(d.get("canaryWeight")),
            current_step=_opt_int(d.get("currentStep")),
            step_started_at=parse_time(d.get("stepStartedAt")),
            rollout_started_at=parse_time(d.get("rolloutStartedAt")),
            scale_down_at=parse_time(d.get("scaleDownAt")),
            workload_wait_since=parse_time(d.get("workloadWaitSince")),
            awaiting_confirmation_since=parse_time(d.get("awaitingConfirmationSince")),
            paused_from=paused_from,
            paused_by=_opt_str(d.get("pausedBy")),
            tracks={
                str(k): TrackStatus.from_dict(_mapping(v))
                for k, v in _mapping(d.get("tracks")).items()
            },
            analysis=AnalysisStatus.from_dict(_mapping(d.get("analysis"))),
            shadow=ShadowStatus.from_dict(_mapping(d.get("shadow"))),
            last_rollout=RolloutRecord.from_dict(_mapping(d.get("lastRollout"))),
            history=tuple(history[-HISTORY_LIMIT:]),
            conditions=_unique_conditions(
                Condition.from_dict(_mapping(c)) for c in _seq(d.get("conditions")) if c
            ),
            failed_versions=tuple(str(v) for v in _seq(d.get("failedVersions"))),
            last_action=ActionRecord.from_dict(_mapping(d.get("lastAction"))),
            message=_opt_str(d.get("message")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The status as written to the API server (camelCase, every key present)."""
        return {
            "phase": str(self.phase),
            "observedGeneration": self.observed_generation,
            "stable": self.stable.to_dict() if self.stable else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "previous": self.previous.to_dict() if self.previous else None,
            "activeColor": self.active_color,
            "canaryWeight": self.canary_weight,
            "currentStep": self.current_step,
            "stepStartedAt": format_time(self.step_started_at),
            "rolloutStartedAt": format_time(self.rollout_started_at),
            "scaleDownAt": format_time(self.scale_down_at),
            "workloadWaitSince": format_time(self.workload_wait_since),
            "awaitingConfirmationSince": format_time(self.awaiting_confirmation_since),
            "pausedFrom": str(self.paused_from) if self.paused_from else None,
            "pausedBy": self.paused_by,
            "tracks": {k: v.to_dict() for k, v in self.tracks.items()},
            "analysis": self.analysis.to_dict(),
            "shadow": self.shadow.to_dict() if self.shadow else None,
            "lastRollout": self.last_rollout.to_dict() if self.last_rollout else None,
            "history": [h.to_dict() for h in self.history],
            "conditions": [c.to_dict() for c in self.conditions],
            "failedVersions": list(self.failed_versions),
            "lastAction": self.last_action.to_dict() if self.last_action else None,
            "message": self.message,
        }

    def with_changes(self, **changes: Any) -> RolloutStatus:
        """A copy with some fields replaced (the status is immutable)."""
        return replace(self, **changes)

    def condition(self, type_: str) -> Condition | None:
        return get_condition(self.conditions, type_)

"""The rollout state machine: from (spec, status, observations) to the next status and actions. Pure.

Who calls it: the reconcile handler, once per reconcile, in this order::

    status = RolloutStatus.from_dict(body.get("status"))
    now = datetime.now(UTC)
    try:                                  # registry I/O
        aliases, registry_error = registry.resolve(spec.model.name, aliases_to_resolve(spec)), None
    except RegistryError as exc:
        aliases, registry_error = None, str(exc)
    target = analysis_target(spec, status, now)     # is a gate check due, and for what?
    gate = run_check(metrics, spec.analysis, namespace, spec.model.name, target) if target else None
    result = plan(spec, status, Observations(now, generation, aliases, registry_error, gate,
                                             annotations.get(ACTION_ANNOTATION), ready))
    apply desired_objects(..., result.status)        # weights first: a rollback is a weight of 0
    for move in result.alias_moves: registry.move_alias(model, move.alias, move.version)
    for tag in result.version_tags: registry.tag_version(model, tag.version, tag.tags)
    post result.events; write result.status.to_dict(); drop the action annotation if
    result.action_handled; look again after result.requeue_after seconds.

If an alias move or tag fails, write ``result.status`` anyway: a promotion waits in phase
``Promoting`` and re-issues the alias move on every reconcile until MLflow shows it, so a
lost move (or a restart between the move and the status write) is neither lost nor done twice.

Semantics (DESIGN.md section 2):

- First sight: the stable alias is served (phase Stable). A rollout starts when the candidate
  alias resolves to a version other than the stable one and not in ``failedVersions``.
  ``failedVersions`` is cleared when the candidate alias moves to another version; ``retry``
  removes the candidate's version from it.
- Shadow (``strategy.shadow.enabled``): phase Shadowing, the stable pods get
  ``SHADOW_MODEL_URI``; after ``duration`` and at least one passing agreement check the live
  phase begins. A failure rolls back without the candidate ever getting live traffic.
- Canary: weights follow the steps. A step advances when a check passed in it (the first check
  of a step runs one interval after the step began, so a step is held at least one interval)
  and its pause is over; a step with ``promotion: Manual`` (or the deprecated empty pause)
  waits for ``promote``. One step per reconcile at most. After the last step: Promoting.
- Single: the stable track rolls forward to the candidate, is analysed (against the previous
  version's latency for the relative gate), Promoting after a pass; a failure undoes it.
- BlueGreen: the idle colour gets the candidate and ``previewPercent``. It is analysed when
  it gets traffic (``previewPercent > 0``), else held one interval. Then (``autoPromote`` or
  ``promote``) the colours switch: the new colour takes all traffic and is verified by one
  more passing check while the old colour stays warm, so a failure flips back at once.
  After promotion the old colour stays up until ``scaleDownDelay`` has passed.
- Promoting: the stable track runs the candidate and the stable alias move is issued until the
  registry shows it; then phase Stable, version tagged ``artpulse.rollout.result=promoted``.
  A stable alias moved to the candidate by hand during a rollout also completes it.
- Failure (``failureLimit`` reached, see ``engine.gates``): weight 0 and the candidate scaled to
  zero in the same plan, phase RolledBack, version tagged ``rolled_back`` with the reason, a
  Warning Event naming the failing gates and values. With ``rollback.automatic: false`` the
  phase is Degraded instead and the weights hold until ``abort`` or ``promote``.
- Actions (``artpulse.io/action``): promote (advance one step / end the shadow phase / switch /
  override Degraded), promote-full (promote now: the remaining steps, the shadow phase, the
  analysis and the confirmPromotion webhook are skipped, as Argo Rollouts' ``promote --full``;
  a blue-green switch still waits for the new colour's pods, and is refused until they are
  ready), abort (roll back now; for BlueGreen within ``scaleDownDelay`` after a
  promotion: flip back), retry, pause, resume. Each is handled once and recorded in
  ``status.lastAction``: acted on, or refused with a Warning ``ActionIgnored`` saying why,
  never accepted and dropped. ``promote`` while the candidate's pods are not ready (the first
  canary weight, the blue-green preview or switch waits for them) is refused, not remembered
  (``promote_would_wait``). ``spec.paused`` pauses and resumes likewise. Paused: nothing moves,
  no checks run; resume restarts the current step's hold.
- Registry unreachable: ``RegistryReachable=False`` and nothing else changes (the action
  annotation is left for the next reconcile).
- Workload readiness: a candidate track gets live weight (the first canary step, the
  BlueGreen preview and the colour switch) only once its Deployment is ready
  (``Observations.workloads_ready``, unknown = not ready) *and* the status read at the start
  of the reconcile already had the track running the candidate, so a readiness seen before
  this reconcile's apply (old template, or zero replicas) never counts. Until then the phase
  stays Progressing with the weight it had (0 at first), no check runs, the step's hold has
  not begun (``stepStartedAt`` is set when the weight is given), ``workloadWaitSince`` says
  since when, Progressing has reason ``WaitingForWorkload`` and the plan looks again after
  ``WORKLOAD_RECHECK_S``. A workload still not ready after ``workload_ready_timeout`` (the
  larger of Kubernetes' default progress deadline, 600 s, and ``interval x failureLimit``)
  rolls back with reason ``WorkloadNotReady`` (whatever ``rollback.automatic`` says: the
  candidate never carried traffic, there is nothing for a human to judge). Later canary
  steps, Single (a rolling update keeps the old pods serving) and the shadow phase (the
  stable pods mirror) do not wait.
- Restart-safe: every timer and counter is in the status, so a restarted operator neither
  repeats nor skips a step and promotes once.
- Deprecated spellings (``ModelSpec.deprecations``): acted on like their replacement; the
  condition ``DeprecatedFields`` (True, present only while the spec uses one) names them, and
  a Warning Event ``DeprecatedField`` is posted when it appears or its message changes, so a
  resource is told once per change, also after an upgrade of the operator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from artpulse_operator.engine.gates import CheckOutcome, CountResult, count
from artpulse_operator.engine.observations import GateResult, Observations, ResolvedVersion, Verdict
from artpulse_operator.engine.spec import MIN_WINDOW_S, Color, ModelSpec, StrategyType
from artpulse_operator.engine.status import (
    HISTORY_LIMIT,
    TRACK_CANARY,
    TRACK_STABLE,
    ActionRecord,
    AnalysisStatus,
    ConditionType,
    Phase,
    RolloutRecord,
    RolloutResult,
    RolloutStatus,
    ShadowStatus,
    TrackStatus,
    VersionRef,
    format_time,
    remove_condition,
    set_condition,
)

__all__ = [
    "ACTIONS",
    "ACTION_ANNOTATION",
    "AliasMove",
    "AnalysisTarget",
    "EventSpec",
    "Observations",
    "Plan",
    "VersionTag",
    "aliases_to_resolve",
    "analysis_target",
    "failed_status",
    "plan",
    "workload_ready_timeout",
]

ACTION_ANNOTATION = "artpulse.io/action"
ACTIONS = ("promote", "promote-full", "abort", "retry", "pause", "resume")

# Phases in which a rollout is under way (a Paused status looks at ``pausedFrom``).
ROLLING = frozenset({Phase.SHADOWING, Phase.PROGRESSING, Phase.PROMOTING, Phase.DEGRADED})
# How soon to look again while an alias move is waiting to show in the registry.
PROMOTION_RECHECK_S = 1.0
# How soon to look again while a candidate workload is awaited (pods loading the model).
WORKLOAD_RECHECK_S = 2.0
# Kubernetes' default Deployment progressDeadlineSeconds: the least time a workload gets.
WORKLOAD_READY_MIN_TIMEOUT_S = 600.0
MIN_REQUEUE_S = 1.0

TAG_PREFIX = "artpulse.rollout."


@dataclass(frozen=True)
class AliasMove:
    """Point MLflow ``alias`` of the model at ``version``."""

    alias: str
    version: str


@dataclass(frozen=True)
class VersionTag:
    """Set these tags on a model version (string values, MLflow tags)."""

    version: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event on the ArtPulseModel: ``type`` is ``Normal`` or ``Warning``."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """The next status and the actions that go with it (see the module docstring)."""

    status: RolloutStatus
    alias_moves: Sequence[AliasMove] = ()
    version_tags: Sequence[VersionTag] = ()
    events: Sequence[EventSpec] = ()
    requeue_after: float = 30.0
    action_handled: bool = False  # True: remove the artpulse.io/action annotation


@dataclass(frozen=True)
class AnalysisTarget:
    """One gate check to run: measure ``track``/``version`` over ``window`` seconds.

    ``stable_track``/``stable_version`` name the baseline for ``maxP95RatioToStable``
    (``None``: no baseline). ``shadow``: judge the shadow agreement of the stable pods with
    ``shadow_version`` (the candidate they mirror to).
    """

    track: str
    version: str
    window: float
    stable_track: str | None = None
    stable_version: str | None = None
    shadow: bool = False
    shadow_version: str | None = None  # while shadowing: the candidate mirrored by ``track``
    since: float | None = None  # seconds since the step began: the judge's evidence range


def aliases_to_resolve(spec: ModelSpec) -> tuple[str, ...]:
    """The MLflow aliases the handler must resolve for ``plan``."""
    return (spec.model.stable_alias, spec.model.candidate_alias)


def _effective_phase(status: RolloutStatus) -> Phase:
    if status.phase is Phase.PAUSED and status.paused_from is not None:
        return status.paused_from
    return status.phase


def _colors(spec: ModelSpec, status: RolloutStatus) -> tuple[str, str]:
    active = status.active_color or spec.strategy.blue_green.active_color.value
    return active, Color(active).other.value if active in ("blue", "green") else "green"


def _check_base(status: RolloutStatus) -> datetime | None:
    """The time the next check counts from: the step start or the last check in the step."""
    start = status.step_started_at
    last = status.analysis.last_check_time
    if start is None:
        return last
    if last is None or last < start:
        return start
    return last


def workload_ready_timeout(spec: ModelSpec) -> float:
    """Seconds a candidate workload may take to become ready before the rollout is undone."""
    return max(WORKLOAD_READY_MIN_TIMEOUT_S, spec.analysis.interval * spec.analysis.failure_limit)


def _weight_pending(status: RolloutStatus) -> bool:
    """Progressing, but the candidate's first weight waits for its workload (no check yet)."""
    return status.workload_wait_since is not None and status.step_started_at is None


def _bg_verified(status: RolloutStatus) -> bool:
    return status.analysis.passed_checks_in_step >= 1


def _target(spec: ModelSpec, status: RolloutStatus) -> AnalysisTarget | None:
    """Which check the current phase wants, whether or not it is due."""
    if status.phase is Phase.PAUSED or status.stable is None or status.candidate is None:
        return None
    window = spec.analysis.window
    stable_v = status.stable.version
    cand_v = status.candidate.version
    kind = spec.strategy.type
    active, idle = _colors(spec, status)
    if status.phase is Phase.SHADOWING:
        track = active if kind is StrategyType.BLUE_GREEN else TRACK_STABLE
        return AnalysisTarget(track, stable_v, window, shadow=True, shadow_version=cand_v)
    if status.phase is Phase.PROGRESSING:
        if _weight_pending(status):
            return None  # no traffic on the candidate yet: nothing to measure
        if kind is StrategyType.CANARY:
            return AnalysisTarget(TRACK_CANARY, cand_v, window, TRACK_STABLE, stable_v)
        if kind is StrategyType.SINGLE:
            # The previous version ran on the same track: its recent latency is the baseline.
            return AnalysisTarget(TRACK_STABLE, cand_v, window, TRACK_STABLE, stable_v)
        if spec.strategy.blue_green.preview_percent > 0:
            return AnalysisTarget(idle, cand_v, window, active, stable_v)
        return None
    if (
        status.phase is Phase.PROMOTING
        and kind is StrategyType.BLUE_GREEN
        and not _bg_verified(status)
    ):
        # After the switch the candidate runs on the (new) active colour.
        return AnalysisTarget(active, cand_v, window, idle, stable_v)
    return None


def analysis_target(spec: ModelSpec, status: RolloutStatus, now: datetime) -> AnalysisTarget | None:
    """The gate check due at ``now``, or ``None`` when none is due.

    A check is due one ``analysis.interval`` after the current step (or phase) began and then
    every interval; none while paused, promoting (except the BlueGreen verification) or idle.
    """
    target = _target(spec, status)
    if target is None:
        return None
    base = _check_base(status)
    if base is not None and now < base + timedelta(seconds=spec.analysis.interval):
        return None
    if status.step_started_at is not None:
        age = (now - status.step_started_at).total_seconds()
        target = replace(target, since=max(MIN_WINDOW_S, age))
    return target


def confirmation_due(spec: ModelSpec, status: RolloutStatus) -> bool:
    """Whether this pass must ask the ``confirmPromotion`` webhook: a promotion is waiting for
    it (the reconciler asks once per pass; the plan requeues every analysis interval)."""
    return (
        spec.analysis.confirm_promotion is not None
        and status.phase is Phase.PROGRESSING
        and status.awaiting_confirmation_since is not None
    )


def failed_status(
    status: RolloutStatus, message: str, now: datetime, generation: int
) -> RolloutStatus:
    """The status for a spec the operator cannot act on: phase Failed, Ready False, why."""
    conditions = set_condition(
        status.conditions, ConditionType.READY, False, "InvalidSpec", message, now, generation
    )
    return replace(
        status,
        phase=Phase.FAILED,
        message=message,
        observed_generation=generation,
        conditions=conditions,
    )


def _ref(rv: ResolvedVersion, alias: str | None = None) -> VersionRef:
    return VersionRef(version=rv.version, alias=alias or rv.alias, uri=rv.uri, run_id=rv.run_id)


def _fmt_value(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _measured_summary(a: AnalysisStatus) -> str:
    parts = [
        f"p95LatencyMs={_fmt_value(a.p95_latency_ms)}",
        f"errorRate={_fmt_value(a.error_rate)}",
        f"driftScore={_fmt_value(a.drift_score)}",
        f"requests={_fmt_value(a.requests)}",
    ]
    if a.p95_ratio_to_stable is not None:
        parts.append(f"p95RatioToStable={_fmt_value(a.p95_ratio_to_stable)}")
    if a.shadow_agreement is not None:
        parts.append(f"shadowAgreement={_fmt_value(a.shadow_agreement)}")
    return ", ".join(parts)


def _gate_tags(a: AnalysisStatus) -> dict[str, str]:
    values = {
        "p95_latency_ms": a.p95_latency_ms,
        "error_rate": a.error_rate,
        "drift_score": a.drift_score,
        "requests": a.requests,
        "p95_ratio_to_stable": a.p95_ratio_to_stable,
        "shadow_agreement": a.shadow_agreement,
    }
    return {f"{TAG_PREFIX}gate.{k}": f"{v:.6g}" for k, v in values.items() if v is not None}


@dataclass
class _Planner:
    spec: ModelSpec
    s: RolloutStatus
    obs: Observations
    events: list[EventSpec] = field(default_factory=list)
    moves: list[AliasMove] = field(default_factory=list)
    tags: list[VersionTag] = field(default_factory=list)
    action_handled: bool = False
    promote_requested: bool = False
    full_promote_requested: bool = False
    # The status as read: what the last reconcile rendered and applied (see workload_ready).
    before: RolloutStatus | None = None

    # --- helpers ---------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.obs.now

    @property
    def kind(self) -> StrategyType:
        return self.spec.strategy.type

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(EventSpec(type_, reason, message))

    def add_move(self, move: AliasMove) -> None:
        if move not in self.moves:
            self.moves.append(move)

    def update(self, **changes: object) -> None:
        self.s = replace(self.s, **changes)  # type: ignore[arg-type]

    def rolling(self) -> bool:
        return _effective_phase(self.s) in ROLLING

    def condition(self, type_: str, status: bool, reason: str, message: str) -> None:
        before = self.s.condition(type_)
        self.update(
            conditions=set_condition(
                self.s.conditions,
                type_,
                status,
                reason,
                message,
                self.now,
                self.obs.generation,
            )
        )
        flipped = before is None or before.status != ("True" if status else "False")
        if flipped and type_ in (
            ConditionType.REGISTRY_REACHABLE,
            ConditionType.METRICS_REACHABLE,
        ):
            if not status:
                self.event("Warning", f"{type_}False", message)
            elif before is not None:
                self.event("Normal", f"{type_}True", message)

    # --- the plan --------------------------------------------------------------------------

    def run(self) -> Plan:
        self.before = self.s
        if self.s.phase is Phase.FAILED:
            self.update(phase=Phase.STABLE if self.s.stable else Phase.PENDING, message=None)
        self.update(observed_generation=self.obs.generation)
        if self.kind is StrategyType.BLUE_GREEN and self.s.active_color is None:
            self.update(active_color=self.spec.strategy.blue_green.active_color.value)
        aliases = self.obs.aliases
        if aliases is None:
            message = self.obs.registry_error or "the model registry could not be reached"
            self.condition(ConditionType.REGISTRY_REACHABLE, False, "RegistryUnreachable", message)
            return self.finish()
        self.condition(
            ConditionType.REGISTRY_REACHABLE, True, "AliasesResolved", "MLflow aliases resolved"
        )
        stable_rv = aliases.get(self.spec.model.stable_alias)
        cand_rv = aliases.get(self.spec.model.candidate_alias)
        if self.obs.action:
            self.handle_action(self.obs.action.strip().lower(), cand_rv)
        self.follow_spec_pause()
        if self.s.phase is Phase.PAUSED and self.s.stable is None:
            # First sight is not a rollout step: a resource created paused still serves stable.
            self.adopt_stable(stable_rv)
        if self.s.phase is not Phase.PAUSED:
            self.adopt_stable(stable_rv)
            if self.s.stable is not None:
                if self.rolling():
                    self.follow_candidate(cand_rv)
                if self.rolling():
                    self.progress(stable_rv)
                if not self.rolling():
                    self.maybe_start(cand_rv)
            self.blue_green_scale_down()
        return self.finish()

    # --- actions and pause -----------------------------------------------------------------

    def record_action(self, action: str, outcome: str, accepted: bool) -> None:
        self.action_handled = True
        self.update(last_action=ActionRecord(action, self.now, outcome))
        if accepted:
            words = "".join(w.capitalize() for w in action.split("-"))  # ActionPromoteFull
            self.event("Normal", f"Action{words}", outcome)
        else:
            self.event("Warning", "ActionIgnored", f"{action}: {outcome}")

    def handle_action(self, action: str, cand_rv: ResolvedVersion | None) -> None:
        s = self.s
        paused = s.phase is Phase.PAUSED
        if action == "pause":
            if paused:
                self.record_action(action, "already paused", False)
            else:
                self.pause("action")
                self.record_action(action, "paused by the pause action", True)
        elif action == "resume":
            if not paused:
                self.record_action(action, "not paused", False)
            elif self.spec.paused:
                self.record_action(action, "spec.paused is true: set it to false to resume", False)
            else:
                self.resume()
                self.record_action(action, "resumed", True)
        elif action in ("promote", "promote-full"):
            full = action == "promote-full"
            if paused:
                self.record_action(action, "paused: resume first", False)
            elif not self.rolling():
                self.record_action(action, "no rollout in progress", False)
            elif s.phase is Phase.PROMOTING and not (
                self.kind is StrategyType.BLUE_GREEN and not _bg_verified(s)
            ):
                self.record_action(action, "promotion already under way", False)
            elif full and self.switch_would_wait():
                self.record_action(
                    action,
                    "the new colour's pods are not ready yet: promote-full switches all "
                    "traffic to them at once; try again when they are",
                    False,
                )
            elif not full and (why := self.promote_would_wait()) is not None:
                self.record_action(action, why, False)
            else:
                self.promote_requested = True
                self.full_promote_requested = full
                self.record_action(
                    action, "full promotion requested" if full else ("promote requested"), True
                )
        elif action == "abort":
            if (
                self.rolling()
                and _effective_phase(s) is Phase.PROMOTING
                and not (self.kind is StrategyType.BLUE_GREEN and not _bg_verified(s))
            ):
                self.record_action(action, "promotion already under way", False)
            elif self.rolling():
                if paused:
                    self.update(phase=s.paused_from, paused_from=None, paused_by=None)
                version = s.candidate.version if s.candidate else "?"
                self.rollback("aborted by the abort action", RolloutResult.ABORTED)
                self.record_action(action, f"rollout of version {version} aborted", True)
            elif self.blue_green_warm():
                self.flip_back_after_promotion()
                self.record_action(action, "switched back to the previous colour", True)
            else:
                self.record_action(action, "no rollout in progress", False)
        elif action == "retry":
            if self.rolling():
                self.record_action(action, "a rollout is in progress", False)
            elif cand_rv is not None and cand_rv.version in s.failed_versions:
                self.update(
                    failed_versions=tuple(v for v in s.failed_versions if v != cand_rv.version)
                )
                self.record_action(action, f"version {cand_rv.version} will be retried", True)
            else:
                self.record_action(action, "no failed candidate to retry", False)
        else:
            self.record_action(
                action, f"unknown action; expected one of {', '.join(ACTIONS)}", False
            )

    def pause(self, by: str) -> None:
        self.update(paused_from=self.s.phase, paused_by=by, phase=Phase.PAUSED)
        self.event(
            "Normal",
            "Paused",
            f"rollout paused ({'spec.paused' if by == 'spec' else 'pause action'})",
        )

    def resume(self) -> None:
        s = self.s
        phase = s.paused_from or (Phase.STABLE if s.stable else Phase.PENDING)
        changes: dict[str, object] = {"phase": phase, "paused_from": None, "paused_by": None}
        if s.step_started_at is not None:
            # The hold of the current step starts again: nothing advances on stale checks.
            changes["step_started_at"] = self.now
            changes["analysis"] = replace(s.analysis, passed_checks_in_step=0)
        if s.workload_wait_since is not None:
            changes["workload_wait_since"] = self.now  # a pause does not eat the deadline
        self.update(**changes)
        self.event("Normal", "Resumed", f"rollout resumed in phase {phase}")

    def follow_spec_pause(self) -> None:
        if self.spec.paused and self.s.phase is not Phase.PAUSED:
            self.pause("spec")
        elif not self.spec.paused and self.s.phase is Phase.PAUSED and self.s.paused_by == "spec":
            self.resume()

    # --- stable and candidate aliases ------------------------------------------------------

    def adopt_stable(self, stable_rv: ResolvedVersion | None) -> None:
        s = self.s
        alias = self.spec.model.stable_alias
        if stable_rv is None:
            if s.stable is None:
                self.update(
                    phase=Phase.PENDING,
                    message=f"MLflow alias {alias!r} of model {self.spec.model.name!r} is not set",
                )
            return
        if s.stable is None:
            if s.phase is Phase.PAUSED:
                self.update(stable=_ref(stable_rv, alias), paused_from=Phase.STABLE, message=None)
            else:
                self.update(stable=_ref(stable_rv, alias), phase=Phase.STABLE, message=None)
            self.event("Normal", "ServingStable", f"serving {alias} version {stable_rv.version}")
            return
        if stable_rv.version == s.stable.version:
            if _ref(stable_rv, alias) != s.stable:
                self.update(stable=_ref(stable_rv, alias))
            return
        if self.rolling():
            return  # progress() completes a promotion; any other move waits for the rollout
        if stable_rv.version in s.failed_versions:
            # Our own move back (BlueGreen abort after promotion) has not landed yet, or was
            # lost: keep serving the stable version and ask again.
            self.add_move(AliasMove(alias, s.stable.version))
            return
        old = s.stable.version
        self.update(stable=_ref(stable_rv, alias))
        self.event(
            "Normal",
            "StableChanged",
            f"{alias} moved from version {old} to {stable_rv.version} in MLflow: serving it",
        )

    def follow_candidate(self, cand_rv: ResolvedVersion | None) -> None:
        s = self.s
        if s.candidate is None or _effective_phase(s) is Phase.PROMOTING:
            return
        alias = self.spec.model.candidate_alias
        if cand_rv is None:
            self.rollback(
                f"candidate alias {alias!r} was removed", RolloutResult.ABORTED, block=False
            )
        elif cand_rv.version != s.candidate.version:
            self.rollback(
                f"superseded: {alias} moved to version {cand_rv.version}",
                RolloutResult.ABORTED,
                block=False,
            )

    def maybe_start(self, cand_rv: ResolvedVersion | None) -> None:
        s = self.s
        if cand_rv is None or s.stable is None or s.phase is Phase.PAUSED:
            return
        if cand_rv.version not in s.failed_versions and s.failed_versions:
            self.update(failed_versions=())  # the candidate alias moved on
        if cand_rv.version == s.stable.version:
            return
        if cand_rv.version in self.s.failed_versions:
            if self.s.phase is Phase.ROLLED_BACK and self.s.message:
                return  # the rollback message already says why
            self.update(
                message=f"version {cand_rv.version} failed before: move "
                f"{self.spec.model.candidate_alias} or ask for retry"
            )
            return
        self.start(cand_rv)

    # --- rollout transitions ---------------------------------------------------------------

    def start(self, cand_rv: ResolvedVersion) -> None:
        s = self.s
        assert s.stable is not None
        candidate = _ref(cand_rv, self.spec.model.candidate_alias)
        self.update(
            candidate=candidate,
            rollout_started_at=self.now,
            analysis=AnalysisStatus(),
            last_rollout=RolloutRecord(
                candidate.version, None, self.now, None, None, str(self.kind)
            ),
            message=None,
            # BlueGreen: the idle colour is repurposed for the candidate, warm or not.
            previous=None,
            scale_down_at=None,
            awaiting_confirmation_since=None,  # an approval is for one candidate only
        )
        self.event(
            "Normal",
            "RolloutStarted",
            f"{self.kind} rollout of version {candidate.version} "
            f"(stable {s.stable.version}) started",
        )
        if self.spec.strategy.shadow.enabled:
            self.update(
                phase=Phase.SHADOWING,
                step_started_at=self.now,
                current_step=None,
                canary_weight=0,
                shadow=ShadowStatus(uri=candidate.uri, started_at=self.now),
            )
            self.event(
                "Normal",
                "ShadowStarted",
                f"mirroring {self.spec.strategy.shadow.percent}% of requests to version "
                f"{candidate.version} for {self.spec.strategy.shadow.duration:g}s",
            )
        else:
            self.update(shadow=None)
            self.enter_live()

    def enter_live(self) -> None:
        s = self.s
        assert s.candidate is not None
        analysis = replace(s.analysis, passed_checks_in_step=0)
        if s.shadow is not None:
            self.update(shadow=replace(s.shadow, completed_at=self.now))
        if self.kind is StrategyType.SINGLE:
            self.update(
                phase=Phase.PROGRESSING,
                step_started_at=self.now,
                analysis=analysis,
                current_step=None,
                canary_weight=100,
            )
            self.event(
                "Normal", "RolledForward", f"stable track now runs version {s.candidate.version}"
            )
            return
        # The candidate track is scaled up with weight 0; its weight waits for its pods.
        self.update(
            phase=Phase.PROGRESSING,
            step_started_at=None,
            analysis=analysis,
            current_step=0 if self.kind is StrategyType.CANARY else None,
            canary_weight=0,
            workload_wait_since=self.now,
        )
        self.hold_for_workload(self.candidate_track())

    def candidate_track(self) -> str:
        if self.kind is StrategyType.CANARY:
            return TRACK_CANARY
        return _colors(self.spec, self.s)[1]

    def workload_ready(self, track: str) -> bool:
        """The track runs the candidate, as applied by an earlier reconcile, and is ready."""
        cand = self.s.candidate
        seen = self.before.tracks.get(track) if self.before is not None else None
        return (
            cand is not None
            and seen is not None
            and seen.scaled
            and seen.version is not None
            and seen.version.version == cand.version
            and self.obs.workloads_ready.get(track) is True
        )

    def hold_for_workload(self, track: str) -> None:
        """Keep the weight where it is until ``track`` is ready; undo after the deadline."""
        since = self.s.workload_wait_since or self.now
        if self.s.workload_wait_since is None:
            self.update(workload_wait_since=since)
        timeout = workload_ready_timeout(self.spec)
        version = self.s.candidate.version if self.s.candidate else "?"
        if self.now >= since + timedelta(seconds=timeout):
            self.rollback(
                f"WorkloadNotReady: the {track} workload of version {version} was not ready "
                f"within {timeout:g}s",
                RolloutResult.ROLLED_BACK,
            )
            return
        self.update(message=f"waiting for the {track} workload (version {version}) to become ready")

    def give_first_weight(self) -> None:
        """The candidate's workload is ready: its first step (or preview) begins now."""
        s = self.s
        assert s.candidate is not None
        common: dict[str, object] = {
            "step_started_at": self.now,
            "workload_wait_since": None,
            "message": None,
            "analysis": replace(s.analysis, passed_checks_in_step=0),
        }
        if self.kind is StrategyType.CANARY:
            weight = self.spec.strategy.canary.steps[0].weight
            self.update(current_step=0, canary_weight=weight, **common)
            self.event(
                "Normal",
                "StepStarted",
                f"step 1/{len(self.spec.strategy.canary.steps)}: "
                f"{weight}% to version {s.candidate.version}",
            )
        else:
            _, idle = _colors(self.spec, s)
            preview = self.spec.strategy.blue_green.preview_percent
            self.update(current_step=None, canary_weight=preview, **common)
            self.event(
                "Normal",
                "PreviewStarted",
                f"{idle} runs version {s.candidate.version} with {preview}% preview traffic",
            )

    def first_weight_given(self) -> bool:
        """False while the first weight waits for the workload (then it is handled here) and
        in the pass that gives it, unless a promote accepted in this pass acts on the step (or
        preview) begun now: it was accepted because the pods are ready (``promote_would_wait``)."""
        if not _weight_pending(self.s):
            return True
        track = self.candidate_track()
        if not self.workload_ready(track):
            self.hold_for_workload(track)
            return False
        self.give_first_weight()
        return self.promote_requested

    def count_gate(self, gate: GateResult) -> CountResult:
        target = _target(self.spec, self.s)
        counted = count(
            self.spec.analysis,
            self.s.analysis,
            gate,
            now=self.now,
            track=target.track if target else None,
            version=target.version if target else None,
        )
        self.update(analysis=counted.analysis)
        if gate.verdict is Verdict.ERROR:
            self.condition(ConditionType.METRICS_REACHABLE, False, "MetricsError", gate.message)
        else:
            self.condition(
                ConditionType.METRICS_REACHABLE, True, "MetricsQueried", "Prometheus answered"
            )
        if gate.verdict is Verdict.FAIL:
            self.event(
                "Warning",
                "AnalysisFailed",
                f"check failed ({counted.analysis.failed_checks}/{self.spec.analysis.failure_limit}): "
                f"{gate.message}",
            )
        return counted

    def progress(self, stable_rv: ResolvedVersion | None) -> None:
        s = self.s
        if s.candidate is None:
            return
        if stable_rv is not None and stable_rv.version == s.candidate.version:
            self.finish_promotion()
            return
        if self.full_promote_requested:
            # A person decided: no step, shadow, analysis or confirmation is waited for.
            self.promote(
                "promoted in full by the promote-full action (remaining steps and analysis "
                "skipped)",
                verified=True,
            )
            return
        phase = s.phase
        gate = self.obs.gate
        if gate is not None and _target(self.spec, s) is not None:
            counted = self.count_gate(gate)
            if counted.outcome is CheckOutcome.ROLLBACK:
                self.fail(counted.reason or "gates failed")
                return
        if phase is Phase.DEGRADED:
            if self.promote_requested:
                self.promote("promoted by the promote action over failed gates", verified=True)
            return
        if phase is Phase.SHADOWING:
            self.progress_shadow()
        elif phase is Phase.PROGRESSING:
            if self.kind is StrategyType.CANARY:
                self.progress_canary()
            elif self.kind is StrategyType.SINGLE:
                passed = self.promote_requested or self.s.analysis.passed_checks_in_step >= 1
                if passed and self.confirmed():
                    self.promote("gates passed")
            else:
                self.progress_blue_green()
        elif phase is Phase.PROMOTING:
            if self.kind is StrategyType.BLUE_GREEN and not _bg_verified(s):
                # ``s`` is the status before this check: verification ends now or later.
                if self.promote_requested or _bg_verified(self.s):
                    self.promote(
                        "promote action" if self.promote_requested else "verified after the switch",
                        verified=True,
                    )
                return
            self.request_alias_move()

    def progress_shadow(self) -> None:
        s = self.s
        shadow = s.shadow
        started = (shadow.started_at if shadow else None) or s.step_started_at or self.now
        done = self.now >= started + timedelta(seconds=self.spec.strategy.shadow.duration)
        if self.promote_requested or (done and s.analysis.passed_checks_in_step >= 1):
            if s.shadow is not None:
                self.update(shadow=replace(s.shadow, agreement=s.analysis.shadow_agreement))
            self.event(
                "Normal",
                "ShadowPassed",
                f"shadow phase of version {s.candidate.version if s.candidate else '?'} passed"
                + (" (promote action)" if self.promote_requested else ""),
            )
            self.enter_live()

    def progress_canary(self) -> None:
        if not self.first_weight_given():
            return
        s = self.s
        steps = self.spec.strategy.canary.steps
        index = min(s.current_step or 0, len(steps) - 1)
        step = steps[index]
        started = s.step_started_at or self.now
        if self.promote_requested:
            ready = True
        elif step.manual_promote:
            self.update(message=f"step {index + 1}/{len(steps)} waits for a promote action")
            return
        else:
            ready = s.analysis.passed_checks_in_step >= 1 and self.now >= started + timedelta(
                seconds=step.pause
            )
        if not ready:
            return
        if index + 1 >= len(steps):
            if self.confirmed():
                self.promote("all canary steps passed")
            return
        nxt = steps[index + 1]
        self.update(
            current_step=index + 1,
            canary_weight=nxt.weight,
            step_started_at=self.now,
            analysis=replace(s.analysis, passed_checks_in_step=0),
            message=None,
        )
        self.event(
            "Normal",
            "StepAdvanced",
            f"step {index + 2}/{len(steps)}: {nxt.weight}% to version "
            f"{s.candidate.version if s.candidate else '?'}",
        )

    def progress_blue_green(self) -> None:
        if not self.first_weight_given():
            return
        s = self.s
        bg = self.spec.strategy.blue_green
        started = s.step_started_at or self.now
        if bg.preview_percent > 0:
            checked = s.analysis.passed_checks_in_step >= 1
        else:
            checked = self.now >= started + timedelta(seconds=self.spec.analysis.interval)
        if self.promote_requested or (checked and bg.auto_promote):
            if not self.confirmed():
                return
            # The switch sends all traffic to the idle colour: never to pods still loading.
            idle = self.candidate_track()
            if not self.workload_ready(idle):
                self.hold_for_workload(idle)
                return
            self.update(workload_wait_since=None)
            self.switch_colors()
        elif checked:
            self.update(message="preview passed: waiting for a promote action")

    def switch_would_wait(self) -> bool:
        """A blue-green rollout not switched yet whose new colour's pods are not ready."""
        if self.kind is not StrategyType.BLUE_GREEN or self.s.previous is not None:
            return False
        return not self.workload_ready(self.candidate_track())

    def promote_would_wait(self) -> str | None:
        """Why a ``promote`` cannot act in this pass, or ``None`` when it can.

        While the candidate's pods are not ready the weight is held (``hold_for_workload``),
        so an accepted promote would be dropped. It is refused instead, and not remembered: a
        promote means "end the current step", and a step that has not begun has nothing to
        end; honoured minutes later it would skip the first step's hold unseen. The same
        predicate as the hold, so a pass that finds the pods ready acts on the promote.
        """
        if self.s.phase is not Phase.PROGRESSING:
            return None  # shadow: ends the shadow phase; Degraded: promotes over the gates
        if self.kind is StrategyType.CANARY:
            if _weight_pending(self.s) and not self.workload_ready(TRACK_CANARY):
                return "the canary's pods are not ready yet: promote again when they are"
        elif self.kind is StrategyType.BLUE_GREEN and self.switch_would_wait():
            return "the new colour's pods are not ready yet: promote again when they are"
        return None

    def confirmed(self) -> bool:
        """The ``confirmPromotion`` webhook gate (Flagger's confirm-promotion): promotion waits
        until the webhook answers 2xx; the reconciler asks it on every pass while
        ``awaiting_confirmation_since`` is set. A promote action is a human's confirmation."""
        if self.spec.analysis.confirm_promotion is None or self.promote_requested:
            return True
        answer = self.obs.confirmation
        version = self.s.candidate.version if self.s.candidate else "?"
        if answer is not None and answer.approved:
            self.update(awaiting_confirmation_since=None)
            self.event(
                "Normal",
                "PromotionConfirmed",
                f"version {version}: the confirmPromotion webhook approved ({answer.message})",
            )
            return True
        if self.s.awaiting_confirmation_since is None:
            self.update(awaiting_confirmation_since=self.now)
            self.event(
                "Normal",
                "AwaitingConfirmation",
                f"version {version} passed its analysis; promotion waits for the "
                "confirmPromotion webhook to answer 2xx",
            )
        detail = f": {answer.message}" if answer is not None else ""
        self.update(message=f"waiting for the confirmPromotion webhook{detail}")
        return False

    def switch_colors(self) -> None:
        s = self.s
        active, idle = _colors(self.spec, s)
        self.update(
            active_color=idle,
            previous=s.stable,
            scale_down_at=None,
            canary_weight=100,
            phase=Phase.PROMOTING,
            step_started_at=self.now,
            analysis=replace(s.analysis, passed_checks_in_step=0),
            message=None,
        )
        self.event(
            "Normal",
            "Switched",
            f"{idle} (version {s.candidate.version if s.candidate else '?'}) is now active; "
            f"{active} stays warm for rollback",
        )

    def promote(self, reason: str, *, verified: bool = False) -> None:
        """Enter Promoting and ask for the stable alias move.

        BlueGreen switches colours first (if not yet); the move waits for the verification
        check on the new colour unless ``verified`` (a human said so).
        """
        if self.kind is StrategyType.BLUE_GREEN:
            if self.s.previous is None:
                self.switch_colors()
            if not verified:
                return
            self.update(analysis=replace(self.s.analysis, passed_checks_in_step=1))
        self.update(phase=Phase.PROMOTING, message=reason)
        self.event(
            "Normal",
            "Promoting",
            f"version {self.s.candidate.version if self.s.candidate else '?'}: {reason}; "
            f"moving {self.spec.model.stable_alias}",
        )
        self.request_alias_move()

    def request_alias_move(self) -> None:
        if self.s.candidate is not None:
            self.add_move(AliasMove(self.spec.model.stable_alias, self.s.candidate.version))

    def finish_promotion(self) -> None:
        s = self.s
        assert s.candidate is not None
        cand = s.candidate
        started = s.rollout_started_at or (s.last_rollout.started_at if s.last_rollout else None)
        record = RolloutRecord(
            cand.version,
            str(RolloutResult.PROMOTED),
            started,
            self.now,
            s.analysis.message or "gates passed",
            str(self.kind),
        )
        tags = {
            f"{TAG_PREFIX}result": "promoted",
            f"{TAG_PREFIX}strategy": str(self.kind),
            f"{TAG_PREFIX}finished_at": format_time(self.now) or "",
            **_gate_tags(s.analysis),
        }
        if started is not None:
            tags[f"{TAG_PREFIX}started_at"] = format_time(started) or ""
        self.tags.append(VersionTag(cand.version, tags))
        changes: dict[str, object] = {}
        if self.kind is StrategyType.BLUE_GREEN:
            if s.previous is None:
                # The alias was moved by hand before the switch: switch now.
                _active, idle = _colors(self.spec, s)
                changes["active_color"] = idle
                changes["previous"] = s.stable
            changes["scale_down_at"] = self.now + timedelta(
                seconds=self.spec.strategy.blue_green.scale_down_delay
            )
        self.update(
            phase=Phase.STABLE,
            stable=VersionRef(cand.version, self.spec.model.stable_alias, cand.uri, cand.run_id),
            candidate=None,
            canary_weight=0,
            current_step=None,
            step_started_at=None,
            rollout_started_at=None,
            workload_wait_since=None,
            paused_from=None,
            paused_by=None,
            last_rollout=record,
            history=(*s.history, record)[-HISTORY_LIMIT:],
            message=None,
            **changes,
        )
        self.event(
            "Normal",
            "Promoted",
            f"version {cand.version} promoted to {self.spec.model.stable_alias} "
            f"({_measured_summary(s.analysis)})",
        )

    def fail(self, reason: str) -> None:
        if self.spec.rollback.automatic:
            self.rollback(reason, RolloutResult.ROLLED_BACK)
            return
        self.update(phase=Phase.DEGRADED, message=f"gates failed: {reason}")
        self.event(
            "Warning",
            "GatesFailed",
            f"version {self.s.candidate.version if self.s.candidate else '?'} failed its gates "
            f"({reason}; {_measured_summary(self.s.analysis)}); automatic rollback is off: "
            "promote or abort",
        )

    def rollback(self, reason: str, result: RolloutResult, *, block: bool = True) -> None:
        s = self.s
        if s.candidate is None:
            return
        cand = s.candidate
        changes: dict[str, object] = {}
        if self.kind is StrategyType.BLUE_GREEN and s.previous is not None:
            # Switched already: flip back to the warm colour at once.
            _active, idle = _colors(self.spec, s)
            changes["active_color"] = idle
        failed = s.failed_versions
        if block and cand.version not in failed:
            failed = (*failed, cand.version)
        record = RolloutRecord(
            cand.version,
            str(result),
            s.rollout_started_at,
            self.now,
            reason,
            str(self.kind),
        )
        self.update(
            phase=Phase.ROLLED_BACK,
            canary_weight=0,
            current_step=None,
            step_started_at=None,
            rollout_started_at=None,
            previous=None if self.kind is StrategyType.BLUE_GREEN else s.previous,
            scale_down_at=None,
            workload_wait_since=None,
            shadow=None,
            failed_versions=failed,
            last_rollout=record,
            history=(*s.history, record)[-HISTORY_LIMIT:],
            message=f"version {cand.version} {'rolled back' if result is RolloutResult.ROLLED_BACK else 'aborted'}: {reason}",
            **changes,
        )
        if self.spec.rollback.tag_failed_version:
            tags = {
                f"{TAG_PREFIX}result": "rolled_back"
                if result is RolloutResult.ROLLED_BACK
                else "aborted",
                f"{TAG_PREFIX}reason": reason[:500],
                f"{TAG_PREFIX}strategy": str(self.kind),
                f"{TAG_PREFIX}finished_at": format_time(self.now) or "",
                **_gate_tags(s.analysis),
            }
            if s.rollout_started_at is not None:
                tags[f"{TAG_PREFIX}started_at"] = format_time(s.rollout_started_at) or ""
            if s.analysis.failed_gates:
                tags[f"{TAG_PREFIX}failed_gates"] = ",".join(s.analysis.failed_gates)
            self.tags.append(VersionTag(cand.version, tags))
        gates = (
            f" [failed gates: {', '.join(s.analysis.failed_gates)}]"
            if s.analysis.failed_gates
            else ""
        )
        self.event(
            "Warning",
            "RolledBack" if result is RolloutResult.ROLLED_BACK else "Aborted",
            f"version {cand.version} {'rolled back' if result is RolloutResult.ROLLED_BACK else 'aborted'}"
            f" to stable version {s.stable.version if s.stable else '?'}: {reason}{gates} "
            f"({_measured_summary(s.analysis)})",
        )

    # --- BlueGreen after promotion ---------------------------------------------------------

    def blue_green_warm(self) -> bool:
        s = self.s
        return (
            self.kind is StrategyType.BLUE_GREEN
            and s.phase is Phase.STABLE
            and s.previous is not None
            and s.scale_down_at is not None
            and self.now < s.scale_down_at
        )

    def flip_back_after_promotion(self) -> None:
        s = self.s
        assert s.previous is not None
        assert s.stable is not None
        _, idle = _colors(self.spec, s)
        bad = s.stable
        prev = replace(s.previous, alias=self.spec.model.stable_alias)
        record = RolloutRecord(
            bad.version,
            str(RolloutResult.ABORTED),
            None,
            self.now,
            "aborted after promotion",
            str(self.kind),
        )
        self.add_move(AliasMove(self.spec.model.stable_alias, prev.version))
        if self.spec.rollback.tag_failed_version:
            self.tags.append(
                VersionTag(
                    bad.version,
                    {
                        f"{TAG_PREFIX}result": "aborted",
                        f"{TAG_PREFIX}reason": "aborted after promotion",
                        f"{TAG_PREFIX}finished_at": format_time(self.now) or "",
                    },
                )
            )
        self.update(
            phase=Phase.ROLLED_BACK,
            active_color=idle,
            stable=prev,
            candidate=bad,
            previous=None,
            scale_down_at=None,
            failed_versions=(*s.failed_versions, bad.version),
            last_rollout=record,
            history=(*s.history, record)[-HISTORY_LIMIT:],
            message=f"version {bad.version} aborted after promotion: {idle} is active again",
        )
        self.event(
            "Warning",
            "Aborted",
            f"switched back to {idle} (version {prev.version}); version {bad.version} aborted",
        )

    def blue_green_scale_down(self) -> None:
        s = self.s
        if (
            self.kind is StrategyType.BLUE_GREEN
            and s.previous is not None
            and s.scale_down_at is not None
            and self.now >= s.scale_down_at
            and not self.rolling()
        ):
            _, idle = _colors(self.spec, s)
            self.update(previous=None, scale_down_at=None)
            self.event("Normal", "ScaledDown", f"{idle} scaled down after scaleDownDelay")

    # --- the result ------------------------------------------------------------------------

    def tracks(self) -> dict[str, TrackStatus]:
        s = self.s
        if s.stable is None:
            return {}
        phase = _effective_phase(s)
        cand = s.candidate
        live = phase in (Phase.PROGRESSING, Phase.PROMOTING, Phase.DEGRADED) and cand is not None
        shadow_uri = cand.uri if phase is Phase.SHADOWING and cand is not None else None
        if self.kind is StrategyType.SINGLE:
            version = cand if live and cand is not None else s.stable
            return {TRACK_STABLE: TrackStatus(version, 100, True, shadow_uri)}
        if self.kind is StrategyType.CANARY:
            if live and cand is not None:
                w = max(0, min(100, s.canary_weight))
                stable_version = cand if phase is Phase.PROMOTING else s.stable
                return {
                    TRACK_STABLE: TrackStatus(stable_version, 100 - w, True),
                    TRACK_CANARY: TrackStatus(cand, w, True),
                }
            return {
                TRACK_STABLE: TrackStatus(s.stable, 100, True, shadow_uri),
                TRACK_CANARY: TrackStatus(cand or s.stable, 0, False),
            }
        active, idle = _colors(self.spec, s)
        if live and cand is not None and s.previous is not None:
            # Switched: the candidate is active, the old version warm on the idle colour.
            return {
                active: TrackStatus(cand, 100, True),
                idle: TrackStatus(s.previous or s.stable, 0, True),
            }
        if live and cand is not None:
            w = max(0, min(100, s.canary_weight))
            return {
                active: TrackStatus(s.stable, 100 - w, True),
                idle: TrackStatus(cand, w, True),
            }
        warm = s.previous is not None and s.scale_down_at is not None
        idle_version = s.previous if warm else (cand or s.stable)
        return {
            active: TrackStatus(s.stable, 100, True, shadow_uri),
            idle: TrackStatus(idle_version, 0, warm),
        }

    def finish(self) -> Plan:
        if self.s.awaiting_confirmation_since is not None and (
            _effective_phase(self.s) is not Phase.PROGRESSING
            or self.spec.analysis.confirm_promotion is None
        ):
            self.update(awaiting_confirmation_since=None)
        tracks = self.tracks()
        self.update(tracks=tracks)
        self.set_conditions(tracks)
        self.report_deprecations()
        return Plan(
            status=self.s,
            alias_moves=tuple(self.moves),
            version_tags=tuple(self.tags),
            events=tuple(self.events),
            requeue_after=self.requeue_after(),
            action_handled=self.action_handled,
        )

    def set_conditions(self, tracks: Mapping[str, TrackStatus]) -> None:
        s = self.s
        phase = _effective_phase(s)
        ready_tracks = [t for t, ts in tracks.items() if ts.scaled]
        not_ready = [t for t in ready_tracks if self.obs.workloads_ready.get(t) is False]
        if s.stable is None:
            self.condition(
                ConditionType.READY, False, "NoStableVersion", s.message or "no stable version yet"
            )
        elif not_ready:
            self.condition(
                ConditionType.READY,
                False,
                "WorkloadsNotReady",
                f"tracks not ready: {', '.join(sorted(not_ready))}",
            )
        else:
            self.condition(
                ConditionType.READY, True, "Serving", f"serving version {s.stable.version}"
            )
        if phase in ROLLING and phase is not Phase.DEGRADED:
            version = s.candidate.version if s.candidate else "?"
            reason = "Paused" if s.phase is Phase.PAUSED else str(phase)
            message = f"rolling out version {version}"
            if s.workload_wait_since is not None and s.phase is not Phase.PAUSED:
                reason = "WaitingForWorkload"
                message = s.message or f"{message}: waiting for its workload to become ready"
            self.condition(ConditionType.PROGRESSING, True, reason, message)
        else:
            reason = (
                str(s.last_rollout.result) if s.last_rollout and s.last_rollout.result else "Idle"
            )
            self.condition(ConditionType.PROGRESSING, False, reason, s.message or "no rollout")
        degraded = s.condition(ConditionType.DEGRADED)
        if phase is Phase.DEGRADED:
            self.condition(ConditionType.DEGRADED, True, "GatesFailed", s.message or "gates failed")
        elif degraded is None or degraded.reason == "GatesFailed":
            # Other Degraded reasons belong to the k8s layer; leave them alone.
            self.condition(ConditionType.DEGRADED, False, "AsExpected", "no failed gates pending")

    def report_deprecations(self) -> None:
        found = self.spec.deprecations
        before = self.s.condition(ConditionType.DEPRECATED_FIELDS)
        if not found:
            if before is not None:
                self.update(
                    conditions=remove_condition(self.s.conditions, ConditionType.DEPRECATED_FIELDS)
                )
            return
        message = "; ".join(f"{d.field}: {d.message}" for d in found)
        self.condition(ConditionType.DEPRECATED_FIELDS, True, found[0].reason, message)
        if before is None or before.status != "True" or before.message != message:
            self.event("Warning", "DeprecatedField", message)

    def requeue_after(self) -> float:
        s = self.s
        spec = self.spec
        delays = [spec.model.poll_interval]
        if s.phase is not Phase.PAUSED and self.obs.aliases is not None:
            if _target(spec, s) is not None:
                base = _check_base(s) or self.now
                due = base + timedelta(seconds=spec.analysis.interval)
                delays.append((due - self.now).total_seconds())
            started = s.step_started_at
            if s.phase is Phase.SHADOWING and s.shadow and s.shadow.started_at:
                end = s.shadow.started_at + timedelta(seconds=spec.strategy.shadow.duration)
                delays.append((end - self.now).total_seconds())
            if s.phase is Phase.PROGRESSING and started is not None:
                # Timers only count while they are ahead; an elapsed pause waits for a check.
                if self.kind is StrategyType.CANARY and s.current_step is not None:
                    steps = spec.strategy.canary.steps
                    pause = steps[min(s.current_step, len(steps) - 1)].pause
                    left = (started + timedelta(seconds=pause) - self.now).total_seconds()
                    if left > 0:
                        delays.append(left)
                if self.kind is StrategyType.BLUE_GREEN:
                    end = started + timedelta(seconds=spec.analysis.interval)
                    if end > self.now:
                        delays.append((end - self.now).total_seconds())
            if s.phase is Phase.PROGRESSING and s.workload_wait_since is not None:
                delays.append(WORKLOAD_RECHECK_S)
            if s.phase is Phase.PROGRESSING and s.awaiting_confirmation_since is not None:
                delays.append(spec.analysis.interval)
            if s.phase is Phase.PROMOTING and self.moves:
                delays.append(PROMOTION_RECHECK_S)
            if s.scale_down_at is not None:
                delays.append((s.scale_down_at - self.now).total_seconds())
        return max(MIN_REQUEUE_S, min(delays))


def plan(spec: ModelSpec, status: RolloutStatus, obs: Observations) -> Plan:
    """Decide the next status and actions; see the module docstring for the semantics."""
    return _Planner(spec, status, obs).run()

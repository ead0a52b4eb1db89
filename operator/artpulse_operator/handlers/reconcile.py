"""The reconcile service: one pass over one ArtPulseModel, from reading it to writing its status.

Who calls it: the Kopf handlers in ``handlers/__init__.py`` (create, update, resume, the
per-resource daemon, the drift watcher). It is the only place where the pure engine meets the
I/O: MLflow (``registry``), Prometheus (``metrics``) and the API server (``k8s``).

One pass, in order (the engine's contract, ``engine/rollout.py``):

1. read the resource fresh (never a stale event body: the status is the rollout's memory);
2. parse the spec; a spec the engine cannot act on becomes phase Failed, nothing else changes;
3. resolve the credentials of MLflow and Prometheus (``credentials.resolver``: the operator's
   only for allowlisted URLs, else the resource's Secret, else none), then the MLflow aliases
   (unreachable or an unusable Secret: ``aliases=None``, the plan changes nothing else);
4. run the gate check ``analysis_target`` says is due, if any;
5. ``plan`` the next status; render ``desired_objects`` from it (with the replicas each track's
   Deployment runs, for the autoscaling rules) and apply them (weights first: a rollback is a
   weight of 0, written before anything else happens);
6. move aliases and tag versions as the plan says (a failure is retried by the plan itself);
7. write the status once (optimistic concurrency), post the Events, drop the action annotation
   only if it still holds the action handled (a JSON patch ``test``: a newer one is kept and
   acted on in the next pass, soon).

API errors worth retrying raise :class:`ApiTemporaryError` (a ``kopf.TemporaryError``); objects
the operator cannot write become a ``Degraded`` condition instead of an endless retry.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import kopf

from artpulse_operator.credentials.resolver import CredentialResolver, Endpoint
from artpulse_operator.engine import rollout
from artpulse_operator.engine.credentials import HttpAuth, with_credentials_condition
from artpulse_operator.engine.desired import desired_objects
from artpulse_operator.engine.gates import evaluate
from artpulse_operator.engine.network_policy import NetworkPolicyDefaults
from artpulse_operator.engine.observations import (
    GateDecision,
    GateResult,
    Observations,
    ResolvedVersion,
)
from artpulse_operator.engine.rollout import ACTION_ANNOTATION, AnalysisTarget, EventSpec, Plan
from artpulse_operator.engine.spec import ModelSpec, SpecError, parse_spec
from artpulse_operator.engine.status import (
    ConditionType,
    Phase,
    RolloutStatus,
    TrackStatus,
    set_condition,
)
from artpulse_operator.handlers.clients import ClientCache
from artpulse_operator.handlers.custom_queries import custom_queries
from artpulse_operator.handlers.outbound import Outbound
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.k8s.annotations import remove_annotation_if
from artpulse_operator.k8s.apply import ApplyCache, ApplyProblem, SyncResult, sync_owned
from artpulse_operator.k8s.client import ApiError, KubeClient
from artpulse_operator.k8s.events import post_event
from artpulse_operator.k8s.status import ARTPULSE_MODELS, write_status
from artpulse_operator.k8s.workloads import Workloads, observe_workloads
from artpulse_operator.metrics import run_check
from artpulse_operator.metrics.operator import (
    observe_rollback_latency,
    record_plan,
    rollout_results,
)
from artpulse_operator.settings import Settings

__all__ = [
    "ApiTemporaryError",
    "MetricsSourceLike",
    "Outcome",
    "Reconciler",
    "RegistryLike",
]

_log = logging.getLogger(__name__)
# Degraded reasons that belong to the k8s layer (the engine owns "GatesFailed").
K8S_DEGRADED_REASONS = frozenset(
    {"RouteKindNotInstalled", "KindNotInstalled", "Forbidden", "Invalid", "ApplyFailed"}
)


class ApiTemporaryError(kopf.TemporaryError):
    """The API server could not be asked or said "try again" (409, 429, 5xx)."""


class RegistryLike(Protocol):
    """What the glue needs of ``artpulse_operator.registry.MlflowRegistry``."""

    def resolve(self, model: str, aliases: Any) -> Any: ...
    def move_alias(self, model: str, alias: str, version: str) -> Any: ...
    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> Any: ...


class MetricsSourceLike(Protocol):
    """What the glue needs of ``artpulse_operator.metrics.PrometheusSource``."""

    def measure(
        self, namespace: str, model: str, track: str, version: str, window: float
    ) -> Any: ...


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an adapter method whether it is async or blocking (then off the event loop)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    return await asyncio.to_thread(fn, *args)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile pass wants next: look again after ``requeue_after`` seconds (None: only
    on a change of the resource, e.g. a Failed spec)."""

    requeue_after: float | None
    phase: str | None = None
    status_written: bool = False
    sync: SyncResult | None = None
    model: str | None = None  # spec.model.name, for the MLflow webhook's wake-ups


@dataclass
class Reconciler:
    """Holds the clients; :meth:`reconcile` is one pass over one resource."""

    kube: KubeClient
    settings: Settings
    # Clients for one URL and the credentials chosen for it (never the environment's).
    registry_factory: Callable[[str, HttpAuth], RegistryLike]
    metrics_factory: Callable[[str, HttpAuth], MetricsSourceLike]
    registry_errors: tuple[type[BaseException], ...]
    credentials: CredentialResolver
    network: NetworkPolicyDefaults = field(default_factory=NetworkPolicyDefaults)
    cache: ApplyCache = field(default_factory=ApplyCache)
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Notifications and the confirmPromotion gate (None: no webhooks are called).
    outbound: Outbound | None = None

    def __post_init__(self) -> None:
        self._registries = ClientCache(self.registry_factory)
        self._metrics = ClientCache(self.metrics_factory)

    # --- clients per URL and credentials ---------------------------------------------------

    def _registry(self, endpoint: Endpoint | None) -> RegistryLike | None:
        if endpoint is None or endpoint.problem is not None:
            return None
        return self._registries.get(endpoint.uri, endpoint.auth)

    def _metrics_source(self, endpoint: Endpoint | None) -> MetricsSourceLike | None:
        if endpoint is None or endpoint.problem is not None:
            return None
        return self._metrics.get(endpoint.uri, endpoint.auth)

    # --- one pass --------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str, *, full: bool = False) -> Outcome:
        started = time.perf_counter()
        try:
            return await self._reconcile(namespace, name, full=full)
        except ApiError as exc:
            self.telemetry.reconcile_errors.labels("ApiError").inc()
            if exc.temporary:
                raise ApiTemporaryError(
                    f"API server: {exc}", delay=1 if exc.conflict else 5
                ) from exc
            raise kopf.PermanentError(f"API server refused: {exc}") from exc
        except (kopf.TemporaryError, kopf.PermanentError):
            raise
        except Exception:
            self.telemetry.reconcile_errors.labels("Unexpected").inc()
            raise
        finally:
            self.telemetry.reconcile_duration.observe(time.perf_counter() - started)

    async def _reconcile(self, namespace: str, name: str, *, full: bool) -> Outcome:
        try:
            body = await self.kube.get(ARTPULSE_MODELS, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                self.cache.forget_owner(namespace, name)
                self.telemetry.models.forget(namespace, name)
                return Outcome(requeue_after=None)
            raise
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self.telemetry.models.forget(namespace, name)
            return Outcome(requeue_after=None)  # owned objects go with it (ownerReferences)
        generation = int(meta.get("generation") or 0)
        old_raw: Mapping[str, Any] = body.get("status") or {}
        status = RolloutStatus.from_dict(old_raw)
        now = self.clock()

        try:
            spec = parse_spec(body.get("spec") or {})
        except SpecError as exc:
            return await self._failed(body, status, old_raw, str(exc), now, generation)

        annotations = meta.get("annotations") or {}
        action = annotations.get(ACTION_ANNOTATION) or None

        mlflow = await self.credentials.mlflow(namespace, spec)
        prometheus = await self.credentials.prometheus(namespace, spec)
        aliases, registry_error = await self._resolve(spec, mlflow)
        target = rollout.analysis_target(spec, status, now) if aliases is not None else None
        check_started = time.perf_counter()
        gate = (
            await self._check(spec, namespace, name, target, prometheus)
            if target is not None
            else None
        )
        # Readiness is judged against the tracks the previous pass applied (the status read).
        workloads = await self._workloads(namespace, name, status.tracks)
        confirmation: GateDecision | None = None
        if rollout.confirmation_due(spec, status) and aliases is not None:
            confirmation = (
                await self.outbound.confirm(spec, namespace, name, status, now)
                if self.outbound is not None
                else GateDecision(False, None, "webhooks are off in this operator")
            )

        result = rollout.plan(
            spec,
            status,
            Observations(
                now=now,
                generation=generation,
                aliases=aliases,
                registry_error=registry_error,
                gate=gate,
                action=action,
                workloads_ready=workloads.ready,
                confirmation=confirmation,
            ),
        )

        desired = desired_objects(
            name,
            namespace,
            meta["uid"],
            spec,
            result.status,
            tracking_uri=self.settings.mlflow_tracking_uri,
            network=self.network,
            observed_replicas=workloads.replicas,
            now=now,
        )
        try:
            sync = await sync_owned(
                self.kube, namespace, name, meta["uid"], desired, self.cache, full=full
            )
        except ApiError as exc:
            await self._report_apply_failure(namespace, name, meta, status, old_raw, exc, now)
            raise
        self.telemetry.objects_applied.inc(sync.applied)
        self.telemetry.objects_deleted.inc(len(sync.deleted))

        new_status = self._with_apply_problems(result.status, sync.problems, now, generation)
        new_status, credential_events = with_credentials_condition(
            new_status,
            [e.report for e in (mlflow, prometheus) if e is not None],
            now,
            generation,
        )
        self._record_outcome(status, result, gate, check_started)
        extra_events = [*self._transition_events(status, new_status, result), *credential_events]

        await self._registry_actions(spec, result, mlflow)

        written = await self._write_status(namespace, name, meta, new_status, old_raw, status)
        # After the write: a conflict retries the pass, and a rollout must not count twice.
        self.telemetry.models.record(
            namespace,
            name,
            str(new_status.phase),
            new_status.canary_weight,
            rollout_results(result),
        )
        for ev in (*result.events, *extra_events):
            await post_event(self.kube, body, ev.type, ev.reason, ev.message)
        if self.outbound is not None:
            self.outbound.notify(
                namespace,
                name,
                spec.model.name,
                spec.notifications,
                result.events,
                status,
                new_status,
                now,
            )
        requeue_after = result.requeue_after
        if result.action_handled and action is not None:
            removed = await remove_annotation_if(
                self.kube, ARTPULSE_MODELS, namespace, name, ACTION_ANNOTATION, action
            )
            if not removed:
                # Another action was set while this one was handled: it stays, and is acted
                # on (or refused) by the next pass, soon.
                _log.info("%s/%s: %s changed while handled", namespace, name, ACTION_ANNOTATION)
                requeue_after = min(requeue_after, rollout.MIN_REQUEUE_S)
        return Outcome(
            requeue_after=requeue_after,
            phase=str(new_status.phase),
            status_written=written,
            sync=sync,
            model=spec.model.name,
        )

    # --- the steps -------------------------------------------------------------------------

    async def _failed(
        self,
        body: Mapping[str, Any],
        status: RolloutStatus,
        old_raw: Mapping[str, Any],
        message: str,
        now: datetime,
        generation: int,
    ) -> Outcome:
        """A spec the engine cannot act on: phase Failed and why; the cluster is left alone."""
        self.telemetry.reconcile_errors.labels("InvalidSpec").inc()
        meta = body["metadata"]
        new_status = rollout.failed_status(status, message, now, generation)
        written = await self._write_status(
            meta["namespace"], meta["name"], meta, new_status, old_raw, status
        )
        self.telemetry.models.record(
            meta["namespace"], meta["name"], str(new_status.phase), new_status.canary_weight
        )
        if status.phase is not Phase.FAILED or status.message != message:
            await post_event(self.kube, body, "Warning", "InvalidSpec", message)
            if self.outbound is not None:
                self.outbound.notify_invalid(body, status, new_status, message, now)
        return Outcome(requeue_after=None, phase=str(Phase.FAILED), status_written=written)

    async def _resolve(
        self, spec: ModelSpec, endpoint: Endpoint | None
    ) -> tuple[Mapping[str, ResolvedVersion | None] | None, str | None]:
        if endpoint is not None and endpoint.problem is not None:
            return None, endpoint.problem.message  # nothing is sent without usable credentials
        registry = self._registry(endpoint)
        if registry is None:
            return None, (
                "no MLflow tracking URI: set spec.model.trackingUri or ARTPULSE_MLFLOW_TRACKING_URI"
            )
        try:
            aliases = await _call(
                registry.resolve, spec.model.name, rollout.aliases_to_resolve(spec)
            )
        except self.registry_errors as exc:
            self.telemetry.reconcile_errors.labels("RegistryError").inc()
            return None, str(exc) or type(exc).__name__
        return aliases, None

    async def _check(
        self,
        spec: ModelSpec,
        namespace: str,
        name: str,
        target: AnalysisTarget,
        endpoint: Endpoint | None,
    ) -> GateResult:
        if endpoint is not None and endpoint.problem is not None:
            message = endpoint.problem.message
            return evaluate(spec.analysis, None, None, message, shadow=target.shadow)
        source = self._metrics_source(endpoint)
        if source is None:
            return evaluate(
                spec.analysis,
                None,
                None,
                "no Prometheus address: set spec.analysis.prometheus.address or ARTPULSE_PROMETHEUS_URL",
                shadow=target.shadow,
            )
        custom = await custom_queries(
            self.kube,
            self.credentials.prometheus,
            self._metrics_source,
            spec,
            namespace,
            name,
            target,
        )
        gate: GateResult = await asyncio.to_thread(
            run_check, source, spec.analysis, namespace, spec.model.name, target, custom
        )
        return gate

    async def _workloads(
        self, namespace: str, name: str, tracks: Mapping[str, TrackStatus]
    ) -> Workloads:
        return await observe_workloads(self.kube, namespace, name, tracks)

    def _with_apply_problems(
        self,
        status: RolloutStatus,
        problems: list[ApplyProblem],
        now: datetime,
        generation: int,
    ) -> RolloutStatus:
        """Set or clear the k8s layer's Degraded condition (the engine owns GatesFailed)."""
        current = status.condition(ConditionType.DEGRADED)
        if problems:
            first = problems[0]
            message = "; ".join(f"{p.kind}/{p.name}: {p.message}" for p in problems)
            conditions = set_condition(
                status.conditions,
                ConditionType.DEGRADED,
                True,
                first.reason,
                message,
                now,
                generation,
            )
            return replace(status, conditions=conditions)
        if current is not None and current.reason in K8S_DEGRADED_REASONS:
            conditions = set_condition(
                status.conditions,
                ConditionType.DEGRADED,
                False,
                "AsExpected",
                "all owned objects written",
                now,
                generation,
            )
            return replace(status, conditions=conditions)
        return status

    @staticmethod
    def _record_outcome(
        old: RolloutStatus, result: Plan, gate: GateResult | None, check_started: float
    ) -> None:
        record_plan(result, gate)
        if result.status.phase is Phase.ROLLED_BACK and old.phase is not Phase.ROLLED_BACK and gate:
            # The weight-0 objects were written just before this call.
            observe_rollback_latency(time.perf_counter() - check_started)

    @staticmethod
    def _transition_events(old: RolloutStatus, new: RolloutStatus, result: Plan) -> list[EventSpec]:
        """An Event on every phase change and Degraded flip the plan did not already announce."""
        events: list[EventSpec] = []
        if new.phase is not old.phase and not result.events:
            events.append(EventSpec("Normal", "PhaseChanged", f"phase {old.phase} -> {new.phase}"))
        old_d, new_d = old.condition(ConditionType.DEGRADED), new.condition(ConditionType.DEGRADED)
        flipped = (
            old_d is None or old_d.status != "True" or old_d.reason != new_d.reason
            if new_d
            else False
        )
        if (
            new_d is not None
            and new_d.reason in K8S_DEGRADED_REASONS
            and new_d.status == "True"
            and flipped
        ):
            events.append(EventSpec("Warning", new_d.reason, new_d.message))
        return events

    async def _registry_actions(
        self, spec: ModelSpec, result: Plan, endpoint: Endpoint | None
    ) -> None:
        if not result.alias_moves and not result.version_tags:
            return
        registry = self._registry(endpoint)
        if registry is None:
            return
        model = spec.model.name
        try:
            for move in result.alias_moves:
                await _call(registry.move_alias, model, move.alias, move.version)
            for tag in result.version_tags:
                await _call(registry.tag_version, model, tag.version, dict(tag.tags))
        except self.registry_errors as exc:
            # The plan re-issues the move while it waits in Promoting; tags are best effort.
            self.telemetry.reconcile_errors.labels("RegistryError").inc()
            _log.warning("MLflow update for %s failed (retried by the plan): %s", model, exc)

    async def _report_apply_failure(
        self,
        namespace: str,
        name: str,
        meta: Mapping[str, Any],
        status: RolloutStatus,
        old_raw: Mapping[str, Any],
        exc: ApiError,
        now: datetime,
    ) -> None:
        """The API server refused a write with an error that may last (a full Service IP
        range, an admission webhook down): say so on the resource before the retry.

        The *previous* status gets the condition, not the plan's: the planned state is not in
        the cluster. Conflicts and lost connections are just retried."""
        if exc.status in (0, 409):
            return
        conditions = set_condition(
            status.conditions,
            ConditionType.DEGRADED,
            True,
            "ApplyFailed",
            f"writing owned objects failed, retrying: {exc}",
            now,
            int(meta.get("generation") or 0),
        )
        try:
            await self._write_status(
                namespace, name, meta, replace(status, conditions=conditions), old_raw, status
            )
        except ApiError as write_exc:
            _log.warning(
                "could not record the apply failure on %s/%s: %s", namespace, name, write_exc
            )

    async def _write_status(
        self,
        namespace: str,
        name: str,
        meta: Mapping[str, Any],
        new: RolloutStatus,
        old_raw: Mapping[str, Any],
        old: RolloutStatus,
    ) -> bool:
        """Write once; on a conflict caused only by a metadata change (Kopf's own annotations),
        retry with the new resourceVersion when spec and status are still what we planned on."""
        new_raw = new.to_dict()
        try:
            return await write_status(
                self.kube, namespace, name, meta["resourceVersion"], new_raw, old_raw
            )
        except ApiError as exc:
            if not exc.conflict:
                raise
            fresh = await self.kube.get(ARTPULSE_MODELS, namespace, name)
            fresh_meta = fresh.get("metadata") or {}
            if (fresh.get("status") or {}) != old_raw or fresh_meta.get("generation") != meta.get(
                "generation"
            ):
                raise
            return await write_status(
                self.kube, namespace, name, fresh_meta["resourceVersion"], new_raw, old_raw
            )

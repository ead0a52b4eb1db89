"""The operator process's runtime: clients, per-resource scheduling, drift wake-ups, health.

Who calls it: the Kopf handlers in ``handlers/__init__.py``. One :class:`Runtime` per process is
built by the startup handler and kept in Kopf's ``memo``.

Scheduling: every ArtPulseModel has a :class:`ResourceState` with a lock (one reconcile at a
time per resource), the loop time it is due again (the engine's ``requeue_after``) and a poke
event. The per-resource daemon sleeps until it is due or poked; create/update/resume handlers
reconcile at once and reschedule; the drift watcher marks a resource urgent when someone else
changed one of its owned objects, so the edit is put back within moments, not at the next poll;
an MLflow alias webhook does the same for every resource following that model (``wake_model``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from artpulse_operator.credentials.resolver import CredentialResolver, OperatorAuth
from artpulse_operator.engine.autoscaling import REPLICAS_HANDOFF_MANAGER
from artpulse_operator.engine.credentials import HttpAuth, uri_allowed
from artpulse_operator.engine.desired import FIELD_MANAGER, KIND, LABEL_INSTANCE
from artpulse_operator.engine.network_policy import DEFAULT_INGRESS_FROM, NetworkPolicyDefaults
from artpulse_operator.engine.webhook_spec import parse_targets
from artpulse_operator.handlers.http import HealthServer
from artpulse_operator.handlers.outbound import Outbound
from artpulse_operator.handlers.reconcile import Outcome, Reconciler
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.k8s.apply import ApplyCache
from artpulse_operator.k8s.client import ApiError, KubeClient
from artpulse_operator.notify import KubeSecretSource, Notifier
from artpulse_operator.settings import Settings

__all__ = [
    "ResourceState",
    "Runtime",
    "adapter_factories",
    "build_runtime",
    "foreign_change",
    "network_defaults",
]

_log = logging.getLogger(__name__)
# Field managers whose writes to owned objects are not hand edits (controllers, not people):
# ours, the operator's replicas handoff to an HPA, and kube-controller-manager (an HPA scaling
# a Deployment writes as it).
IGNORED_MANAGERS = frozenset({FIELD_MANAGER, REPLICAS_HANDOFF_MANAGER, "kube-controller-manager"})
DEFAULT_RETRY_S = 5.0


def foreign_change(body: Mapping[str, Any]) -> bool:
    """Whether the newest write of an owned object came from someone other than the operator.

    Status writes (kubelets, controllers, the local process runtime) do not count; a
    ``kubectl scale`` (the ``scale`` subresource) or ``kubectl edit`` does.
    """
    entries = [
        e
        for e in (body.get("metadata") or {}).get("managedFields") or ()
        if e.get("subresource") != "status" and e.get("time")
    ]
    if not entries:
        return False
    newest = max(e["time"] for e in entries)
    return any(e.get("manager") not in IGNORED_MANAGERS for e in entries if e["time"] == newest)


@dataclass
class ResourceState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    due: float = math.inf
    urgent: bool = False
    last_full: float = 0.0
    reconciles: int = 0
    model: str | None = None  # the MLflow model the last reconcile followed


@dataclass
class Runtime:
    settings: Settings
    kube: KubeClient
    reconciler: Reconciler
    telemetry: Telemetry
    http: HealthServer | None = None
    states: dict[tuple[str, str], ResourceState] = field(default_factory=dict)

    # --- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        if self.http is not None:
            await self.http.stop()
        if self.reconciler.outbound is not None:
            # Before the API client goes: pending deliveries may still read their Secrets.
            await self.reconciler.outbound.notifier.close(self.settings.notification_drain_s)
        await self.kube.close()

    async def health(self) -> dict[str, Any]:
        try:
            await self.kube.request("GET", "/readyz")
            api = "ok"
        except ApiError as exc:
            api = str(exc)
        return {"ok": api == "ok", "apiServer": api, "resources": len(self.states)}

    # --- scheduling ------------------------------------------------------------------------

    def state(self, namespace: str, name: str) -> ResourceState:
        key = (namespace, name)
        if key not in self.states:
            loop = asyncio.get_running_loop()
            self.states[key] = ResourceState(due=loop.time() + 1.0, last_full=loop.time())
        return self.states[key]

    async def reconcile_now(self, namespace: str, name: str, *, full: bool = False) -> Outcome:
        """One reconcile under the resource's lock; reschedules the daemon from its outcome."""
        state = self.state(namespace, name)
        loop = asyncio.get_running_loop()
        async with state.lock:
            state.urgent = False
            try:
                outcome = await self.reconciler.reconcile(namespace, name, full=full)
            except kopf.TemporaryError as exc:
                state.due = loop.time() + (exc.delay or DEFAULT_RETRY_S)
                state.poke.set()
                raise
            state.reconciles += 1
            state.model = outcome.model
            if full:
                state.last_full = loop.time()
            requeue = outcome.requeue_after
            state.due = loop.time() + (
                requeue if requeue is not None else self.settings.resync_interval_s
            )
            state.poke.set()
            return outcome

    async def follow(self, namespace: str, name: str, stopped: kopf.DaemonStopped) -> None:
        """The per-resource daemon: reconcile whenever due or urgent, until the resource goes."""
        state = self.state(namespace, name)
        loop = asyncio.get_running_loop()
        self.telemetry.managed_resources.inc()
        try:
            while not stopped:
                delay = state.due - loop.time()
                if delay > 0 and not state.urgent:
                    state.poke.clear()
                    await _wait_poke_or_stop(state.poke, stopped, delay)
                    continue
                full = loop.time() - state.last_full >= self.settings.resync_interval_s
                try:
                    await self.reconcile_now(namespace, name, full=full)
                except kopf.TemporaryError as exc:
                    _log.info("reconcile of %s/%s will be retried: %s", namespace, name, exc)
                except kopf.PermanentError as exc:
                    _log.error("reconcile of %s/%s failed: %s", namespace, name, exc)
                    state.due = loop.time() + self.settings.resync_interval_s
                except Exception:
                    _log.exception("reconcile of %s/%s failed unexpectedly", namespace, name)
                    state.due = loop.time() + DEFAULT_RETRY_S
        finally:
            self.telemetry.managed_resources.dec()
            self.states.pop((namespace, name), None)
            self.reconciler.cache.forget_owner(namespace, name)

    def wake_model(self, model_name: str) -> int:
        """Reconcile now every resource following ``model_name``; how many there were.

        A reconcile already running keeps ``urgent`` set and runs once more right after, since
        it may have read the aliases before they moved.
        """
        woken = [s for s in self.states.values() if s.model == model_name]
        for state in woken:
            state.urgent = True
            state.poke.set()
        return len(woken)

    def owned_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """An owned object changed: if someone else did it, reconcile its owner now."""
        if event_type is None:
            return  # the initial listing; resume handlers reconcile everything anyway
        meta = body.get("metadata") or {}
        owner = next(
            (r.get("name") for r in meta.get("ownerReferences") or () if r.get("kind") == KIND),
            None,
        ) or (meta.get("labels") or {}).get(LABEL_INSTANCE)
        state = self.states.get((meta.get("namespace") or "", owner or ""))
        if state is None:
            return
        if event_type != "DELETED" and not foreign_change(body):
            return
        self.telemetry.drift_repairs.labels(str(body.get("kind"))).inc()
        self.reconciler.cache.forget(
            (
                str(body.get("apiVersion")),
                str(body.get("kind")),
                meta.get("namespace") or "",
                meta.get("name") or "",
            )
        )
        state.urgent = True
        state.poke.set()


async def _wait_poke_or_stop(
    poke: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float
) -> None:
    poke_task = asyncio.ensure_future(poke.wait())
    stop_task = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait(
            {poke_task, stop_task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (poke_task, stop_task):
            task.cancel()


def notification_url_check(cfg: Settings) -> Callable[[str], bool] | None:
    """``ARTPULSE_NOTIFICATION_URL_ALLOWLIST`` as a check (None: any http(s) URL)."""
    allow = tuple(cfg.notification_url_allowlist)
    if not allow:
        return None
    return lambda url: uri_allowed(url, allow)


def network_defaults(cfg: Settings) -> NetworkPolicyDefaults:
    """The per-model NetworkPolicy settings (``ARTPULSE_NETWORK_POLICY*``)."""
    peers = cfg.network_policy_ingress_from
    return NetworkPolicyDefaults(
        enabled=cfg.network_policy,
        ingress_from=DEFAULT_INGRESS_FROM if peers is None else tuple(peers),
        mlflow_cidrs=tuple(cfg.network_policy_mlflow_cidrs),
    )


def adapter_factories(
    cfg: Settings,
) -> tuple[Callable[[str, HttpAuth], Any], Callable[[str, HttpAuth], Any]]:
    """The MLflow and Prometheus adapters the reconciler builds, one per URL and credentials.

    MLflow's REST API over httpx (importing the mlflow client would cost ~150 MB RSS). Each
    client gets the credentials the resolver chose for its URL, nothing else.
    """
    from artpulse_operator.metrics import PrometheusSource
    from artpulse_operator.registry import MlflowRestRegistry

    def registry(uri: str, auth: HttpAuth) -> MlflowRestRegistry:
        return MlflowRestRegistry(uri, timeout_s=cfg.registry_timeout_s, auth=auth)

    def metrics(address: str, auth: HttpAuth) -> PrometheusSource:
        return PrometheusSource(address, timeout_s=cfg.metrics_timeout_s, auth=auth)

    return registry, metrics


def build_runtime(cfg: Settings) -> Runtime:
    """Clients from the settings; the MLflow and Prometheus adapters come from their packages.

    Raises ``ValueError`` naming the setting when a Prometheus CA or certificate file is bad.
    """
    from artpulse_operator.registry import RegistryError

    operator_auth = OperatorAuth.from_settings(cfg)
    registry_factory, metrics_factory = adapter_factories(cfg)
    kube = KubeClient.from_kubeconfig(cfg.kubeconfig, timeout_s=cfg.api_timeout_s)
    telemetry = Telemetry()
    url_allowed = notification_url_check(cfg)
    notifier = Notifier(
        None,
        KubeSecretSource(kube),
        registry=telemetry.registry,
        max_queue=cfg.notification_queue_size,
        max_attempts=cfg.notification_max_attempts,
        workers=cfg.notification_workers,
        url_allowed=url_allowed,
    )
    reconciler = Reconciler(
        kube=kube,
        settings=cfg,
        registry_factory=registry_factory,
        metrics_factory=metrics_factory,
        registry_errors=(RegistryError,),
        credentials=CredentialResolver(kube, cfg, operator_auth),
        network=network_defaults(cfg),
        cache=ApplyCache(),
        telemetry=telemetry,
        outbound=Outbound(
            kube,
            notifier,
            cfg.operator_namespace,
            parse_targets(cfg.notification_webhooks, "ARTPULSE_NOTIFICATION_WEBHOOKS"),
            url_allowed,
        ),
    )
    return Runtime(settings=cfg, kube=kube, reconciler=reconciler, telemetry=telemetry)

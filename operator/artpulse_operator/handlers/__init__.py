"""The Kopf handlers of the ArtPulse operator. They translate; the work is in ``Runtime``.

Run with ``python -m artpulse_operator`` (which imports this module), or
``kopf run -m artpulse_operator.handlers --all-namespaces``.

- ``@kopf.on.startup`` builds the clients from ``Settings`` into ``memo`` and tunes Kopf
  (worker limit, watch timeouts, peering, where Kopf keeps its own state); it refuses to start
  on a Kubernetes older than the CRDs' minimum (``k8s.version``) with a permanent error;
  ``@kopf.on.cleanup`` closes them; ``@kopf.on.probe`` reports API server reachability.
- ``@kopf.on.create/update/resume`` reconcile at once (an update includes the
  ``artpulse.io/action`` annotation being set).
- ``@kopf.daemon`` per resource reconciles again when the engine's ``requeue_after`` says so;
  while it runs, the resource's per-model metrics are exported (see ``metrics.operator``).
- ``@kopf.on.event`` on owned Deployments, Services, HTTPRoutes, Ingresses, NetworkPolicies,
  PodDisruptionBudgets and HorizontalPodAutoscalers wakes the owner when someone else edited
  one, so the edit is put back at once.
- ``POST /webhooks/mlflow`` on the health port (only when ``ARTPULSE_MLFLOW_WEBHOOK_SECRET`` is
  set): MLflow's signed alias webhooks wake the resources following that model at once; the
  daemon's polling stays the fallback.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import kopf
from aiohttp import web
from pydantic import SecretStr

from artpulse_operator.engine.desired import API_GROUP, LABEL_MANAGED_BY, MANAGED_BY
from artpulse_operator.engine.mlflow_events import AliasEvent, check_secret
from artpulse_operator.handlers.http import HealthServer
from artpulse_operator.handlers.mlflow_webhook import mlflow_webhook_route
from artpulse_operator.handlers.runtime import Runtime, build_runtime
from artpulse_operator.k8s.peering import ensure_peering
from artpulse_operator.k8s.version import UnsupportedKubernetesError, check_kubernetes_version
from artpulse_operator.settings import Settings

VERSION = "v1alpha1"
PLURAL = "artpulsemodels"
OWNED = {LABEL_MANAGED_BY: MANAGED_BY}


class _QuietOwnedEvents(logging.Filter):
    """Kopf logs every handled event; for owned objects that is one line per status change."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'owned_changed' succeeded" not in record.getMessage()


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


def _webhook_routes(cfg: Settings, runtime: Runtime) -> list[web.RouteDef]:
    """The MLflow webhook route when a secret is configured; ``ValueError`` for a weak one."""
    # getattr: the setting is optional in older Settings; SecretStr or a plain str both work.
    configured: Any = getattr(cfg, "mlflow_webhook_secret", None)
    raw = configured.get_secret_value() if isinstance(configured, SecretStr) else configured
    if not raw:
        return []
    secret = check_secret(str(raw).encode())

    async def wake(event: AliasEvent) -> int:
        return runtime.wake_model(event.model_name)

    return [mlflow_webhook_route(secret, wake, registry=runtime.telemetry.registry)]


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    cfg = Settings()
    settings.queueing.worker_limit = cfg.worker_limit
    settings.watching.server_timeout = cfg.watch_server_timeout_s
    settings.watching.client_timeout = cfg.watch_client_timeout_s
    settings.watching.connect_timeout = cfg.api_timeout_s
    settings.networking.request_timeout = cfg.api_timeout_s * 3
    settings.scanning.disabled = not cfg.cluster_scanning
    if cfg.peering_name:
        # Active/standby replicas: equal priorities would all pause, so each process draws one.
        settings.peering.name = cfg.peering_name
        settings.peering.mandatory = True
        settings.peering.clusterwide = not cfg.namespaces
        settings.peering.priority = random.randint(1, 1_000_000)
    else:
        settings.peering.standalone = True
    # Kopf's own bookkeeping under our prefix; its events only for warnings (ours say more).
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = MANAGED_BY
    logging.getLogger().setLevel(cfg.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    logging.getLogger("kopf.objects").addFilter(_QuietOwnedEvents())

    runtime = build_runtime(cfg)
    try:
        await check_kubernetes_version(runtime.kube, allow_older=cfg.allow_unsupported_kubernetes)
    except UnsupportedKubernetesError as exc:
        await runtime.kube.close()
        raise kopf.PermanentError(str(exc)) from exc  # Kopf stops: no retry makes it newer
    if cfg.peering_name:  # before Kopf's peering starts, which needs the object to exist
        await ensure_peering(runtime.kube, cfg.peering_name, cfg.namespaces)
    if runtime.reconciler.outbound is not None:
        runtime.reconciler.outbound.notifier.start()  # its workers need the running loop
    routes = _webhook_routes(cfg, runtime)
    if cfg.health_port:
        runtime.http = HealthServer(
            cfg.health_host, cfg.health_port, runtime.telemetry.registry, runtime.health, routes
        )
        await runtime.http.start()
    elif routes:
        logging.getLogger(__name__).warning(
            "ARTPULSE_MLFLOW_WEBHOOK_SECRET is set but ARTPULSE_HEALTH_PORT=0: no webhook endpoint"
        )
    memo["runtime"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if runtime is not None:
        await runtime.close()


@kopf.on.probe(id="apiServer")
async def api_server_reachable(memo: kopf.Memo, **_: Any) -> str:
    report = await _runtime(memo).health()
    return str(report["apiServer"])


@kopf.on.resume(API_GROUP, VERSION, PLURAL, errors=kopf.ErrorsMode.TEMPORARY, backoff=5)
@kopf.on.create(API_GROUP, VERSION, PLURAL, errors=kopf.ErrorsMode.TEMPORARY, backoff=5)
@kopf.on.update(API_GROUP, VERSION, PLURAL, errors=kopf.ErrorsMode.TEMPORARY, backoff=5)
async def reconcile(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await _runtime(memo).reconcile_now(namespace or "", name)


@kopf.daemon(API_GROUP, VERSION, PLURAL, cancellation_timeout=5.0)
async def follow(
    namespace: str | None, name: str, memo: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    # The model's per-model metrics live exactly as long as its daemon: Kopf stops the daemon
    # when the resource is deleted and stops every daemon when peering pauses this replica (a
    # standby then exports no stale series; the active replica's daemon starts them again).
    runtime = _runtime(memo)
    runtime.telemetry.models.follow(namespace or "", name)
    try:
        await runtime.follow(namespace or "", name, stopped)
    finally:
        runtime.telemetry.models.forget(namespace or "", name)


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("networking.k8s.io", "v1", "ingresses", labels=OWNED)
@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
@kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", labels=OWNED)
async def owned_changed(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if runtime is not None:
        runtime.owned_changed(event.get("type"), event.get("object") or {})

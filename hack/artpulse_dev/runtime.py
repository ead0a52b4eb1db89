"""A process runtime standing in for kubelets in the local development cluster.

Development tooling, not part of the product. There is no container runtime where
ArtPulse is developed, so this module does for the Deployments the operator owns
what the Deployment controller plus the kubelets would do on a real cluster:

- it watches Deployments labelled `app.kubernetes.io/managed-by=artpulse-operator`
  in all namespaces through the real API server;
- for each desired replica it runs the (first) container's `command` + `args` as a
  local process with the pod's environment (`env` values, `fieldRef`s, `secretKeyRef`,
  `configMapKeyRef`, `envFrom`), `PORT` set to a free loopback port;
- it probes the readiness path and writes the Deployment status (replicas,
  readyReplicas, availableReplicas, updatedReplicas, observedGeneration, conditions)
  through the status subresource;
- it scales, and replaces processes on a template change the way a RollingUpdate
  with `maxUnavailable` does: start new, wait ready, take old out of the endpoints
  (the gateway reloads), then stop old, so no request through the gateway fails;
- it keeps the endpoints (ready processes behind each Service, by selector) for the
  gateway (see `gateway.py`) and writes Prometheus file_sd targets with pod labels.

Called by `localcluster.py` (which runs it with the gateway) and by the integration
tests. Everything is level-triggered: each pass of the loop lists the objects and
converges the processes to them; watches only wake the loop up early.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("artpulse_dev.runtime")

MANAGED_SELECTOR = "app.kubernetes.io/managed-by=artpulse-operator"
TEMPLATE_HASH_LABEL = "pod-template-hash"

# Environment a pod inherits from the runtime: what a container image would bring
# (PATH to find `artpulse-server`, the venv, locale), nothing about the cluster.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "TZ")


# --- pure helpers (unit-tested) ----------------------------------------------------


def template_hash(template: Mapping[str, Any]) -> str:
    """A short stable hash of a pod template, like the Deployment controller's."""
    blob = json.dumps(template, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _int_or_percent(value: Any, total: int, *, round_up: bool, default: str) -> int:
    raw = default if value is None else value
    if isinstance(raw, int):
        return max(raw, 0)
    text = str(raw).strip()
    if text.endswith("%"):
        fraction = float(text[:-1]) / 100 * total
        return max(math.ceil(fraction) if round_up else math.floor(fraction), 0)
    return max(int(text), 0)


def surge_and_unavailable(strategy: Mapping[str, Any] | None, replicas: int) -> tuple[int, int]:
    """maxSurge (rounded up) and maxUnavailable (rounded down), defaults 25%/25% as in Kubernetes.

    `Recreate` is treated as "everything may go unavailable, nothing surges". Both zero
    is invalid in Kubernetes; we surge one then, so a rollout still makes progress.
    """
    strategy = strategy or {}
    if strategy.get("type") == "Recreate":
        return 0, replicas
    rolling = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = _int_or_percent(
        rolling.get("maxUnavailable"), replicas, round_up=False, default="25%"
    )
    if surge == 0 and unavailable == 0:
        surge = 1
    return surge, unavailable


@dataclass(frozen=True)
class PodView:
    """What the rollout arithmetic needs to know about one running process."""

    name: str
    template_hash: str
    ready: bool


@dataclass(frozen=True)
class ScalePlan:
    start: int
    stop: tuple[str, ...]


def plan_scale(
    desired: int, new_hash: str, pods: Sequence[PodView], max_surge: int, max_unavailable: int
) -> ScalePlan:
    """How many new-template pods to start and which pods to stop, one step of a rollout.

    Worked example, desired 2, maxSurge 1, maxUnavailable 0, two ready old pods:
    step 1 starts one new pod (total 3 = 2 + surge); nothing stops (2 ready = minimum).
    Once it is ready, 3 ready > 2, so one old pod stops; the next step starts the
    second new pod, and so on. Old pods that are not ready always stop first, since
    they serve nothing.
    """
    new = [p for p in pods if p.template_hash == new_hash]
    old = [p for p in pods if p.template_hash != new_hash]
    stop: list[str] = []
    # Too many new pods (scale down): drop unready ones first.
    if len(new) > desired:
        extra = sorted(new, key=lambda p: p.ready)[: len(new) - desired]
        stop += [p.name for p in extra]
        new = [p for p in new if p.name not in stop]
    room = desired + max_surge - len(new) - len(old)
    start = max(0, min(desired - len(new), room))
    if not old and start == 0 and len(new) < desired:
        start = desired - len(new)
    min_available = max(desired - max_unavailable, 0)
    ready_total = sum(p.ready for p in new) + sum(p.ready for p in old)
    removable = ready_total - min_available
    for pod in sorted(old, key=lambda p: p.ready):
        if not pod.ready:
            stop.append(pod.name)
        elif removable > 0:
            stop.append(pod.name)
            removable -= 1
    return ScalePlan(start=start, stop=tuple(stop))


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A Service selector (equality only); an empty or absent selector selects nothing."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def expand_references(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, others stay."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(repl, value)


def target_labels(
    namespace: str, pod: str, deployment: str, labels: Mapping[str, str]
) -> dict[str, str]:
    """Prometheus target labels for one pod, the names the shipped cluster config relabels to.

    manifests/base/prometheus.yml turns Kubernetes discovery into `namespace`, `pod`,
    `artpulse_model` (app.kubernetes.io/instance), `artpulse_track` and
    `artpulse_model_version`; the same names here keep the rules and dashboards working
    locally. `namespace` is the one the gate queries select on (the server does not
    export it). `model`, `track` and `version` are left to the server's own metrics: a
    target label of the same name would overwrite theirs.
    """
    result = {"namespace": namespace, "pod": pod, "deployment": deployment}
    for label, target in (
        ("app.kubernetes.io/instance", "artpulse_model"),
        ("artpulse.io/track", "artpulse_track"),
        ("artpulse.io/model-version", "artpulse_model_version"),
    ):
        if label in labels:
            result[target] = labels[label]
    return result


# --- the runtime ------------------------------------------------------------------


class EndpointsListener(Protocol):
    """Called by the runtime loop on every pass with the endpoints (the gateway).

    It must return only once traffic follows the new state: the runtime stops a
    process taken out of the endpoints after `sync()` returned (plus a drain delay).
    """

    def sync(
        self,
        endpoints: Mapping[tuple[str, str], list[Endpoint]],
        api: client.ApiClient,
        namespaces: frozenset[str] | None,
    ) -> None: ...


@dataclass(frozen=True, order=True)
class Endpoint:
    """One ready process behind a Service."""

    pod: str
    host: str
    port: int
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class PodProcess:
    namespace: str
    name: str
    deployment: str
    template_hash: str
    labels: dict[str, str]
    port: int
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    readiness_path: str | None
    check_tcp: bool
    termination_grace: float
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    ready_since: float | None = None
    started_at: float = 0.0
    failures: int = 0
    failure_threshold: int = 3
    last_probe: float = 0.0
    restart_count: int = 0
    next_restart_at: float | None = None
    terminating_since: float | None = None
    signalled_at: float | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def terminating(self) -> bool:
        return self.terminating_since is not None


class StartError(Exception):
    """A pod whose process cannot be started (no command, missing Secret key, ...)."""


def _free_port(taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free loopback port")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProcessRuntime:
    """Runs the operator's Deployments as local processes; see the module docstring.

    `start()` runs the loop in a background thread; `stop()` stops every process.
    `sync_once()` is one pass, for callers that drive the loop themselves.
    """

    def __init__(
        self,
        api: client.ApiClient,
        state_dir: Path,
        *,
        listener: EndpointsListener | None = None,
        file_sd_dir: Path | None = None,
        base_env: Mapping[str, str] | None = None,
        drain_seconds: float = 1.0,
        resync_seconds: float = 1.0,
        probe_interval: float = 0.2,
        ready_probe_interval: float = 2.0,
        max_termination_grace: float = 10.0,
        namespaces: Iterable[str] | None = None,
    ) -> None:
        self.api = api
        # None: every namespace (the local cluster); a set: only those (tests share
        # one control plane with other tests that create managed Deployments too).
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.state_dir = state_dir
        self.listener = listener
        self.file_sd_dir = file_sd_dir
        self.base_env = (
            dict(base_env)
            if base_env is not None
            else {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        )
        self.drain_seconds = drain_seconds
        self.resync_seconds = resync_seconds
        self.probe_interval = probe_interval
        self.ready_probe_interval = ready_probe_interval
        self.max_termination_grace = max_termination_grace
        self.pods: dict[tuple[str, str], PodProcess] = {}
        self._ports: set[int] = set()
        self._written_status: dict[tuple[str, str], dict[str, Any]] = {}
        self._condition_times: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._endpoints: dict[tuple[str, str], list[Endpoint]] = {}
        self._published: dict[tuple[str, str], list[Endpoint]] | None = None
        self._published_at = 0.0
        self._targets_text: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []
        self.on_pass: list[Callable[[], None]] = []
        self.errors = 0

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> ProcessRuntime:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        loop = threading.Thread(target=self._loop, name="runtime-loop", daemon=True)
        self._threads.append(loop)
        for name, lister in self._watch_sources():
            thread = threading.Thread(
                target=self._watch_loop, args=(name, lister), name=f"watch-{name}", daemon=True
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and every process (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping.set()
        self._wake.set()
        for w in list(self._watches):
            with contextlib.suppress(Exception):
                w.stop()  # type: ignore[no-untyped-call]
        for thread in self._threads:
            if thread.name == "runtime-loop":
                thread.join(timeout=30)
        with self._lock:
            pods = list(self.pods.values())
            for pod in pods:
                self._signal(pod, signal.SIGTERM)
            deadline = time.monotonic() + self.max_termination_grace
            while any(p.running for p in pods) and time.monotonic() < deadline:
                time.sleep(0.05)
            for pod in pods:
                self._signal(pod, signal.SIGKILL)
                if pod.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        pod.proc.wait(timeout=5)
            self.pods.clear()
            if self.file_sd_dir is not None:
                (self.file_sd_dir / "runtime.json").unlink(missing_ok=True)

    def __enter__(self) -> ProcessRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wake(self) -> None:
        self._wake.set()

    def watches(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    # -- watches: only wake the loop ---------------------------------------------

    def _watch_sources(self) -> list[tuple[str, Callable[..., Any]]]:
        net = client.NetworkingV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)

        def httproutes(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(
                "gateway.networking.k8s.io", "v1", "httproutes", **kw
            )

        def deployments(**kw: Any) -> Any:
            return self.apps.list_deployment_for_all_namespaces(
                label_selector=MANAGED_SELECTOR, **kw
            )

        return [
            ("deployments", deployments),
            ("services", self.core.list_service_for_all_namespaces),
            ("ingresses", net.list_ingress_for_all_namespaces),
            ("httproutes", httproutes),
        ]

    def _watch_loop(self, name: str, lister: Callable[..., Any]) -> None:
        while not self._stopping.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            self._watches.append(w)
            try:
                events = w.stream(lister, timeout_seconds=30, _request_timeout=40)  # type: ignore[no-untyped-call]
                for _event in events:
                    self._wake.set()
                    if self._stopping.is_set():
                        break
            except Exception as exc:
                log.debug("watch %s: %s", name, exc)
                self._stopping.wait(1.0)
            finally:
                self._watches.remove(w)

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sync_once()
            except Exception:  # the loop must survive a bad pass; the next one retries
                self.errors += 1
                log.exception("runtime pass failed")
            starting = any(
                p.running and not p.ready and not p.terminating for p in self.pods.values()
            )
            timeout = (
                self.probe_interval if starting or self._has_terminating() else self.resync_seconds
            )
            self._wake.wait(timeout)
            self._wake.clear()

    def _has_terminating(self) -> bool:
        return any(p.terminating for p in self.pods.values())

    def sync_once(self) -> None:
        """One level-triggered pass: list, converge processes, probe, publish, write status."""
        with self._lock:
            deployments = [
                d
                for d in self._list(
                    self.apps.list_deployment_for_all_namespaces, label_selector=MANAGED_SELECTOR
                )
                if self.watches(d["metadata"]["namespace"])
            ]
            seen: set[tuple[str, str]] = set()
            for dep in deployments:
                key = (dep["metadata"]["namespace"], dep["metadata"]["name"])
                seen.add(key)
                try:
                    self._reconcile_deployment(dep)
                except ApiException as exc:
                    log.warning("deployment %s/%s: %s", *key, exc.reason)
            for pod in list(self.pods.values()):
                if (pod.namespace, pod.deployment) not in seen and not pod.terminating:
                    self._begin_termination(pod)
            self._restart_crashed()
            self._probe()
            self._publish_endpoints()
            self._finish_terminations()
            for dep in deployments:
                with contextlib.suppress(ApiException):
                    self._write_status(dep)
            self._write_targets()
        for hook in list(self.on_pass):
            hook()

    # -- deployments -> processes --------------------------------------------------

    def _pods_of(self, namespace: str, deployment: str) -> list[PodProcess]:
        return [
            p
            for p in self.pods.values()
            if p.namespace == namespace and p.deployment == deployment and not p.terminating
        ]

    @staticmethod
    def _list(lister: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
        """A list call's items as plain dicts (the JSON the API server sent)."""
        response = lister(_preload_content=False, **kwargs)
        return list(json.loads(response.data).get("items") or [])

    @staticmethod
    def _desired(dep: Mapping[str, Any]) -> tuple[dict[str, Any], str, int, dict[str, Any] | None]:
        spec = dep.get("spec") or {}
        template = dict(spec.get("template") or {})
        replicas = spec.get("replicas")
        return (
            template,
            template_hash(template),
            1 if replicas is None else int(replicas),
            spec.get("strategy"),
        )

    def _reconcile_deployment(self, dep: Mapping[str, Any]) -> None:
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        template, new_hash, desired, strategy = self._desired(dep)
        pods = self._pods_of(namespace, name)
        surge, unavailable = surge_and_unavailable(strategy, desired)
        plan = plan_scale(
            desired,
            new_hash,
            [PodView(p.name, p.template_hash, p.ready) for p in pods],
            surge,
            unavailable,
        )
        for pod_name in plan.stop:
            self._begin_termination(self.pods[(namespace, pod_name)])
        for _ in range(plan.start):
            try:
                pod = self._new_pod(namespace, name, template, new_hash)
            except StartError as exc:
                log.warning("deployment %s/%s: cannot start a pod: %s", namespace, name, exc)
                break
            self.pods[(namespace, pod.name)] = pod
            self._spawn(pod)

    def _new_pod(
        self, namespace: str, deployment: str, template: Mapping[str, Any], new_hash: str
    ) -> PodProcess:
        spec = template.get("spec") or {}
        containers = spec.get("containers") or []
        if not containers:
            raise StartError("the pod template has no containers")
        container = containers[0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not container.get("command"):
            raise StartError(
                f"container {container.get('name')!r} has no `command`: the local runtime has no "
                "images, so it runs the command (the workload contract sets it explicitly)"
            )
        pod_name = f"{deployment}-{new_hash}-{secrets.token_hex(3)[:5]}"
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            TEMPLATE_HASH_LABEL: new_hash,
        }
        port = _free_port(self._ports)
        env = self._pod_env(namespace, pod_name, labels, container, port)
        argv = [expand_references(a, env) for a in argv]
        probe = container.get("readinessProbe") or {}
        http_get = probe.get("httpGet") or {}
        pod_dir = self.state_dir / "pods" / namespace
        pod_dir.mkdir(parents=True, exist_ok=True)
        grace = float(spec.get("terminationGracePeriodSeconds") or 30)
        return PodProcess(
            namespace=namespace,
            name=pod_name,
            deployment=deployment,
            template_hash=new_hash,
            labels=labels,
            port=port,
            argv=argv,
            env=env,
            log_path=pod_dir / f"{pod_name}.log",
            readiness_path=http_get.get("path") if http_get else None,
            check_tcp=not http_get and bool(container.get("ports")),
            termination_grace=min(grace, self.max_termination_grace),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )

    def _pod_env(
        self,
        namespace: str,
        pod_name: str,
        labels: Mapping[str, str],
        container: Mapping[str, Any],
        port: int,
    ) -> dict[str, str]:
        env: dict[str, str] = dict(self.base_env)
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            if source.get("secretRef"):
                ref = source["secretRef"]
                data = self._secret_data(namespace, ref["name"], optional=bool(ref.get("optional")))
            elif source.get("configMapRef"):
                ref = source["configMapRef"]
                data = self._configmap_data(
                    namespace, ref["name"], optional=bool(ref.get("optional"))
                )
            else:
                continue
            env.update({prefix + k: v for k, v in data.items()})
        fields = {
            "metadata.namespace": namespace,
            "metadata.name": pod_name,
            "metadata.uid": pod_name,
            "spec.nodeName": "localhost",
            "spec.serviceAccountName": "default",
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }
        for var in container.get("env") or []:
            name = var["name"]
            if "value" in var and var["value"] is not None:
                env[name] = expand_references(str(var["value"]), env)
                continue
            source = var.get("valueFrom") or {}
            if source.get("fieldRef"):
                path = source["fieldRef"]["fieldPath"]
                label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                env[name] = labels.get(label.group(1), "") if label else fields.get(path, "")
            elif source.get("secretKeyRef"):
                ref = source["secretKeyRef"]
                data = self._secret_data(namespace, ref["name"], optional=bool(ref.get("optional")))
                if ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise StartError(f"secret {ref['name']!r} has no key {ref['key']!r}")
            elif source.get("configMapKeyRef"):
                ref = source["configMapKeyRef"]
                data = self._configmap_data(
                    namespace, ref["name"], optional=bool(ref.get("optional"))
                )
                if ref["key"] in data:
                    env[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise StartError(f"configmap {ref['name']!r} has no key {ref['key']!r}")
            else:
                env[name] = ""
        # The container's port is replaced by a free loopback one: PORT is how the
        # server (and the workload contract) learns it.
        env["PORT"] = str(port)
        return env

    def _secret_data(self, namespace: str, name: str, *, optional: bool) -> dict[str, str]:
        import base64

        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise StartError(f"secret {namespace}/{name}: {exc.reason}") from exc
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        data.update(secret.string_data or {})
        return data

    def _configmap_data(self, namespace: str, name: str, *, optional: bool) -> dict[str, str]:
        try:
            cm = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise StartError(f"configmap {namespace}/{name}: {exc.reason}") from exc
        return dict(cm.data or {})

    def _spawn(self, pod: PodProcess) -> None:
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        with pod.log_path.open("ab") as logf:
            logf.write(f"--- {_now_iso()} start {' '.join(pod.argv)} (PORT={pod.port})\n".encode())
            logf.flush()
            try:
                pod.proc = subprocess.Popen(
                    pod.argv,
                    env=pod.env,
                    cwd=pod.log_path.parent,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                pod.error = f"cannot run {pod.argv[0]!r}: {exc}"
                logf.write(f"--- {pod.error}\n".encode())
                pod.proc = None
        pod.started_at = time.monotonic()
        pod.ready = False
        pod.ready_since = None
        pod.failures = 0
        pod.last_probe = 0.0
        if pod.proc is None:
            pod.next_restart_at = time.monotonic() + self._backoff(pod)
        log.info("started %s/%s on 127.0.0.1:%d", pod.namespace, pod.name, pod.port)

    @staticmethod
    def _backoff(pod: PodProcess) -> float:
        return float(min(2 ** min(pod.restart_count, 5), 30))

    def _restart_crashed(self) -> None:
        now = time.monotonic()
        for pod in self.pods.values():
            if pod.terminating or pod.running:
                continue
            if pod.next_restart_at is None:
                code = pod.proc.returncode if pod.proc is not None else None
                log.warning("%s/%s exited with %s; restarting", pod.namespace, pod.name, code)
                pod.ready = False
                pod.next_restart_at = now + self._backoff(pod)
            elif now >= pod.next_restart_at:
                pod.restart_count += 1
                pod.next_restart_at = None
                self._spawn(pod)

    # -- readiness --------------------------------------------------------------------

    def _probe(self) -> None:
        now = time.monotonic()
        for pod in self.pods.values():
            if pod.terminating:
                continue
            if not pod.running:
                pod.ready = False
                continue
            interval = self.ready_probe_interval if pod.ready else self.probe_interval
            if now - pod.last_probe < interval:
                continue
            pod.last_probe = now
            ok = self._probe_once(pod)
            if ok:
                pod.failures = 0
                if not pod.ready:
                    pod.ready = True
                    pod.ready_since = now
                    log.info("%s/%s is ready", pod.namespace, pod.name)
            elif pod.ready:
                pod.failures += 1
                if pod.failures >= pod.failure_threshold:
                    pod.ready = False
                    log.warning("%s/%s failed its readiness probe", pod.namespace, pod.name)

    @staticmethod
    def _probe_once(pod: PodProcess) -> bool:
        if pod.readiness_path is None:
            if not pod.check_tcp:
                return True
            try:
                with socket.create_connection(("127.0.0.1", pod.port), timeout=0.5):
                    return True
            except OSError:
                return False
        conn = http.client.HTTPConnection("127.0.0.1", pod.port, timeout=1.0)
        try:
            conn.request("GET", pod.readiness_path)
            return 200 <= conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # -- endpoints and termination -----------------------------------------------------

    def endpoints(self) -> dict[tuple[str, str], list[Endpoint]]:
        """Ready, not terminating processes behind each Service, by (namespace, name)."""
        with self._lock:
            return {k: list(v) for k, v in self._endpoints.items()}

    def _compute_endpoints(self) -> dict[tuple[str, str], list[Endpoint]]:
        services = self._list(self.core.list_service_for_all_namespaces)
        result: dict[tuple[str, str], list[Endpoint]] = {}
        serving = [p for p in self.pods.values() if p.ready and not p.terminating and p.running]
        for svc in services:
            svc_ns, svc_name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            if not self.watches(svc_ns):
                continue
            selector = (svc.get("spec") or {}).get("selector")
            members = [
                Endpoint(p.name, "127.0.0.1", p.port, tuple(sorted(p.labels.items())))
                for p in serving
                if p.namespace == svc_ns and selector_matches(selector, p.labels)
            ]
            result[(svc_ns, svc_name)] = sorted(members)
        return result

    def _publish_endpoints(self) -> None:
        self._endpoints = self._compute_endpoints()
        if self.listener is not None:
            # The listener (gateway) returns once the new configuration is live; it
            # also re-reads the routes, so it is called on every pass and decides
            # itself whether anything changed.
            self.listener.sync(self._endpoints, self.api, self.namespaces)
        if self._published != self._endpoints:
            self._published = self._endpoints
            self._published_at = time.monotonic()

    def _begin_termination(self, pod: PodProcess) -> None:
        if pod.terminating:
            return
        log.info("stopping %s/%s", pod.namespace, pod.name)
        pod.terminating_since = time.monotonic()

    def _finish_terminations(self) -> None:
        """SIGTERM terminating pods once they are out of the published endpoints and drained."""
        now = time.monotonic()
        for key, pod in list(self.pods.items()):
            if not pod.terminating:
                continue
            assert pod.terminating_since is not None
            out_since = max(pod.terminating_since, self._published_at)
            if pod.signalled_at is None:
                # A pod that never served (not ready) has nothing to drain.
                drained = not pod.ready or now - out_since >= self.drain_seconds
                if not pod.running or drained:
                    self._signal(pod, signal.SIGTERM)
                    pod.signalled_at = now
                continue
            if pod.running and now - pod.signalled_at >= pod.termination_grace:
                self._signal(pod, signal.SIGKILL)
            if not pod.running:
                if pod.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        pod.proc.wait(timeout=1)
                self._ports.discard(pod.port)
                del self.pods[key]

    @staticmethod
    def _signal(pod: PodProcess, sig: int) -> None:
        if pod.proc is None or pod.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pod.proc.pid, sig)

    # -- Deployment status -------------------------------------------------------------

    def deployment_status(self, dep: Mapping[str, Any]) -> dict[str, Any]:
        """The status a Deployment controller would write for the processes running now."""
        namespace, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        _, new_hash, desired, strategy = self._desired(dep)
        pods = self._pods_of(namespace, name)
        ready = sum(p.ready for p in pods)
        updated = sum(p.template_hash == new_hash for p in pods)
        updated_ready = sum(p.ready for p in pods if p.template_hash == new_hash)
        _, unavailable = surge_and_unavailable(strategy, desired)
        available_ok = ready >= desired - unavailable
        complete = updated == desired == len(pods) and updated_ready == desired
        status: dict[str, Any] = {
            "observedGeneration": dep["metadata"].get("generation"),
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(desired - ready, 0),
        }
        conditions = [
            (
                "Available",
                "True" if available_ok else "False",
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f"ReplicaSet {name}-{new_hash} has successfully progressed."
                if complete
                else f"ReplicaSet {name}-{new_hash} is progressing.",
            ),
        ]
        errors = [p.error for p in pods if p.error]
        if errors:
            conditions.append(("ReplicaFailure", "True", "FailedCreate", errors[0]))
        status["conditions"] = [
            self._condition(namespace, name, ctype, cstatus, reason, message)
            for ctype, cstatus, reason, message in conditions
        ]
        return status

    def _condition(
        self, namespace: str, name: str, ctype: str, cstatus: str, reason: str, message: str
    ) -> dict[str, str]:
        key = (namespace, name, ctype)
        previous = self._condition_times.get(key)
        transition = previous[1] if previous and previous[0] == cstatus else _now_iso()
        self._condition_times[key] = (cstatus, transition)
        return {
            "type": ctype,
            "status": cstatus,
            "reason": reason,
            "message": message,
            "lastUpdateTime": transition,
            "lastTransitionTime": transition,
        }

    def _write_status(self, dep: Mapping[str, Any]) -> None:
        key = (dep["metadata"]["namespace"], dep["metadata"]["name"])
        status = self.deployment_status(dep)
        current = dep.get("status") or {}
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        conds = {(c["type"], c["status"], c["reason"]) for c in status["conditions"]}
        have_conds = {
            (c.get("type"), c.get("status"), c.get("reason"))
            for c in current.get("conditions") or []
        }
        have = {k: current.get(k, 0) for k in comparable}
        if have == comparable and conds == have_conds:
            return
        # Fields that are zero are omitted by the API server: send them as 0 explicitly.
        self.apps.patch_namespaced_deployment_status(key[1], key[0], {"status": status})
        self._written_status[key] = status

    # -- Prometheus targets ----------------------------------------------------------

    def _write_targets(self) -> None:
        if self.file_sd_dir is None:
            return
        groups = [
            {
                "targets": [f"127.0.0.1:{p.port}"],
                "labels": target_labels(p.namespace, p.name, p.deployment, p.labels),
            }
            for p in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))
            if p.running and not p.terminating
        ]
        text = json.dumps(groups, indent=1)
        if text == self._targets_text:
            return
        self.file_sd_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file_sd_dir / ".runtime.json.tmp"
        tmp.write_text(text)
        tmp.replace(self.file_sd_dir / "runtime.json")
        self._targets_text = text

    # -- views for tests and the status command ---------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """The processes as plain data (name, deployment, port, ready, terminating, hash)."""
        with self._lock:
            return [
                {
                    "namespace": p.namespace,
                    "name": p.name,
                    "deployment": p.deployment,
                    "port": p.port,
                    "pid": p.proc.pid if p.proc else None,
                    "ready": p.ready,
                    "terminating": p.terminating,
                    "templateHash": p.template_hash,
                    "restarts": p.restart_count,
                    "labels": dict(p.labels),
                    "log": str(p.log_path),
                }
                for p in self.pods.values()
            ]

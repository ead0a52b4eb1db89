"""Operator benchmark: reconcile latency, rollback latency and memory with 1,000 ArtPulseModels.

Runs everything for real on this machine: a kube-apiserver + etcd from ``artpulse_dev``, an
``mlflow server``, Prometheus scraping a small exporter in this process, and the operator as
``python -m artpulse_operator`` under its shipped RBAC. Measures against DESIGN.md section 6:

1. ``--models`` ArtPulseModels (default 1,000) created at once: time until every one is
   reconciled (phase Stable at its generation), and the operator's RSS then and after a
   steady period (target < 300 MB).
2. Spec change -> owned objects written: the serving image of ``--changes`` resources is
   changed one at a time; the time from the PATCH to the Deployment watch event carrying the
   new image (target < 1 s), with the 1,000 resources present.
3. Failed check -> weight 0: ``--rollbacks`` canary rollouts of a slow candidate (failureLimit
   1); the time from the failing check (``status.analysis.lastCheckTime``, taken when the
   reconcile starts, before the Prometheus query) to the watch event of the canary Deployment
   at zero replicas (target < 2 s). The operator's own ``artpulse_operator_rollback_seconds``
   is reported next to it.

Writes its section between ``<!-- BEGIN bench_operator -->`` and ``<!-- END bench_operator -->``
of docs/benchmarks.md (``--no-write`` prints only). Usage::

    .venv/bin/python loadtest/bench_operator.py [--models 1000] [--changes 20] [--rollbacks 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import artpulse_dev.controlplane as controlplane_module
from artpulse_dev._proc import free_port, spawn, stop
from artpulse_dev.controlplane import ControlPlane
from artpulse_dev.mlflow_server import MlflowServer
from artpulse_dev.prometheus import Prometheus
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes import watch as kwatch
from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from report import machine_facts, write_section

REPO = Path(__file__).resolve().parents[1]
MARKER = "bench_operator"
T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(check: Callable[[], T], what: str, timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the parts -------------------------------------------------------------------------------

SERVICE_CIDR = "10.0.0.0/16"  # same first IP (10.0.0.1) as the serving cert


def _wide_service_range(command: Any, *args: Any, **kwargs: Any) -> Any:
    """The harness starts kube-apiserver with a /24 service range: 254 ClusterIPs, room for
    about 84 models at three Services each. 1,000 models need a wider one."""
    command = [str(c) for c in command]
    if "--service-cluster-ip-range" in command:
        command[command.index("--service-cluster-ip-range") + 1] = SERVICE_CIDR
    return spawn(command, *args, **kwargs)


controlplane_module.spawn = _wide_service_range  # type: ignore[assignment]


class SlowExporter:
    """Metrics in the inference server's format: stable fast, canary slow (p95 ~200 ms)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "artpulse_http_requests",
            "requests",
            ["model", "version", "track", "route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "artpulse_http_request_duration_seconds",
            "latency",
            ["model", "version", "track", "route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.models: list[str] = []
        self.port = free_port()
        self.server, _ = start_http_server(self.port, "127.0.0.1", self.registry)
        self.stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.wait(0.1):
            for model in list(self.models):
                for track, version, latency in (("stable", "1", 0.02), ("canary", "2", 0.2)):
                    for _ in range(5):
                        self.duration.labels(model, version, track, "/predict", "POST").observe(
                            latency
                        )
                    self.requests.labels(model, version, track, "/predict", "POST", "200").inc(5)

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()


# Runs the operator with the REST registry adapter in place of the MlflowClient one, to measure
# what the ``mlflow`` import costs (``--registry rest``); the operator itself is unchanged.
REST_WRAPPER = (
    "import artpulse_operator.registry as r; r.MlflowRegistry = r.MlflowRestRegistry; "
    "from artpulse_operator.__main__ import main; main()"
)


class Operator:
    def __init__(
        self, plane: ControlPlane, tracking_uri: str, log_path: Path, registry: str = "default"
    ) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(plane.operator_kubeconfig),
            "ARTPULSE_KUBECONFIG": str(plane.operator_kubeconfig),
            "ARTPULSE_MLFLOW_TRACKING_URI": tracking_uri,
            "ARTPULSE_NAMESPACES": "bench-*",
            "ARTPULSE_HEALTH_HOST": "127.0.0.1",
            "ARTPULSE_HEALTH_PORT": str(self.port),
            "ARTPULSE_LOG_LEVEL": "WARNING",
        }
        self.log_path = log_path
        command = (
            [sys.executable, "-c", REST_WRAPPER]
            if registry == "rest"
            else [sys.executable, "-m", "artpulse_operator"]
        )
        self.proc = spawn(command, log_path, env=env)
        wait_for(self.healthy, "the operator's /healthz", 120)

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metric(self, name: str) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out

    def stop(self) -> None:
        stop(self.proc)


def kubectl_apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    plane.kubectl("apply", "-f", "-", input=body, timeout=600)


def resource(name: str, ns: str, model: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": model, "pollInterval": spec.pop("poll", "60s")},
        "serving": {"image": "artpulse-inference:bench", "replicas": 1},
    }
    base.update(spec)
    return {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": base,
    }


def register(mlflow: MlflowClient, name: str, versions: int, champion: str = "1") -> None:
    mlflow.create_registered_model(name)
    exp = mlflow.create_experiment(f"exp-{name}")
    for _ in range(versions):
        run = mlflow.create_run(exp)
        mlflow.set_terminated(run.info.run_id)
        mlflow.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    mlflow.set_registered_model_alias(name, "champion", champion)


class Kubelet:
    """Reports every Deployment of a namespace ready (status subresource), as the local
    cluster's process runtime does: the harness runs no kubelets, and the operator gives a
    candidate live weight only once its workload is ready."""

    def __init__(self, api: kclient.AppsV1Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.stopped = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped:
            time.sleep(0.2)
            try:
                for dep in self.api.list_namespaced_deployment(self.namespace).items:
                    want = int(dep.spec.replicas or 0)
                    gen = int(dep.metadata.generation or 0)
                    st = dep.status
                    if (
                        st is not None
                        and int(st.observed_generation or 0) == gen
                        and int(st.ready_replicas or 0) == want
                        and int(st.updated_replicas or 0) == want
                    ):
                        continue
                    self.api.patch_namespaced_deployment_status(
                        dep.metadata.name,
                        self.namespace,
                        {
                            "status": {
                                "observedGeneration": gen,
                                "replicas": want,
                                "updatedReplicas": want,
                                "readyReplicas": want,
                                "availableReplicas": want,
                            }
                        },
                    )
            except Exception:
                continue


class DeploymentWatch:
    """Records when each Deployment event arrives, by name, with its image and replicas."""

    def __init__(self, api: kclient.AppsV1Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.events: list[tuple[float, str, str, int]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        w: Any = kwatch.Watch()
        while not self.stopped:
            try:
                for event in w.stream(
                    self.api.list_namespaced_deployment, self.namespace, timeout_seconds=60
                ):
                    obj = event["object"]
                    image = obj.spec.template.spec.containers[0].image
                    with self.lock:
                        self.events.append(
                            (time.time(), obj.metadata.name, image, int(obj.spec.replicas or 0))
                        )
                    if self.stopped:
                        return
            except Exception:  # the API server went away at the end, or a dropped watch
                if self.stopped:
                    return
                time.sleep(0.5)

    def first(self, pred: Callable[[str, str, int], bool], after: float) -> float | None:
        with self.lock:
            for t, name, image, replicas in self.events:
                if t >= after and pred(name, image, replicas):
                    return t
        return None


# --- the measurements ------------------------------------------------------------------------


def measure_scale(
    plane: ControlPlane, op: Operator, model: str, count: int, steady_s: float
) -> dict[str, Any]:
    ns = "bench-scale"
    plane.kubectl("create", "namespace", ns)
    rss_before = rss_mb(op.proc.pid)
    started = time.monotonic()
    for i in range(0, count, 100):
        kubectl_apply(plane, [resource(f"m{j}", ns, model) for j in range(i, min(count, i + 100))])
    created = time.monotonic() - started
    log(f"created {count} resources in {created:.1f}s")

    def reconciled() -> int:
        out = plane.kubectl("get", "apm", "-n", ns, "-o", "json", timeout=300).stdout
        items = json.loads(out)["items"]
        done = sum(
            1
            for it in items
            if (it.get("status") or {}).get("phase") == "Stable"
            and (it.get("status") or {}).get("observedGeneration") == it["metadata"]["generation"]
        )
        return done

    peak = rss_before
    done = 0
    while done < count:
        done = reconciled()
        peak = max(peak, rss_mb(op.proc.pid))
        if time.monotonic() - started > 1800:
            raise RuntimeError(f"only {done}/{count} reconciled after 30 minutes")
        time.sleep(5)
    all_done = time.monotonic() - started
    rss_done = rss_mb(op.proc.pid)
    log(f"{count} reconciled after {all_done:.1f}s, RSS {rss_done:.0f} MB")
    samples = [rss_done]
    end = time.monotonic() + steady_s
    while time.monotonic() < end:
        time.sleep(5)
        samples.append(rss_mb(op.proc.pid))
    return {
        "count": count,
        "create_s": created,
        "all_reconciled_s": all_done,
        "rss_before_mb": rss_before,
        "rss_peak_during_mb": max(peak, *samples),
        "rss_done_mb": rss_done,
        "rss_steady_max_mb": max(samples),
        "steady_s": steady_s,
    }


def measure_spec_changes(plane: ControlPlane, apps: kclient.AppsV1Api, n: int) -> list[float]:
    ns = "bench-scale"
    watch = DeploymentWatch(apps, ns)
    time.sleep(2)  # let the watch connect (not a measurement)
    latencies: list[float] = []
    for i in range(n):
        image = f"artpulse-inference:change-{i}-{uuid.uuid4().hex[:4]}"
        name = f"m{i}"
        t0 = time.time()
        plane.kubectl(
            "patch", "apm", name, "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"serving": {"image": image}}}),
        )  # fmt: skip
        seen = wait_for(
            lambda name=name, image=image, t0=t0: watch.first(
                lambda dn, img, _r: dn == f"{name}-stable" and img == image, t0
            ),
            f"{name}-stable with the new image",
            60,
            interval=0.02,
        )
        latencies.append(seen - t0)
    watch.stopped = True
    return latencies


def measure_rollbacks(
    plane: ControlPlane,
    apps: kclient.AppsV1Api,
    custom: kclient.CustomObjectsApi,
    mlflow: MlflowClient,
    n: int,
    tmp: Path,
) -> dict[str, Any]:
    ns = "bench-roll"
    plane.kubectl("create", "namespace", ns)
    exporter = SlowExporter()
    prom = Prometheus(
        tmp / "prometheus", targets=[f"127.0.0.1:{exporter.port}"], extra_labels={"namespace": ns}
    ).start()
    watch = DeploymentWatch(apps, ns)
    kubelet = Kubelet(apps, ns)
    deltas: list[float] = []
    failures: list[str] = []
    try:
        for i in range(n):
            try:
                model = f"bench-roll-{uuid.uuid4().hex[:6]}"
                register(mlflow, model, 2)
                exporter.models.append(model)
                name = f"r{i}"
                kubectl_apply(
                    plane,
                    [
                        resource(
                            name,
                            ns,
                            model,
                            poll="5s",
                            strategy={
                                "type": "Canary",
                                "canary": {"steps": [{"weight": 50}, {"weight": 100}]},
                            },
                            analysis={
                                "interval": "5s",
                                "window": "10s",
                                "failureLimit": 1,
                                "minRequests": 10,
                                "prometheus": {"address": prom.url},
                                "gates": {"p95LatencyMs": 90},
                            },
                        )
                    ],
                )

                def status(name: str = name) -> dict[str, Any]:
                    obj = custom.get_namespaced_custom_object(
                        "artpulse.io", "v1alpha1", ns, "artpulsemodels", name
                    )
                    return dict(obj.get("status") or {})

                wait_for(lambda: status().get("phase") == "Stable", f"{name} Stable", 120)
                start = time.time()
                mlflow.set_registered_model_alias(model, "challenger", "2")
                wait_for(lambda: status().get("phase") == "Progressing", f"{name} Progressing", 60)
                final = wait_for(
                    lambda: (s := status()).get("phase") == "RolledBack" and s,
                    f"{name} RolledBack",
                    120,
                )
                check_at = parse_time(final["analysis"]["lastCheckTime"])
                zero = wait_for(
                    lambda name=name, check_at=check_at: watch.first(
                        lambda dn, _img, replicas: dn == f"{name}-canary" and replicas == 0,
                        check_at,
                    ),
                    "canary at zero",
                    30,
                    interval=0.05,
                )
                deltas.append(zero - check_at)
                log(
                    f"rollback {i}: failing check -> canary at 0 in {zero - check_at:.3f}s "
                    f"(alias moved {check_at - start:.1f}s before the check)"
                )
            except RuntimeError as exc:  # keep what was measured; say what was not
                failures.append(f"rollback {i}: {exc}")
                log(f"rollback {i} not measured: {exc}")
    finally:
        watch.stopped = True
        kubelet.stopped = True
        prom.stop()
        exporter.stop()
    return {"deltas": deltas, "failures": failures}


def machine() -> dict[str, str]:
    import kopf
    import mlflow

    return machine_facts(
        {
            "kopf": kopf.__version__ if hasattr(kopf, "__version__") else "?",
            "mlflow": mlflow.__version__,
            "kubernetes": (REPO / "hack" / "kube-bins" / "VERSION").read_text().strip(),
        }
    )


def render(results: dict[str, Any], info: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Operator (loadtest/bench_operator.py)",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['cpus']} CPUs ({info['cpu']}), "
        f"{info['ram']} RAM, load average at the end {info['load']} (the machine is shared). "
        f"Registry adapter: {'MlflowRestRegistry (httpx)' if args.registry == 'rest' else 'as shipped by the operator'}. "
        f"Python {info['python']}, kopf {info['kopf']}, MLflow {info['mlflow']}, kube-apiserver {info['kubernetes']} "
        "(real API server + etcd from hack/, real `mlflow server`, real Prometheus; operator as "
        "`python -m artpulse_operator` under its shipped RBAC).",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
    ]
    scale = results.get("scale")
    if scale:
        lines += [
            f"| {scale['count']} ArtPulseModels created (kubectl apply, 100 per request) | {scale['create_s']:.1f} s | |",
            f"| all {scale['count']} reconciled (phase Stable at their generation) | {scale['all_reconciled_s']:.1f} s after the first create | |",
            f"| operator RSS: idle / when all reconciled / max over {scale['steady_s']:.0f} s steady | "
            f"{scale['rss_before_mb']:.0f} / {scale['rss_done_mb']:.0f} / {scale['rss_steady_max_mb']:.0f} MB "
            f"(peak {scale['rss_peak_during_mb']:.0f} MB) | < 300 MB |",
        ]
    changes = results.get("changes")
    if changes:
        lines.append(
            f"| spec change -> Deployment written ({len(changes)} changes, {args.models} resources present) | "
            f"p50 {pct(changes, 50) * 1000:.0f} ms, p99 {pct(changes, 99) * 1000:.0f} ms, max {max(changes) * 1000:.0f} ms | < 1 s |"
        )
    rb = results.get("rollbacks")
    if rb and rb["deltas"]:
        d = rb["deltas"]
        lines.append(
            f"| failing check -> canary at 0 replicas ({len(d)} rollbacks) | "
            f"p50 {pct(d, 50) * 1000:.0f} ms, max {max(d) * 1000:.0f} ms | < 2 s |"
        )
        if rb.get("failures"):
            results.setdefault("errors", []).extend(rb["failures"])
        if rb.get("operator_histogram"):
            lines.append(
                f"| operator's own `artpulse_operator_rollback_seconds` | {rb['operator_histogram']} | |"
            )
    lines += [
        "",
        "The failing-check time is `status.analysis.lastCheckTime`, taken when the reconcile starts, "
        "so the figure includes the Prometheus queries, the engine, the object writes and the watch "
        "delivery. Promote/rollback timing for the defaults (interval 30s, steps 10% with 60s pause, "
        "50%, 100%, failureLimit 2): a good candidate is promoted after about "
        "max(30, 60) + 30 + 30 = 120 s plus one alias poll (<= 30 s) to start; a bad one is rolled "
        "back at the second failing check, 60 s after the start of its step.",
    ]
    if results.get("errors"):
        lines += ["", "Not measured in this run: " + "; ".join(results["errors"])]
    lines += ["", f"<!-- END {MARKER} -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--rollbacks", type=int, default=5)
    parser.add_argument(
        "--steady", type=float, default=60.0, help="seconds of steady state for RSS"
    )
    parser.add_argument(
        "--registry",
        choices=["default", "rest"],
        default="default",
        help="rest: run the operator with the httpx REST registry adapter (no mlflow import)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    results: dict[str, Any] = {"errors": []}
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmpdir:
        tmp = Path(tmpdir)
        plane = ControlPlane(tmp / "controlplane").start()
        mlf = MlflowServer(tmp / "mlflow").start()
        op: Operator | None = None
        try:
            plane.kubectl("create", "namespace", "artpulse-system", check=False)
            plane.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "rbac.yaml"))
            mlflow = MlflowClient(tracking_uri=mlf.tracking_uri)
            register(mlflow, "bench-model", 1)
            op = Operator(plane, mlf.tracking_uri, tmp / "operator.log", args.registry)
            kconfig.load_kube_config(config_file=str(plane.kubeconfig))
            apps = kclient.AppsV1Api()
            custom = kclient.CustomObjectsApi()
            log(f"control plane {plane.url}, MLflow {mlf.tracking_uri}, operator pid {op.proc.pid}")
            try:
                results["scale"] = measure_scale(plane, op, "bench-model", args.models, args.steady)
            except Exception as exc:
                results["errors"].append(f"scale: {exc}")
                log(f"scale failed: {exc}")
            try:
                results["changes"] = measure_spec_changes(
                    plane, apps, min(args.changes, args.models)
                )
                log(f"spec changes: {[round(x, 3) for x in results['changes']]}")
            except Exception as exc:
                results["errors"].append(f"spec changes: {exc}")
                log(f"spec changes failed: {exc}")
            try:
                results["rollbacks"] = measure_rollbacks(
                    plane, apps, custom, mlflow, args.rollbacks, tmp
                )
                hist = op.metric("artpulse_operator_rollback_seconds")
                total = sum(
                    v
                    for k, v in hist.items()
                    if k.startswith("artpulse_operator_rollback_seconds_sum")
                )
                count = sum(
                    v
                    for k, v in hist.items()
                    if k.startswith("artpulse_operator_rollback_seconds_count")
                )
                if count:
                    results["rollbacks"]["operator_histogram"] = (
                        f"mean {total / count * 1000:.0f} ms over {count:.0f}"
                    )
            except Exception as exc:
                results["errors"].append(f"rollbacks: {exc}")
                log(f"rollbacks failed: {exc}")
        finally:
            if op is not None:
                op.stop()
                tail = op.log_path.read_text()[-3000:]
                if "Traceback" in tail:
                    print(tail)
            mlf.stop()
            plane.stop()
    text = render(results, machine(), args)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(MARKER, text)}")


if __name__ == "__main__":
    main()

"""The local cluster's process runtime and nginx gateway against a real API server.

Deployments written the way the operator renders them (tests/data/e2e/devcluster/),
with a tiny HTTP server as their command: the runtime must run them as processes
with the pod's environment, write their status, scale them, replace them on a
template change without a failed request through nginx, and nginx must split the
traffic by the routes' weights (counted over many requests, never timed).
"""

from __future__ import annotations

import collections
import copy
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from artpulse_dev.controlplane import ControlPlane
from artpulse_dev.gateway import NginxGateway
from artpulse_dev.runtime import ProcessRuntime
from kubernetes import config as kube_config

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "e2e" / "devcluster"
TINY_SERVER = Path(__file__).resolve().with_name("tiny_server.py")


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not true after {timeout}s (last: {last!r})")


class Cluster:
    """A namespace with the runtime and the gateway running on it."""

    def __init__(
        self, plane: ControlPlane, namespace: str, runtime: ProcessRuntime, gateway: NginxGateway
    ):
        self.plane, self.namespace, self.runtime, self.gateway = plane, namespace, runtime, gateway

    def apply(self, *docs: dict[str, Any]) -> None:
        text = "\n---\n".join(json.dumps(d) for d in docs)
        self.plane.kubectl("apply", "-n", self.namespace, "-f", "-", input=text)

    def workload(self, name: str, track: str, version: str, replicas: int) -> list[dict[str, Any]]:
        text = (DATA / "workload.yaml").read_text()
        for key, value in {
            "@PYTHON@": sys.executable,
            "@SERVER@": str(TINY_SERVER),
            "@NAME@": name,
            "@TRACK@": track,
            "@VERSION@": version,
            "@REPLICAS@": str(replicas),
        }.items():
            text = text.replace(key, value)
        return list(yaml.safe_load_all(text))

    def deploy(self, name: str, track: str, version: str, replicas: int) -> None:
        self.apply(*self.workload(name, track, version, replicas))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.plane.kubectl("get", kind, name, "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(out))

    def processes(self, deployment: str, *, ready_only: bool = False) -> list[dict[str, Any]]:
        return [
            p
            for p in self.runtime.snapshot()
            if p["namespace"] == self.namespace
            and p["deployment"] == deployment
            and not p["terminating"]
            and (p["ready"] or not ready_only)
        ]

    def rolled_out(self, deployment: str, replicas: int) -> bool:
        dep = self.get("deployment", deployment)
        status = dep.get("status") or {}
        return (
            status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("replicas", 0) == replicas
            and status.get("updatedReplicas", 0) == replicas
            and status.get("readyReplicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and len(self.processes(deployment)) == replicas
        )

    def url(self, route: str, path: str = "/hello") -> str:
        return f"{self.gateway.url}/{self.namespace}/{route}{path}"


@pytest.fixture
def cluster(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:
    namespace = f"rt-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("apply", "-n", namespace, "-f", str(DATA / "secret.yaml"))
    api = kube_config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    gateway = NginxGateway(tmp_path / "gateway").start()
    runtime = ProcessRuntime(
        api,
        tmp_path / "runtime",
        listener=gateway,
        file_sd_dir=tmp_path / "file_sd",
        namespaces=[namespace],
        drain_seconds=0.5,
    ).start()
    try:
        yield Cluster(control_plane, namespace, runtime, gateway)
    finally:
        runtime.stop()
        gateway.stop()
        # No controller-manager: namespace deletion never finishes, so remove the
        # Deployments ourselves so they do not linger as managed objects.
        control_plane.kubectl(
            "delete", "deployments,services,ingresses", "--all", "-n", namespace, check=False
        )
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Traffic(threading.Thread):
    """Requests in a loop through nginx, one connection each, recording every outcome."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.outcomes: list[tuple[int, str]] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=limits) as http:
            while not self._halt.is_set():
                try:
                    response = http.post(self.url, content=b"{}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
                else:
                    self.outcomes.append((response.status_code, response.json()["version"]))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def served_by(url: str, n: int, headers: dict[str, str] | None = None) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(timeout=10) as http:
        for _ in range(n):
            response = http.get(url, headers=headers)
            assert response.status_code == 200, response.text
            counts[response.json()["version"]] += 1
    return counts


# --- processes, environment, status ------------------------------------------------


def test_runtime_runs_pods_with_their_environment_and_writes_status(cluster: Cluster) -> None:
    cluster.deploy("stable", "stable", "1", replicas=2)

    wait_for(lambda: cluster.rolled_out("stable", 2), 60, "two ready processes")

    dep = cluster.get("deployment", "stable")
    conditions = {c["type"]: c for c in dep["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"

    response = wait_for(
        lambda: (r := httpx.get(cluster.url("stable"))).status_code == 200 and r, 30, "route"
    )
    body = response.json()
    assert body["namespace"] == cluster.namespace  # fieldRef metadata.namespace
    assert body["pod"].startswith("stable-")  # fieldRef metadata.name
    assert body["path"] == "/hello"  # the /<namespace>/<name> prefix is stripped
    assert body["env"]["T_GREETING"] == f"hello 1 from {cluster.namespace}"  # $(VAR) expansion
    assert body["env"]["T_TOKEN"] == "s3cr3t"  # secretKeyRef
    assert body["env"]["T_FROM_mode"] == "strict"  # envFrom secretRef with a prefix
    ports = {p["port"] for p in cluster.processes("stable")}
    assert len(ports) == 2
    assert 8000 not in ports

    assert cluster.runtime.file_sd_dir is not None
    targets = json.loads((cluster.runtime.file_sd_dir / "runtime.json").read_text())
    mine = [t for t in targets if t["labels"]["namespace"] == cluster.namespace]
    assert sorted(int(t["targets"][0].rsplit(":", 1)[1]) for t in mine) == sorted(ports)
    # The names the shipped Prometheus config relabels Kubernetes discovery to.
    assert all(t["labels"]["artpulse_track"] == "stable" for t in mine)
    assert all(t["labels"]["artpulse_model_version"] == "1" for t in mine)
    assert all(t["labels"]["artpulse_model"] == "demo" for t in mine)
    assert not any("track" in t["labels"] or "version" in t["labels"] for t in mine)


def test_runtime_scales_up_and_down(cluster: Cluster) -> None:
    cluster.deploy("stable", "stable", "1", replicas=1)
    wait_for(lambda: cluster.rolled_out("stable", 1), 60, "one process")

    cluster.plane.kubectl("scale", "deployment/stable", "--replicas=3", "-n", cluster.namespace)
    wait_for(lambda: cluster.rolled_out("stable", 3), 60, "three processes")
    pids = {p["pid"] for p in cluster.processes("stable")}

    cluster.plane.kubectl("scale", "deployment/stable", "--replicas=0", "-n", cluster.namespace)
    wait_for(lambda: cluster.rolled_out("stable", 0), 60, "no process")
    wait_for(lambda: not any(_pid_alive(pid) for pid in pids), 30, "the processes exited")
    assert httpx.get(cluster.url("stable")).status_code == 503


def test_runtime_restarts_a_crashed_process(cluster: Cluster) -> None:
    cluster.deploy("stable", "stable", "1", replicas=1)
    wait_for(lambda: cluster.rolled_out("stable", 1), 60, "one process")
    [before] = cluster.processes("stable")

    os.kill(before["pid"], 9)

    wait_for(
        lambda: [p for p in cluster.processes("stable", ready_only=True) if p["restarts"] == 1],
        60,
        "the process restarted and ready again",
    )


def test_template_change_is_rolled_without_a_failed_request(cluster: Cluster) -> None:
    cluster.deploy("stable", "stable", "1", replicas=2)
    wait_for(lambda: cluster.rolled_out("stable", 2), 60, "v1 ready")
    old_pids = {p["pid"] for p in cluster.processes("stable")}
    traffic = Traffic(cluster.url("stable", "/predict"))
    traffic.start()
    wait_for(lambda: len(traffic.outcomes) >= 20, 30, "traffic flowing on v1")

    cluster.deploy("stable", "stable", "2", replicas=2)
    wait_for(lambda: cluster.rolled_out("stable", 2), 90, "v2 rolled out")
    wait_for(lambda: not any(_pid_alive(pid) for pid in old_pids), 30, "v1 processes exited")
    seen_v2 = len([o for o in traffic.outcomes if o[1] == "2"])
    wait_for(
        lambda: len([o for o in traffic.outcomes if o[1] == "2"]) >= seen_v2 + 20,
        30,
        "traffic on v2",
    )
    traffic.stop()

    assert traffic.failures == []
    versions = [v for _, v in traffic.outcomes]
    assert versions[0] == "1"
    assert versions[-1] == "2"
    # Once the last v1 answer is seen, no v1 comes back (old processes are gone for good).
    last_v1 = max(i for i, v in enumerate(versions) if v == "1")
    assert all(v == "2" for v in versions[last_v1 + 1 :])
    assert cluster.gateway.reloads >= 3  # each replaced process left the upstreams first


# --- the gateway's routes ------------------------------------------------------------


def _routes() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load((DATA / "routes.yaml").read_text()))


def _two_tracks(cluster: Cluster, stable_replicas: int = 1, canary_replicas: int = 1) -> None:
    cluster.deploy("stable", "stable", "1", replicas=stable_replicas)
    cluster.deploy("canary", "canary", "2", replicas=canary_replicas)
    wait_for(lambda: cluster.rolled_out("stable", stable_replicas), 60, "stable ready")
    wait_for(lambda: cluster.rolled_out("canary", canary_replicas), 60, "canary ready")


def _wait_share(cluster: Cluster, route: str, service: str, share: float) -> None:
    def current() -> bool:
        for r in cluster.gateway.describe():
            if r["route"] == f"{cluster.namespace}/{route}":
                shares = {b["service"]: b["share"] for b in r["backends"]}
                return bool(abs(shares.get(f"{cluster.namespace}/{service}", -1) - share) < 1e-6)
        return False

    wait_for(current, 30, f"gateway config: {service} at {share}")


def test_httproute_weights_split_the_traffic(cluster: Cluster) -> None:
    _two_tracks(cluster, stable_replicas=2, canary_replicas=1)
    routes = _routes()
    cluster.apply(routes["httproute"])
    _wait_share(cluster, "demo", "canary", 0.2)

    counts = served_by(cluster.url("demo"), 400)
    assert 40 <= counts["2"] <= 120, counts  # 20 % of 400 = 80, generous bounds

    by_host = served_by(
        f"{cluster.gateway.url}/predict", 100, headers={"Host": "demo.artpulse.test"}
    )
    assert 5 <= by_host["2"] <= 40, by_host

    route = copy.deepcopy(routes["httproute"])
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 0
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 100
    cluster.apply(route)
    _wait_share(cluster, "demo", "canary", 1.0)
    assert served_by(cluster.url("demo"), 50) == {"2": 50}


def test_ingress_canary_weight_splits_the_traffic(cluster: Cluster) -> None:
    _two_tracks(cluster)
    routes = _routes()
    canary = copy.deepcopy(routes["canaryIngress"])
    canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = "30"
    cluster.apply(routes["ingress"], canary)
    _wait_share(cluster, "demo", "canary", 0.3)

    counts = served_by(cluster.url("demo"), 400)
    assert 80 <= counts["2"] <= 160, counts  # 30 % of 400 = 120

    by_host = served_by(f"{cluster.gateway.url}/x", 100, headers={"Host": "ingress.artpulse.test"})
    assert 10 <= by_host["2"] <= 50, by_host


def test_replicas_service_selecting_both_tracks_follows_the_replica_counts(
    cluster: Cluster,
) -> None:
    _two_tracks(cluster, stable_replicas=3, canary_replicas=1)
    cluster.apply(_routes()["wholeModelService"])
    _wait_share(cluster, "whole", "whole", 1.0)
    wait_for(
        lambda: len(cluster.runtime.endpoints().get((cluster.namespace, "whole"), [])) == 4,
        30,
        "four endpoints behind the whole-model Service",
    )
    counts = served_by(cluster.url("whole"), 400)
    assert 50 <= counts["2"] <= 150, counts  # one process in four = 100


def test_a_track_without_ready_processes_gets_no_traffic(cluster: Cluster) -> None:
    _two_tracks(cluster)
    cluster.apply(_routes()["httproute"])
    _wait_share(cluster, "demo", "canary", 0.2)
    cluster.plane.kubectl("scale", "deployment/canary", "--replicas=0", "-n", cluster.namespace)
    wait_for(lambda: cluster.rolled_out("canary", 0), 60, "canary gone")
    _wait_share(cluster, "demo", "stable", 1.0)

    assert served_by(cluster.url("demo"), 50) == {"1": 50}

"""MLflow as the manifests run it: the in-cluster names pass its Host check, others are refused.

`mlflow server` refuses requests whose Host header is not in MLFLOW_SERVER_ALLOWED_HOSTS
(a DNS-rebinding guard). A wrong list would make every in-cluster client (operator, inference
pods, retrain job) and the kubelet's probes fail with 403, so the rendered Deployment's own
command and environment are run here, on loopback, and asked with the Host headers those clients
send. Only the listen address, the storage paths and the worker count are changed for the test.
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev._proc import spawn, stop
from artpulse_dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
API = "/api/2.0/mlflow/experiments/search?max_results=1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlflow_container(plane: ControlPlane, directory: str) -> dict[str, Any]:
    out = plane.kubectl("kustomize", str(REPO / directory)).stdout
    deployment = next(
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow"
    )
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def status(port: int, host: str, path: str = API) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, dict[str, str]]]:
    # One server (they are slow to start): production's list, which extends the base's
    # (test_every_overlay_keeps_the_in_cluster_names).
    container = mlflow_container(control_plane, "manifests/overlays/production")
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    tmp = tmp_path_factory.mktemp("mlflow-hosts")
    port = free_port()
    run_env = {
        **os.environ,
        **env,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp / "artifacts"),
    }
    mlflow = Path(sys.executable).with_name("mlflow")
    assert container["command"][0] == "mlflow"
    argv = [str(mlflow), *container["command"][1:], *container.get("args", [])]
    argv += ["--host=127.0.0.1", f"--port={port}", "--workers=1"]
    proc = spawn(argv, tmp / "mlflow.log", env=run_env, cwd=tmp)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp / "mlflow.log").read_text()[-3000:]
            try:
                if status(port, "localhost:5000", "/health") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer /health"
            time.sleep(0.25)
        yield port, env
    finally:
        stop(proc)  # the whole process group: uvicorn's workers too


@pytest.mark.parametrize(
    "host",
    [
        "mlflow.artpulse-system.svc:5000",  # ARTPULSE_MLFLOW_TRACKING_URI of the operator
        "mlflow.artpulse-system.svc.cluster.local:5000",
        "mlflow.artpulse-system:5000",
        "mlflow:5000",  # clients in artpulse-system
        "localhost:5000",  # the probes' Host header
    ],
)
def test_in_cluster_names_are_allowed(served: tuple[int, dict[str, str]], host: str) -> None:
    port, _ = served
    assert status(port, host) == 200


def test_a_foreign_host_is_refused(served: tuple[int, dict[str, str]]) -> None:
    port, _ = served
    assert status(port, "attacker.example.com") == 403


def allowed_hosts(container: dict[str, Any]) -> list[str]:
    env = {e["name"]: e.get("value") for e in container["env"]}
    return str(env["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")


def test_every_overlay_keeps_the_in_cluster_names(control_plane: ControlPlane) -> None:
    base = allowed_hosts(mlflow_container(control_plane, "manifests/quickstart"))
    for overlay in ("staging", "production"):
        hosts = allowed_hosts(mlflow_container(control_plane, f"manifests/overlays/{overlay}"))
        assert set(base) <= set(hosts), overlay


def test_probes_match_the_served_health_path(control_plane: ControlPlane) -> None:
    container = mlflow_container(control_plane, "manifests/quickstart")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health"
        assert {"name": "Host", "value": "localhost:5000"} in get["httpHeaders"]


def test_the_overlay_hostname_is_allowed(served: tuple[int, dict[str, str]]) -> None:
    port, env = served
    public = [h for h in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",") if "example.com" in h]
    for host in public:
        assert status(port, host) == 200

"""The harness is real: a real API server with RBAC, a real MLflow, a real Prometheus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import pytest
from artpulse_dev._proc import free_port
from artpulse_dev.controlplane import ControlPlane
from artpulse_dev.mlflow_server import MlflowServer
from mlflow import MlflowClient
from prometheus_client import CollectorRegistry, Counter, start_http_server

pytestmark = pytest.mark.integration

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: harness-check, labels: {app: echo}}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers: [{name: echo, image: registry.invalid/echo:1}]
"""


def test_api_server_stores_and_returns_objects(control_plane: ControlPlane) -> None:
    control_plane.kubectl("create", "namespace", "harness-check")
    control_plane.kubectl("apply", "-f", "-", input=DEPLOYMENT)

    got = json.loads(
        control_plane.kubectl(
            "get", "deployment", "echo", "-n", "harness-check", "-o", "json"
        ).stdout
    )

    assert got["spec"]["replicas"] == 2
    assert got["metadata"]["uid"]
    # Defaulting ran on the server: a strategy the manifest did not give.
    assert got["spec"]["strategy"]["type"] == "RollingUpdate"


def test_rbac_denies_an_identity_without_a_role(control_plane: ControlPlane) -> None:
    denied = control_plane.kubectl(
        "get", "pods", "-n", "default", kubeconfig=control_plane.nobody_kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert 'User "nobody"' in denied.stderr

    allowed = control_plane.kubectl("auth", "can-i", "get", "pods", "-n", "default")
    assert allowed.stdout.strip() == "yes"


def test_kubectl_reports_the_pinned_version(control_plane: ControlPlane, repo_root: Path) -> None:
    pinned = (repo_root / "hack" / "kube-bins" / "VERSION").read_text().strip()
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["clientVersion"]["gitVersion"] == pinned
    assert version["serverVersion"]["gitVersion"] == pinned


def test_gateway_api_crds_are_installed(control_plane: ControlPlane) -> None:
    crd = control_plane.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io").stdout
    assert "httproutes" in crd


def test_mlflow_registers_and_reads_back_a_model(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    client.create_registered_model("harness-model")
    experiment = client.create_experiment("harness")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "accuracy", 0.75)
    version = client.create_model_version(
        "harness-model", f"runs:/{run.info.run_id}/model", run.info.run_id
    )
    client.set_registered_model_alias("harness-model", "champion", version.version)

    by_alias = MlflowClient(tracking_uri=mlflow_server.tracking_uri).get_model_version_by_alias(
        "harness-model", "champion"
    )
    assert by_alias.version == version.version
    assert by_alias.run_id == run.info.run_id
    assert mlflow.get_tracking_uri() != ""  # the client library itself is importable and configured


def test_prometheus_scrapes_a_real_target(prometheus_factory) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    counter = Counter("harness_hits", "hits", ["track"], registry=registry)
    counter.labels(track="stable").inc(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prom = prometheus_factory(targets=[f"127.0.0.1:{port}"])
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            result = prom.query('harness_hits_total{track="stable"}')
            time.sleep(0.2)
        assert result, "Prometheus never scraped the target"
        assert float(result[0]["value"][1]) == 7.0  # type: ignore[index]
    finally:
        server.shutdown()
        thread.join(timeout=5)

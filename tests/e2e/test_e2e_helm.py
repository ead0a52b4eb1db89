"""charts/artpulse, installed with `helm install`, runs the operator on the real node and a canary
runs through it to promotion.

As tests/e2e/test_e2e_install.py does for dist/install.yaml: the session's ArtPulse came from the
local overlay, so first every object the chart would create is taken away (the overlay has them
under the same names: the operator's Deployment, ServiceAccount, RBAC, Service, NetworkPolicy,
PodDisruptionBudget and the roles for people; Helm adopts nothing it did not create), and the
peering object the overlay's replicas made. Then the chart is installed once, with its default
values but for the MLflow and Prometheus addresses (the overlay's, in-cluster) and its
registry-qualified image, which is tagged in the node's containerd first, as a mirror would hold
it. MLflow, Prometheus, the Gateway and the namespace stay. The CRDs stay too (deleting one would
delete every other scenario's models): Helm skips the CRDs of the chart's crds/ that exist.
Afterwards `helm uninstall` removes the release and the local overlay is applied again.

Helm is hack/go-bins' (`make helm`), with its cache, configuration and data directories in the
test's temporary directory, so nothing of it outlives the test.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.controlplane import OPERATOR_NAMESPACE
from artpulse_dev.localcluster import MLFLOW_CLUSTER_URL, PROMETHEUS_CLUSTER_URL

from .e2e_support import (
    E2E,
    REPO_ROOT,
    canary_promotes,
    operator_pods_run,
    tag_local_image,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CHART = REPO_ROOT / "charts" / "artpulse"
RELEASE = "artpulse"
VALUES = {
    "mlflow": {"trackingUri": MLFLOW_CLUSTER_URL},
    "prometheus": {"url": PROMETHEUS_CLUSTER_URL},
}


class Helm:
    """hack/go-bins' helm against the session cluster, its state under `home`."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.binary = subprocess.run(
            ["bash", str(REPO_ROOT / "hack/go-bins/build.sh"), "helm"],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()[-1]
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {proc.stderr or proc.stdout}")
        return proc


def _chart_image() -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return f"{values['image']['repository']}:{chart['appVersion']}"


def _released(helm: Helm) -> dict[str, Any] | None:
    out = helm("list", "-n", OPERATOR_NAMESPACE, "-o", "json").stdout
    releases = {r["name"]: r for r in json.loads(out or "[]")}
    return releases.get(RELEASE)


def test_the_chart_installs_the_operator_and_a_canary_promotes(
    artpulse: E2E, tmp_path: Path
) -> None:
    kubectl = artpulse.local.kubectl
    helm = Helm(artpulse.local.kubeconfig, tmp_path / "helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    # What the chart will create (CRDs aside), rendered by the same helm: the objects of the
    # overlay under those names go first, whatever the chart comes to hold.
    rendered = helm(
        "template", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "-f", str(values)
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert {"Deployment", "ClusterRole", "NetworkPolicy"} <= {d["kind"] for d in objects}
    tag_local_image(artpulse, "artpulse-operator", _chart_image())
    kubectl(
        "delete", "--ignore-not-found", "--wait=true", "--timeout=180s", "-f", "-",
        input=yaml.safe_dump_all(objects), timeout=200,
    )  # fmt: skip
    kubectl("delete", "clusterkopfpeering", "artpulse-operator", "--ignore-not-found")
    wait_for(lambda: not artpulse.local.operator_pods(), 180, "the overlay's operator pods gone")
    try:
        helm(
            "install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "-f", str(values),
            "--wait=watcher", "--timeout", "300s", timeout=330,
        )  # fmt: skip
        release = _released(helm)
        assert release is not None
        assert release["status"] == "deployed"
        assert (
            release["app_version"]
            == yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        )
        pods = operator_pods_run(artpulse, _chart_image())
        assert {p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in pods} == {RELEASE}
        managed = kubectl(
            "get", "clusterrole", "artpulse-operator", "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
        ).stdout  # fmt: skip
        assert managed == "Helm"
        story = canary_promotes(artpulse, "helm", "the chart's operator")
        # Deleted while the chart's operator runs: its finalizer is handled.
        story.kubectl("delete", "apm", story.name, "-n", story.namespace, "--timeout=90s")

        helm("uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait=watcher", timeout=330)
        assert _released(helm) is None
        wait_for(lambda: not artpulse.local.operator_pods(), 180, "the chart's operator pods gone")
        left = kubectl(
            "get", "clusterrole", "artpulse-operator", "--ignore-not-found", "-o", "name"
        ).stdout
        assert left.strip() == "", "the release's ClusterRole outlived helm uninstall"
    finally:
        helm(
            "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--ignore-not-found",
            "--wait=watcher", "--timeout", "180s", check=False, timeout=200,
        )  # fmt: skip
        artpulse.local.install()  # the overlay's operator again, for the scenarios after

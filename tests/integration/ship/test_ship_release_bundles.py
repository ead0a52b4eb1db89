"""`make release` on a real API server: each bundle installs with one apply, and the namespace
bundle runs an operator that can do its work with the Roles it ships and nothing more.

The namespace install is proven the strict way: the operator runs as a process authenticated
with a token of the ServiceAccount that namespace-install.yaml creates (TokenRequest), so every
request it makes is judged by the bundle's Role and RoleBinding alone.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev import release
from artpulse_dev.controlplane import ControlPlane

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from operator_process import Kube, OperatorProcess, wait_for

pytestmark = pytest.mark.integration


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def bundles(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    return release.build(str(control_plane.bin_dir / "kubectl"), dist)


def images(docs: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in docs:
        spec = doc.get("spec") or {}
        template = (spec.get("jobTemplate") or {}).get("spec", spec).get("template") or {}
        for container in (template.get("spec") or {}).get("containers", []):
            found.append(container["image"])
    return found


def test_every_bundle_names_registry_qualified_images(bundles: dict[str, Path]) -> None:
    assert set(bundles) == {
        "install.yaml",
        "namespace-install.yaml",
        "crds.yaml",
        "quickstart.yaml",
    }
    for name in ("install.yaml", "namespace-install.yaml", "quickstart.yaml"):
        refs = images(load(bundles[name]))
        assert refs, name
        for ref in refs:
            assert release.registry_qualified(ref), (name, ref)
    want = release.image_tags()["artpulse-operator"]
    assert want in images(load(bundles["install.yaml"]))


def test_install_yaml_needs_no_second_apply(bundles: dict[str, Path]) -> None:
    """No object of a kind whose CRD comes in the same file: one `kubectl apply` maps them all."""
    docs = load(bundles["install.yaml"])
    defined = {d["spec"]["names"]["kind"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert {"ArtPulseModel", "ClusterKopfPeering", "KopfPeering"} <= defined
    assert not [d for d in docs if d["kind"] in defined]


def test_install_yaml_applies_in_one_go(
    control_plane: ControlPlane, bundles: dict[str, Path]
) -> None:
    result = control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(bundles["install.yaml"]),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    operator = "system:serviceaccount:artpulse-system:artpulse-operator"
    for verb, resource in (
        ("create", "clusterkopfpeerings.kopf.dev"),
        ("patch", "artpulsemodels.artpulse.io/status"),
        ("patch", "deployments.apps"),
    ):
        can = control_plane.kubectl(
            "auth", "can-i", verb, resource, "-A", f"--as={operator}", check=False
        )
        assert can.stdout.strip() == "yes", (verb, resource, can.stdout, can.stderr)


def test_namespace_install_has_no_cluster_scoped_object(
    control_plane: ControlPlane, bundles: dict[str, Path]
) -> None:
    cluster_scoped = {
        line.split()[-1]
        for line in control_plane.kubectl(
            "api-resources", "--namespaced=false", "--no-headers"
        ).stdout.splitlines()
        if line.strip()
    }
    for doc in load(bundles["namespace-install.yaml"]):
        assert doc["kind"] not in cluster_scoped, doc["kind"]
        assert "namespace" not in doc["metadata"], doc["metadata"]


@pytest.fixture
def team_namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"team-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_namespace_install_runs_the_operator_on_its_roles_alone(
    control_plane: ControlPlane,
    bundles: dict[str, Path],
    team_namespace: str,
    mlflow_server: Any,
    tmp_path: Path,
) -> None:
    plane, ns = control_plane, team_namespace
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(bundles["crds.yaml"]))
    applied = plane.kubectl(
        "apply",
        "-n",
        ns,
        "--server-side",
        "-f",
        str(bundles["namespace-install.yaml"]),
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    account = f"system:serviceaccount:{ns}:artpulse-operator"

    def can(verb: str, resource: str, *where: str) -> bool:
        out = plane.kubectl("auth", "can-i", verb, resource, *where, f"--as={account}", check=False)
        return out.stdout.strip() == "yes"

    assert can("patch", "artpulsemodels.artpulse.io", "-n", ns)
    assert can("create", "kopfpeerings.kopf.dev", "-n", ns)
    assert not can("list", "artpulsemodels.artpulse.io", "-n", "default")
    assert not can("list", "artpulsemodels.artpulse.io", "-A")
    assert not can("get", "secrets", "-n", ns)  # the credentials reader Role is not bound

    # The operator as the bundle's Deployment runs it, with that ServiceAccount's own token.
    token = plane.kubectl("create", "token", "artpulse-operator", "-n", ns).stdout.strip()
    kubeconfig = tmp_path / "kubeconfig"
    config = json.loads(plane.kubeconfig.read_text())
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"] = [{"name": "sa", "context": {"cluster": "artpulse-dev", "user": "sa"}}]
    config["current-context"] = "sa"
    kubeconfig.write_text(json.dumps(config))
    (deployment,) = [
        d for d in load(bundles["namespace-install.yaml"]) if d["kind"] == "Deployment"
    ]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ARTPULSE_NAMESPACES"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    proc = OperatorProcess(
        plane,
        tmp_path / "operator.log",
        {
            "KUBECONFIG": str(kubeconfig),
            "ARTPULSE_KUBECONFIG": str(kubeconfig),
            "ARTPULSE_NAMESPACES": ns,  # what the fieldRef gives the pod
            "ARTPULSE_CLUSTER_SCANNING": env["ARTPULSE_CLUSTER_SCANNING"]["value"],
            "ARTPULSE_PEERING_NAME": env["ARTPULSE_PEERING_NAME"]["value"],
            "ARTPULSE_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        },
    )
    kube = Kube(plane, ns)
    try:
        proc.start()
        # It made its own KopfPeering there and keeps its heartbeat in it.
        wait_for(
            lambda: (kube.get("kopfpeering", "artpulse-operator") or {}).get("status"),
            "the operator's heartbeat in its KopfPeering",
            timeout=60,
        )
        kube.apply(
            {
                "apiVersion": "artpulse.io/v1alpha1",
                "kind": "ArtPulseModel",
                "metadata": {"name": "art", "namespace": ns},
                "spec": {
                    "model": {"name": f"absent-{uuid.uuid4().hex[:6]}"},
                    "serving": {"image": release.image_tags()["artpulse-inference"]},
                },
            }
        )
        # The model is not in MLflow: the operator says so in the status it writes.
        status = wait_for(
            lambda: (kube.get("artpulsemodel", "art") or {}).get("status", {}).get("conditions"),
            "the operator's status on the model",
            timeout=60,
        )
        assert status
        log = (tmp_path / "operator.log").read_text()
        assert "Forbidden" not in log, log[-4000:]
    finally:
        proc.stop()
        print(proc.log_tail())

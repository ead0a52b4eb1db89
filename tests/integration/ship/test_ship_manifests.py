"""Every shipped kustomization rendered by `kubectl kustomize` and checked by the real API server.

The server-side dry run runs the full admission chain of the control plane from the harness
(Kubernetes v1.35, RBAC on, the ArtPulseModel and Gateway API CRDs installed): schema validation
of every object, Pod Security "restricted" on the pod templates (the namespace enforces it), and
RBAC escalation checks on the roles. Prerequisites the dry run cannot create in the same request
are created for real first: the artpulse-system and argocd namespaces and Kopf's peering CRDs.
The PodMonitor kustomization is only rendered: its CRD belongs to the Prometheus operator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
KUSTOMIZATIONS = [
    "crds",
    "observability",
    "manifests/crds",
    "manifests/base",
    "manifests/quickstart",
    "manifests/overlays/staging",
    "manifests/overlays/production",
    "manifests/overlays/local",
    "manifests/argocd",
]
DRY_RUN = [
    "manifests/crds",
    "manifests/base",
    "manifests/quickstart",
    "manifests/overlays/staging",
    "manifests/overlays/production",
    "manifests/overlays/local",
    "manifests/argocd",
]
NAMESPACE = "artpulse-system"


def render(plane: ControlPlane, directory: str) -> list[dict[str, Any]]:
    out = plane.kubectl("kustomize", str(REPO / directory)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.fixture(scope="module")
def prerequisites(control_plane: ControlPlane) -> ControlPlane:
    base = REPO / "manifests/base"
    control_plane.kubectl("apply", "--server-side", "-f", str(base / "namespace.yaml"))
    for namespace in ("argocd", "gateway"):  # the Argo CD app's, the local overlay's Gateway
        manifest = control_plane.kubectl(
            "create", "namespace", namespace, "--dry-run=client", "-o", "yaml"
        ).stdout
        control_plane.kubectl("apply", "-f", "-", input=manifest)
    kopf_crds = REPO / "manifests/crds/kopf-peering-crds.yaml"
    control_plane.kubectl("apply", "--server-side", "-f", str(kopf_crds))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/clusterkopfpeerings.kopf.dev",
        "crd/kopfpeerings.kopf.dev",
    )
    return control_plane


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomization_renders(control_plane: ControlPlane, directory: str) -> None:
    docs = render(control_plane, directory)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion")
        assert doc.get("kind")
        assert doc["metadata"].get("name")


@pytest.mark.parametrize("directory", DRY_RUN)
def test_server_side_dry_run_accepts_everything(
    prerequisites: ControlPlane, directory: str
) -> None:
    rendered = prerequisites.kubectl("kustomize", str(REPO / directory)).stdout
    result = prerequisites.kubectl(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--force-conflicts",
        "--field-manager=artpulse-ship-test",
        "-f",
        "-",
        input=rendered,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Pod Security admission answers with warnings for templates it would refuse as pods.
    assert "would violate PodSecurity" not in result.stderr, result.stderr
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len([d for d in yaml.safe_load_all(rendered) if d])


def test_base_operator_deployment(control_plane: ControlPlane) -> None:
    docs = render(control_plane, "manifests/base")
    deployment = find(docs, "Deployment", "artpulse-operator")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Leader election: the replicas create the peering they name at startup; the base ships
    # none (a custom resource next to its CRD fails a first apply) and lets them create it.
    assert env["ARTPULSE_PEERING_NAME"] == "artpulse-operator"
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    (role,) = [
        d
        for d in docs
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "artpulse-operator"
    ]
    assert any(
        "clusterkopfpeerings" in r["resources"] and "create" in r["verbs"] for r in role["rules"]
    )
    assert container["command"] == ["python", "-m", "artpulse_operator"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(env["ARTPULSE_HEALTH_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    # The ServiceAccount it runs as comes with the base (manifests/base/rbac.yaml).
    find(docs, "ServiceAccount", spec["serviceAccountName"])
    pdb = find(docs, "PodDisruptionBudget", "artpulse-operator")
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    find(docs, "NetworkPolicy", "artpulse-operator")


def test_base_is_the_operator_alone(control_plane: ControlPlane) -> None:
    """MLflow, Prometheus and the retrain CronJob are components now, not forced on everyone."""
    docs = render(control_plane, "manifests/base")
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == {"artpulse-operator"}
    assert not [d for d in docs if d["kind"] in ("CronJob", "PersistentVolumeClaim")]


def test_components_render_on_top_of_the_base(control_plane: ControlPlane, tmp_path: Path) -> None:
    """Every component, included next to the base, renders (the monitoring one has no other
    kustomization that includes it)."""
    components = sorted(
        p.parent.name for p in REPO.glob("manifests/components/*/kustomization.yaml")
    )
    assert {"images", "mlflow", "prometheus", "retrain", "monitoring", "gateway"} <= set(components)
    for name in components:
        text = (REPO / "manifests/components" / name / "kustomization.yaml").read_text()
        assert yaml.safe_load(text)["kind"] == "Component", name
    here = Path(os.path.relpath(REPO, tmp_path))  # kustomize takes no absolute paths
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [str(here / "manifests/base")],
                "components": [str(here / "manifests/components" / c) for c in components],
            }
        )
    )
    out = control_plane.kubectl(
        "kustomize", "--load-restrictor=LoadRestrictionsNone", str(tmp_path)
    ).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(out) if d}
    assert {"PodMonitor", "PrometheusRule", "Gateway", "CronJob"} <= kinds


def test_quickstart_mlflow_and_prometheus(control_plane: ControlPlane) -> None:
    docs = render(control_plane, "manifests/quickstart")
    for kind in ("Deployment", "Service"):
        find(docs, kind, "mlflow")
        find(docs, kind, "prometheus")
    find(docs, "PersistentVolumeClaim", "mlflow-data")
    config = find(docs, "ConfigMap", "artpulse-prometheus-config")
    scrape = yaml.safe_load(config["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
    inference = jobs["artpulse-inference"]
    assert inference["kubernetes_sd_configs"][0]["role"] == "pod"
    targets = {r.get("target_label") for r in inference["relabel_configs"]}
    assert {"namespace", "artpulse_track", "artpulse_model_version"} <= targets
    rules = find(docs, "ConfigMap", "artpulse-prometheus-rules")
    assert set(rules["data"]) == {
        p.name for p in (REPO / "observability/prometheus/rules").glob("*.yml")
    }
    prometheus = find(docs, "Deployment", "prometheus")["spec"]["template"]["spec"]
    mounted = {v["configMap"]["name"] for v in prometheus["volumes"] if "configMap" in v}
    assert mounted == {config["metadata"]["name"], rules["metadata"]["name"]}


def test_overlays_differ_in_hostnames_and_reference_secrets(control_plane: ControlPlane) -> None:
    hosts = {}
    for overlay in ("staging", "production"):
        docs = render(control_plane, f"manifests/overlays/{overlay}")
        assert not [d for d in docs if d["kind"] == "Secret"], (
            "secrets are referenced, never inlined"
        )
        ingress = find(docs, "Ingress", "mlflow")
        (rule,) = ingress["spec"]["rules"]
        hosts[overlay] = rule["host"]
        assert ingress["spec"]["tls"][0]["secretName"] == f"artpulse-{overlay}-tls"
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"]
        mlflow = find(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
        names = [e["name"] for e in mlflow["env"]]
        assert len(names) == len(set(names)), f"{overlay}: an env var twice: {names}"
        allowed = {e["name"]: e.get("value") for e in mlflow["env"]}["MLFLOW_SERVER_ALLOWED_HOSTS"]
        assert rule["host"] in allowed.split(",")
        gateway = find(docs, "Gateway", "artpulse-gateway")
        (listener,) = gateway["spec"]["listeners"]
        hosts[f"{overlay}-api"] = listener["hostname"]
        assert listener["tls"]["certificateRefs"] == [
            {"kind": "Secret", "name": f"artpulse-{overlay}-api-tls"}
        ]
        for deployment in (d for d in docs if d["kind"] == "Deployment"):
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                assert image.startswith("registry.example.com/") or image.startswith("quay.io/"), (
                    image
                )
    assert hosts["staging"] != hosts["production"]
    assert hosts["staging-api"] != hosts["production-api"]

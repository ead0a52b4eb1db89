"""charts/artpulse renders what manifests/base installs, and its values do what they say.

`helm template` (the helm of hack/go-bins, built here on first use like `make helm`) is held
against `kubectl kustomize manifests/base` (the kubectl of hack/kube-bins, `make kube-bins`):
the operator Deployment's command, environment, probes, security contexts, ports and volumes,
the operator's ClusterRole rule for rule (a rule added to manifests/base/rbac.yaml fails here
until the chart has it), the roles for people and the objects installed. With
`rbac.scope: namespace` the chart renders only namespaced objects, and the Role and environment
that hack/artpulse_dev/release.py's namespace_install derives for dist/namespace-install.yaml.
The files the chart ships from elsewhere (CRDs, rules, dashboards, Argo CD scripts) are the
sources byte for byte (`make chart-files` copies them), and values.schema.json refuses a bad
value. Nothing talks to a cluster: both programs only render.
"""

from __future__ import annotations

import copy
import functools
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev import release
from artpulse_dev.controlplane import find_binaries

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "artpulse"
NAMESPACE = "artpulse-system"

Doc = dict[str, Any]

# What the chart ships from elsewhere: its copy -> the source (a directory: every file in it).
COPIES = {
    "files/argocd/health.lua": (
        "manifests/argocd/resource_customizations/artpulse.io/ArtPulseModel/health.lua"
    ),
    "files/argocd/artpulsemodel-actions.yaml": "manifests/argocd/artpulsemodel-actions.yaml",
    "LICENSE": "LICENSE",
}
COPIED_DIRS = {
    "files/prometheus-rules": ("observability/prometheus/rules", "*.yml"),
    "files/grafana-dashboards": ("observability/grafana/dashboards", "*.json"),
}
ARGOCD_KEYS = {
    "resource.customizations.health.artpulse.io_ArtPulseModel": "files/argocd/health.lua",
    "resource.customizations.actions.artpulse.io_ArtPulseModel": (
        "files/argocd/artpulsemodel-actions.yaml"
    ),
}
# Labels Helm's conventions add; manifests/base has none of them.
HELM_LABELS = {"app.kubernetes.io/managed-by", "helm.sh/chart", "app.kubernetes.io/version"}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


# --- the two renderers --------------------------------------------------------------------


@functools.cache
def helm_binary() -> str:
    """hack/go-bins' helm: built once into ~/.cache/artpulse/bin (minutes, cold), then reused."""
    out = subprocess.run(
        ["bash", str(REPO / "hack/go-bins/build.sh"), "helm"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], check=check, capture_output=True, text=True, timeout=120
    )


@functools.cache
def _template(values_json: str, namespace: str, release_name: str, crds: bool) -> str:
    args = ["template", release_name, str(CHART), "-n", namespace]
    if crds:
        args.append("--include-crds")
    if values_json != "{}":
        # JSON is YAML: the values as a file, exactly as given (no --set string parsing).
        args += ["-f", "-"]
    proc = subprocess.run(
        [helm_binary(), *args],
        input=values_json,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.stdout


def render(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    release_name: str = "artpulse",
    crds: bool = False,
) -> list[Doc]:
    text = _template(json.dumps(values or {}, sort_keys=True), namespace, release_name, crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def _base() -> str:
    kubectl = find_binaries(build=False).kubectl
    return subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "manifests/base")],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def base() -> list[Doc]:
    """`kubectl kustomize manifests/base`, what dist/install.yaml holds."""
    return [doc for doc in yaml.safe_load_all(_base()) if doc]


def one(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def kinds_and_names(docs: Iterable[Doc]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def container(docs: Iterable[Doc]) -> Doc:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (operator,) = [c for c in pod["containers"] if c["name"] == "operator"]
    return dict(operator)


def pod_spec(docs: Iterable[Doc]) -> Doc:
    return dict(one(docs, "Deployment")["spec"]["template"]["spec"])


def env(docs: Iterable[Doc]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


# --- the chart and its copies ---------------------------------------------------------------


def test_chart_is_the_release_version_and_states_the_crds_minimum() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == chart["appVersion"] == release.version()
    crd = yaml.safe_load((REPO / "crds/artpulsemodel.yaml").read_text())
    minimum = crd["metadata"]["annotations"]["artpulse.io/min-kubernetes-version"]
    assert chart["kubeVersion"] == f">={minimum}.0-0"  # -0: pre-release builds (1.29.3-gke.1) too
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = release.image_tags()["artpulse-operator"]
    assert f"{values['image']['repository']}:{chart['appVersion']}" == image


def test_a_kubernetes_older_than_the_crds_is_refused() -> None:
    refused = helm("template", "artpulse", str(CHART), "--kube-version", "1.28.9", check=False)
    assert refused.returncode != 0
    assert "kubeVersion" in refused.stderr or "compatible" in refused.stderr, refused.stderr
    assert helm("template", "artpulse", str(CHART), "--kube-version", "1.29.0").returncode == 0


@pytest.mark.parametrize(("copy_path", "source"), sorted(COPIES.items()))
def test_the_chart_ships_exact_copies(copy_path: str, source: str) -> None:
    assert (CHART / copy_path).read_bytes() == (REPO / source).read_bytes(), (
        f"charts/artpulse/{copy_path} differs from {source}: run `make chart-files`"
    )


@pytest.mark.parametrize(("copy_dir", "source"), sorted(COPIED_DIRS.items()))
def test_the_chart_ships_every_file_of_a_source_and_no_other(
    copy_dir: str, source: tuple[str, str]
) -> None:
    directory, pattern = source
    sources = {p.name: p.read_bytes() for p in (REPO / directory).glob(pattern)}
    copies = {p.name: p.read_bytes() for p in (CHART / copy_dir).iterdir()}
    assert sources, directory
    assert copies == sources, f"charts/artpulse/{copy_dir} is stale: run `make chart-files`"


def crd_sources(kustomization: Path = REPO / "manifests/crds") -> list[Path]:
    """The files of manifests/crds' kustomization, following its directories (../../crds)."""
    doc = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
    files: list[Path] = []
    for resource in doc["resources"]:
        path = (kustomization / resource).resolve()
        files += crd_sources(path) if path.is_dir() else [path]
    return files


def test_the_chart_crds_are_copies_of_manifests_crds() -> None:
    sources = {p.name: p.read_bytes() for p in crd_sources()}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert len(sources) == 3  # two ArtPulse CRDs, the file of Kopf's two
    assert copies == sources, "charts/artpulse/crds is stale: run `make chart-files`"


def test_the_chart_installs_the_crds_of_manifests_crds() -> None:
    crds = [d for d in render(crds=True) if d["kind"] == "CustomResourceDefinition"]
    want = [d for d in base() if d["kind"] == "CustomResourceDefinition"]
    assert {d["metadata"]["name"] for d in crds} == {d["metadata"]["name"] for d in want}
    by_name = {d["metadata"]["name"]: d for d in want}
    for crd in crds:
        assert crd["spec"] == by_name[crd["metadata"]["name"]]["spec"]


# --- the defaults are manifests/base ---------------------------------------------------------


def test_default_objects_are_the_base_but_the_namespace_and_the_crds() -> None:
    """Helm installs into the release namespace (--create-namespace) and CRDs from crds/."""
    want = {
        (kind, name)
        for kind, name in kinds_and_names(base())
        if kind not in {"Namespace", "CustomResourceDefinition"}
    }
    assert kinds_and_names(render()) == want
    assert all(d["metadata"].get("namespace") in {None, NAMESPACE} for d in render())


def test_the_operator_container_is_the_base_one() -> None:
    chart, want = container(render()), container(base())
    for key in (
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "env",
        "envFrom",
        "ports",
        "resources",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "securityContext",
        "volumeMounts",
    ):
        assert chart.get(key) == want.get(key), key
    assert set(chart) == set(want)


def test_the_operator_pod_and_deployment_are_the_base_ones() -> None:
    chart, want = one(render(), "Deployment"), one(base(), "Deployment")
    assert chart["metadata"]["name"] == want["metadata"]["name"]
    for key in ("replicas", "revisionHistoryLimit", "strategy"):
        assert chart["spec"][key] == want["spec"][key], key
    pod, base_pod = pod_spec([chart]), pod_spec([want])
    for key in (
        "serviceAccountName",
        "automountServiceAccountToken",
        "terminationGracePeriodSeconds",
        "securityContext",
        "volumes",
    ):
        assert pod[key] == base_pod[key], key
    # The base's anti-affinity, over the chart's selector (its pods, not another release's).
    affinity = copy.deepcopy(base_pod["affinity"])
    term = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    term["podAffinityTerm"]["labelSelector"]["matchLabels"] = chart["spec"]["selector"][
        "matchLabels"
    ]
    assert pod["affinity"] == affinity
    selector = chart["spec"]["selector"]["matchLabels"]
    assert selector == {
        **want["spec"]["selector"]["matchLabels"],
        "app.kubernetes.io/instance": "artpulse",
    }
    labels = chart["spec"]["template"]["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k not in HELM_LABELS | set(selector)} == {
        k: v for k, v in want["spec"]["template"]["metadata"]["labels"].items() if k not in selector
    }


def test_the_operator_cluster_role_is_the_base_one() -> None:
    for name in ("artpulse-operator", "artpulse-operator-credentials-reader"):
        chart = one(render(), "ClusterRole", name)
        assert chart["rules"] == one(base(), "ClusterRole", name)["rules"], name
    binding, want = one(render(), "ClusterRoleBinding"), one(base(), "ClusterRoleBinding")
    assert binding["roleRef"] == want["roleRef"]
    assert binding["subjects"] == want["subjects"]


@pytest.mark.parametrize("role", ["view", "edit", "admin"])
def test_the_roles_for_people_are_the_base_ones(role: str) -> None:
    name = f"artpulse-{role}"
    chart, want = one(render(), "ClusterRole", name), one(base(), "ClusterRole", name)
    assert chart["rules"] == want["rules"]
    aggregate = f"rbac.authorization.k8s.io/aggregate-to-{role}"
    assert chart["metadata"]["labels"][aggregate] == want["metadata"]["labels"][aggregate] == "true"


def test_the_roles_for_people_can_be_left_out() -> None:
    names = {
        n for k, n in kinds_and_names(render({"rbac": {"userRoles": False}})) if k == "ClusterRole"
    }
    assert names == {"artpulse-operator", "artpulse-operator-credentials-reader"}


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget", "NetworkPolicy"])
def test_the_other_operator_objects_are_the_base_ones(kind: str) -> None:
    chart, want = one(render(), kind)["spec"], one(base(), kind)["spec"]
    selector = one(render(), "Deployment")["spec"]["selector"]["matchLabels"]
    if kind == "Service":
        assert chart["selector"] == selector
        assert chart["ports"] == want["ports"]
    elif kind == "PodDisruptionBudget":
        assert chart == {**want, "selector": {"matchLabels": selector}}
    else:
        assert chart == {**want, "podSelector": {"matchLabels": selector}}


# --- rbac.scope: namespace is dist/namespace-install.yaml ---------------------------------------


def test_namespace_scope_renders_only_objects_of_the_release_namespace() -> None:
    docs = render({"rbac": {"scope": "namespace"}}, namespace="team-a")
    assert not {d["kind"] for d in docs} & CLUSTER_SCOPED_KINDS
    assert all(d["metadata"].get("namespace") == "team-a" for d in docs)
    confined = release.namespace_install(base())
    assert kinds_and_names(docs) == kinds_and_names(confined)


def test_namespace_scope_has_the_roles_of_the_namespace_install() -> None:
    docs = render({"rbac": {"scope": "namespace"}}, namespace="team-a")
    confined = release.namespace_install(base())
    for name in ("artpulse-operator", "artpulse-operator-credentials-reader"):
        assert one(docs, "Role", name)["rules"] == one(confined, "Role", name)["rules"], name
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == one(confined, "RoleBinding")["roleRef"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "artpulse-operator", "namespace": "team-a"}
    ]


def test_namespace_scope_has_the_environment_of_the_namespace_install() -> None:
    docs = render({"rbac": {"scope": "namespace"}}, namespace="team-a")
    confined = release.namespace_install(base())
    assert container(docs)["env"] == container(confined)["env"]
    assert env(docs)["ARTPULSE_CLUSTER_SCANNING"] == "false"


def test_namespace_scope_leaves_out_the_roles_for_people_even_when_asked() -> None:
    docs = render({"rbac": {"scope": "namespace", "userRoles": True}})
    assert "ClusterRole" not in {d["kind"] for d in docs}


# --- values ---------------------------------------------------------------------------------


def test_scheduling_and_resources_land_in_the_pod() -> None:
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "system"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"example.com/team": "ml"},
        "podLabels": {"example.com/cost-centre": "42"},
    }
    docs = render(values)
    pod = pod_spec(docs)
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]  # replaces the default anti-affinity
    assert pod["imagePullSecrets"] == values["imagePullSecrets"]
    assert container(docs)["resources"] == values["resources"]
    template = one(docs, "Deployment")["spec"]["template"]["metadata"]
    assert template["annotations"] == values["podAnnotations"]
    assert template["labels"]["example.com/cost-centre"] == "42"
    defaults = pod_spec(render())
    assert "nodeSelector" not in defaults
    assert "tolerations" not in defaults
    assert "imagePullSecrets" not in defaults


def test_the_image_is_set_by_repository_tag_and_pull_policy() -> None:
    docs = render(
        {"image": {"repository": "registry.internal/ap", "tag": "9.9.9", "pullPolicy": "Always"}}
    )
    assert container(docs)["image"] == "registry.internal/ap:9.9.9"
    assert container(docs)["imagePullPolicy"] == "Always"


def test_one_replica_runs_standalone_without_a_disruption_budget() -> None:
    docs = render({"replicas": 1})
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert "ARTPULSE_PEERING_NAME" not in env(docs)  # Kopf standalone
    assert "PodDisruptionBudget" not in {d["kind"] for d in docs}
    assert env(render({"replicas": 1, "peering": {"enabled": True}}))["ARTPULSE_PEERING_NAME"] == (
        "artpulse-operator"
    )


def test_the_peering_name_is_the_one_the_role_allows() -> None:
    docs = render({"peering": {"name": "team-peering"}})
    assert env(docs)["ARTPULSE_PEERING_NAME"] == "team-peering"
    rules = one(docs, "ClusterRole", "artpulse-operator")["rules"]
    named = {tuple(r["resources"]): r["resourceNames"] for r in rules if "resourceNames" in r}
    assert named == {
        ("clusterkopfpeerings",): ["team-peering"],
        ("kopfpeerings",): ["team-peering"],
    }


def test_addresses_secrets_and_extra_environment() -> None:
    docs = render(
        {
            "mlflow": {"trackingUri": "https://mlflow.example.com"},
            "prometheus": {"url": "http://prometheus-operated.monitoring.svc:9090"},
            "credentials": {"existingSecret": "mlflow-creds", "optional": False},
            "mlflowWebhookSecret": {"existingSecret": "mlflow-webhook", "key": "hmac"},
            "extraEnv": [{"name": "ARTPULSE_LOG_LEVEL", "value": "DEBUG"}],
        }
    )
    values = env(docs)
    assert values["ARTPULSE_MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"
    assert values["ARTPULSE_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert values["ARTPULSE_MLFLOW_WEBHOOK_SECRET"] == {
        "secretKeyRef": {"name": "mlflow-webhook", "key": "hmac"}
    }
    assert values["ARTPULSE_LOG_LEVEL"] == "DEBUG"
    assert container(docs)["envFrom"] == [
        {"secretRef": {"name": "mlflow-creds", "optional": False}}
    ]
    assert "ARTPULSE_MLFLOW_WEBHOOK_SECRET" not in env(render())


def test_another_release_name_names_every_object_after_it() -> None:
    docs = render(release_name="team-a")
    names = {name for _kind, name in kinds_and_names(docs)}
    assert names == {
        "team-a-operator",
        "team-a-operator-credentials-reader",
        "team-a-view",
        "team-a-edit",
        "team-a-admin",
    }
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "team-a"
    # What Prometheus, the alerts and the NetworkPolicies know the operator by stays.
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == (
        "artpulse-operator"
    )
    assert env(docs)["ARTPULSE_PEERING_NAME"] == "team-a-operator"
    names_override = {n for _k, n in kinds_and_names(render({"fullnameOverride": "ap"}))}
    assert "ap" in names_override
    assert "ap-view" in names_override


def test_the_network_policy_can_be_left_out_or_extended() -> None:
    assert "NetworkPolicy" not in {d["kind"] for d in render({"networkPolicy": {"enabled": False}})}
    extra = {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"port": 8443, "protocol": "TCP"}],
    }
    policy = one(render({"networkPolicy": {"extraEgress": [extra]}}), "NetworkPolicy")
    assert policy["spec"]["egress"][-1] == extra
    assert policy["spec"]["egress"][:-1] == one(base(), "NetworkPolicy")["spec"]["egress"]


# --- optional parts ---------------------------------------------------------------------------


def _component(name: str) -> list[Doc]:
    path = REPO / "manifests/components/monitoring" / name
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_optional_parts_are_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"PodMonitor", "PrometheusRule", "ConfigMap"}


def test_pod_monitors_are_the_monitoring_component() -> None:
    docs = render({"monitoring": {"podMonitor": {"enabled": True}}})
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    want = {d["metadata"]["name"]: d for d in _component("podmonitor.yaml")}
    assert {m["metadata"]["name"] for m in monitors} == set(want)
    selector = one(docs, "Deployment")["spec"]["selector"]
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        expected = copy.deepcopy(want[name]["spec"])
        if name == "artpulse-operator":
            expected["selector"] = selector  # this release's replicas
        assert monitor["spec"] == expected, name
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "PrometheusRule" not in {d["kind"] for d in docs}


def test_the_prometheus_rule_holds_the_observability_rules() -> None:
    docs = render(
        # Helm merges a map value into the default one: null drops a default key.
        {
            "monitoring": {
                "prometheusRule": {"enabled": True},
                "labels": {"prometheus": "main", "release": None},
            }
        }
    )
    rule = one(docs, "PrometheusRule", "artpulse")
    groups = [
        g
        for path in sorted((REPO / "observability/prometheus/rules").glob("*.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
    ]
    assert sorted(rule["spec"]["groups"], key=lambda g: g["name"]) == sorted(
        groups, key=lambda g: g["name"]
    )
    assert rule["metadata"]["labels"]["prometheus"] == "main"
    assert "release" not in rule["metadata"]["labels"]
    assert "PodMonitor" not in {d["kind"] for d in docs}


def test_the_dashboards_configmap_is_the_observability_one() -> None:
    docs = render({"grafana": {"dashboards": {"enabled": True}}})
    configmap = one(docs, "ConfigMap")
    kustomization = yaml.safe_load((REPO / "observability/Kustomization").read_text())
    (generator,) = [g for g in kustomization["configMapGenerator"] if "grafana" in g["name"]]
    assert configmap["metadata"]["name"] == generator["name"]
    assert configmap["metadata"]["namespace"] == generator["namespace"] == NAMESPACE
    options = generator["options"]
    assert options["labels"].items() <= configmap["metadata"]["labels"].items()
    assert configmap["metadata"]["annotations"] == options["annotations"]
    assert configmap["data"] == {
        Path(f).name: (REPO / "observability" / f).read_text() for f in generator["files"]
    }
    elsewhere = render({"grafana": {"dashboards": {"enabled": True, "namespace": "monitoring"}}})
    assert one(elsewhere, "ConfigMap")["metadata"]["namespace"] == "monitoring"


def test_argocd_scripts_as_a_configmap_of_the_release() -> None:
    configmap = one(render({"argocd": {"enabled": True}}), "ConfigMap")
    assert configmap["metadata"]["name"] == "artpulse-operator-argocd-cm"
    assert configmap["metadata"]["namespace"] == NAMESPACE
    assert configmap["data"] == {k: (CHART / f).read_text() for k, f in ARGOCD_KEYS.items()}
    # The same keys and contents as the argocd-cm patch of manifests/argocd.
    argocd = yaml.safe_load((REPO / "manifests/argocd/kustomization.yaml").read_text())
    (generator,) = argocd["configMapGenerator"]
    keys = dict(entry.split("=", 1) for entry in generator["files"])
    assert configmap["data"] == {
        key: (REPO / "manifests/argocd" / path).read_text() for key, path in keys.items()
    }


def test_argocd_cm_itself_only_when_asked_and_kept_on_uninstall() -> None:
    docs = render(
        {"argocd": {"enabled": True, "manageArgoCDConfigMap": True, "namespace": "gitops"}}
    )
    configmap = one(docs, "ConfigMap")
    assert configmap["metadata"]["name"] == "argocd-cm"
    assert configmap["metadata"]["namespace"] == "gitops"
    assert configmap["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert set(configmap["data"]) == set(ARGOCD_KEYS)
    assert "ConfigMap" not in {
        d["kind"] for d in render({"argocd": {"manageArgoCDConfigMap": True}})
    }


# --- the schema and the documentation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("replicas", "two", "/replicas"),
        ("replicas", "-1", "/replicas"),
        ("rbac.scope", "everywhere", "/rbac/scope"),
        ("image.pullPolicy", "Sometimes", "/image/pullPolicy"),
        ("mlflow.trackingUri", "mlflow:5000", "/mlflow/trackingUri"),
        ("monitoring.podMonitor.interval", "often", "/monitoring/podMonitor/interval"),
        ("replicaz", "3", "replicaz"),
    ],
)
def test_the_schema_refuses_a_bad_value(flag: str, value: str, complaint: str) -> None:
    setter = "--set" if value.lstrip("-").isdigit() else "--set-string"
    for command in (["template", "artpulse"], ["lint", "--strict"]):
        proc = helm(*command, str(CHART), setter, f"{flag}={value}", check=False)
        assert proc.returncode != 0, (command, proc.stdout)
        assert complaint in proc.stdout + proc.stderr, (command, proc.stdout, proc.stderr)


def test_lint_passes_with_the_defaults_and_namespace_scope() -> None:
    for extra in ([], ["--set", "rbac.scope=namespace"]):
        proc = helm("lint", "--strict", str(CHART), *extra, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"resources", "labels", "annotations"}:
            paths += _leaves(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_the_readme_explains_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [path for path in _leaves(values) if f"`{path}`" not in readme]
    assert not missing, f"charts/artpulse/README.md has no row for {missing}"

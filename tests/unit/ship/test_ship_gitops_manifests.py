"""Manifests the test API server cannot check because their CRDs belong to other projects:
the Argo CD Application and the Prometheus-operator PodMonitors. Read as YAML and checked for
what would make them silently useless: a path that is not a kustomization, a selector that does
not match the pods, a job label the alerts do not expect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_application_points_at_a_kustomization_in_this_repository() -> None:
    (app,) = load_all(REPO / "manifests/argocd/application.yaml")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (REPO / source["path"] / "kustomization.yaml").is_file(), source["path"]
    assert app["spec"]["destination"]["namespace"] == "artpulse-system"
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_podmonitors_select_the_pods_the_operator_renders() -> None:
    monitors = {
        m["metadata"]["name"]: m
        for m in load_all(REPO / "manifests/components/monitoring/podmonitor.yaml")
    }
    inference = monitors["artpulse-inference"]["spec"]
    assert inference["selector"]["matchLabels"] == {"app.kubernetes.io/name": "artpulse-inference"}
    assert inference["namespaceSelector"] == {"any": True}
    assert inference["podMetricsEndpoints"][0]["port"] == "http"
    targets = {r["targetLabel"] for r in inference["podMetricsEndpoints"][0]["relabelings"]}
    assert targets == {"artpulse_model", "artpulse_track", "artpulse_model_version"}

    operator = monitors["artpulse-operator"]["spec"]
    # job="artpulse-operator" is what ArtPulseOperatorDown looks for.
    assert operator["jobLabel"] == "app.kubernetes.io/name"
    assert operator["podMetricsEndpoints"][0]["honorLabels"] is True
    deployment = next(
        d for d in load_all(REPO / "manifests/base/operator.yaml") if d["kind"] == "Deployment"
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert operator["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_labels["app.kubernetes.io/name"] == "artpulse-operator"
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert operator["podMetricsEndpoints"][0]["port"] in ports


def test_prometheusrule_is_the_rule_files_verbatim() -> None:
    (rule,) = load_all(REPO / "manifests/components/monitoring/prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    groups = []
    for name in ("artpulse-recording.rules.yml", "artpulse-alerts.rules.yml"):
        groups += yaml.safe_load((REPO / "observability/prometheus/rules" / name).read_text())[
            "groups"
        ]
    assert rule["spec"]["groups"] == groups, "regenerate prometheusrule.yaml from the rule files"

"""The ArtPulseModel CRD on a real API server: defaults, printer columns, refusals, explain.

Cases in tests/data/operator/crd_cases.yaml; every refusal must name the field and say why.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from crd_case_data import CASES, merge_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _resource(case: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseModel",
        "metadata": {
            "name": case.get("metadata_name") or f"m-{uuid.uuid4().hex[:8]}",
            "namespace": namespace,
        },
        "spec": merge_spec(CASES["base"], case["spec"]),
    }


@pytest.fixture(scope="module")
def namespace(control_plane: Any) -> str:
    name = f"crd-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.mark.parametrize("case", CASES["accepted"], ids=lambda c: c["name"])
def test_accepted(control_plane: Any, namespace: str, case: dict[str, Any]) -> None:
    resource = _resource(case, namespace)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource))


@pytest.mark.parametrize("case", CASES["refused"], ids=lambda c: c["name"])
def test_refused_with_the_field_and_why(
    control_plane: Any, namespace: str, case: dict[str, Any]
) -> None:
    resource = _resource(case, namespace)
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource), check=False)
    assert result.returncode != 0, f"accepted: {resource['spec']}"
    for needle in case["refused"]:
        assert needle in result.stderr, f"{needle!r} not in: {result.stderr}"


def test_defaults_are_applied_by_the_api_server(control_plane: Any, namespace: str) -> None:
    resource = _resource({"spec": {}, "metadata_name": "defaults"}, namespace)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource))
    stored = json.loads(
        control_plane.kubectl("get", "apm", "defaults", "-n", namespace, "-o", "json").stdout
    )
    spec = stored["spec"]
    assert spec["model"] == {
        "name": "artpulse-classifier",
        "stableAlias": "champion",
        "candidateAlias": "challenger",
        "pollInterval": "30s",
    }
    assert spec["serving"] == {"image": "artpulse-inference:0.1.0", "replicas": 2, "port": 8000}
    assert spec["strategy"] == {"type": "Canary"}
    assert spec["trafficRouting"] == {"provider": "Replicas"}
    assert spec["analysis"]["gates"] == {"maxErrorRate": 0.01, "minShadowAgreement": 0.9}
    assert spec["analysis"]["interval"] == "30s"
    assert spec["rollback"] == {"automatic": True, "tagFailedVersion": True}
    assert spec["paused"] is False


def test_printer_columns_show_status_values(control_plane: Any, namespace: str) -> None:
    resource = _resource({"spec": {}, "metadata_name": "columns"}, namespace)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource))
    status = {
        "status": {
            "phase": "Progressing",
            "stable": {"version": "3"},
            "candidate": {"version": "4"},
            "canaryWeight": 10,
        }
    }
    control_plane.kubectl(
        "patch",
        "apm",
        "columns",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    out = control_plane.kubectl("get", "apm", "columns", "-n", namespace).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "MODEL",
        "READY",
        "PHASE",
        "STABLE",
        "CANDIDATE",
        "WEIGHT",
        "AGE",
    ]
    # READY is empty without a Ready condition (test_operator_crd_conventions writes one).
    assert out[1].split()[:6] == [
        "columns",
        "artpulse-classifier",
        "Progressing",
        "3",
        "4",
        "10",
    ]
    # The category and the short name reach the same resource.
    assert "columns" in control_plane.kubectl("get", "artpulse", "-n", namespace).stdout


def test_status_is_a_subresource(control_plane: Any, namespace: str) -> None:
    """A spec update cannot write status (only the operator's status writes can)."""
    resource = _resource({"spec": {}, "metadata_name": "subresource"}, namespace)
    resource["status"] = {"phase": "Stable"}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource))
    stored = json.loads(
        control_plane.kubectl("get", "apm", "subresource", "-n", namespace, "-o", "json").stdout
    )
    assert "status" not in stored or stored["status"].get("phase") is None


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("artpulsemodel.spec.analysis.gates", "p95LatencyMs"),
        ("artpulsemodel.spec.analysis.gates.maxP95RatioToStable", "stable track's p95"),
        ("artpulsemodel.spec.strategy.canary.steps", "strictly ascending"),
        ("artpulsemodel.spec.trafficRouting.provider", "HTTPRoute"),
        ("apm.status.conditions", "RegistryReachable"),
        ("apm.spec.model.credentialsSecretRef", "username and password"),
        ("apm.spec.model.trackingUri", "ARTPULSE_MLFLOW_CREDENTIAL_URIS"),
        ("apm.spec.analysis.prometheus.credentialsSecretRef", "tls.crt"),
        ("apm.spec.analysis.prometheus.orgId", "X-Scope-OrgID"),
        ("apm.spec.serving.networkPolicy", "egress only to DNS"),
        ("apm.spec.serving.podSecurityContext", "restricted"),
        ("apm.spec.serving.autoscaling", "HorizontalPodAutoscaler"),
        ("apm.spec.serving.disruptionBudget", "unhealthyPodEvictionPolicy"),
        ("apm.status.conditions", "CredentialsResolved"),
    ],
)
def test_kubectl_explain_teaches(control_plane: Any, path: str, needle: str) -> None:
    out = control_plane.kubectl("explain", path).stdout
    assert needle in out

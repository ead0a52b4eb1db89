"""Table tests of engine.desired: the owned objects for each strategy, provider and weight.

Cases live in tests/data/operator/desired_cases.yaml; the workload contract (security context,
probes, env order, labels, ownerReferences) is checked once in full below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.desired import desired_objects, owner_labels
from artpulse_operator.engine.spec import parse_spec
from artpulse_operator.engine.status import RolloutStatus

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "operator" / "desired_cases.yaml").read_text()
)["cases"]


def _render(spec: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
    return desired_objects(
        "art",
        "ml",
        "uid-1",
        parse_spec(spec),
        RolloutStatus.from_dict(status),
        tracking_uri="http://mlflow:5000",
    )


def _by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_desired_objects(case: dict[str, Any]) -> None:
    objects = _render(case["spec"], case["status"])
    expect = case["expect"]
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in objects] == expect["objects"]
    deployments = _by(objects, "Deployment")
    if "replicas" in expect:
        assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == expect["replicas"]
    for name, version in expect.get("versions", {}).items():
        assert _env(deployments[name])["MODEL_VERSION"] == version
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert labels["artpulse.io/model-version"] == version
    for name, uri in expect.get("shadow_uri", {}).items():
        assert _env(deployments[name]).get("SHADOW_MODEL_URI") == uri
    if "model_selector_track" in expect:
        selector = _by(objects, "Service")["art"]["spec"]["selector"]
        assert selector.get("artpulse.io/track") == expect["model_selector_track"]
    if "route_weights" in expect:
        route = _by(objects, "HTTPRoute")["art"]
        rules = route["spec"]["rules"]
        backends = rules[-1]["backendRefs"]  # the weighted rule comes after any header rule
        assert {b["name"]: b["weight"] for b in backends} == expect["route_weights"]
        header_rules = [r for r in rules if "headers" in r["matches"][0]]
        expected_header = expect.get("header_rule")
        if expected_header is None:
            assert header_rules == []
        else:
            (rule,) = header_rules
            assert rule["matches"][0]["headers"] == [expected_header["header"]]
            assert rule["matches"][0]["path"] == rules[-1]["matches"][0]["path"]
            assert [b["name"] for b in rule["backendRefs"]] == [expected_header["service"]]
        assert route["spec"]["parentRefs"] == [expect["route_parent"]]
        assert route["spec"].get("hostnames") == expect.get("route_hostnames")
    ingresses = _by(objects, "Ingress")
    for name, service in expect.get("ingress_backends", {}).items():
        path = ingresses[name]["spec"]["rules"][0]["http"]["paths"][0]
        assert path["backend"]["service"]["name"] == service
    if "canary_weight" in expect:
        annotations = ingresses["art-canary"]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == expect["canary_weight"]
        by_header = {
            k.removeprefix("nginx.ingress.kubernetes.io/"): v
            for k, v in annotations.items()
            if "canary-by-header" in k
        }
        assert by_header == expect.get("canary_by_header", {})
    if "ingress_tls" in expect:
        assert ingresses["art"]["spec"]["tls"] == expect["ingress_tls"]
        assert ingresses["art-canary"]["spec"]["tls"] == expect["ingress_tls"]


STATUS = {
    "phase": "Progressing",
    "tracks": {
        "stable": {
            "version": {"version": "3", "alias": "champion", "uri": "models:/m/3"},
            "weight": 90,
            "scaled": True,
        },
        "canary": {
            "version": {"version": "4", "alias": "challenger", "uri": "models:/m/4"},
            "weight": 10,
            "scaled": True,
        },
    },
}
SPEC = {
    "model": {"name": "m"},
    "serving": {
        "image": "artpulse-inference:0.1.0",
        "port": 9000,
        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
        "secretRef": {"name": "art-auth"},
        "resources": {"limits": {"cpu": "1"}},
    },
}


def test_every_object_is_owned_and_labelled() -> None:
    for obj in _render(SPEC, STATUS):
        meta = obj["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "artpulse.io/v1alpha1",
                "kind": "ArtPulseModel",
                "name": "art",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert owner_labels("art").items() <= meta["labels"].items()


def test_deployment_follows_the_workload_contract() -> None:
    deployment = _by(_render(SPEC, STATUS), "Deployment")["art-canary"]
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["selector"]["matchLabels"] == {
        **owner_labels("art"),
        "artpulse.io/track": "canary",
    }
    assert template["metadata"]["labels"] == {
        "app.kubernetes.io/name": "artpulse-inference",
        "app.kubernetes.io/instance": "art",
        "app.kubernetes.io/managed-by": "artpulse-operator",
        "artpulse.io/track": "canary",
        "artpulse.io/model-version": "4",
    }
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9000",
        "prometheus.io/path": "/metrics",
    }
    assert container["command"] == ["artpulse-server"]
    assert container["image"] == "artpulse-inference:0.1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # A deleted pod serves on while gateways learn it is gone, then shuts down gracefully.
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] > 5 + 10
    assert container["envFrom"] == [{"secretRef": {"name": "art-auth"}}]
    # The user's limit stays; memory, named by neither requests nor limits, gets the default.
    assert container["resources"] == {"limits": {"cpu": "1"}, "requests": {"memory": "256Mi"}}
    # The contract's variables first, in order, then the user's.
    assert [e["name"] for e in container["env"]] == [
        "MODEL_URI",
        "MODEL_NAME",
        "MODEL_VERSION",
        "MODEL_ALIAS",
        "ARTPULSE_TRACK",
        "MLFLOW_TRACKING_URI",
        "PORT",
        "POD_NAMESPACE",
        "LOG_LEVEL",
    ]
    env = _env(deployment)
    assert env["MODEL_URI"] == "models:/m/4"
    assert env["MODEL_NAME"] == "m"
    assert env["MODEL_ALIAS"] == "challenger"
    assert env["ARTPULSE_TRACK"] == "canary"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["PORT"] == "9000"
    assert env["POD_NAMESPACE"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
    }


def test_spec_tracking_uri_wins_over_the_operator_default() -> None:
    spec = {**SPEC, "model": {"name": "m", "trackingUri": "https://mlflow.example.com"}}
    deployment = _by(_render(spec, STATUS), "Deployment")["art-stable"]
    assert _env(deployment)["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"


def test_model_uri_defaults_from_the_version() -> None:
    status = {"tracks": {"stable": {"version": {"version": "7"}, "weight": 100, "scaled": True}}}
    deployment = _by(_render(SPEC, status), "Deployment")["art-stable"]
    assert _env(deployment)["MODEL_URI"] == "models:/m/7"


def test_rendering_is_deterministic() -> None:
    assert _render(SPEC, STATUS) == _render(SPEC, STATUS)


GATEWAY = {"provider": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


@pytest.mark.parametrize(
    ("routing", "hops"),
    [
        (None, None),  # Replicas: clients reach the pods through the Service, no proxy
        (GATEWAY, "1"),
        ({"provider": "Nginx", "nginx": {"host": "api.example.com"}}, "1"),
    ],
)
def test_behind_a_proxy_the_pods_trust_one_forwarded_hop(
    routing: dict[str, Any] | None, hops: str | None
) -> None:
    spec = {**SPEC, "trafficRouting": routing} if routing else SPEC
    deployment = _by(_render(spec, STATUS), "Deployment")["art-stable"]
    assert _env(deployment).get("TRUSTED_PROXY_HOPS") == hops


@pytest.mark.parametrize("name", ["TRUSTED_PROXY_HOPS", "TRUST_FORWARDED_FOR"])
def test_the_users_forwarded_setting_wins_and_is_not_doubled(name: str) -> None:
    serving = {**SPEC["serving"], "env": [{"name": name, "value": "2"}]}
    spec = {**SPEC, "serving": serving, "trafficRouting": GATEWAY}
    deployment = _by(_render(spec, STATUS), "Deployment")["art-stable"]
    names = [e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.count(name) == 1
    assert _env(deployment)[name] == "2"
    assert name == "TRUSTED_PROXY_HOPS" or "TRUSTED_PROXY_HOPS" not in names

"""engine.network_policy: the NetworkPolicy confining a model's inference pods.

Rendered through ``desired_objects`` as the operator does, so ownership, labels and the
garbage collection by the owner are the same as for every owned object.
"""

from __future__ import annotations

from typing import Any

import pytest
from artpulse_operator.engine.desired import desired_objects, owner_labels
from artpulse_operator.engine.network_policy import (
    DEFAULT_INGRESS_FROM,
    NetworkPolicyDefaults,
    mlflow_egress,
)
from artpulse_operator.engine.spec import parse_spec
from artpulse_operator.engine.status import RolloutStatus

VERSION = {"version": "3", "alias": "champion", "uri": "models:/m/3"}
STATUS = {
    "phase": "Stable",
    "tracks": {"stable": {"version": VERSION, "weight": 100, "scaled": True}},
}
DNS = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def _policy(
    serving: dict[str, Any] | None = None,
    network: NetworkPolicyDefaults | None = None,
    tracking_uri: str | None = "http://mlflow.artpulse-system.svc:5000",
    model: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    spec = parse_spec(
        {"model": {"name": "m", **(model or {})}, "serving": {"image": "x", **(serving or {})}}
    )
    objects = desired_objects(
        "art",
        "ml",
        "uid-1",
        spec,
        RolloutStatus.from_dict(STATUS),
        tracking_uri=tracking_uri,
        network=network,
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert len(policies) <= 1
    return policies[0] if policies else None


def test_default_policy_confines_every_track_to_the_gateway_and_prometheus() -> None:
    policy = _policy(serving={"port": 8080})
    assert policy is not None
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    meta = policy["metadata"]
    assert (meta["name"], meta["namespace"]) == ("art", "ml")
    assert meta["labels"] == owner_labels("art")
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert meta["ownerReferences"][0]["controller"] is True
    spec = policy["spec"]
    # Every track's pods: no track label in the selector.
    assert spec["podSelector"] == {"matchLabels": owner_labels("art")}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "from": [dict(p) for p in DEFAULT_INGRESS_FROM],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]
    assert spec["egress"] == [
        DNS,
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "artpulse-system"}}}],
            "ports": [{"port": 5000, "protocol": "TCP"}],
        },
    ]  # fmt: skip
    gateway = DEFAULT_INGRESS_FROM[0]["namespaceSelector"]["matchLabels"]
    assert gateway == {"kubernetes.io/metadata.name": "gateway"}  # the local overlay's Traefik


def test_switched_off_by_the_operator_or_by_the_resource() -> None:
    assert _policy(network=NetworkPolicyDefaults(enabled=False)) is None
    assert _policy(serving={"networkPolicy": {"enabled": False}}) is None
    # The resource's explicit choice wins over the operator's default both ways.
    assert (
        _policy(serving={"networkPolicy": {"enabled": True}}, network=NetworkPolicyDefaults(enabled=False))
        is not None
    )  # fmt: skip


def test_sources_from_the_operator_settings_or_the_resource() -> None:
    mine = ({"podSelector": {"matchLabels": {"app": "oauth2-proxy"}}},)
    policy = _policy(network=NetworkPolicyDefaults(ingress_from=mine))
    assert policy is not None
    assert policy["spec"]["ingress"][0]["from"] == [dict(mine[0])]
    theirs = [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]
    policy = _policy(serving={"networkPolicy": {"ingressFrom": theirs}})
    assert policy is not None
    assert policy["spec"]["ingress"][0]["from"] == theirs
    # An empty list is "nobody": the Ingress policy type stays, with no rule.
    policy = _policy(serving={"networkPolicy": {"ingressFrom": []}})
    assert policy is not None
    assert policy["spec"]["ingress"] == []


def test_extra_egress_rules_are_appended() -> None:
    rule = {"to": [{"ipBlock": {"cidr": "52.0.0.0/8"}}], "ports": [{"port": 443}]}
    policy = _policy(serving={"networkPolicy": {"egress": [rule]}})
    assert policy is not None
    assert policy["spec"]["egress"][-1] == rule
    assert policy["spec"]["egress"][0] == DNS


def test_the_resources_tracking_uri_wins_over_the_operators() -> None:
    policy = _policy(model={"trackingUri": "https://mlflow.team-a.svc.cluster.local"})
    assert policy is not None
    assert policy["spec"]["egress"][1] == {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


@pytest.mark.parametrize(
    ("uri", "cidrs", "to", "port"),
    [
        ("http://mlflow:5000", (), [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml"}}}], 5000),
        ("http://mlflow.tools.svc", (), [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tools"}}}], 80),
        ("https://10.1.2.3:8443", (), [{"ipBlock": {"cidr": "10.1.2.3/32"}}], 8443),
        ("http://[fd00::5]:5000", (), [{"ipBlock": {"cidr": "fd00::5/128"}}], 5000),
        ("https://mlflow.example.com", ("203.0.113.0/24",), [{"ipBlock": {"cidr": "203.0.113.0/24"}}], 443),
        ("https://mlflow.example.com", (), [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}], 443),
        # "<svc>.<ns>" cannot be told from a public domain: external, the CIDRs apply
        ("http://mlflow.tools:5000", ("10.0.0.0/8",), [{"ipBlock": {"cidr": "10.0.0.0/8"}}], 5000),
    ],
)  # fmt: skip
def test_mlflow_egress(uri: str, cidrs: tuple[str, ...], to: list[Any], port: int) -> None:
    assert mlflow_egress(uri, "ml", cidrs) == [
        {"to": to, "ports": [{"port": port, "protocol": "TCP"}]}
    ]


@pytest.mark.parametrize("uri", [None, "", "http://", "http://mlflow:99999", "mlflow:5000"])
def test_no_mlflow_rule_for_an_unusable_uri(uri: str | None) -> None:
    assert mlflow_egress(uri, "ml", ()) == []


def test_nothing_rendered_before_anything_is_resolved() -> None:
    spec = parse_spec({"model": {"name": "m"}, "serving": {"image": "x"}})
    assert desired_objects("art", "ml", "uid-1", spec, RolloutStatus()) == []

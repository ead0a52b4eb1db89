"""Shaping the inference pods (issue 14, item 4): spec.serving's pod fields, per-track
PodDisruptionBudgets and HorizontalPodAutoscalers, and the rule that no track shrinks while a
candidate holds traffic.

Data: tests/data/operator/pod_template_cases.yaml (refusals), autoscaling_cases.yaml (the HPA
rule over a rollout), crd_cases.yaml (the API server's refusals, held against parse_spec here).
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine import core_types
from artpulse_operator.engine.autoscaling import REPLICAS_HANDOFF_MANAGER
from artpulse_operator.engine.desired import FIELD_MANAGER, OWNED_KINDS, desired_objects
from artpulse_operator.engine.pod_spec import reserved_label
from artpulse_operator.engine.spec import SpecError, parse_spec
from artpulse_operator.engine.status import RolloutStatus, parse_time
from artpulse_operator.handlers.runtime import foreign_change
from artpulse_operator.k8s.apply import (
    ApplyCache,
    hand_replicas_over,
    owns_replicas,
    sync_owned,
)
from artpulse_operator.k8s.client import ApiError, kind_for

REPO = Path(__file__).parents[3]
DATA = REPO / "tests" / "data" / "operator"
CASES = yaml.safe_load((DATA / "pod_template_cases.yaml").read_text())
AUTOSCALING = yaml.safe_load((DATA / "autoscaling_cases.yaml").read_text())["cases"]
CRD_CASES = yaml.safe_load((DATA / "crd_cases.yaml").read_text())
CRD = yaml.safe_load((REPO / "crds" / "artpulsemodel.yaml").read_text())
SERVING_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
    "properties"
]["serving"]

GATEWAY = {"provider": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
V3 = {"version": "3", "alias": "champion"}
V4 = {"version": "4", "alias": "challenger"}
ROLLING = {
    "phase": "Progressing",
    "canaryWeight": 10,
    "tracks": {
        "stable": {"version": V3, "weight": 90, "scaled": True},
        "canary": {"version": V4, "weight": 10, "scaled": True},
    },
}
STABLE_ONLY = {
    "phase": "Stable",
    "tracks": {
        "stable": {"version": V3, "weight": 100, "scaled": True},
        "canary": {"version": V3, "weight": 0, "scaled": False},
    },
}

# Every pod-shaping field at once (a GPU pool behind a private registry).
SHAPED = {
    "image": "registry.example.com/ml/artpulse-inference:0.1.0",
    "replicas": 3,
    "imagePullSecrets": [{"name": "registry-creds"}],
    "serviceAccountName": "artpulse-inference",
    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "art"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "podLabels": {"team": "vision"},
    "podAnnotations": {"example.com/owner": "vision-team"},
    "podSecurityContext": {"runAsUser": 20000, "fsGroup": 30000, "supplementalGroups": [44]},
    "probes": {
        "readiness": {"periodSeconds": 2, "timeoutSeconds": 3},
        "liveness": {"initialDelaySeconds": 90},
    },
    "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}},
}


def _spec(serving: Mapping[str, Any], **rest: Any) -> dict[str, Any]:
    return {"model": {"name": "m"}, "serving": dict(serving), **rest}


def _render(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    observed: Mapping[str, int] | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    return desired_objects(
        "art",
        "ml",
        "uid-1",
        parse_spec(spec),
        RolloutStatus.from_dict(status),
        tracking_uri="http://mlflow:5000",
        observed_replicas=observed,
        now=parse_time(now),
    )


def _by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod(deployment: Mapping[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


# --- every field lands in every track's pod template ---------------------------------------


@pytest.mark.parametrize("track", ["art-stable", "art-canary"])
def test_every_field_lands_in_every_tracks_pod_template(track: str) -> None:
    deployment = _by(_render(_spec(SHAPED), ROLLING), "Deployment")[track]
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert pod["serviceAccountName"] == "artpulse-inference"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["affinity"] == SHAPED["affinity"]
    # No labelSelector given: the constraint spreads this track's own pods.
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert template["metadata"]["labels"]["team"] == "vision"
    assert template["metadata"]["annotations"]["example.com/owner"] == "vision-team"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["securityContext"] == {
        "runAsUser": 20000,
        "runAsGroup": 10001,
        "fsGroup": 30000,
        "supplementalGroups": [44],
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
    }
    assert pod["automountServiceAccountToken"] is False  # a ServiceAccount, not its API token
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "periodSeconds": 2,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 90,
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    # The user's limits stay; cpu, which neither names, gets the default request.
    assert container["resources"] == {
        "limits": {"nvidia.com/gpu": 1, "memory": "8Gi"},
        "requests": {"cpu": "100m"},
    }
    assert container["image"] == SHAPED["image"]


def test_defaults_when_nothing_is_shaped() -> None:
    deployment = _by(_render(_spec({"image": "x"}), ROLLING), "Deployment")["art-stable"]
    pod = _pod(deployment)
    (container,) = pod["containers"]
    # Always written: dropping the field would let the API server's deprecated alias
    # (serviceAccount) keep an earlier name.
    assert pod["serviceAccountName"] == "default"
    for key in (
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
    ):
        assert key not in pod
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}}
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/ready", "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    assert pod["securityContext"] == {
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
    }
    assert set(deployment["spec"]["template"]["metadata"]["labels"]) == {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "artpulse.io/track",
        "artpulse.io/model-version",
    }


def test_the_container_hardening_is_not_the_users_to_change() -> None:
    """Whatever is shaped, the container stays restricted (nothing in the spec reaches it)."""
    for serving in (SHAPED, {"image": "x"}):
        for deployment in _by(_render(_spec(serving), ROLLING), "Deployment").values():
            (container,) = _pod(deployment)["containers"]
            assert container["securityContext"] == {
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            assert _pod(deployment)["securityContext"]["runAsNonRoot"] is True


def test_a_given_spread_selector_is_kept() -> None:
    selector = {"matchLabels": {"app.kubernetes.io/instance": "art"}}
    constraint = {
        "maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "minDomains": 2,
        "labelSelector": selector,
        "matchLabelKeys": ["pod-template-hash"],
    }
    serving = {"image": "x", "topologySpreadConstraints": [constraint]}
    pod = _pod(_by(_render(_spec(serving), ROLLING), "Deployment")["art-canary"])
    assert pod["topologySpreadConstraints"] == [constraint]


def test_changing_a_pod_field_changes_only_the_template() -> None:
    """Like a new image: the Deployment's template changes (a rolling update), nothing else."""
    before = _by(_render(_spec({"image": "x"}), STABLE_ONLY), "Deployment")["art-stable"]
    serving = {"image": "x", "nodeSelector": {"pool": "gpu"}}
    after = _by(_render(_spec(serving), STABLE_ONLY), "Deployment")["art-stable"]
    assert after["metadata"] == before["metadata"]
    assert {k: v for k, v in after["spec"].items() if k != "template"} == {
        k: v for k, v in before["spec"].items() if k != "template"
    }
    assert _pod(after)["nodeSelector"] == {"pool": "gpu"}


# --- pod labels cannot clobber the selector ------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "artpulse.io/track",
        "artpulse.io/model-version",
        "artpulse.io/anything",
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "pod-template-hash",
    ],
)
def test_pod_labels_may_not_set_the_operators_labels(key: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec({"image": "x", "podLabels": {key: "canary"}}))
    assert info.value.field == "spec.serving.podLabels"
    assert key in info.value.reason


def test_every_label_the_operator_selects_by_is_reserved() -> None:
    """The reserved set covers every label of every selector the operator renders."""
    objects = _render(_spec({"image": "x"}, trafficRouting=GATEWAY), ROLLING)
    selected: set[str] = set()
    for obj in objects:
        spec = obj["spec"]
        for selector in (
            (spec.get("selector") or {}).get("matchLabels")
            if obj["kind"] in ("Deployment", "PodDisruptionBudget")
            else spec.get("selector"),
            (spec.get("podSelector") or {}).get("matchLabels"),
        ):
            selected |= set(selector or {})
    selected |= set(objects[0]["spec"]["template"]["metadata"]["labels"])
    assert selected
    assert all(reserved_label(k) for k in selected), selected


def test_other_app_kubernetes_io_labels_are_the_users() -> None:
    spec = parse_spec(_spec({"image": "x", "podLabels": {"app.kubernetes.io/version": "1.2"}}))
    assert spec.serving.pod_labels == {"app.kubernetes.io/version": "1.2"}


# --- refusals, named ----------------------------------------------------------------------


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["name"])
def test_refused_naming_the_field(case: dict[str, Any]) -> None:
    spec = _merge(CASES["base"], {"serving": case["serving"], **case.get("spec", {})})
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert info.value.field == case["field"]
    assert case["reason"] in info.value.reason


POD_FIELDS = {
    "imagePullSecrets",
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "podLabels",
    "podAnnotations",
    "podSecurityContext",
    "probes",
    "disruptionBudget",
    "autoscaling",
    "resources",
}


def _crd_pod_cases(section: str) -> list[dict[str, Any]]:
    return [c for c in CRD_CASES[section] if POD_FIELDS & set(c["spec"].get("serving") or {})]


@pytest.mark.parametrize("case", _crd_pod_cases("accepted"), ids=lambda c: c["name"])
def test_what_the_crd_accepts_the_engine_acts_on(case: dict[str, Any]) -> None:
    parse_spec(_merge(CRD_CASES["base"], case["spec"]))


@pytest.mark.parametrize("case", _crd_pod_cases("refused"), ids=lambda c: c["name"])
def test_what_the_crd_refuses_the_engine_refuses_at_the_same_field(case: dict[str, Any]) -> None:
    """A resource stored under an older CRD is refused by the engine, at the same field."""
    with pytest.raises(SpecError) as info:
        parse_spec(_merge(CRD_CASES["base"], case["spec"]))
    assert case["refused"][0] in info.value.field


# --- the CRD's patterns say what core_types says -------------------------------------------


def _undescribed(node: Mapping[str, Any], path: str) -> list[str]:
    missing = []
    for key, child in (node.get("properties") or {}).items():
        if "description" not in child:
            missing.append(f"{path}.{key}")
        missing += _undescribed(child, f"{path}.{key}")
    if isinstance(node.get("items"), Mapping):
        missing += _undescribed(node["items"], f"{path}[]")
    return missing


def test_every_serving_field_teaches_kubectl_explain() -> None:
    assert _undescribed(SERVING_SCHEMA, "spec.serving") == []


LABEL_KEYS = [
    ("team", True),
    ("example.com/team", True),
    ("a.b-c.d/x_y.z-1", True),
    ("nvidia.com/gpu", True),
    ("x" * 63, True),
    ("x" * 64, False),
    ("example.com/" + "x" * 63, True),
    ("has space", False),
    ("-team", False),
    ("team-", False),
    ("Example.com/team", False),
    ("example.com/", False),
    ("/team", False),
    ("a/b/c", False),
    ("", False),
]


def _accepts(check: Any, value: str) -> bool:
    try:
        check(value, "p")
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(("key", "valid"), LABEL_KEYS)
def test_label_key_pattern_of_the_crd_and_the_engine_agree(key: str, valid: bool) -> None:
    pattern = SERVING_SCHEMA["properties"]["tolerations"]["items"]["properties"]["key"]["pattern"]
    rule = SERVING_SCHEMA["properties"]["podLabels"]["x-kubernetes-validations"][0]["rule"]
    cel_regex = re.search(r"k\.matches\('([^']+)'\)", rule)
    assert cel_regex is not None
    assert bool(re.match(pattern, key)) is valid
    assert bool(len(key) <= 317 and re.match(cel_regex.group(1), key)) is valid
    assert _accepts(core_types.check_label_key, key) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("", True),
        ("gpu", True),
        ("a.b_c-d", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("a b", False),
        ("-a", False),
    ],
)
def test_label_value_pattern_of_the_crd_and_the_engine_agree(value: str, valid: bool) -> None:
    schema = SERVING_SCHEMA["properties"]["podLabels"]["additionalProperties"]
    crd_ok = len(value) <= schema["maxLength"] and bool(re.match(schema["pattern"], value))
    assert crd_ok is valid
    assert _accepts(core_types.check_label_value, value) is valid


@pytest.mark.parametrize(
    ("quantity", "valid"),
    [
        ("100m", True),
        ("1", True),
        ("1.5", True),
        ("256Mi", True),
        ("1e3", True),
        ("lots", False),
        ("-1", False),
        ("1 Gi", False),
    ],
)
def test_quantity_pattern_of_the_crd_and_the_engine_agree(quantity: str, valid: bool) -> None:
    pattern = SERVING_SCHEMA["properties"]["resources"]["properties"]["limits"][
        "additionalProperties"
    ]["pattern"]
    assert bool(re.match(pattern, quantity)) is valid
    assert (
        _accepts(lambda v, p: core_types.check_resources({"limits": {"cpu": v}}, p), quantity)
        is valid
    )


# --- PodDisruptionBudgets ------------------------------------------------------------------


def test_a_budget_per_running_track_selects_that_tracks_pods() -> None:
    objects = _render(_spec({"image": "x"}, trafficRouting=GATEWAY), ROLLING)
    budgets = _by(objects, "PodDisruptionBudget")
    deployments = _by(objects, "Deployment")
    assert set(budgets) == {"art-stable", "art-canary"}
    for name, budget in budgets.items():
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": deployments[name]["spec"]["selector"],
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
        meta = budget["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == deployments[name]["metadata"]["ownerReferences"]
        assert meta["labels"] == deployments[name]["spec"]["selector"]["matchLabels"]


def test_no_budget_for_a_track_scaled_to_zero_or_a_single_pod() -> None:
    assert set(_by(_render(_spec({"image": "x"}), STABLE_ONLY), "PodDisruptionBudget")) == {
        "art-stable"
    }
    one = _render(_spec({"image": "x", "replicas": 1}), STABLE_ONLY)
    assert _by(one, "PodDisruptionBudget") == {}
    # Asked for explicitly, a maxUnavailable budget is rendered even for one pod (harmless).
    explicit = _render(
        _spec({"image": "x", "replicas": 1, "disruptionBudget": {"maxUnavailable": "50%"}}),
        STABLE_ONLY,
    )
    assert _by(explicit, "PodDisruptionBudget")["art-stable"]["spec"]["maxUnavailable"] == "50%"


@pytest.mark.parametrize(
    ("budget", "replicas", "expected"),
    [
        ({"minAvailable": 2}, 4, {"minAvailable": 2}),
        ({"minAvailable": 5}, 3, {"minAvailable": 2}),  # capped: a drain can always go on
        ({"minAvailable": 1}, 1, None),  # one pod: minAvailable would block every drain
        ({"minAvailable": "50%"}, 4, {"minAvailable": "50%"}),
        ({"maxUnavailable": 2}, 4, {"maxUnavailable": 2}),
        ({"enabled": False}, 4, None),
    ],
)
def test_budget_bounds(
    budget: dict[str, Any], replicas: int, expected: dict[str, Any] | None
) -> None:
    serving = {"image": "x", "replicas": replicas, "disruptionBudget": budget}
    budgets = _by(
        _render(_spec(serving, trafficRouting=GATEWAY), STABLE_ONLY), "PodDisruptionBudget"
    )
    if expected is None:
        assert budgets == {}
    else:
        spec = budgets["art-stable"]["spec"]
        assert {
            k: v for k, v in spec.items() if k in ("minAvailable", "maxUnavailable")
        } == expected


def test_replicas_split_tracks_get_budgets_by_their_own_pod_count() -> None:
    """The Replicas provider splits 4 pods 3/1 at 25%: the one-pod canary has no budget."""
    status = copy.deepcopy(ROLLING)
    status["tracks"]["stable"]["weight"] = 75
    status["tracks"]["canary"]["weight"] = 25
    objects = _render(_spec({"image": "x", "replicas": 4}), status)
    assert {n: d["spec"]["replicas"] for n, d in _by(objects, "Deployment").items()} == {
        "art-stable": 3,
        "art-canary": 1,
    }
    assert set(_by(objects, "PodDisruptionBudget")) == {"art-stable"}


# --- HorizontalPodAutoscalers --------------------------------------------------------------


@pytest.mark.parametrize("case", AUTOSCALING, ids=lambda c: c["name"])
def test_autoscaling_over_a_rollout(case: dict[str, Any]) -> None:
    objects = _render(case["spec"], case["status"], case["observed"], case.get("now"))
    expect = case["expect"]
    deployments = _by(objects, "Deployment")
    assert {n: d["spec"].get("replicas") for n, d in deployments.items()} == expect["replicas"]
    for name, replicas in expect["replicas"].items():
        assert ("replicas" in deployments[name]["spec"]) is (replicas is not None)
    autoscalers = _by(objects, "HorizontalPodAutoscaler")
    assert {n: h["spec"]["minReplicas"] for n, h in autoscalers.items()} == expect["hpa_min"]
    assert sorted(_by(objects, "PodDisruptionBudget")) == sorted(expect["pdbs"])


def test_the_hpa_targets_its_tracks_deployment() -> None:
    serving = {"image": "x", "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}
    objects = _render(_spec(serving, trafficRouting=GATEWAY), ROLLING, {"stable": 4, "canary": 2})
    deployments = _by(objects, "Deployment")
    for name, hpa in _by(objects, "HorizontalPodAutoscaler").items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["maxReplicas"] == 6
        assert hpa["spec"]["metrics"] == [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]
        assert (
            hpa["metadata"]["ownerReferences"] == deployments[name]["metadata"]["ownerReferences"]
        )
        assert hpa["metadata"]["labels"] == deployments[name]["spec"]["selector"]["matchLabels"]
        # The HPA divides by the cpu request: there always is one.
        (container,) = _pod(deployments[name])["containers"]
        assert container["resources"]["requests"]["cpu"] == "100m"


def test_hpa_metrics_follow_the_cpu_target() -> None:
    pods_metric = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "inflight"},
            "target": {"type": "AverageValue", "averageValue": "8"},
        },
    }
    serving = {
        "image": "x",
        "autoscaling": {
            "maxReplicas": 6,
            "targetCPUUtilizationPercentage": 60,
            "metrics": [pods_metric],
        },
    }
    hpa = _by(
        _render(_spec(serving, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 2}),
        "HorizontalPodAutoscaler",
    )
    metrics = hpa["art-stable"]["spec"]["metrics"]
    assert metrics[0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    assert metrics[1] == pods_metric
    # Only other metrics: no implicit CPU target.
    serving["autoscaling"] = {"maxReplicas": 6, "metrics": [pods_metric]}
    hpa = _by(
        _render(_spec(serving, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 2}),
        "HorizontalPodAutoscaler",
    )
    assert hpa["art-stable"]["spec"]["metrics"] == [pods_metric]


def test_removing_autoscaling_gives_the_replicas_back_to_the_operator() -> None:
    with_hpa = {"image": "x", "replicas": 3, "autoscaling": {"maxReplicas": 6}}
    objects = _render(_spec(with_hpa, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 5})
    assert "replicas" not in _by(objects, "Deployment")["art-stable"]["spec"]
    objects = _render(
        _spec({"image": "x", "replicas": 3}, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 5}
    )
    assert _by(objects, "Deployment")["art-stable"]["spec"]["replicas"] == 3
    assert _by(objects, "HorizontalPodAutoscaler") == {}


# --- ownership, pruning, RBAC and the watches cover the new kinds --------------------------


def test_the_new_kinds_are_owned_kinds_the_client_knows() -> None:
    kinds = set(OWNED_KINDS)
    assert {
        ("policy/v1", "PodDisruptionBudget"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
    } <= kinds
    for api_version, kind in OWNED_KINDS:
        kind_for(api_version, kind)  # raises for a kind the client cannot address


def test_rbac_and_watches_cover_every_owned_kind() -> None:
    rules = next(
        d
        for d in yaml.safe_load_all((REPO / "manifests" / "base" / "rbac.yaml").read_text())
        if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "artpulse-operator"
    )["rules"]
    handlers = (REPO / "operator" / "artpulse_operator" / "handlers" / "__init__.py").read_text()
    for api_version, kind in OWNED_KINDS:
        group, _, version = api_version.rpartition("/")
        plural = kind_for(api_version, kind).plural
        verbs = set()
        for rule in rules:
            if (
                group in rule["apiGroups"]
                and plural in rule["resources"]
                and "resourceNames" not in rule
            ):
                verbs |= set(rule["verbs"])
        assert {"get", "list", "watch", "create", "patch", "delete"} <= verbs, kind
        assert f'@kopf.on.event("{group}", "{version}", "{plural}", labels=OWNED)' in handlers, kind


# --- handing spec.replicas over to the HPA (k8s.apply) -------------------------------------


class FakeKube:
    """In-memory API server for sync_owned: records applies by field manager."""

    def __init__(self, live: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.live = live or {}
        self.applies: list[tuple[str, str, dict[str, Any]]] = []
        self.conflict_for: set[str] = set()

    async def get(self, kind: Any, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            return self.live[(kind.kind, name)]
        except KeyError:
            raise ApiError(404, "NotFound", f"{name} not found", {"name": name}) from None

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        if field_manager in self.conflict_for:
            raise ApiError(409, "Conflict", "conflict with kube-controller-manager")
        self.applies.append((field_manager, obj["metadata"]["name"], dict(obj)))
        return dict(obj)

    async def list(
        self, kind: Any, namespace: str | None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    async def delete(
        self, kind: Any, namespace: str | None, name: str, *, uid: str | None = None
    ) -> None:
        return None


def _live_deployment(owner: str | None, replicas: int = 4) -> dict[str, Any]:
    managed: list[dict[str, Any]] = [
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}
    ]
    if owner:
        managed.append(
            {
                "manager": owner,
                "operation": "Apply",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
            }
        )
    return {
        "metadata": {"name": "art-stable", "managedFields": managed},
        "spec": {"replicas": replicas},
    }


def _hpa_deployment() -> dict[str, Any]:
    serving = {"image": "x", "autoscaling": {"maxReplicas": 6}}
    objects = _render(_spec(serving, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 4})
    deployment = _by(objects, "Deployment")["art-stable"]
    assert "replicas" not in deployment["spec"]
    return deployment


def test_owns_replicas_reads_the_managed_fields() -> None:
    assert owns_replicas(_live_deployment(FIELD_MANAGER))
    assert not owns_replicas(_live_deployment(None))
    assert not owns_replicas(_live_deployment(REPLICAS_HANDOFF_MANAGER))


def test_replicas_still_ours_are_handed_over_at_their_live_value() -> None:
    kube = FakeKube({("Deployment", "art-stable"): _live_deployment(FIELD_MANAGER, replicas=4)})
    assert asyncio.run(hand_replicas_over(kube, _hpa_deployment())) is True  # type: ignore[arg-type]
    ((manager, name, obj),) = kube.applies
    assert (manager, name) == (REPLICAS_HANDOFF_MANAGER, "art-stable")
    assert obj["spec"] == {"replicas": 4}
    assert obj["metadata"] == {"name": "art-stable", "namespace": "ml"}


@pytest.mark.parametrize(
    "live",
    [
        {},  # no Deployment yet
        {("Deployment", "art-stable"): _live_deployment(None)},  # the HPA already owns them
        {("Deployment", "art-stable"): _live_deployment(REPLICAS_HANDOFF_MANAGER)},
    ],
)
def test_nothing_to_hand_over(live: dict[tuple[str, str], dict[str, Any]]) -> None:
    kube = FakeKube(live)
    assert asyncio.run(hand_replicas_over(kube, _hpa_deployment())) is False  # type: ignore[arg-type]
    assert kube.applies == []


def test_a_conflict_means_the_hpa_took_the_field_first() -> None:
    kube = FakeKube({("Deployment", "art-stable"): _live_deployment(FIELD_MANAGER)})
    kube.conflict_for.add(REPLICAS_HANDOFF_MANAGER)
    assert asyncio.run(hand_replicas_over(kube, _hpa_deployment())) is False  # type: ignore[arg-type]


def test_sync_hands_over_before_applying_a_deployment_without_replicas() -> None:
    kube = FakeKube({("Deployment", "art-stable"): _live_deployment(FIELD_MANAGER, replicas=5)})
    serving = {"image": "x", "autoscaling": {"maxReplicas": 6}}
    desired = _render(
        _spec(serving, trafficRouting=GATEWAY), STABLE_ONLY, {"stable": 5, "canary": 0}
    )
    asyncio.run(sync_owned(kube, "ml", "art", "uid-1", desired, ApplyCache()))  # type: ignore[arg-type]
    order = [(m, n, o["kind"]) for m, n, o in kube.applies]
    handoff = order.index((REPLICAS_HANDOFF_MANAGER, "art-stable", "Deployment"))
    assert order[handoff + 1] == (FIELD_MANAGER, "art-stable", "Deployment")
    # The canary at 0 keeps replicas in the operator's apply: no handoff for it.
    assert (REPLICAS_HANDOFF_MANAGER, "art-canary", "Deployment") not in order
    assert sum(1 for m, _, _ in order if m == REPLICAS_HANDOFF_MANAGER) == 1


def test_the_handoff_and_the_hpas_scaling_are_not_hand_edits() -> None:
    for manager in (REPLICAS_HANDOFF_MANAGER, "kube-controller-manager"):
        body = {
            "metadata": {"managedFields": [{"manager": manager, "time": "2026-01-01T00:00:01Z"}]}
        }
        assert foreign_change(body) is False
    body = {"metadata": {"managedFields": [{"manager": "kubectl", "time": "2026-01-01T00:00:01Z"}]}}
    assert foreign_change(body) is True


# --- the example --------------------------------------------------------------------------


def test_the_gpu_pool_example_renders_its_pod_shape() -> None:
    doc = yaml.safe_load((REPO / "manifests" / "examples" / "canary-gpu-pool.yaml").read_text())
    objects = _render(doc["spec"], ROLLING, {"stable": 3, "canary": 1})
    deployment = _by(objects, "Deployment")["art-stable"]
    pod = _pod(deployment)
    assert pod["imagePullSecrets"]
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert set(_by(objects, "PodDisruptionBudget")) == {"art-stable", "art-canary"}
    assert set(_by(objects, "HorizontalPodAutoscaler")) == {"art-stable", "art-canary"}
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1

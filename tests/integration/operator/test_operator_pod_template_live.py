"""Shaping the inference pods on a real API server (issue 14, item 4).

One operator process for the module (``python -m artpulse_operator`` under the shipped RBAC),
one namespace per test, as in test_operator_reconcile.py. Shows: the pod fields of
``spec.serving`` in every track's Deployment, a PodDisruptionBudget and a
HorizontalPodAutoscaler per running track owned by the model, ``spec.replicas`` handed over to
the HPA by server-side apply without a dip (the API server would reset a dropped field to 1),
and everything gone again when the fields are removed from the spec.

API-only: no kubelet runs the pods here, so a rollout's canary waits for its workload with both
tracks scaled, which is what the per-track objects need.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from artpulse_operator.engine.autoscaling import REPLICAS_HANDOFF_MANAGER
from artpulse_operator.k8s.apply import owns_replicas
from operator_process import (
    Kube,
    OperatorProcess,
    model_resource,
    register_model,
    running_operator,
    wait_for,
)

pytestmark = pytest.mark.integration


def with_managed_fields(kube: Kube, name: str) -> dict[str, Any]:
    """The Deployment with its managedFields (``kubectl get`` leaves them out by default)."""
    out = kube.run("get", "deployment", name, "-o", "json", "--show-managed-fields")
    return dict(json.loads(out))


NS_PREFIX = "oppod-"
OWNED = "app.kubernetes.io/managed-by=artpulse-operator"
SELECTOR = f"app.kubernetes.io/instance=art,{OWNED}"
GATEWAY = {"provider": "GatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
SHAPED: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry-creds"}],
    "serviceAccountName": "artpulse-inference",
    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["gpu"]}]}
                ]
            }
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
    "podSecurityContext": {"runAsUser": 20000, "fsGroup": 30000},
    "probes": {"readiness": {"periodSeconds": 2}, "liveness": {"initialDelaySeconds": 90}},
    "resources": {"limits": {"memory": "1Gi"}},
    "autoscaling": {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70},
}


@pytest.fixture(scope="module")
def operator(
    control_plane: Any, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(control_plane, mlflow_server.tracking_uri, log, f"{NS_PREFIX}*") as proc:
        yield proc


@pytest.fixture
def kube(control_plane: Any, operator: OperatorProcess) -> Kube:
    namespace = f"{NS_PREFIX}{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    return Kube(control_plane, namespace)


def _phase(kube: Kube, name: str) -> str | None:
    body = kube.get("apm", name) or {}
    return (body.get("status") or {}).get("phase")


def _rolling(kube: Kube, mlflow_server: Any, serving: dict[str, Any]) -> dict[str, Any]:
    """A model whose candidate is rolling out (both tracks scaled); its body."""
    model = register_model(mlflow_server.tracking_uri, 2, {"champion": "1", "challenger": "2"})
    resource = model_resource("art", model, trafficRouting=GATEWAY)
    resource["spec"]["serving"].update(serving)
    kube.apply(resource)
    wait_for(lambda: _phase(kube, "art") == "Progressing", "a rollout in progress", timeout=30)
    body = kube.get("apm", "art")
    assert body is not None
    return body


def _pod(kube: Kube, name: str) -> dict[str, Any]:
    dep = kube.get("deployment", name)
    assert dep is not None
    pod: dict[str, Any] = dep["spec"]["template"]["spec"]
    return pod


def test_every_track_gets_the_pod_shape_a_budget_and_an_autoscaler(
    kube: Kube, mlflow_server: Any
) -> None:
    body = _rolling(kube, mlflow_server, SHAPED)
    uid = body["metadata"]["uid"]
    wait_for(
        lambda: kube.names("deployments", SELECTOR) == {"art-stable", "art-canary"},
        "both Deployments",
    )
    for name in ("art-stable", "art-canary"):
        dep = kube.get("deployment", name)
        assert dep is not None
        template = dep["spec"]["template"]
        pod = template["spec"]
        (container,) = pod["containers"]
        assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
        assert pod["serviceAccountName"] == "artpulse-inference"
        assert pod["nodeSelector"] == SHAPED["nodeSelector"]
        assert pod["tolerations"] == SHAPED["tolerations"]
        assert pod["affinity"] == SHAPED["affinity"]
        (spread,) = pod["topologySpreadConstraints"]
        assert spread["labelSelector"] == {"matchLabels": dep["spec"]["selector"]["matchLabels"]}
        assert template["metadata"]["labels"]["team"] == "vision"
        assert template["metadata"]["annotations"]["example.com/owner"] == "vision-team"
        assert pod["securityContext"]["runAsUser"] == 20000
        assert pod["securityContext"]["fsGroup"] == 30000
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["readinessProbe"]["periodSeconds"] == 2
        assert container["livenessProbe"]["initialDelaySeconds"] == 90
        assert container["resources"] == {
            "limits": {"memory": "1Gi"},
            "requests": {"cpu": "100m"},
        }

    budgets = wait_for(
        lambda: (
            (n := kube.names("poddisruptionbudgets", SELECTOR)) == {"art-stable", "art-canary"}
            and n
        ),
        "a PodDisruptionBudget per track",
    )
    autoscalers = wait_for(
        lambda: (
            (n := kube.names("horizontalpodautoscalers", SELECTOR)) == {"art-stable", "art-canary"}
            and n
        ),
        "a HorizontalPodAutoscaler per track",
    )
    for name in budgets:
        pdb = kube.get("poddisruptionbudget", name)
        assert pdb is not None
        track = name.removeprefix("art-")
        assert pdb["spec"]["selector"]["matchLabels"]["artpulse.io/track"] == track
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        (ref,) = pdb["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("ArtPulseModel", uid, True)
    for name in autoscalers:
        hpa = kube.get("horizontalpodautoscaler", name)
        assert hpa is not None
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] >= 2
        assert hpa["spec"]["maxReplicas"] == 4
        (ref,) = hpa["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"]) == ("ArtPulseModel", uid)

    def handed_over(name: str) -> bool:
        dep = with_managed_fields(kube, name)
        assert dep is not None
        managers = {e.get("manager") for e in dep["metadata"].get("managedFields") or ()}
        # The operator no longer owns the count, and it did not fall back to 1 on the way.
        return bool(
            not owns_replicas(dep)
            and dep["spec"]["replicas"] == 2
            and REPLICAS_HANDOFF_MANAGER in managers
        )

    for name in ("art-stable", "art-canary"):
        wait_for(lambda n=name: handed_over(n), f"{name}'s replicas handed to its HPA")


def test_removing_the_fields_removes_them_from_the_cluster(kube: Kube, mlflow_server: Any) -> None:
    _rolling(kube, mlflow_server, SHAPED)
    wait_for(
        lambda: kube.names("horizontalpodautoscalers", SELECTOR) == {"art-stable", "art-canary"},
        "the HPAs",
    )
    removed = {key: None for key in SHAPED}
    kube.merge(
        "apm",
        "art",
        {"spec": {"serving": {**removed, "disruptionBudget": {"enabled": False}}}},
    )
    wait_for(lambda: not kube.names("horizontalpodautoscalers", SELECTOR), "the HPAs deleted")
    wait_for(lambda: not kube.names("poddisruptionbudgets", SELECTOR), "the PDBs deleted")

    def plain(name: str) -> bool:
        dep = with_managed_fields(kube, name)
        assert dep is not None
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        return bool(
            dep["spec"]["replicas"] == 2  # serving.replicas again, the operator's to set
            and owns_replicas(dep)
            and not {
                "imagePullSecrets",
                "nodeSelector",
                "tolerations",
                "affinity",
                "topologySpreadConstraints",
            }
            & set(pod)
            and pod["serviceAccountName"] == "default"
            and pod.get("serviceAccount") in (None, "default")  # the deprecated alias too
            and "team" not in labels
            and pod["securityContext"]["runAsUser"] == 10001
        )

    for name in ("art-stable", "art-canary"):
        wait_for(lambda n=name: plain(n), f"{name} back to the operator's template")


def test_default_budget_and_no_autoscaler(kube: Kube, mlflow_server: Any) -> None:
    """Without any pod field: a budget for the running stable track only, no HPA, the
    operator's default requests."""
    model = register_model(mlflow_server.tracking_uri, 1, {"champion": "1"})
    kube.apply(model_resource("art", model))
    wait_for(lambda: _phase(kube, "art") == "Stable", "Stable", timeout=30)
    wait_for(
        lambda: kube.names("poddisruptionbudgets", SELECTOR) == {"art-stable"},
        "a PodDisruptionBudget for the stable track only",
    )
    assert not kube.names("horizontalpodautoscalers", SELECTOR)
    dep = kube.get("deployment", "art-stable")
    assert dep is not None
    assert dep["spec"]["replicas"] == 2
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}


def test_log_has_no_tracebacks(operator: OperatorProcess) -> None:
    """Runs last in the module: every situation above was handled without a crash."""
    assert "Traceback" not in Path(operator.log_path).read_text()

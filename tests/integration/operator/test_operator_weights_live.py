"""Weights follow a rollout for every provider, with the tracks' pods really running.

The operator gives the canary weight only once its workload is ready, so this runs on the
real node: the tracks are real pods of the test workload image (images/testhost), whose
readiness comes from the kubelet's probes. One operator process under the shipped RBAC.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from artpulse_dev.cluster import Cluster
from artpulse_dev.controlplane import ControlPlane
from mlflow.tracking import MlflowClient
from operator_process import (
    TESTHOST_IMAGE,
    Kube,
    OperatorProcess,
    env_of,
    fresh_namespace,
    model_resource,
    register_model,
    running_operator,
    wait_for,
)

pytestmark = pytest.mark.integration

NS_PREFIX = "opweights-"


@pytest.fixture(scope="module")
def control_plane(cluster: Cluster) -> ControlPlane:
    return cluster.control_plane


@pytest.fixture(scope="module")
def operator(
    control_plane: Any, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with running_operator(control_plane, mlflow_server.tracking_uri, log, f"{NS_PREFIX}*") as proc:
        yield proc


@pytest.fixture
def kube(control_plane: ControlPlane, operator: OperatorProcess) -> Iterator[Kube]:
    with fresh_namespace(control_plane, NS_PREFIX) as kube:
        yield kube


def test_weights_follow_the_rollout_for_every_provider(kube: Kube, mlflow_server: Any) -> None:
    """A candidate at the first step (10%): replica split, HTTPRoute weights, canary Ingress."""
    model = register_model(mlflow_server.tracking_uri, 1, {"champion": "1"})
    kube.apply(
        model_resource(
            "art",
            model,
            image=TESTHOST_IMAGE,
            strategy={
                "type": "Canary",
                "canary": {
                    "steps": [
                        {"weight": 10, "promotion": "Manual"},
                        {"weight": 50, "promotion": "Manual"},
                        {"weight": 100},
                    ]
                },
            },
            serving={"image": TESTHOST_IMAGE, "replicas": 4},
            analysis={"interval": "1h"},  # no gate check during the test: only the weights move
        )
    )
    wait_for(lambda: (kube.get("apm", "art") or {}).get("status", {}).get("phase") == "Stable",
             "art Stable", timeout=120)  # fmt: skip
    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    run = client.create_run(client.create_experiment(f"exp2-{model}"))
    client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(model, "challenger", "2")

    def status() -> dict[str, Any]:
        return dict((kube.get("apm", "art") or {}).get("status") or {})

    wait_for(
        lambda: status().get("phase") == "Progressing" and status().get("canaryWeight") == 10,
        "weight 10",
        timeout=30,
    )

    def replicas() -> tuple[int, int]:
        stable, canary = kube.get("deployment", "art-stable"), kube.get("deployment", "art-canary")
        assert stable is not None
        assert canary is not None
        return stable["spec"]["replicas"], canary["spec"]["replicas"]

    wait_for(lambda: replicas() == (3, 1), "replica split 3/1 for 10% of 4")
    canary = kube.get("deployment", "art-canary")
    assert canary is not None
    assert env_of(canary)["MODEL_VERSION"] == "2"
    service = kube.get("service", "art")
    assert service is not None
    assert "artpulse.io/track" not in service["spec"]["selector"]

    kube.merge(
        "apm",
        "art",
        {
            "spec": {
                "trafficRouting": {
                    "provider": "GatewayAPI",
                    "gatewayAPI": {"parentRefs": [{"name": "gw"}]},
                }
            }
        },
    )

    def route_weights() -> dict[str, int]:
        route = kube.get("httproute", "art")
        assert route is not None
        return {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}

    wait_for(lambda: route_weights() == {"art-stable": 90, "art-canary": 10}, "HTTPRoute 90/10")
    assert replicas() == (4, 4)

    # A manual promote moves to the next step; the annotation is acted on once and removed.
    kube.run("annotate", "apm", "art", "artpulse.io/action=promote")
    wait_for(lambda: route_weights() == {"art-stable": 50, "art-canary": 50}, "HTTPRoute 50/50")
    body = wait_for(
        lambda: (
            (b := kube.get("apm", "art"))
            and "artpulse.io/action" not in b["metadata"].get("annotations", {})
            and b
        ),
        "the action annotation removed",
    )
    assert body["status"]["lastAction"]["action"] == "promote"
    assert body["status"]["canaryWeight"] == 50

    kube.merge(
        "apm",
        "art",
        {"spec": {"trafficRouting": {"provider": "Nginx", "gatewayAPI": None, "nginx": {}}}},
    )

    def canary_weight() -> str | None:
        ingress = kube.get("ingress", "art-canary")
        return (
            None
            if ingress is None
            else ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"]
        )

    wait_for(lambda: canary_weight() == "50", "canary Ingress weight 50")

"""The operator's per-model series on its real /metrics, from a real reconcile loop.

One operator process (``python -m artpulse_operator`` under the shipped RBAC) against the
real node's API server and MLflow; the model's workloads run as real pods of the test
workload image (images/testhost), so readiness is the kubelet's. An ArtPulseModel is taken into a canary rollout: /metrics shows
its phase (1 for Progressing, 0 for the eight other phases), its canary weight and rollout
counters that start at 0; an abort counts once; after the resource is deleted every series
naming it is gone. A replica under Kopf peering that gets paused (a peer of higher priority
appears) exports none of the model's series until it resumes. The names and labels are the ones
observability/prometheus/rules read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from artpulse_dev.cluster import Cluster
from artpulse_dev.controlplane import ControlPlane
from mlflow.tracking import MlflowClient
from operator_process import (
    TESTHOST_IMAGE,
    Kube,
    OperatorProcess,
    apply_rbac,
    fresh_namespace,
    model_resource,
    operator_for,
    register_model,
    running_operator,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PEERING_CRDS = REPO / "manifests/crds/kopf-peering-crds.yaml"
PEERING = "artpulse-operator"  # the only peering the shipped RBAC lets the operator write
NS_PREFIX = "opmet-"
PHASES = [
    "Pending",
    "Stable",
    "Shadowing",
    "Progressing",
    "Paused",
    "Promoting",
    "RolledBack",
    "Degraded",
    "Failed",
]
PER_MODEL = (
    "artpulse_operator_phase",
    "artpulse_operator_canary_weight",
    "artpulse_operator_rollouts_total",
)


@pytest.fixture(scope="module")
def control_plane(cluster: Cluster) -> ControlPlane:
    """The operator gives the canary weight only once its workload is ready: the workloads here
    run as real pods (the test workload image) on the node."""
    return cluster.control_plane


@pytest.fixture(scope="module")
def operator(
    control_plane: Any, mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator-metrics") / "operator.log"
    with running_operator(control_plane, mlflow_server.tracking_uri, log, f"{NS_PREFIX}*") as proc:
        yield proc


@pytest.fixture
def kube(control_plane: Any, operator: OperatorProcess) -> Iterator[Kube]:
    with fresh_namespace(control_plane, NS_PREFIX) as kube:
        yield kube


def model_series(
    operator: OperatorProcess, namespace: str, name: str
) -> dict[tuple[str, str], float]:
    """Every per-model sample of one model: (metric, phase or result or "") -> value."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            labels = sample.labels
            if sample.name in PER_MODEL and (labels.get("namespace"), labels.get("name")) == (
                namespace,
                name,
            ):
                key = labels.get("phase") or labels.get("result") or ""
                found[(sample.name, key)] = sample.value
    return found


def wait_series(
    operator: OperatorProcess, namespace: str, key: tuple[str, str], want: float, what: str
) -> dict[tuple[str, str], float]:
    """The model "art"'s samples once ``key`` has the value ``want``."""

    def probe() -> dict[tuple[str, str], float] | None:
        series = model_series(operator, namespace, "art")
        return series if series.get(key) == want else None

    found = wait_for(probe, what)
    assert found is not None
    return found


def test_phase_weight_and_rollouts_follow_the_model_and_go_with_it(
    operator: OperatorProcess, kube: Kube, mlflow_server: Any
) -> None:
    model = register_model(mlflow_server.tracking_uri, 1, {"champion": "1"})
    kube.apply(
        model_resource(
            "art",
            model,
            image=TESTHOST_IMAGE,
            strategy={
                "type": "Canary",
                "canary": {"steps": [{"weight": 10, "promotion": "Manual"}, {"weight": 100}]},
            },
            analysis={"interval": "1h"},  # no gate check: the weight holds at the first step
        )
    )
    series = wait_series(
        operator, kube.ns, ("artpulse_operator_phase", "Stable"), 1, "phase Stable = 1 on /metrics"
    )
    # Counters exist at 0 before the first rollout, so increase() sees the first one.
    for result in ("Promoted", "RolledBack", "Aborted"):
        assert series[("artpulse_operator_rollouts_total", result)] == 0
    assert series[("artpulse_operator_canary_weight", "")] == 0

    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    run = client.create_run(client.create_experiment(f"exp2-{model}"))
    client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(model, "challenger", "2")

    series = wait_series(
        operator,
        kube.ns,
        ("artpulse_operator_canary_weight", ""),
        10,
        "canary weight 10 on /metrics",
    )
    phases = {p: series[("artpulse_operator_phase", p)] for p in PHASES}
    assert phases == {p: float(p == "Progressing") for p in PHASES}
    body = kube.get("apm", "art")
    assert body is not None
    assert (body["status"]["phase"], body["status"]["canaryWeight"]) == ("Progressing", 10)

    kube.run("annotate", "apm", "art", "artpulse.io/action=abort")
    series = wait_series(
        operator,
        kube.ns,
        ("artpulse_operator_rollouts_total", "Aborted"),
        1,
        "one Aborted rollout counted",
    )
    assert series[("artpulse_operator_phase", "RolledBack")] == 1
    assert series[("artpulse_operator_canary_weight", "")] == 0
    assert series[("artpulse_operator_rollouts_total", "RolledBack")] == 0
    assert sum(series[("artpulse_operator_phase", p)] for p in PHASES) == 1

    kube.run("delete", "apm", "art", "--wait=true", "--timeout=60s")
    assert kube.get("apm", "art") is None
    wait_for(
        lambda: model_series(operator, kube.ns, "art") == {},
        "every series of the deleted model gone from /metrics",
    )


def test_a_replica_paused_by_peering_clears_its_model_series(
    control_plane: Any, mlflow_server: Any, tmp_path: Path
) -> None:
    """A replica in a Kopf peering (as the Deployment runs it) exports a model while active;
    when a peer of higher priority appears (here a record the test writes, as another replica
    would), Kopf pauses it and it must export nothing of the model; when that peer goes, it
    resumes and exports the model again."""
    apply_rbac(control_plane)
    control_plane.kubectl("apply", "--server-side", "-f", str(PEERING_CRDS))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev"
    )
    # Not under NS_PREFIX: the module's standalone operator must not see this namespace.
    namespace = f"opmetpeer-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    kube = Kube(control_plane, namespace)

    # A new CRD's watch cache answers 429 for a moment after it is established.
    def write_peering() -> bool:
        kube.apply(
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
        )
        return True

    wait_for(write_peering, "the KopfPeering written")
    model = register_model(mlflow_server.tracking_uri, 1, {"champion": "1"})
    kube.apply(model_resource("art", model, image=TESTHOST_IMAGE))
    replica = operator_for(
        control_plane,
        mlflow_server.tracking_uri,
        tmp_path / "operator.log",
        namespace,
        ARTPULSE_PEERING_NAME=PEERING,
    )
    try:
        replica.start()

        def exported() -> bool:
            return (
                model_series(replica, namespace, "art").get(("artpulse_operator_phase", "Stable"))
                == 1
            )

        wait_for(exported, "the active replica exports the model")
        # The operator draws priorities up to 1,000,000: this peer wins, as an active twin would.
        lastseen = datetime.now(UTC).isoformat()
        winner = {"priority": 10_000_000, "lifetime": 600, "lastseen": lastseen}
        kube.merge("kopfpeering", PEERING, {"status": {"test-winner": winner}})
        wait_for(
            lambda: model_series(replica, namespace, "art") == {},
            "no series of the model on the paused replica",
        )
        assert "Pausing operations in favour of" in replica.log_tail(20000)

        kube.merge("kopfpeering", PEERING, {"status": {"test-winner": None}})
        wait_for(exported, "the resumed replica exports the model again")
    finally:
        replica.stop()
        print(replica.log_tail(3000))
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

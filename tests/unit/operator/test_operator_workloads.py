"""What the operator reads from the tracks' Deployments (k8s.workloads): a track is ready only
when its Deployment runs the expected model version, fully rolled out.

The cases are Deployments as the API server lists them (tests/data/operator/
workload_readiness_cases.yaml); the cluster is an in-memory fake of ``KubeClient.list``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.status import TrackStatus, VersionRef
from artpulse_operator.k8s.workloads import Workloads, observe_workloads

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "operator" / "workload_readiness_cases.yaml").read_text()
)["cases"]


class FakeKube:
    """``KubeClient.list`` over a fixed list of objects; remembers the selectors asked for."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.selectors: list[str | None] = []

    async def list(
        self, kind: Any, namespace: str | None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.selectors.append(label_selector)
        return self.items


def _tracks(expected: Mapping[str, str | None]) -> dict[str, TrackStatus]:
    """The status the reconcile read: the version each track's template was applied with."""
    return {
        track: TrackStatus(VersionRef(version) if version else None, scaled=True)
        for track, version in expected.items()
    }


async def _observe(items: list[dict[str, Any]], expected: Mapping[str, str | None]) -> Workloads:
    return await observe_workloads(FakeKube(items), "ml", "fraud", _tracks(expected))  # type: ignore[arg-type]


def _track(deployment: Mapping[str, Any]) -> str:
    return str(deployment["metadata"]["labels"]["artpulse.io/track"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_workload_readiness(case: dict[str, Any]) -> None:
    deployment = case["deployment"]
    track = _track(deployment)
    workloads = await _observe([deployment], {track: case["expected_version"]})
    assert workloads.ready[track] is case["ready"]
    assert workloads.replicas[track] == deployment["spec"]["replicas"]


async def test_observe_workloads_reads_each_track_of_the_model() -> None:
    by_name = {c["name"]: c["deployment"] for c in CASES}
    stable = by_name["HPA-owned, settled at the replicas the HPA chose"]
    canary = by_name["wrong version: settled, but on a template of another model version"]
    foreign = {"metadata": {"name": "fraud-extra", "labels": {}}, "spec": {"replicas": 1}}
    kube = FakeKube([stable, canary, foreign])

    tracks = _tracks({"stable": "3", "canary": "4"})
    workloads = await observe_workloads(kube, "ml", "fraud", tracks)  # type: ignore[arg-type]

    assert kube.selectors == [
        "app.kubernetes.io/instance=fraud,app.kubernetes.io/managed-by=artpulse-operator"
    ]
    assert dict(workloads.ready) == {"stable": True, "canary": False}
    assert dict(workloads.replicas) == {"stable": 5, "canary": 2}
    # The version each template runs, whatever the status expects (for messages and the engine).
    assert dict(workloads.versions) == {"stable": "3", "canary": "3"}


async def test_a_track_missing_from_the_status_is_not_ready() -> None:
    settled = CASES[0]["deployment"]
    workloads = await _observe([settled], {})
    assert workloads.ready == {"canary": False}

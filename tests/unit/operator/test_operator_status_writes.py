"""The status write converges (k8s.status.write_status): what the operator no longer writes is
removed from the stored status, and a pass that changes nothing writes nothing.

The API server is an in-memory fake of ``KubeClient.merge_patch`` on the status subresource:
it applies the patch as RFC 7386 says (an object merges key by key, ``null`` removes the key,
anything else replaces) and drops the nulls left inside values, as the API server does for a
CRD whose fields are not nullable. It records every patch sent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from artpulse_operator.engine.status import (
    AnalysisStatus,
    Phase,
    RolloutStatus,
    TrackStatus,
    VersionRef,
)
from artpulse_operator.k8s.status import pruned, write_status

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


class FakeStatusApi:
    """One ArtPulseModel's status subresource."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status: dict[str, Any] = pruned(dict(status))
        self.patches: list[dict[str, Any]] = []

    async def merge_patch(
        self,
        kind: Any,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        assert subresource == "status"
        self.patches.append(copy.deepcopy(dict(patch)))
        self.status = pruned(_merge(self.status, patch.get("status") or {}))
        return {"status": self.status}

    async def write(self, new: RolloutStatus | Mapping[str, Any]) -> bool:
        """One reconcile's write: the planned status against the status it read."""
        raw = new.to_dict() if isinstance(new, RolloutStatus) else new
        return await write_status(self, "ml", "fraud", "1", raw, copy.deepcopy(self.status))  # type: ignore[arg-type]


def _v(version: str) -> VersionRef:
    return VersionRef(version, uri=f"models:/fraud/{version}")


CANARY = RolloutStatus(
    phase=Phase.PROGRESSING,
    stable=_v("3"),
    candidate=_v("4"),
    canary_weight=20,
    current_step=0,
    step_started_at=NOW,
    tracks={
        "stable": TrackStatus(_v("3"), weight=80, scaled=True),
        "canary": TrackStatus(_v("4"), weight=20, scaled=True),
    },
    analysis=AnalysisStatus(
        last_check_time=NOW,
        verdict="Pass",
        metrics={
            "latency-slo": {"verdict": "Pass", "value": 0.2},
            "business-kpi": {"verdict": "Inconclusive", "value": None},
        },
        judge={"verdict": "Pass", "tests": {"latency": {"pValue": 0.4}, "errors": {"pValue": 0.9}}},
    ),
)
# The canary track dropped (spec switched to a Single strategy once the rollout ended).
SINGLE = RolloutStatus(
    phase=Phase.STABLE,
    stable=_v("4"),
    tracks={"stable": TrackStatus(_v("4"), weight=100, scaled=True)},
)
BLUE_GREEN = RolloutStatus(
    phase=Phase.STABLE,
    stable=_v("3"),
    active_color="blue",
    tracks={
        "blue": TrackStatus(_v("3"), weight=100, scaled=True),
        "green": TrackStatus(None, weight=0, scaled=False),
    },
)
# The spec switched from BlueGreen to Canary: the colours go, stable and canary come.
CANARY_AFTER_SWITCH = RolloutStatus(
    phase=Phase.STABLE,
    stable=_v("3"),
    tracks={
        "stable": TrackStatus(_v("3"), weight=100, scaled=True),
        "canary": TrackStatus(None, weight=0, scaled=False),
    },
)
# A custom metric removed from the spec, and the judge's latency test no longer run.
CANARY_FEWER_METRICS = CANARY.with_changes(
    analysis=AnalysisStatus(
        last_check_time=NOW,
        verdict="Pass",
        metrics={"latency-slo": {"verdict": "Pass", "value": 0.2}},
        judge={"verdict": "Pass", "tests": {"errors": {"pValue": 0.9}}},
    )
)


async def test_a_removed_track_is_sent_as_null() -> None:
    api = FakeStatusApi(CANARY.to_dict())
    assert await api.write(SINGLE) is True
    (patch,) = api.patches
    assert patch["status"]["tracks"]["canary"] is None
    assert set(api.status["tracks"]) == {"stable"}


async def test_a_strategy_switch_removes_the_old_tracks() -> None:
    api = FakeStatusApi(BLUE_GREEN.to_dict())
    assert await api.write(CANARY_AFTER_SWITCH) is True
    (patch,) = api.patches
    assert patch["status"]["tracks"]["blue"] is None
    assert patch["status"]["tracks"]["green"] is None
    assert set(api.status["tracks"]) == {"stable", "canary"}


async def test_removed_entries_of_nested_maps_are_sent_as_null() -> None:
    api = FakeStatusApi(CANARY.to_dict())
    assert await api.write(CANARY_FEWER_METRICS) is True
    (patch,) = api.patches
    assert patch["status"]["analysis"]["metrics"]["business-kpi"] is None
    assert patch["status"]["analysis"]["judge"]["tests"]["latency"] is None
    assert set(api.status["analysis"]["metrics"]) == {"latency-slo"}
    assert set(api.status["analysis"]["judge"]["tests"]) == {"errors"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (CANARY, CANARY),
        (CANARY, SINGLE),
        (BLUE_GREEN, CANARY_AFTER_SWITCH),
        (CANARY, CANARY_FEWER_METRICS),
        (SINGLE, CANARY),
    ],
    ids=["unchanged", "track-dropped", "bluegreen-to-canary", "metric-dropped", "track-added"],
)
async def test_the_stored_status_converges_and_a_repeated_pass_writes_nothing(
    before: RolloutStatus, after: RolloutStatus
) -> None:
    api = FakeStatusApi(before.to_dict())
    await api.write(after)
    # What is stored is what was planned, nothing of the status before left over.
    assert api.status == pruned(after.to_dict())
    writes = len(api.patches)
    assert await api.write(after) is False
    assert len(api.patches) == writes


@pytest.mark.parametrize(
    ("before", "after"),
    [(CANARY, SINGLE), (BLUE_GREEN, CANARY_AFTER_SWITCH), (CANARY, CANARY_FEWER_METRICS)],
    ids=["track-dropped", "bluegreen-to-canary", "metric-dropped"],
)
async def test_after_a_removal_the_next_identical_pass_writes_nothing(
    before: RolloutStatus, after: RolloutStatus
) -> None:
    # A removed key left in the stored status made every later pass differ: a write per pass.
    api = FakeStatusApi(before.to_dict())
    assert [await api.write(after) for _ in range(3)] == [True, False, False]


async def test_an_unchanged_pass_writes_nothing() -> None:
    api = FakeStatusApi(CANARY.to_dict())
    assert await api.write(CANARY) is False
    assert api.patches == []


async def test_another_writers_top_level_keys_are_left_alone() -> None:
    api = FakeStatusApi({**CANARY.to_dict(), "kopf": {"progress": {"reconcile": {"retries": 1}}}})
    assert await api.write(SINGLE) is True
    (patch,) = api.patches
    assert "kopf" not in patch["status"]
    assert api.status["kopf"] == {"progress": {"reconcile": {"retries": 1}}}
    assert await api.write(SINGLE) is False


async def test_the_write_carries_the_resource_version_read() -> None:
    api = FakeStatusApi(CANARY.to_dict())
    await api.write(SINGLE)
    assert api.patches[0]["metadata"] == {"resourceVersion": "1"}

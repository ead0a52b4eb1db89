"""RolloutStatus round trips, tolerance of odd input, and Kubernetes-style conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from artpulse_operator.engine.rollout import failed_status
from artpulse_operator.engine.status import (
    AnalysisStatus,
    Phase,
    RolloutRecord,
    RolloutStatus,
    ShadowStatus,
    TrackStatus,
    VersionRef,
    format_time,
    parse_time,
    set_condition,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)


def test_full_status_round_trips() -> None:
    status = RolloutStatus(
        phase=Phase.PROGRESSING,
        observed_generation=4,
        stable=VersionRef("3", "champion", "models:/m/3", "r3"),
        candidate=VersionRef("4", "challenger", "models:/m/4", "r4"),
        previous=VersionRef("2"),
        active_color="green",
        canary_weight=50,
        current_step=1,
        step_started_at=NOW,
        rollout_started_at=NOW - timedelta(minutes=3),
        scale_down_at=NOW + timedelta(minutes=5),
        paused_from=Phase.SHADOWING,
        paused_by="action",
        tracks={"stable": TrackStatus(VersionRef("3"), 50, True, "models:/m/4")},
        analysis=AnalysisStatus(
            last_check_time=NOW,
            verdict="Fail",
            p95_latency_ms=12.5,
            failed_gates=("p95LatencyMs",),
            failed_checks=1,
            error_streak=1,
        ),
        shadow=ShadowStatus("models:/m/4", NOW, None, 0.97),
        last_rollout=RolloutRecord("4", None, NOW, None, None, "Canary"),
        history=tuple(RolloutRecord(str(i), "Promoted") for i in range(10)),
        failed_versions=("1",),
        message="hello",
    )
    status = status.with_changes(
        conditions=set_condition((), "Ready", True, "Serving", "ok", NOW.replace(microsecond=0))
    )
    assert RolloutStatus.from_dict(status.to_dict()) == status


def test_to_dict_writes_every_key_so_merge_patches_clear_fields() -> None:
    d = RolloutStatus().to_dict()
    assert d["candidate"] is None
    assert d["stepStartedAt"] is None
    assert d["phase"] == "Pending"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"phase": "Bogus"},
        {"phase": "Stable", "stable": {"version": 3}, "canaryWeight": "10", "currentStep": None},
        {"history": "nope", "conditions": [None, {"type": "Ready"}], "tracks": {"stable": None}},
        {"analysis": {"p95LatencyMs": "fast", "failedChecks": True, "lastCheckTime": "yesterday"}},
        {"pausedFrom": "Nowhere", "stepStartedAt": 12},
    ],
)
def test_odd_statuses_parse_without_raising(raw: object) -> None:
    status = RolloutStatus.from_dict(raw)  # type: ignore[arg-type]
    assert RolloutStatus.from_dict(status.to_dict()).to_dict() == status.to_dict()


def test_history_is_capped_at_ten() -> None:
    raw = {"history": [{"version": str(i)} for i in range(15)]}
    assert [h.version for h in RolloutStatus.from_dict(raw).history] == [
        str(i) for i in range(5, 15)
    ]


def test_times_keep_microseconds_and_accept_z() -> None:
    assert format_time(NOW) == "2026-01-01T12:00:00.250000Z"
    assert parse_time("2026-01-01T12:00:00.250000Z") == NOW
    assert parse_time("2026-01-01T12:00:00") == NOW.replace(microsecond=0)


def test_condition_transition_time_moves_only_on_a_flip() -> None:
    t0, t1, t2 = NOW, NOW + timedelta(seconds=10), NOW + timedelta(seconds=20)
    conds = set_condition((), "Ready", True, "Serving", "v3", t0)
    conds = set_condition(conds, "Ready", True, "Serving", "v4", t1)
    assert conds[0].last_transition_time == t0
    assert conds[0].message == "v4"
    conds = set_condition(conds, "Ready", False, "WorkloadsNotReady", "canary", t2)
    assert (conds[0].status, conds[0].last_transition_time) == ("False", t2)
    conds = set_condition(conds, "Progressing", True, "Progressing", "v4", t2)
    assert [c.type for c in conds] == ["Ready", "Progressing"]


def test_failed_status_for_a_bad_spec() -> None:
    status = failed_status(
        RolloutStatus(phase=Phase.STABLE), "spec.serving.image: is required", NOW, 7
    )
    assert status.phase is Phase.FAILED
    assert status.observed_generation == 7
    ready = status.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")

"""RolloutStatus round trips, tolerance of odd input, and Kubernetes-style conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from artpulse_dev.crd_schema import crd_version_schema, problems
from artpulse_operator.engine.rollout import failed_status
from artpulse_operator.engine.status import (
    AnalysisStatus,
    Condition,
    ConditionType,
    Phase,
    RolloutRecord,
    RolloutStatus,
    ShadowStatus,
    TrackStatus,
    VersionRef,
    condition_reason,
    format_time,
    parse_time,
    remove_condition,
    set_condition,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
CRD = Path(__file__).resolve().parents[3] / "crds" / "artpulsemodel.yaml"
CONDITIONS = crd_version_schema(yaml.safe_load(CRD.read_text()))["properties"]["status"][
    "properties"
]["conditions"]


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


# --- conditions as metav1.Condition ----------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "written"),
    [
        ("Serving", "Serving"),
        ("RouteKindNotInstalled", "RouteKindNotInstalled"),
        ("Reason_with:colon,comma", "Reason_with:colon,comma"),
        ("secret not-found", "SecretNotFound"),
        ("403 Forbidden", "Forbidden"),
        ("ends with a colon:", "EndsWithAColon"),
        ("", "Unknown"),
        ("...", "Unknown"),
        ("x" * 2000, "X" + "x" * 1023),
    ],
)
def test_condition_reasons_are_camelcase_words(reason: str, written: str) -> None:
    assert condition_reason(reason) == written


@pytest.mark.parametrize(
    "condition",
    [
        Condition("Ready", "True", "Serving", "serving version 3", NOW, 4),
        Condition("Ready", "True"),  # read from a status without reason, message or time
        Condition("Degraded", "maybe", "apply failed: 422", "x" * 40000, NOW, -1),
        Condition.from_dict({"type": "Progressing"}),
    ],
    ids=["complete", "bare", "odd", "from-a-sparse-dict"],
)
def test_conditions_always_write_what_metav1_requires(condition: Condition) -> None:
    written = condition.to_dict()
    assert {"type", "status", "lastTransitionTime", "reason", "message"} <= {
        k for k, v in written.items() if v is not None
    }
    assert problems(CONDITIONS, [written], "conditions") == []


def test_a_condition_without_a_time_keeps_the_unknown_one() -> None:
    assert Condition("Ready", "True").to_dict()["lastTransitionTime"] == "1970-01-01T00:00:00Z"
    # A flip gives it a real one.
    conds = set_condition((Condition("Ready", "True"),), "Ready", False, "NotReady", "", NOW)
    assert conds[0].to_dict()["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_conditions_carry_the_generation_they_were_set_for() -> None:
    conds = set_condition((), ConditionType.READY, True, "Serving", "v3", NOW, 9)
    assert conds[0].to_dict()["observedGeneration"] == 9
    status = failed_status(RolloutStatus(), "bad", NOW, 5)
    assert status.to_dict()["conditions"][0]["observedGeneration"] == 5


def test_conditions_read_back_one_per_type() -> None:
    """The CRD's list is a map keyed by type: a duplicate (from before the list type) is
    dropped on read, so the next write is accepted."""
    raw = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "A", "message": ""},
            {"type": "Ready", "status": "False", "reason": "B", "message": ""},
            {"status": "True", "reason": "NoType"},
        ]
    }
    status = RolloutStatus.from_dict(raw)
    assert [(c.type, c.reason) for c in status.conditions] == [("Ready", "A")]
    assert problems(CONDITIONS, status.to_dict()["conditions"], "conditions") == []


def test_remove_condition() -> None:
    conds = set_condition((), "Ready", True, "Serving", "", NOW)
    conds = set_condition(conds, ConditionType.DEPRECATED_FIELDS, True, "EmptyPause", "x", NOW)
    assert [c.type for c in remove_condition(conds, ConditionType.DEPRECATED_FIELDS)] == ["Ready"]

"""A status with every field the operator can write, built by the engine's own code.

Who calls it: the tests that hold the status against the CRD, without an API server
(``tests/unit/operator/test_operator_crd_conventions.py``) and with one
(``tests/integration/operator/test_operator_crd_conventions_live.py``). With a structural schema the
API server prunes whatever the CRD does not declare, so the status written must be *maximal*:
every optional field set, every track, every condition type, a full history, an analysis with
the judge's evidence and custom metrics of every verdict. The unit test checks that it is (every
field the CRD declares is set here); a new status field the engine writes must be set here too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from artpulse_operator.engine import status as status_module
from artpulse_operator.engine.custom_metrics import evaluate_metric
from artpulse_operator.engine.gates import combine, count
from artpulse_operator.engine.judge import ArmCounts, judge
from artpulse_operator.engine.observations import GateResult, Verdict
from artpulse_operator.engine.spec import Color, StrategyType, parse_spec
from artpulse_operator.engine.status import (
    ActionRecord,
    AnalysisStatus,
    ConditionType,
    Phase,
    RolloutRecord,
    RolloutResult,
    RolloutStatus,
    ShadowStatus,
    TrackStatus,
    VersionRef,
    set_condition,
)

__all__ = ["NOW", "TRACKS", "maximal_status"]

NOW = datetime(2026, 5, 4, 12, 30, 15, 250000, tzinfo=UTC)
# Every track name the engine knows (TRACK_STABLE, TRACK_CANARY, TRACK_BLUE, TRACK_GREEN).
TRACKS = tuple(v for k, v in vars(status_module).items() if k.startswith("TRACK_"))


def _ref(version: str) -> VersionRef:
    return VersionRef(version, "challenger", f"models:/art/{version}", f"run-{version}")


def _analysis() -> AnalysisStatus:
    """A check as the engine records it: thresholds, the judge and custom metrics combined."""
    spec = parse_spec(
        {
            "model": {"name": "art"},
            "serving": {"image": "x"},
            "analysis": {
                "metrics": [
                    {"name": "passes", "query": "up", "successCondition": "result > 0"},
                    {"name": "fails", "query": "up", "failureCondition": "result > 0"},
                    {
                        "name": "neither",
                        "query": "up",
                        "successCondition": "result > 5",
                        "failureCondition": "result > 9",
                    },
                    {
                        "name": "dry",
                        "query": "up",
                        "successCondition": "result < 1",
                        "dryRun": True,
                    },
                    {"name": "broken", "query": "up", "successCondition": "result > 0"},
                ]
            },
        }
    )
    by_name = {m.name: m for m in spec.analysis.metrics}
    metrics = [
        evaluate_metric(by_name["passes"], 1.0, None),
        evaluate_metric(by_name["fails"], 2.0, None),
        evaluate_metric(by_name["neither"], 7.0, None),
        evaluate_metric(by_name["dry"], 3.0, None),
        evaluate_metric(by_name["broken"], None, "connection refused"),
    ]
    fast = {0.05: 400.0, 0.1: 700.0, 0.25: 900.0, float("inf"): 1000.0}
    slow = {0.05: 100.0, 0.1: 300.0, 0.25: 800.0, float("inf"): 1000.0}
    evidence = judge(
        ArmCounts(1000, 40, slow, {"cubism": 600, "baroque": 400}),
        ArmCounts(9000, 9, {k: v * 9 for k, v in fast.items()}, {"cubism": 4500, "baroque": 4500}),
        alpha=0.05,
        min_candidate_requests=100,
    )
    measured: dict[str, float | None] = {
        "p95LatencyMs": 240.0,
        "stableP95LatencyMs": 90.0,
        "p95RatioToStable": 2.67,
        "errorRate": 0.04,
        "driftScore": 0.31,
        "requests": 1000.0,
        "shadowAgreement": 0.93,
    }
    thresholds = GateResult(Verdict.FAIL, measured, ("p95LatencyMs",), "p95 240 ms > 90 ms")
    checked = combine(thresholds, evidence, metrics)
    previous = AnalysisStatus(failed_checks=1, inconclusive_checks=3, passed_checks_in_step=2)
    return count(spec.analysis, previous, checked, now=NOW, track="canary", version="5").analysis


def _record(version: str, result: RolloutResult) -> RolloutRecord:
    return RolloutRecord(
        version,
        str(result),
        NOW - timedelta(hours=1),
        NOW,
        "gates passed",
        str(StrategyType.CANARY),
    )


def maximal_status() -> RolloutStatus:
    """Every field of the status set, every track, every condition type, a full history."""
    conditions: tuple[Any, ...] = ()
    for i, ctype in enumerate(ConditionType):
        conditions = set_condition(
            conditions, ctype, i % 2 == 0, f"Reason{i}", f"message {i}", NOW, 7
        )
    results = list(RolloutResult)
    return RolloutStatus(
        phase=Phase.PAUSED,
        observed_generation=7,
        stable=_ref("4"),
        candidate=_ref("5"),
        previous=_ref("3"),
        active_color=str(Color.GREEN),
        canary_weight=50,
        current_step=1,
        step_started_at=NOW - timedelta(minutes=2),
        rollout_started_at=NOW - timedelta(minutes=9),
        scale_down_at=NOW + timedelta(minutes=5),
        workload_wait_since=NOW - timedelta(seconds=30),
        awaiting_confirmation_since=NOW - timedelta(seconds=10),
        paused_from=Phase.PROGRESSING,
        paused_by="action",
        tracks={track: TrackStatus(_ref("5"), 25, True, "models:/art/5") for track in TRACKS},
        analysis=_analysis(),
        shadow=ShadowStatus("models:/art/5", NOW - timedelta(minutes=8), NOW, 0.97),
        last_rollout=_record("5", RolloutResult.ABORTED),
        history=tuple(_record(str(i), results[i % len(results)]) for i in range(10)),
        conditions=conditions,
        failed_versions=("2", "3"),
        last_action=ActionRecord("pause", NOW, "paused by the pause action"),
        message="step 2/3 waits for a promote action",
    )

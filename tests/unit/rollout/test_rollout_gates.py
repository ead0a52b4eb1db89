"""Table tests of the gate verdicts, their combination with the judge and the custom metrics, and the
counting rules (tests/data/rollout/gates.yaml, combine.yaml, counting.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.custom_metrics import MetricResult
from artpulse_operator.engine.gates import CheckOutcome, combine, count, evaluate
from artpulse_operator.engine.judge import JudgeResult
from artpulse_operator.engine.observations import GateResult, TrackMeasurement, Verdict
from artpulse_operator.engine.spec import AnalysisSpec, parse_spec
from artpulse_operator.engine.status import AnalysisStatus

DATA = Path(__file__).resolve().parents[2] / "data" / "rollout"
GATES = yaml.safe_load((DATA / "gates.yaml").read_text())
COUNTING = yaml.safe_load((DATA / "counting.yaml").read_text())


def analysis_spec(raw: dict[str, Any]) -> AnalysisSpec:
    spec = parse_spec({"model": {"name": "m"}, "serving": {"image": "i"}, "analysis": raw})
    return spec.analysis


def measurement(raw: dict[str, Any] | None) -> TrackMeasurement | None:
    return None if raw is None else TrackMeasurement(**raw)


@pytest.mark.parametrize("case", GATES["cases"], ids=lambda c: c["name"])
def test_gate_verdict(case: dict[str, Any]) -> None:
    spec = analysis_spec(case.get("analysis", GATES["defaults"]["analysis"]))
    result = evaluate(
        spec,
        measurement(case["candidate"]),
        measurement(case.get("stable")),
        case.get("error"),
        shadow=case.get("shadow", False),
    )
    assert result.verdict == Verdict(case["verdict"]), result.message
    assert list(result.failed_gates) == case.get("failed_gates", [])
    if "message_contains" in case:
        assert case["message_contains"] in result.message
    for key, value in case.get("measured", {}).items():
        assert result.measured[key] == pytest.approx(value)


@pytest.mark.parametrize("case", COUNTING["cases"], ids=lambda c: c["name"])
def test_counting_rules(case: dict[str, Any]) -> None:
    spec = analysis_spec(case["analysis"])
    status = AnalysisStatus()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    outcomes = []
    for i, verdict in enumerate(case["checks"]):
        result = count(
            spec,
            status,
            GateResult(Verdict(verdict), {"requests": 10.0}, (), verdict),
            now=now + timedelta(seconds=30 * i),
        )
        status = result.analysis
        outcomes.append(str(result.outcome))
    assert outcomes == case["outcomes"]
    for key, value in case.get("final", {}).items():
        assert getattr(status, key) == value
    assert status.last_check_time == now + timedelta(seconds=30 * (len(case["checks"]) - 1))


def test_count_records_measured_values() -> None:
    spec = analysis_spec({})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    result = count(
        spec,
        AnalysisStatus(),
        GateResult(
            Verdict.FAIL, {"p95LatencyMs": 130.0, "requests": 400.0}, ("p95LatencyMs",), "slow"
        ),
        now=now,
        track="canary",
        version="4",
    )
    assert result.outcome is CheckOutcome.HOLD
    a = result.analysis
    assert (a.p95_latency_ms, a.requests, a.failed_gates, a.track, a.version) == (
        130.0,
        400.0,
        ("p95LatencyMs",),
        "canary",
        "4",
    )
    assert a.verdict == "Fail"


COMBINE: dict[str, Any] = yaml.safe_load((DATA / "combine.yaml").read_text())


@pytest.mark.parametrize("case", COMBINE["cases"], ids=lambda c: c["name"])
def test_combine_thresholds_judge_and_metrics(case: dict[str, Any]) -> None:
    verdict = Verdict(case["thresholds"])
    thresholds = GateResult(
        verdict,
        {"requests": 10.0},
        ("maxErrorRate",) if verdict is Verdict.FAIL else (),
        f"thresholds {verdict}",
    )
    judged = (
        JudgeResult(Verdict(case["judge"]), (), f"judge {case['judge']}")
        if case["judge"] is not None
        else None
    )
    metrics = [
        MetricResult(name, 1.0, Verdict(v), dry_run=dry, message=v)
        for name, (v, dry) in case["metrics"].items()
    ]
    result = combine(thresholds, judged, metrics)
    assert result.verdict == Verdict(case["verdict"]), result.message
    assert list(result.failed_gates) == case.get("failed", [])
    assert result.accumulating is case.get("accumulating", False)
    assert set(result.metrics) == set(case["metrics"])  # dry-run results are recorded too
    assert (result.judge is None) is (judged is None)

"""Gate verdicts and the counting rules that turn verdicts into rollout decisions. Pure.

Called by the handlers right after a measurement (``evaluate`` turns the Prometheus numbers
into a :class:`GateResult`) and by ``engine.rollout.plan`` (``count`` updates the counters in
``status.analysis`` and says whether the rollout may advance, must hold, or must roll back).

Verdicts (``evaluate``):

- ``Error``: the metrics source could not be asked (``error`` is set).
- ``Inconclusive``: no measurement, or fewer than ``minRequests`` requests (while shadowing:
  compared rows) in the window (then nothing is judged, not even a failure: a handful of
  requests is noise), or no failed gate but a configured gate whose query returned no data.
  No data is never a pass by accident.
- ``Fail``: enough requests and any configured gate with data is out of bounds (a real
  failure outweighs a missing value elsewhere).
- ``Pass``: every configured gate has data and is within bounds.

Live gates: ``p95LatencyMs`` (candidate p95 <= threshold), ``maxErrorRate``,
``maxDriftScore`` and ``maxP95RatioToStable`` (candidate p95 / stable p95 <= ratio; skipped,
with a note, when the stable track has no latency data, e.g. at a 100 % canary step).
While shadowing only ``minShadowAgreement`` applies, to the agreement of the window's
compared rows (rows the candidate failed on disagree), and ``minRequests`` counts those rows
(``shadow_compared``), not the stable track's requests: 5000 requests of which 12 rows were
mirrored is 12, Inconclusive; 4 requests of 100 rows each is 400.

Counting (``count``), worked example with ``failureLimit: 2``, ``inconclusiveLimit: 3``,
``onInconclusive: Hold``:

    Pass           -> advance       failed 0, inconclusive 0
    Fail           -> hold          failed 1
    Inconclusive   -> hold          inconclusive 1
    Error          -> hold          error streak 1
    Error          -> hold          error streak 2 = failureLimit: counts as failed 2 -> roll back

- ``Fail`` adds a failed check; ``failureLimit`` failed checks in a rollout roll back.
- ``Inconclusive`` follows ``onInconclusive`` (Hold: wait; Fail: counts as a failed check;
  Pass: counts as a pass); from the ``inconclusiveLimit``-th inconclusive check on, it counts
  as a failed check whatever the policy.
- ``Error`` never advances; ``failureLimit`` errors in a row count as one failed check (and
  the streak starts again). Any other verdict ends the streak.
- An ``Inconclusive`` marked ``accumulating`` (the judge is still gathering the step's
  evidence) holds and counts nothing.

Combining (``combine``) the threshold verdict with the judge's and the custom metrics'
(dry-run metrics are recorded, never decide):

    thresholds     judge          metrics        -> check
    Fail           any            any            -> Fail
    any            Fail           any            -> Fail
    any            any            Fail           -> Fail
    Error          any            any            -> Error (nothing else was judged)
    Pass/Inconcl.  Pass           Pass/none      -> Pass   (with the judge, thresholds only guard)
    Pass/Inconcl.  Inconclusive   Pass/none      -> Inconclusive, accumulating
    Pass           (off)          Inconclusive   -> Inconclusive
    Pass           (off)          Error          -> Error
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from artpulse_operator.engine.custom_metrics import MetricResult
from artpulse_operator.engine.custom_metrics import combine as combine_metrics
from artpulse_operator.engine.judge import JudgeResult
from artpulse_operator.engine.observations import GateResult, TrackMeasurement, Verdict
from artpulse_operator.engine.spec import AnalysisSpec, OnInconclusive
from artpulse_operator.engine.status import AnalysisStatus

__all__ = ["CheckOutcome", "CountResult", "combine", "count", "evaluate"]


def _value(v: float | None) -> float | None:
    if v is None or math.isnan(v) or math.isinf(v):
        return None
    return float(v)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def evaluate(
    analysis: AnalysisSpec,
    candidate: TrackMeasurement | None,
    stable: TrackMeasurement | None = None,
    error: str | None = None,
    *,
    shadow: bool = False,
) -> GateResult:
    """Judge one measurement against the gates of ``analysis``.

    ``candidate`` is the measured track (the stable track itself while ``shadow``),
    ``stable`` the stable track for the relative gate, ``error`` the metrics error message
    when the source could not be asked.
    """
    if error is not None:
        return GateResult(Verdict.ERROR, {}, (), f"metrics unavailable: {error}")
    if candidate is None:
        return GateResult(Verdict.INCONCLUSIVE, {}, (), "no measurement")
    gates = analysis.gates
    requests = _value(candidate.requests)
    measured: dict[str, float | None] = {"requests": requests}
    # What minRequests counts: requests, or while shadowing the rows compared.
    seen, unit = requests, "requests"
    failed: list[str] = []
    missing: list[str] = []
    notes: list[str] = []

    def check(
        name: str, value: float | None, limit: float | None, *, minimum: bool = False
    ) -> None:
        if limit is None:
            return
        if value is None:
            missing.append(name)
            return
        if (value < limit) if minimum else (value > limit):
            op = "<" if minimum else ">"
            failed.append(name)
            notes.append(f"{name} {_fmt(value)} {op} {_fmt(limit)}")

    if shadow:
        agreement = _value(candidate.shadow_agreement)
        seen, unit = _value(candidate.shadow_compared), "compared rows"
        measured.update({"shadowAgreement": agreement, "shadowCompared": seen})
        check("minShadowAgreement", agreement, gates.min_shadow_agreement, minimum=True)
    else:
        p95 = _value(candidate.p95_latency_ms)
        error_rate = _value(candidate.error_rate)
        drift = _value(candidate.drift_score)
        measured.update({"p95LatencyMs": p95, "errorRate": error_rate, "driftScore": drift})
        check("p95LatencyMs", p95, gates.p95_latency_ms)
        check("maxErrorRate", error_rate, gates.max_error_rate)
        check("maxDriftScore", drift, gates.max_drift_score)
        if gates.max_p95_ratio_to_stable is not None:
            stable_p95 = _value(stable.p95_latency_ms) if stable else None
            measured["stableP95LatencyMs"] = stable_p95
            if stable_p95 is None or stable_p95 <= 0:
                notes.append("maxP95RatioToStable skipped: no stable latency in the window")
            elif p95 is None:
                missing.append("maxP95RatioToStable")
            else:
                ratio = p95 / stable_p95
                measured["p95RatioToStable"] = ratio
                check("maxP95RatioToStable", ratio, gates.max_p95_ratio_to_stable)

    # Too little traffic makes every number noise: judge nothing, not even a failure.
    if seen is None or seen < analysis.min_requests:
        return GateResult(
            Verdict.INCONCLUSIVE,
            measured,
            (),
            f"{'no' if seen is None else _fmt(seen)} {unit} in the window, "
            f"need at least {analysis.min_requests}",
        )
    if failed:
        return GateResult(Verdict.FAIL, measured, tuple(failed), "; ".join(notes))
    if missing:
        return GateResult(Verdict.INCONCLUSIVE, measured, (), "no data for " + ", ".join(missing))
    return GateResult(Verdict.PASS, measured, (), "; ".join(["all gates passed", *notes]))


def combine(
    thresholds: GateResult,
    judge: JudgeResult | None = None,
    metrics: Sequence[MetricResult] = (),
) -> GateResult:
    """One check's verdict from the threshold gates, the judge and the custom metrics.

    The table is in the module doc. ``thresholds`` is :func:`evaluate`'s result; ``judge`` is
    ``None`` when the judge is off (or cannot compare, e.g. a Single rollout).
    """
    judge_status = judge.to_status() if judge is not None else None
    metric_status = {m.name: m.to_status() for m in metrics}
    if thresholds.verdict is Verdict.ERROR:
        return replace(thresholds, judge=judge_status, metrics=metric_status)
    metric_verdict, metric_message, failed_metrics = combine_metrics(metrics)
    failed = list(thresholds.failed_gates) if thresholds.verdict is Verdict.FAIL else []
    notes: list[str] = []
    if thresholds.verdict is Verdict.FAIL:
        notes.append(thresholds.message)
    if judge is not None and judge.verdict is Verdict.FAIL:
        failed.append("judge")
        notes.append(f"judge: {judge.message}")
    if metric_verdict is Verdict.FAIL:
        failed.extend(failed_metrics)
        notes.append(metric_message)

    def result(verdict: Verdict, message: str, *, accumulating: bool = False) -> GateResult:
        return GateResult(
            verdict,
            thresholds.measured,
            tuple(failed),
            message,
            judge=judge_status,
            metrics=metric_status,
            accumulating=accumulating,
        )

    if failed:
        return result(Verdict.FAIL, "; ".join(n for n in notes if n))
    if metric_verdict is Verdict.ERROR:
        return result(Verdict.ERROR, metric_message)
    parts = [f"judge: {judge.message}"] if judge is not None else [thresholds.message]
    if metric_message:
        parts.append(metric_message)
    message = "; ".join(p for p in parts if p)
    if metric_verdict is Verdict.INCONCLUSIVE:
        return result(Verdict.INCONCLUSIVE, message)
    if judge is not None:
        if judge.verdict is Verdict.PASS:
            return result(Verdict.PASS, message)
        return result(Verdict.INCONCLUSIVE, message, accumulating=True)
    return result(thresholds.verdict, message)


class CheckOutcome(StrEnum):
    """What one counted check means for the rollout."""

    ADVANCE = "Advance"  # counts as a pass: the step may advance (if its hold is over)
    HOLD = "Hold"  # stay where we are and check again
    ROLLBACK = "Rollback"  # the failure budget is spent


@dataclass(frozen=True)
class CountResult:
    outcome: CheckOutcome
    analysis: AnalysisStatus
    counted_as: Verdict  # the verdict after the policies (e.g. Inconclusive counted as Fail)
    reason: str


def count(
    spec: AnalysisSpec,
    previous: AnalysisStatus,
    result: GateResult,
    *,
    now: datetime,
    track: str | None = None,
    version: str | None = None,
) -> CountResult:
    """Record ``result`` in the analysis status and apply the counting rules (module doc)."""
    m = result.measured
    a = replace(
        previous,
        last_check_time=now,
        verdict=str(result.verdict),
        track=track,
        version=version,
        p95_latency_ms=m.get("p95LatencyMs"),
        stable_p95_latency_ms=m.get("stableP95LatencyMs"),
        p95_ratio_to_stable=m.get("p95RatioToStable"),
        error_rate=m.get("errorRate"),
        drift_score=m.get("driftScore"),
        requests=m.get("requests"),
        shadow_agreement=m.get("shadowAgreement"),
        failed_gates=result.failed_gates,
        message=result.message,
        judge=result.judge,
        metrics=dict(result.metrics),
    )
    verdict = result.verdict
    reason = result.message
    if verdict is Verdict.ERROR:
        streak = a.error_streak + 1
        if streak < spec.failure_limit:
            return CountResult(CheckOutcome.HOLD, replace(a, error_streak=streak), verdict, reason)
        reason = f"{streak} metrics errors in a row: {result.message}"
        return _fail(spec, replace(a, error_streak=0), reason)
    a = replace(a, error_streak=0)
    if verdict is Verdict.INCONCLUSIVE and result.accumulating:
        # The judge gathers evidence over the whole step: waiting for it is not a data problem.
        return CountResult(CheckOutcome.HOLD, a, verdict, reason)
    if verdict is Verdict.INCONCLUSIVE:
        inconclusive = a.inconclusive_checks + 1
        a = replace(a, inconclusive_checks=inconclusive)
        if inconclusive >= spec.inconclusive_limit:
            reason = f"{inconclusive} inconclusive checks (limit {spec.inconclusive_limit}): {result.message}"
            return _fail(spec, a, reason)
        if spec.on_inconclusive is OnInconclusive.FAIL:
            return _fail(spec, a, f"inconclusive counted as a failure: {result.message}")
        if spec.on_inconclusive is OnInconclusive.PASS:
            return _advance(a, reason)
        return CountResult(CheckOutcome.HOLD, a, verdict, reason)
    if verdict is Verdict.FAIL:
        return _fail(spec, a, reason)
    return _advance(a, reason)


def _advance(a: AnalysisStatus, reason: str) -> CountResult:
    a = replace(a, passed_checks_in_step=a.passed_checks_in_step + 1)
    return CountResult(CheckOutcome.ADVANCE, a, Verdict.PASS, reason)


def _fail(spec: AnalysisSpec, a: AnalysisStatus, reason: str) -> CountResult:
    failed = a.failed_checks + 1
    a = replace(a, failed_checks=failed)
    outcome = CheckOutcome.ROLLBACK if failed >= spec.failure_limit else CheckOutcome.HOLD
    return CountResult(outcome, a, Verdict.FAIL, reason)

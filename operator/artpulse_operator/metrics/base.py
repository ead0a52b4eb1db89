"""The metrics interface and the one-call gate check the handler uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from artpulse_operator.engine.custom_metrics import MetricResult, MetricSpec, evaluate_metric
from artpulse_operator.engine.gates import combine, evaluate
from artpulse_operator.engine.judge import ArmCounts, JudgeResult, JudgeTest, judge
from artpulse_operator.engine.observations import GateResult, TrackMeasurement
from artpulse_operator.engine.rollout import AnalysisTarget
from artpulse_operator.engine.spec import AnalysisSpec


class MetricsError(Exception):
    """The metrics source could not answer: unreachable, HTTP error or a malformed answer."""


class MetricsSource(Protocol):
    def measure(
        self,
        namespace: str,
        model: str,
        track: str,
        version: str,
        window: float,
        shadow_version: str | None = None,
    ) -> TrackMeasurement:
        """Gate inputs for one track and version over ``window`` seconds.

        ``shadow_version`` narrows the shadow agreement to the candidate being mirrored.

        Raises :class:`MetricsError` when the source cannot be asked.
        """
        ...

    def counts(
        self, namespace: str, model: str, track: str, version: str, since: float
    ) -> ArmCounts:
        """What the track served in the last ``since`` seconds (the judge's input)."""
        ...

    def query(self, expr: str) -> float | None:
        """One PromQL expression reduced to a number (custom metrics)."""
        ...


class _Measures(Protocol):
    """The minimal shape ``run_check`` accepts (sources without shadow support, test fakes)."""

    def measure(
        self, namespace: str, model: str, track: str, version: str, window: float
    ) -> TrackMeasurement | Any: ...


@dataclass(frozen=True)
class CustomQuery:
    """One custom metric ready to ask: its rendered PromQL, or why there is none (a missing
    template, credentials that cannot be used), and the source (None: the analysis')."""

    spec: MetricSpec
    query: str | None
    problem: str | None = None
    source: MetricsSource | None = None


def run_check(
    source: _Measures | MetricsSource,
    analysis: AnalysisSpec,
    namespace: str,
    model: str,
    target: AnalysisTarget,
    custom: Sequence[CustomQuery] = (),
) -> GateResult:
    """Measure ``target`` (and its stable baseline when the ratio gate or the judge needs it)
    and judge it: the threshold gates, the sequential judge, the custom metrics.

    ``custom`` holds each custom metric with its rendered PromQL (or why there is none, e.g. a
    missing template) and the source to ask. Never raises for metrics problems: an
    unreachable source becomes an ``Error`` verdict, which the engine counts (it never
    promotes). Blocking; call it from a thread in async code.
    """
    try:
        if target.shadow_version is not None:
            candidate = cast(MetricsSource, source).measure(
                namespace,
                model,
                target.track,
                target.version,
                target.window,
                shadow_version=target.shadow_version,
            )
        else:
            candidate = source.measure(
                namespace, model, target.track, target.version, target.window
            )
        stable = None
        if (
            analysis.gates.max_p95_ratio_to_stable is not None
            and target.stable_track is not None
            and target.stable_version is not None
            and not target.shadow
        ):
            stable = source.measure(
                namespace, model, target.stable_track, target.stable_version, target.window
            )
        judged = _judge(cast(MetricsSource, source), analysis, namespace, model, target)
    except MetricsError as exc:
        return evaluate(analysis, None, None, str(exc), shadow=target.shadow)
    thresholds = evaluate(analysis, candidate, stable, shadow=target.shadow)
    results = [_custom(c.source or cast(MetricsSource, source), c) for c in custom]
    return combine(thresholds, judged, results)


def judge_applies(analysis: AnalysisSpec, target: AnalysisTarget) -> bool:
    """The judge compares two tracks serving at the same time: not while shadowing, not for a
    Single rollout (its baseline is the previous version on the same track)."""
    return (
        analysis.judge.enabled
        and not target.shadow
        and target.since is not None
        and target.stable_track is not None
        and target.stable_version is not None
        and target.stable_track != target.track
    )


def _judge(
    source: MetricsSource,
    analysis: AnalysisSpec,
    namespace: str,
    model: str,
    target: AnalysisTarget,
) -> JudgeResult | None:
    if not judge_applies(analysis, target):
        return None
    assert target.since is not None
    assert target.stable_track is not None
    assert target.stable_version is not None
    cand = source.counts(namespace, model, target.track, target.version, target.since)
    base = source.counts(namespace, model, target.stable_track, target.stable_version, target.since)
    spec = analysis.judge
    return judge(
        cand,
        base,
        alpha=spec.alpha,
        min_candidate_requests=spec.min_candidate_requests,
        tests=tuple(JudgeTest(t.value) for t in spec.tests),
    )


def _custom(source: MetricsSource, custom: CustomQuery) -> MetricResult:
    if custom.query is None:
        return evaluate_metric(custom.spec, None, custom.problem or "no query")
    try:
        value = source.query(custom.query)
    except MetricsError as exc:
        return evaluate_metric(custom.spec, None, str(exc))
    return evaluate_metric(custom.spec, value, None)

"""The shadow gate measures what it claims (issue 12, behaviour 13).

While shadowing, ``minShadowAgreement`` reads the agreement of the analysis window from the
server's counters, ``agree`` over ``agree|disagree|error`` rows (a candidate that raised
disagrees), and ``minRequests`` counts the rows compared in that window, not the HTTP
requests and not the all-time ``artpulse_shadow_agreement_ratio`` gauge.

``FakePrometheus`` answers the few PromQL shapes of the gate queries from counter samples
over time (``increase`` as the difference over the window, without Prometheus'
extrapolation), so a window that differs from all time shows in the answer.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from artpulse_operator.engine.observations import Verdict
from artpulse_operator.engine.rollout import AnalysisTarget
from artpulse_operator.engine.spec import parse_spec
from artpulse_operator.metrics.base import run_check
from artpulse_operator.metrics.prometheus import PrometheusSource, gate_queries

NOW = 10_000.0
SELECTOR = 'namespace="ml",model="art",track="stable",version="3",shadow_version="4"'
ALL_OUTCOMES = 'outcome=~"agree|disagree|error"'


def test_the_agreement_query_is_a_ratio_of_counters_over_the_window() -> None:
    q = gate_queries("ml", "art", "stable", "3", 90.0, shadow_version="4")
    agree = f'artpulse_shadow_comparisons_total{{{SELECTOR},outcome="agree"}}'
    compared = f"artpulse_shadow_comparisons_total{{{SELECTOR},{ALL_OUTCOMES}}}"
    assert q["shadow_agreement"] == (
        f"(sum(increase({agree}[90s])) or vector(0)) / sum(increase({compared}[90s]))"
    )
    assert q["shadow_compared"] == f"sum(increase({compared}[90s]))"
    assert not any("artpulse_shadow_agreement_ratio" in expr for expr in q.values())


# ---- a fake Prometheus over counter samples ------------------------------------------------

MATCHER = re.compile(r'(\w+)(=~|=)"((?:[^"\\]|\\.)*)"')
INCREASE = re.compile(r"^sum\(increase\((\w+)\{(.*)\}\[(\d+)s\]\)\)$")
GAUGE = re.compile(r"^min\((\w+)\{(.*)\}\)$")
OR_ZERO_RATIO = re.compile(r"^\((.*) or vector\(0\)\) / (.*)$")

Series = tuple[str, dict[str, str], list[tuple[float, float]]]


class FakePrometheus:
    def __init__(self, series: list[Series]) -> None:
        self.series = series
        self.asked: list[str] = []

    def _matching(self, name: str, matchers: str) -> list[list[tuple[float, float]]]:
        wanted = MATCHER.findall(matchers)
        return [
            samples
            for n, labels, samples in self.series
            if n == name
            and all(
                re.fullmatch(v, labels.get(k, "")) if op == "=~" else labels.get(k, "") == v
                for k, op, v in wanted
            )
        ]

    def evaluate(self, expr: str) -> float | None:
        if m := OR_ZERO_RATIO.match(expr):
            top, bottom = self.evaluate(m[1]), self.evaluate(m[2])
            if bottom is None:
                return None
            return (top or 0.0) / bottom if bottom else float("nan")
        if m := INCREASE.match(expr):
            found = self._matching(m[1], m[2])
            if not found:
                return None
            start = NOW - float(m[3])
            return sum(_at(s, NOW) - _at(s, start) for s in found)
        if m := GAUGE.match(expr):
            values = [s[-1][1] for s in self._matching(m[1], m[2])]
            return min(values) if values else None
        return None  # every other gate input: no data

    def handle(self, request: httpx.Request) -> httpx.Response:
        expr = parse_qs(urlsplit(str(request.url)).query)["query"][0]
        self.asked.append(expr)
        value = self.evaluate(expr)
        result: list[dict[str, Any]] = (
            [] if value is None else [{"metric": {}, "value": [NOW, str(value)]}]
        )
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    def source(self) -> PrometheusSource:
        return PrometheusSource(
            "http://prom", client=httpx.Client(transport=httpx.MockTransport(self.handle))
        )


def _at(samples: list[tuple[float, float]], t: float) -> float:
    before = [v for ts, v in samples if ts <= t]
    return before[-1] if before else 0.0


LABELS = {"namespace": "ml", "model": "art", "track": "stable", "version": "3"}


def comparisons(outcome: str, before: float, now: float, shadow_version: str = "4") -> Series:
    """A counter at ``before`` an hour ago (and 5 minutes ago), at ``now`` now."""
    labels = {**LABELS, "shadow_version": shadow_version, "outcome": outcome}
    samples = [(NOW - 3600, before), (NOW - 300, before), (NOW, now)]
    return ("artpulse_shadow_comparisons_total", labels, samples)


def requests(n: float) -> Series:
    labels = {**LABELS, "route": "/predict", "method": "POST", "status": "200"}
    return ("artpulse_http_requests_total", labels, [(NOW - 3600, 0.0), (NOW, n)])


def gauge(value: float) -> Series:
    labels = {**LABELS, "shadow_version": "4"}
    return ("artpulse_shadow_agreement_ratio", labels, [(NOW, value)])


def check(series: list[Series], min_requests: int = 50) -> Any:
    spec = parse_spec(
        {
            "model": {"name": "art"},
            "serving": {"image": "i"},
            "analysis": {
                "window": "5m",
                "minRequests": min_requests,
                "gates": {"minShadowAgreement": 0.9},
            },
        }
    )
    target = AnalysisTarget("stable", "3", 300, shadow=True, shadow_version="4")
    return run_check(FakePrometheus(series).source(), spec.analysis, "ml", "art", target)


def test_the_agreement_of_the_window_not_of_all_time() -> None:
    # 10000 agreeing rows an hour ago, then 60 agree / 40 disagree in the last five minutes:
    # all time says 0.996 (the gauge), the window says 0.6.
    series = [
        comparisons("agree", 10_000, 10_060),
        comparisons("disagree", 0, 40),
        comparisons("error", 0, 0),
        comparisons("agree", 500, 900, shadow_version="9"),  # another candidate's series
        gauge(10_060 / 10_100),
        requests(5000),
    ]
    measured = FakePrometheus(series).source().measure("ml", "art", "stable", "3", 300, "4")
    assert measured.shadow_agreement == pytest.approx(0.6)
    assert measured.shadow_compared == pytest.approx(100)
    result = check(series)
    assert result.verdict is Verdict.FAIL, result.message
    assert result.failed_gates == ("minShadowAgreement",)
    assert result.measured["shadowAgreement"] == pytest.approx(0.6)


def test_candidate_errors_are_disagreement() -> None:
    series = [
        comparisons("agree", 0, 80),
        comparisons("disagree", 0, 0),
        comparisons("error", 0, 20),  # the candidate raised on 20 rows
        requests(100),
    ]
    result = check(series)
    assert result.verdict is Verdict.FAIL, result.message
    assert result.measured["shadowAgreement"] == pytest.approx(0.8)
    # Only errors: agreement 0 (the numerator's "or vector(0)"), a failure, not "no data".
    only_errors = [comparisons("error", 0, 60), requests(60)]
    result = check(only_errors)
    assert result.verdict is Verdict.FAIL, result.message
    assert result.measured["shadowAgreement"] == 0.0


def test_the_minimum_counts_compared_rows_not_requests() -> None:
    # Plenty of requests, few of them mirrored (percent 1, or a full queue): nothing to judge.
    few_rows = [
        comparisons("agree", 0, 10),
        comparisons("disagree", 0, 0),
        comparisons("error", 0, 0),
        requests(5000),
    ]
    result = check(few_rows)
    assert result.verdict is Verdict.INCONCLUSIVE, result.message
    assert "10 compared rows in the window, need at least 50" in result.message
    # Few requests of many rows each (a batch per request): enough rows are compared.
    batches = [
        comparisons("agree", 0, 380),
        comparisons("disagree", 0, 20),
        comparisons("error", 0, 0),
        requests(4),
    ]
    result = check(batches)
    assert result.verdict is Verdict.PASS, result.message
    assert result.measured["shadowCompared"] == 400


def test_no_comparisons_in_the_window_is_inconclusive() -> None:
    # The counters stand still: no compared row in the window, whatever happened before.
    still = [
        (
            "artpulse_shadow_comparisons_total",
            {**LABELS, "shadow_version": "4", "outcome": o},
            [(NOW - 3600, 500.0), (NOW, 500.0)],
        )
        for o in ("agree", "disagree", "error")
    ]
    result = check([*still, gauge(1.0), requests(5000)])
    assert result.verdict is Verdict.INCONCLUSIVE, result.message
    assert result.measured["shadowAgreement"] is None

"""PrometheusSource against a real Prometheus scraping a tiny real exporter.

The exporter is a prometheus_client HTTP server in this process with the inference server's
metric names and labels (model, version, track, route, method, status); Prometheus adds
``namespace`` as a target label, as the local cluster's file_sd targets do.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from artpulse_dev._proc import free_port
from artpulse_operator.engine.custom_metrics import render_query
from artpulse_operator.engine.observations import Verdict
from artpulse_operator.engine.rollout import AnalysisTarget
from artpulse_operator.engine.spec import parse_spec
from artpulse_operator.metrics import CustomQuery, MetricsError, PrometheusSource, run_check
from prometheus_client import start_http_server
from rollout_exporter import InferenceFamilies

pytestmark = pytest.mark.integration


class Exporter(InferenceFamilies):
    """Serves artpulse_* metrics for a stable (fast, clean) and a canary (slow, 10% 5xx) track."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, "127.0.0.1", self.registry)
        self.stop_event = threading.Event()
        self.traffic = threading.Thread(target=self._run, daemon=True)

    def _tick(self) -> None:
        for track, version, latency, errors in (("stable", "3", 0.02, 0), ("canary", "4", 0.2, 1)):
            for _ in range(10):
                self.duration.labels("art", version, track, "/predict", "POST").observe(latency)
            self.requests.labels("art", version, track, "/predict", "POST", "200").inc(10 - errors)
            if errors:
                self.requests.labels("art", version, track, "/predict", "POST", "500").inc(errors)
            # probes are not traffic
            self.requests.labels("art", version, track, "/health", "GET", "200").inc(5)
            # the canary predicts "cat" twice as often as stable (a label-mix shift)
            mix = {"cat": 6, "dog": 4} if track == "canary" else {"cat": 3, "dog": 7}
            for label, n in mix.items():
                self.predictions.labels("art", version, track, label).inc(n)
        # The stable pods mirror 10 rows a tick to version 4: 8 agree, 1 disagrees, 1 errors
        # (the candidate raised), so the window's agreement is 0.8.
        for outcome, n in (("agree", 8), ("disagree", 1), ("error", 1)):
            self.comparisons.labels("art", "3", "stable", "4", outcome).inc(n)
        # a stale candidate that agreed on everything must not count
        self.comparisons.labels("art", "3", "stable", "2", "agree").inc(10)

    def _run(self) -> None:
        while not self.stop_event.wait(0.1):
            self._tick()

    def start(self) -> Exporter:
        self._tick()
        self.drift.labels("art", "4", "canary").set(0.12)
        self.drift.labels("art", "3", "stable").set(0.02)
        # Before the window: 100000 agreeing rows, which the all-time gauge reflects (0.99);
        # the gate reads the window's counters (0.8), never the gauge.
        self.comparisons.labels("art", "3", "stable", "4", "agree").inc(100_000)
        self.agreement.labels("art", "3", "stable", "4").set(0.99)
        self.agreement.labels("art", "3", "stable", "2").set(0.5)
        self.traffic.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.traffic.join(timeout=5)
        self.server.shutdown()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter().start()
    try:
        yield exp
    finally:
        exp.stop()


def wait_for(
    condition: Callable[[], object], timeout: float = 60.0, what: str = "condition"
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_gate_queries_return_real_numbers(prometheus_factory, exporter) -> None:
    namespace = f"ns-{uuid.uuid4().hex[:6]}"
    prom = prometheus_factory(
        targets=[f"127.0.0.1:{exporter.port}"], extra_labels={"namespace": namespace}
    )
    source = PrometheusSource(prom.url, timeout_s=5)

    # rate() needs a few scrapes inside the window.
    def enough() -> bool:
        m = source.measure(namespace, "art", "canary", "4", 30)
        return m.requests is not None and m.requests >= 100 and m.p95_latency_ms is not None

    wait_for(enough, what="three scrapes of the exporter")
    canary = source.measure(namespace, "art", "canary", "4", 30)
    stable = source.measure(namespace, "art", "stable", "3", 30)

    assert canary.p95_latency_ms is not None
    assert 100 < canary.p95_latency_ms <= 250  # all observations in the (0.1, 0.25] bucket
    assert stable.p95_latency_ms is not None
    assert 10 < stable.p95_latency_ms <= 25
    assert canary.error_rate == pytest.approx(0.1, abs=0.03)
    assert stable.error_rate == 0.0  # no 5xx series at all still reads as 0, not "no data"
    assert canary.drift_score == pytest.approx(0.12)
    assert canary.requests is not None
    assert canary.requests >= 100
    assert canary.shadow_agreement is None  # only asked while shadowing
    assert canary.shadow_compared is None
    shadowing = source.measure(namespace, "art", "stable", "3", 30, shadow_version="4")
    assert shadowing.shadow_agreement == pytest.approx(0.8, abs=0.05)  # not the gauge's 0.99
    # 100 rows a second (as many as the canary's requests) over at most 30 s: the window's
    # rows only, not the 100000 before it; enough for minRequests (50) below.
    assert shadowing.shadow_compared is not None
    assert 50 <= shadowing.shadow_compared < 10_000
    nothing = source.measure(namespace, "art", "stable", "3", 30, "9")
    assert (nothing.shadow_agreement, nothing.shadow_compared) == (None, None)
    shadow_check = run_check(
        source,
        parse_spec(
            {
                "model": {"name": "art"},
                "serving": {"image": "x"},
                "analysis": {"window": "30s", "gates": {"minShadowAgreement": 0.95}},
            }
        ).analysis,
        namespace,
        "art",
        AnalysisTarget("stable", "3", 30, shadow=True, shadow_version="4"),
    )
    # the window's 0.8 fails where the all-time gauge's 0.99 would have passed
    assert shadow_check.verdict is Verdict.FAIL, shadow_check.message
    assert shadow_check.failed_gates == ("minShadowAgreement",)
    assert shadow_check.measured["shadowAgreement"] == pytest.approx(0.8, abs=0.05)
    # another namespace, version or model sees nothing
    other = source.measure("elsewhere", "art", "canary", "4", 30)
    assert (other.requests, other.p95_latency_ms, other.drift_score) == (None, None, None)
    assert source.measure(namespace, "art", "canary", "99", 30).requests is None

    # The whole check as the handler runs it: the slow, erroring canary fails two gates.
    spec = parse_spec(
        {
            "model": {"name": "art"},
            "serving": {"image": "x"},
            "analysis": {
                "window": "30s",
                "minRequests": 50,
                "gates": {"p95LatencyMs": 90, "maxErrorRate": 0.05, "maxP95RatioToStable": 2},
            },
        }
    )
    target = AnalysisTarget("canary", "4", 30, "stable", "3")
    result = run_check(source, spec.analysis, namespace, "art", target)
    assert result.verdict is Verdict.FAIL
    assert set(result.failed_gates) == {"p95LatencyMs", "maxErrorRate", "maxP95RatioToStable"}
    assert result.measured["stableP95LatencyMs"] is not None
    good = run_check(source, spec.analysis, namespace, "art", AnalysisTarget("stable", "3", 30))
    assert good.verdict is Verdict.PASS, good.message
    source.close()


def test_judge_counts_and_custom_metrics_against_real_prometheus(
    prometheus_factory, exporter
) -> None:
    """The judge's counts since the step began and the custom metrics, from a real Prometheus:
    the slow, erroring canary with a shifted label mix fails the judge on all three tests,
    the deciding custom metric passes, the failing dry-run one is recorded and never decides."""
    namespace = f"ns-{uuid.uuid4().hex[:6]}"
    prom = prometheus_factory(
        targets=[f"127.0.0.1:{exporter.port}"], extra_labels={"namespace": namespace}
    )
    source = PrometheusSource(prom.url, timeout_s=5)
    wait_for(
        lambda: source.counts(namespace, "art", "canary", "4", 60).requests >= 200,
        what="a few scrapes of the exporter",
    )
    canary = source.counts(namespace, "art", "canary", "4", 60)
    stable = source.counts(namespace, "art", "stable", "3", 60)
    assert canary.errors / canary.requests == pytest.approx(0.1, abs=0.03)
    assert stable.errors == 0.0
    assert canary.latency_buckets[0.25] > 0  # all canary observations are <= 0.25 s ...
    assert canary.latency_buckets[0.1] == 0.0  # ... and none below 0.1 s
    assert canary.latency_buckets[float("inf")] == pytest.approx(canary.latency_buckets[0.25])
    assert set(canary.labels) == {"cat", "dog"}
    assert canary.labels["cat"] > canary.labels["dog"]
    assert stable.labels["cat"] < stable.labels["dog"]
    assert source.counts("elsewhere", "art", "canary", "4", 60).requests == 0.0

    error_rate = (
        '(sum(rate(artpulse_http_requests_total{namespace="{{namespace}}",track="{{track}}",'
        'version="{{version}}",status=~"5.."}[{{window}}])) or vector(0)) / '
        'sum(rate(artpulse_http_requests_total{namespace="{{namespace}}",track="{{track}}",'
        'version="{{version}}"}[{{window}}]))'
    )
    spec = parse_spec(
        {
            "model": {"name": "art"},
            "serving": {"image": "x"},
            "analysis": {
                "window": "30s",
                "gates": {"maxErrorRate": 0.5},  # the thresholds alone would let it pass
                "judge": {"enabled": True, "alpha": 0.01},
                "metrics": [
                    {"name": "errors", "query": error_rate, "successCondition": "result < 0.5"},
                    {
                        "name": "strict-dry-run",
                        "query": error_rate,
                        "successCondition": "result < 0.001",
                        "dryRun": True,
                    },
                ],
            },
        }
    )
    target = AnalysisTarget("canary", "4", 30, "stable", "3", since=60)
    custom = [
        CustomQuery(
            m,
            render_query(
                m.query or "", namespace=namespace, name="art", track="canary", version="4",
                window=30,
            ),
        )
        for m in spec.analysis.metrics
    ]  # fmt: skip
    result = run_check(source, spec.analysis, namespace, "art", target, custom)
    assert result.verdict is Verdict.FAIL, result.message
    assert result.failed_gates == ("judge",)
    assert result.judge is not None
    for test in ("errors", "latency", "labels"):
        evidence = result.judge["tests"][test]
        assert evidence["rejected"], (test, evidence)
        assert evidence["regression"], (test, evidence)
    assert result.metrics["errors"]["verdict"] == "Pass"
    # The user's query has no route filter: the /health probes count too, 1 in 15 fail.
    assert result.metrics["errors"]["value"] == pytest.approx(1 / 15, abs=0.02)
    assert result.metrics["strict-dry-run"] == {
        **result.metrics["strict-dry-run"],
        "verdict": "Fail",
        "dryRun": True,
    }
    # Roles swapped: the faster, clean track is not a regression in errors or latency (the
    # difference is rejected, in the good direction); any label-mix shift is one.
    swapped = run_check(
        source, spec.analysis, namespace, "art",
        AnalysisTarget("stable", "3", 30, "canary", "4", since=60),
    )  # fmt: skip
    assert swapped.judge is not None
    tests = swapped.judge["tests"]
    assert (tests["errors"]["rejected"], tests["errors"]["regression"]) == (True, False)
    assert (tests["latency"]["rejected"], tests["latency"]["regression"]) == (True, False)
    assert tests["labels"]["regression"] is True
    source.close()


def test_prometheus_unreachable_is_metrics_error_and_error_verdict() -> None:
    source = PrometheusSource("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(MetricsError, match=r"127\.0\.0\.1:9"):
        source.measure("ns", "art", "canary", "4", 60)
    spec = parse_spec({"model": {"name": "art"}, "serving": {"image": "x"}})
    result = run_check(source, spec.analysis, "ns", "art", AnalysisTarget("canary", "4", 60))
    assert result.verdict is Verdict.ERROR
    assert "127.0.0.1:9" in result.message


def test_bad_query_and_non_prometheus_answers_are_metrics_errors(
    prometheus_factory, exporter
) -> None:
    prom = prometheus_factory()
    source = PrometheusSource(prom.url)
    with pytest.raises(MetricsError, match="HTTP 400"):
        source.query("sum(")
    # The exporter answers every path with metrics text: not the Prometheus API.
    not_prometheus = PrometheusSource(f"http://127.0.0.1:{exporter.port}")
    with pytest.raises(MetricsError):
        not_prometheus.query("up")

"""The dashboard's PromQL is the operator's: ``kubectl_artpulse.promql`` (a copy, the plugin
cannot import the operator) held against ``artpulse_operator.metrics.prometheus``; and where
Prometheus is reached, through the API server's service proxy."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from artpulse_operator.engine.spec_reader import format_duration
from artpulse_operator.metrics import operator as operator_metrics
from artpulse_operator.metrics import prometheus as operator_prometheus
from kubectl_artpulse import promql
from kubectl_artpulse.promql import ServiceRef, parse_service, prometheus_service

QUERY_INPUTS = [
    ("ml", "artpulse-classifier", "canary", "4", 60.0, None),
    ("ml", "artpulse-classifier", "stable", "3", 90.0, "4"),
    ("team-a", "m", "blue", "12", 0.25, None),
    ("ns", 'we"ird\\name\n', "green", '1"0', 3600.0, 'x"y'),  # label values are escaped
]


@pytest.mark.parametrize("args", QUERY_INPUTS)
def test_the_gate_queries_are_the_operators(args: tuple) -> None:  # type: ignore[type-arg]
    assert promql.gate_queries(*args) == operator_prometheus.gate_queries(*args)


def test_the_routes_duration_and_weight_metric_are_the_operators() -> None:
    assert promql.PREDICT_ROUTES == operator_prometheus.PREDICT_ROUTES
    for seconds in (0.25, 1, 1.5, 10, 60, 90, 3600):
        assert promql.format_duration(seconds) == format_duration(seconds)
    assert promql.WEIGHT_METRIC == operator_metrics.WEIGHT_METRIC
    assert promql.weight_query("ml", "m") == (
        'max(artpulse_operator_canary_weight{namespace="ml",name="m"})'
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("http://prometheus.monitoring:9090", ServiceRef("monitoring", "prometheus", "9090")),
        ("http://prometheus.monitoring.svc:9090", ServiceRef("monitoring", "prometheus", "9090")),
        (
            "https://prom.obs.svc.cluster.local/prefix/",
            ServiceRef("obs", "prom", "443", "https", "/prefix"),
        ),
        ("http://prometheus:9090", ServiceRef("ml", "prometheus", "9090")),  # the model's ns
        ("https://prometheus.example.com", None),  # not a Service: the API server cannot proxy
        ("http://10.0.0.7:9090", None),
    ],
)
def test_the_models_address_as_a_service(address: str, expected: ServiceRef | None) -> None:
    spec = {"analysis": {"prometheus": {"address": address}}}
    found, note = prometheus_service(spec, "ml", None)
    assert found == expected
    assert bool(note) == (expected is None)


def test_the_default_and_the_flag() -> None:
    assert prometheus_service({}, "ml", None) == (
        ServiceRef("artpulse-system", "prometheus", "9090"),
        "",
    )  # the operator's ARTPULSE_PROMETHEUS_URL in manifests/base/operator.yaml
    override = parse_service("obs/thanos-query:http")
    spec = {"analysis": {"prometheus": {"address": "https://elsewhere.example.com"}}}
    assert prometheus_service(spec, "ml", override) == (override, "")
    assert parse_service("obs/prom") == ServiceRef("obs", "prom", "9090")
    for bad in ("prom:9090", "obs/Prom:9090", "obs/prom:99999x", "../x:1"):
        with pytest.raises(ValueError):
            parse_service(bad)


def test_a_range_query_goes_through_the_service_proxy() -> None:
    path = promql.query_range_path(
        ServiceRef("obs", "prom", "9090", "https", "/p"), 'up{a="b"}', 100.0, 200.0, 10.0
    )
    url = urlsplit(path)
    assert url.path == "/api/v1/namespaces/obs/services/https:prom:9090/proxy/p/api/v1/query_range"
    assert parse_qs(url.query) == {
        "query": ['up{a="b"}'],
        "start": ["100.000"],
        "end": ["200.000"],
        "step": ["10"],
    }

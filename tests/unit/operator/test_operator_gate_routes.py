"""The default gate queries count every authenticated production route, and only those.

``/predict``, ``/predict-image`` and the Open Inference Protocol's infer (the REST route
templates the server labels its requests with, and the gRPC method) are traffic; the
public demo, probes (ours and the protocol's), metadata and unmatched paths are not.
Prometheus anchors a ``=~`` regex at both ends, as ``re.fullmatch`` does.
"""

from __future__ import annotations

import re

import pytest
from artpulse_operator.metrics.prometheus import gate_queries

ROUTE_MATCHER = re.compile(r'route=~"((?:[^"\\]|\\.)*)"')

COUNTED = [
    "/predict",
    "/predict-image",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/inference.GRPCInferenceService/ModelInfer",
]
NOT_COUNTED = [
    "/demo/predict",
    "/health",
    "/ready",
    "/metadata",
    "/metrics",
    "/v2",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}",
    "/inference.GRPCInferenceService/ModelReady",
    "/inference.GRPCInferenceService/ServerLive",
    "unmatched",
]


def route_regexes() -> dict[str, list[str]]:
    queries = gate_queries("ns", "clf", "canary", "5", 60.0)
    return {
        gate: ROUTE_MATCHER.findall(queries[gate])
        for gate in ("requests", "error_rate", "p95_latency_ms")
    }


@pytest.mark.parametrize("route", COUNTED)
def test_every_production_route_is_in_every_request_selector(route: str) -> None:
    for gate, regexes in route_regexes().items():
        assert regexes, gate
        for regex in regexes:
            assert re.fullmatch(regex, route), (gate, regex, route)


@pytest.mark.parametrize("route", NOT_COUNTED)
def test_demo_probes_and_metadata_are_not_traffic(route: str) -> None:
    for gate, regexes in route_regexes().items():
        for regex in regexes:
            assert not re.fullmatch(regex, route), (gate, regex, route)

"""Prometheus adapter: the default gate queries of DESIGN.md section 3 over the HTTP API.

For one namespace, model, track and version over the analysis window ``w``:

- p95 ms: ``1000 * histogram_quantile(0.95, sum by (le) (rate(<duration>_bucket{sel}[w])))``
- error rate: 5xx requests over all requests (``or vector(0)`` on the 5xx side, so a clean
  version reads 0 instead of "no data")
- drift: ``max(artpulse_drift_score{sel})``
- requests: ``sum(increase(artpulse_http_requests_total{sel}[w]))``
- shadow agreement (while shadowing): ``min(artpulse_shadow_agreement_ratio{sel,shadow_version="c"})``
  as exported by the stable pods that mirror requests to candidate ``c``

Request selectors add ``route=~"<PREDICT_ROUTES>"`` (``/predict``, ``/predict-image`` and
the Open Inference Protocol's infer, REST and gRPC) so health probes, the landing
page and the public demo do not count as traffic (nor do refused requests, which the
server counts in a series of their own). An empty result or NaN is ``None`` (no data); transport errors, HTTP
errors and malformed answers raise :class:`MetricsError`.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from artpulse_operator.credentials.http import client_options
from artpulse_operator.engine.credentials import HttpAuth
from artpulse_operator.engine.observations import TrackMeasurement
from artpulse_operator.engine.spec import format_duration
from artpulse_operator.metrics.base import MetricsError

# Exactly the authenticated production routes: /predict, /predict-image and the Open
# Inference Protocol's infer (REST route templates, and the gRPC method). The public demo
# (/demo/predict) has its own route label, and refused requests (401/403/429) are not in
# these series at all (they go to artpulse_http_refused_requests_total), so anonymous
# traffic cannot move a gate.
PREDICT_ROUTES = (
    "/predict|/predict-image"
    "|/v2/models/[^/]+/infer|/v2/models/[^/]+/versions/[^/]+/infer"
    "|/inference.GRPCInferenceService/ModelInfer"
)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _selector(namespace: str, model: str, track: str, version: str, *extra: str) -> str:
    labels = [
        f'namespace="{_label_value(namespace)}"',
        f'model="{_label_value(model)}"',
        f'track="{_label_value(track)}"',
        f'version="{_label_value(version)}"',
        *extra,
    ]
    return "{" + ",".join(labels) + "}"


def gate_queries(
    namespace: str,
    model: str,
    track: str,
    version: str,
    window: float,
    shadow_version: str | None = None,
) -> dict[str, str]:
    """The PromQL of every gate input (keys: TrackMeasurement field names)."""
    w = format_duration(window)
    route = f'route=~"{PREDICT_ROUTES}"'
    req = _selector(namespace, model, track, version, route)
    errors = _selector(namespace, model, track, version, route, 'status=~"5.."')
    plain = _selector(namespace, model, track, version)
    shadow_extra = [f'shadow_version="{_label_value(shadow_version)}"'] if shadow_version else []
    shadow = _selector(namespace, model, track, version, *shadow_extra)
    return {
        "p95_latency_ms": (
            "1000 * histogram_quantile(0.95, sum by (le) "
            f"(rate(artpulse_http_request_duration_seconds_bucket{req}[{w}])))"
        ),
        "error_rate": (
            f"(sum(rate(artpulse_http_requests_total{errors}[{w}])) or vector(0))"
            f" / sum(rate(artpulse_http_requests_total{req}[{w}]))"
        ),
        "drift_score": f"max(artpulse_drift_score{plain})",
        "requests": f"sum(increase(artpulse_http_requests_total{req}[{w}]))",
        "shadow_agreement": f"min(artpulse_shadow_agreement_ratio{shadow})",
    }


class PrometheusSource:
    """Instant queries against ``address`` (``http://prometheus.monitoring:9090``).

    ``auth`` carries what managed Prometheus, Thanos and Mimir ask for: a bearer token or basic
    auth, a CA bundle and a client certificate, the ``X-Scope-OrgID`` tenant header. It is
    chosen for this address by ``credentials.resolver``; nothing is read from the environment.
    """

    def __init__(
        self,
        address: str,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        auth: HttpAuth | None = None,
    ):
        self.address = address.rstrip("/")
        self.timeout_s = timeout_s
        self._client = client or httpx.Client(timeout=timeout_s, **client_options(auth))

    def close(self) -> None:
        self._client.close()

    def query(self, expr: str) -> float | None:
        """One instant query reduced to a number: ``None`` for an empty vector or NaN."""
        url = f"{self.address}/api/v1/query"
        try:
            response = self._client.get(url, params={"query": expr})
        except httpx.HTTPError as exc:
            raise MetricsError(
                f"Prometheus at {self.address}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("error") if isinstance(body, dict) else response.text[:200]
            raise MetricsError(
                f"Prometheus at {self.address}: HTTP {response.status_code}: {detail}"
            )
        if body.get("status") != "success":
            raise MetricsError(f"Prometheus at {self.address}: {body.get('error', body)}")
        return _scalar(body.get("data"), self.address)

    def measure(
        self,
        namespace: str,
        model: str,
        track: str,
        version: str,
        window: float,
        shadow_version: str | None = None,
    ) -> TrackMeasurement:
        queries = gate_queries(namespace, model, track, version, window, shadow_version)
        if shadow_version is None:
            del queries["shadow_agreement"]  # only asked while shadowing
        values = {key: self.query(expr) for key, expr in queries.items()}
        return TrackMeasurement(**values)


def _scalar(data: Any, address: str) -> float | None:
    if not isinstance(data, dict) or "result" not in data:
        raise MetricsError(f"Prometheus at {address}: malformed answer: {str(data)[:200]}")
    kind = data.get("resultType")
    result = data["result"]
    try:
        if kind == "scalar":
            raw = result[1]
        elif kind == "vector":
            if not result:
                return None
            raw = result[0]["value"][1]
        else:
            raise MetricsError(f"Prometheus at {address}: unexpected result type {kind!r}")
        value = float(raw)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricsError(f"Prometheus at {address}: malformed sample: {exc}") from exc
    return None if math.isnan(value) or math.isinf(value) else value

"""Prometheus adapter: the default gate queries of DESIGN.md section 3 over the HTTP API.

For one namespace, model, track and version over the analysis window ``w``:

- p95 ms: ``1000 * histogram_quantile(0.95, sum by (le) (rate(<duration>_bucket{sel}[w])))``
- error rate: 5xx requests over all requests (``or vector(0)`` on the 5xx side, so a clean
  version reads 0 instead of "no data")
- drift: ``max(artpulse_drift_score{sel})``
- requests: ``sum(increase(artpulse_http_requests_total{sel}[w]))``
- shadow agreement (while shadowing), over the window, from the rows the stable pods that
  mirror requests to candidate ``c`` compared: ``(sum(increase(artpulse_shadow_comparisons_total
  {sel,shadow_version="c",outcome="agree"}[w])) or vector(0)) / sum(increase(
  artpulse_shadow_comparisons_total{sel,shadow_version="c",outcome=~"agree|disagree|error"}[w]))``
  (rows the candidate failed on, ``error``, disagree; only errors reads 0, not "no data")
- shadow compared rows (``minRequests`` while shadowing): the denominator above

For the sequential judge (``engine.judge``), counts accumulated since the step began (range
``r``, the step's age), per track: requests and 5xx as ``sum(increase(...[r]))``, the latency
histogram as ``sum by (le) (increase(<duration>_bucket{sel}[r]))`` and the predicted-label mix
as ``sum by (label) (increase(artpulse_predictions_total{sel}[r]))``.

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
from artpulse_operator.engine.judge import ArmCounts
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
# Every outcome of a compared row (the server's ``shadow.OUTCOMES``).
SHADOW_COMPARED = 'outcome=~"agree|disagree|error"'


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
    agreed = _selector(namespace, model, track, version, *shadow_extra, 'outcome="agree"')
    compared = _selector(namespace, model, track, version, *shadow_extra, SHADOW_COMPARED)
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
        # Rows, per outcome, over the window: a candidate that raised ("error") disagrees.
        "shadow_agreement": (
            f"(sum(increase(artpulse_shadow_comparisons_total{agreed}[{w}])) or vector(0))"
            f" / sum(increase(artpulse_shadow_comparisons_total{compared}[{w}]))"
        ),
        "shadow_compared": f"sum(increase(artpulse_shadow_comparisons_total{compared}[{w}]))",
    }


def judge_queries(
    namespace: str, model: str, track: str, version: str, since: float
) -> dict[str, str]:
    """The PromQL of the judge's counts for one track (keys: ArmCounts field names)."""
    r = format_duration(max(1.0, round(since)))
    route = f'route=~"{PREDICT_ROUTES}"'
    req = _selector(namespace, model, track, version, route)
    errors = _selector(namespace, model, track, version, route, 'status=~"5.."')
    plain = _selector(namespace, model, track, version)
    return {
        "requests": f"sum(increase(artpulse_http_requests_total{req}[{r}]))",
        "errors": f"sum(increase(artpulse_http_requests_total{errors}[{r}]))",
        "latency_buckets": (
            f"sum by (le) (increase(artpulse_http_request_duration_seconds_bucket{req}[{r}]))"
        ),
        "labels": f"sum by (label) (increase(artpulse_predictions_total{plain}[{r}]))",
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
        return _scalar(self._get(url, expr).get("data"), self.address)

    def _get(self, url: str, expr: str) -> dict[str, Any]:
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
        return body

    def query_by(self, expr: str, label: str) -> dict[str, float]:
        """One instant query reduced to ``{value of label: number}`` (NaN and inf dropped)."""
        url = f"{self.address}/api/v1/query"
        body = self._get(url, expr)
        return _by_label(body.get("data"), label, self.address)

    def counts(
        self, namespace: str, model: str, track: str, version: str, since: float
    ) -> ArmCounts:
        """What one track served since ``since`` seconds ago, for the judge."""
        q = judge_queries(namespace, model, track, version, since)
        buckets: dict[float, float] = {}
        for le, value in self.query_by(q["latency_buckets"], "le").items():
            try:
                buckets[float(le)] = value  # "+Inf" parses to inf
            except ValueError:
                continue  # not a bucket bound: ignore rather than guess
        return ArmCounts(
            requests=self.query(q["requests"]) or 0.0,
            errors=self.query(q["errors"]) or 0.0,
            latency_buckets=buckets,
            labels=self.query_by(q["labels"], "label"),
        )

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
        if shadow_version is None:  # only asked while shadowing
            del queries["shadow_agreement"], queries["shadow_compared"]
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


def _by_label(data: Any, label: str, address: str) -> dict[str, float]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise MetricsError(f"Prometheus at {address}: expected a vector: {str(data)[:200]}")
    out: dict[str, float] = {}
    try:
        for sample in data.get("result") or ():
            key = str((sample.get("metric") or {}).get(label, ""))
            value = float(sample["value"][1])
            if not (math.isnan(value) or math.isinf(value)):
                out[key] = out.get(key, 0.0) + value
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise MetricsError(f"Prometheus at {address}: malformed sample: {exc}") from exc
    return out

"""The PromQL the dashboard plots, and how it reaches Prometheus: through the API server.

The queries are the operator's gate queries (``artpulse_operator.metrics.prometheus.
gate_queries``), copied because the plugin cannot import the operator; ``tests/unit/plugin/
test_plugin_dashboard_promql.py`` holds the copy against the original for a table of inputs.
The dashboard asks them as range queries, so the plot shows exactly what the gates saw.

Prometheus is asked through the API server's service proxy with the user's kubeconfig
(``kubectl get --raw /api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/api/v1/query_range``),
so no port-forward, no extra credential, and the user's RBAC (``services/proxy``) decides.
Which service: ``--prometheus ns/svc:port``, else the model's ``spec.analysis.prometheus.
address`` when it is an in-cluster service URL, else the operator's default
(``artpulse-system/prometheus:9090``, manifests/base/operator.yaml). Pure; who calls it:
``kubectl_artpulse.dashboard``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

__all__ = [
    "DEFAULT_PROMETHEUS",
    "PREDICT_ROUTES",
    "WEIGHT_METRIC",
    "ServiceRef",
    "format_duration",
    "gate_queries",
    "parse_service",
    "prometheus_service",
    "query_range_path",
    "weight_query",
]

# Copied from artpulse_operator.metrics.prometheus (the contract test compares them).
PREDICT_ROUTES = (
    "/predict|/predict-image"
    "|/v2/models/[^/]+/infer|/v2/models/[^/]+/versions/[^/]+/infer"
    "|/inference.GRPCInferenceService/ModelInfer"
)
SHADOW_COMPARED = 'outcome=~"agree|disagree|error"'
# The operator's own series of status.canaryWeight (artpulse_operator.metrics.operator).
WEIGHT_METRIC = "artpulse_operator_canary_weight"


def format_duration(seconds: float) -> str:
    """As ``engine.spec_reader.format_duration``: ``90`` -> ``90s``, ``0.25`` -> ``250ms``."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


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
    """The PromQL of every gate input, exactly as the operator asks it (keys: its names)."""
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


def weight_query(namespace: str, name: str) -> str:
    """The canary weight the operator set, as it exports it."""
    return (
        f'max({WEIGHT_METRIC}{{namespace="{_label_value(namespace)}",name="{_label_value(name)}"}})'
    )


# --- where Prometheus is ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRef:
    """A Service the API server can proxy to: ``namespace/name:port`` (``https`` when TLS)."""

    namespace: str
    name: str
    port: str
    scheme: str = "http"
    path: str = ""  # a prefix Prometheus is served under (--web.route-prefix)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"

    def proxy_base(self) -> str:
        scheme = "https:" if self.scheme == "https" else ""
        return (
            f"/api/v1/namespaces/{self.namespace}/services/{scheme}{self.name}:{self.port}"
            f"/proxy{self.path}"
        )


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT = re.compile(r"^[0-9]{1,5}$|^[a-z]([-a-z0-9]*[a-z0-9])?$")
DEFAULT_PROMETHEUS = "artpulse-system/prometheus:9090"


def parse_service(text: str) -> ServiceRef:
    """``ns/svc:port`` (the ``--prometheus`` flag); ``ns/svc`` means port 9090."""
    where, _, port = text.strip().partition(":")
    namespace, slash, name = where.partition("/")
    port = port or "9090"
    if not slash or not _DNS_LABEL.match(namespace) or not _DNS_LABEL.match(name):
        raise ValueError(f"expected NAMESPACE/SERVICE:PORT, e.g. {DEFAULT_PROMETHEUS}: {text!r}")
    if not _PORT.match(port):
        raise ValueError(f"not a port: {port!r}")
    return ServiceRef(namespace, name, port)


def _from_address(address: str, model_namespace: str) -> ServiceRef | None:
    """An in-cluster Service URL (``http://prometheus.monitoring.svc:9090``) as a ServiceRef;
    None for anything else (an external URL the API server cannot proxy to)."""
    try:
        url = urlsplit(address)
        port = url.port
    except ValueError:
        return None
    host = (url.hostname or "").lower()
    if url.scheme not in ("http", "https") or not host:
        return None
    parts = host.split(".")
    for suffix in (["svc", "cluster", "local"], ["svc"]):
        if len(parts) > len(suffix) and parts[-len(suffix) :] == suffix:
            parts = parts[: -len(suffix)]
            break
    else:
        if len(parts) > 2:  # a DNS name outside the cluster
            return None
    if len(parts) == 1:
        parts.append(model_namespace)
    if len(parts) != 2 or not all(_DNS_LABEL.match(p) for p in parts):
        return None
    default_port = 443 if url.scheme == "https" else 80
    return ServiceRef(
        parts[1], parts[0], str(port or default_port), url.scheme, url.path.rstrip("/")
    )


def prometheus_service(
    spec: Mapping[str, Any], model_namespace: str, override: ServiceRef | None
) -> tuple[ServiceRef | None, str]:
    """Which Service to proxy to, and a note when the model's address cannot be proxied."""
    if override is not None:
        return override, ""
    analysis = spec.get("analysis") if isinstance(spec.get("analysis"), Mapping) else {}
    prometheus = analysis.get("prometheus") if isinstance(analysis, Mapping) else None
    address = prometheus.get("address") if isinstance(prometheus, Mapping) else None
    if not address:
        return parse_service(DEFAULT_PROMETHEUS), ""
    found = _from_address(str(address), model_namespace)
    if found is None:
        return None, (
            f"the model's Prometheus {address} is not a Service of this cluster; "
            "give one with --prometheus NAMESPACE/SERVICE:PORT"
        )
    return found, ""


def query_range_path(service: ServiceRef, query: str, start: float, end: float, step: float) -> str:
    """The ``kubectl get --raw`` path of one range query through the service proxy."""
    params = urlencode(
        {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    )
    return f"{service.proxy_base()}/api/v1/query_range?{params}"

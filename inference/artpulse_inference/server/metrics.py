"""Prometheus metrics of the inference server (DESIGN.md section 3).

Built by ``app.create_app`` into a registry of its own (so several apps can live in one
test process) and exposed on ``/metrics``. Request metrics carry ``model``, ``version``
and ``track``; the server never exports ``namespace`` (Prometheus adds it from service
discovery or the file_sd target labels, see INTERFACES.md).

The request path calls :meth:`ServerMetrics.observe_request` once per served request (or
:meth:`ServerMetrics.observe_refused` for a 401/403/429, which the gates must not read);
label children are cached so the hot path is a dict lookup plus the observation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

MODEL_LABELS = ("model", "version", "track")

# The *_created series double the scrape size and no query of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class ServerMetrics:
    def __init__(self, buckets: Iterable[float], track: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.track = track
        buckets = tuple(buckets)
        self.requests_total = Counter(
            "artpulse_http_requests_total",
            "HTTP requests by route, method and status code.",
            [*MODEL_LABELS, "route", "method", "status"],
            registry=self.registry,
        )
        # Refused before serving (401/403/429): attack and misconfiguration volume, kept out
        # of the two series above so the gates' error rate and p95 see served traffic only.
        self.refused_total = Counter(
            "artpulse_http_refused_requests_total",
            "Requests refused by authentication or a rate limit (401, 403, 429).",
            [*MODEL_LABELS, "route", "method", "status"],
            registry=self.registry,
        )
        self.auth_failures_total = Counter(
            "artpulse_auth_failures_total",
            "Failed or throttled credential checks by route family, scheme and reason "
            "(missing_credential, invalid_credential, forbidden, throttled).",
            ["family", "scheme", "reason"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "artpulse_http_request_duration_seconds",
            "Wall time from request start to the last response byte.",
            [*MODEL_LABELS, "route", "method"],
            buckets=buckets,
            registry=self.registry,
        )
        self.inference_duration = Histogram(
            "artpulse_inference_duration_seconds",
            "Time inside the model per model call (one call may serve a micro-batch of requests).",
            list(MODEL_LABELS),
            buckets=buckets,
            registry=self.registry,
        )
        self.predictions_total = Counter(
            "artpulse_predictions_total",
            "Predicted rows by label.",
            [*MODEL_LABELS, "label"],
            registry=self.registry,
        )
        self.drift_score = Gauge(
            "artpulse_drift_score",
            "Drift of recent inputs against the training baseline "
            "(mean of the top quarter of per-feature PSI, core.drift.drift_score).",
            list(MODEL_LABELS),
            registry=self.registry,
        )
        self.feature_psi = Gauge(
            "artpulse_feature_drift_psi",
            "Population Stability Index of one feature over the recent-input window.",
            [*MODEL_LABELS, "feature"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "artpulse_model_info",
            "The model this process serves (value 1).",
            [*MODEL_LABELS, "alias", "run_id", "uri", "role"],
            registry=self.registry,
        )
        self.shadow_agreement = Gauge(
            "artpulse_shadow_agreement_ratio",
            "Share of mirrored rows where the shadow model agreed with the served one, since it "
            "was loaded (rows it failed on count as disagreement).",
            [*MODEL_LABELS, "shadow_version"],
            registry=self.registry,
        )
        self.shadow_comparisons = Counter(
            "artpulse_shadow_comparisons_total",
            "Rows compared between the served and the shadow model, by outcome "
            "(agree, disagree, error: the shadow model failed on the row's batch).",
            [*MODEL_LABELS, "shadow_version", "outcome"],
            registry=self.registry,
        )
        self.shadow_errors = Counter(
            "artpulse_shadow_errors_total",
            "Shadow model calls that failed, by cause (exception class, MissingFeatures, "
            "WrongRowCount; at most 20 distinct, then other).",
            [*MODEL_LABELS, "shadow_version", "exception"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, ...], tuple[object, object]] = {}
        self._info_labels: dict[str, tuple[str, ...]] = {}

    def observe_request(
        self, model: str, version: str, route: str, method: str, status: int, seconds: float
    ) -> None:
        key = (model, version, route, method, str(status))
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests_total.labels(model, version, self.track, route, method, str(status)),
                self.request_duration.labels(model, version, self.track, route, method),
            )
            if len(self._request_children) < 10_000:
                self._request_children[key] = children
        counter, histogram = children
        counter.inc()  # type: ignore[attr-defined]
        histogram.observe(seconds)  # type: ignore[attr-defined]

    def observe_refused(
        self, model: str, version: str, route: str, method: str, status: int
    ) -> None:
        self.refused_total.labels(model, version, self.track, route, method, str(status)).inc()

    def set_model_info(
        self, role: str, model: str, version: str, alias: str, run_id: str, uri: str
    ) -> None:
        old = self._info_labels.pop(role, None)
        if old is not None:
            _remove(self.model_info, old)
        labels = (model, version, self.track, alias, run_id, uri, role)
        self.model_info.labels(*labels).set(1)
        self._info_labels[role] = labels

    def clear_model_info(self, role: str) -> None:
        old = self._info_labels.pop(role, None)
        if old is not None:
            _remove(self.model_info, old)

    def set_drift(self, model: str, version: str, score: float, psi: Mapping[str, float]) -> None:
        self.drift_score.labels(model, version, self.track).set(score)
        for feature, value in psi.items():
            self.feature_psi.labels(model, version, self.track, feature).set(value)

    def clear_drift(self) -> None:
        self.drift_score.clear()
        self.feature_psi.clear()


def _remove(metric: MetricWrapperBase, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)

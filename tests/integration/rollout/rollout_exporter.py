"""A tiny real metrics endpoint in the inference server's format, with controllable behaviour.

Used by the rollout integration tests in place of the full inference server (which comes in
the e2e tests): a prometheus_client HTTP server exporting ``artpulse_http_requests_total``,
``artpulse_http_request_duration_seconds``, ``artpulse_drift_score``,
``artpulse_shadow_agreement_ratio`` and ``artpulse_shadow_comparisons_total`` with the
``model``, ``version``, ``track``, ``route``, ``method``, ``status`` (and ``shadow_version``,
``outcome``) labels. Prometheus adds ``namespace`` as a target label.
A background thread records ``rps`` requests per second per configured (track, version).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from artpulse_dev._proc import free_port
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TICK_S = 0.1


@dataclass
class Behaviour:
    latency_s: float = 0.02
    error_fraction: float = 0.0
    rps: float = 100.0
    drift: float = 0.02


class InferenceFamilies:
    """The inference server's request, latency, drift and shadow metric families, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "artpulse_http_requests",
            "requests",
            ["model", "version", "track", "route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "artpulse_http_request_duration_seconds",
            "latency",
            ["model", "version", "track", "route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.drift = Gauge(
            "artpulse_drift_score", "drift", ["model", "version", "track"], registry=self.registry
        )
        self.predictions = Counter(
            "artpulse_predictions",
            "predicted rows by label",
            ["model", "version", "track", "label"],
            registry=self.registry,
        )
        self.agreement = Gauge(
            "artpulse_shadow_agreement_ratio",
            "shadow agreement",
            ["model", "version", "track", "shadow_version"],
            registry=self.registry,
        )
        self.comparisons = Counter(
            "artpulse_shadow_comparisons",
            "compared rows by outcome",
            ["model", "version", "track", "shadow_version", "outcome"],
            registry=self.registry,
        )


class Exporter(InferenceFamilies):
    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.behaviours: dict[tuple[str, str], Behaviour] = {}
        self._carry: dict[tuple[str, str], float] = {}
        self._errors: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, "127.0.0.1", self.registry)
        self.stop_event = threading.Event()
        self.traffic = threading.Thread(target=self._run, daemon=True)
        self.traffic.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, track: str, version: str, behaviour: Behaviour) -> None:
        with self.lock:
            self.behaviours[(track, str(version))] = behaviour
            self.drift.labels(self.model, str(version), track).set(behaviour.drift)

    def _run(self) -> None:
        while not self.stop_event.wait(TICK_S):
            with self.lock:
                items = list(self.behaviours.items())
            for (track, version), b in items:
                key = (track, version)
                due = self._carry.get(key, 0.0) + b.rps * TICK_S
                n = int(due)
                self._carry[key] = due - n
                if n <= 0:
                    continue
                errors_due = self._errors.get(key, 0.0) + n * b.error_fraction
                errors = int(errors_due)
                self._errors[key] = errors_due - errors
                for _ in range(n):
                    self.duration.labels(self.model, version, track, "/predict", "POST").observe(
                        b.latency_s
                    )
                self.requests.labels(self.model, version, track, "/predict", "POST", "200").inc(
                    n - errors
                )
                if errors:
                    self.requests.labels(self.model, version, track, "/predict", "POST", "500").inc(
                        errors
                    )

    def stop(self) -> None:
        self.stop_event.set()
        self.traffic.join(timeout=5)
        self.server.shutdown()

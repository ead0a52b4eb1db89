"""The operator's own Prometheus metrics, served on ``/metrics`` next to ``/healthz``.

Who calls it: the reconcile service records into these; ``handlers.http`` exposes them.
Names are prefixed ``artpulse_operator_`` so they never collide with the inference server's.
The per-model series (phase, canary weight, rollouts by result) are :attr:`Telemetry.models`, a
``ModelSeries`` collector in this registry: the reconciler records into it, the Kopf daemon of
each model follows and forgets it. The process-wide gate and rollback metrics live in
``artpulse_operator.metrics.operator`` in the default registry; ``/metrics`` serves both.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from artpulse_operator.metrics.operator import ModelSeries

__all__ = ["Telemetry"]

_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Telemetry:
    """One set of metrics per process (a registry of its own, so tests can build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconcile_duration = Histogram(
            "artpulse_operator_reconcile_duration_seconds",
            "Time of one reconcile of an ArtPulseModel, from reading it to writing its status.",
            buckets=_RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "artpulse_operator_reconcile_errors_total",
            "Reconciles that failed, by reason (ApiError, RegistryError, InvalidSpec, Unexpected).",
            ["reason"],
            registry=self.registry,
        )
        self.managed_resources = Gauge(
            "artpulse_operator_managed_resources",
            "ArtPulseModels this operator currently follows.",
            registry=self.registry,
        )
        self.objects_applied = Counter(
            "artpulse_operator_objects_applied_total",
            "Owned objects written with server-side apply (cache misses).",
            registry=self.registry,
        )
        self.objects_deleted = Counter(
            "artpulse_operator_objects_deleted_total",
            "Owned objects deleted because they were no longer desired.",
            registry=self.registry,
        )
        self.drift_repairs = Counter(
            "artpulse_operator_drift_repairs_total",
            "Hand edits of owned objects seen (each is put back by the next reconcile).",
            ["kind"],
            registry=self.registry,
        )
        self.models = ModelSeries()
        self.registry.register(self.models)

"""Metrics sources behind a small interface, and the operator's own rollout metrics.

Who calls it: the reconcile handler asks ``engine.rollout.analysis_target`` whether a check
is due and, if so, :func:`run_check` measures the target through a :class:`MetricsSource`
(:class:`PrometheusSource` is the Prometheus adapter) and judges it with ``engine.gates``.
``artpulse_operator.metrics.operator`` holds the operator's Prometheus counters.
"""

from artpulse_operator.metrics.base import CustomQuery, MetricsError, MetricsSource, run_check
from artpulse_operator.metrics.prometheus import PrometheusSource, gate_queries

__all__ = [
    "CustomQuery",
    "MetricsError",
    "MetricsSource",
    "PrometheusSource",
    "gate_queries",
    "run_check",
]

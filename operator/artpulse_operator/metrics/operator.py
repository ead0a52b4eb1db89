"""The operator's own rollout metrics (exported on the operator's /metrics).

Who calls it: the reconcile handler, after executing a plan: :func:`record_plan` counts
finished rollouts by result and gate verdicts; :func:`observe_rollback_latency` records the
time from the failing check to the moment the weight-0 objects were written.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from artpulse_operator.engine.observations import GateResult
from artpulse_operator.engine.rollout import Plan

ROLLOUTS = Counter(
    "artpulse_operator_rollouts_total",
    "Finished rollouts by result (Promoted, RolledBack, Aborted).",
    ["result"],
)
GATE_VERDICTS = Counter(
    "artpulse_operator_gate_verdicts_total",
    "Gate checks by verdict (Pass, Fail, Inconclusive, Error).",
    ["verdict"],
)
GATE_FAILURES = Counter(
    "artpulse_operator_gate_failures_total",
    "Failed gates by gate name (p95LatencyMs, maxErrorRate, ...).",
    ["gate"],
)
ROLLBACK_SECONDS = Histogram(
    "artpulse_operator_rollback_seconds",
    "Time from a failing check to the weight-0 objects written.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)

_RESULT_EVENTS = {"Promoted": "Promoted", "RolledBack": "RolledBack", "Aborted": "Aborted"}


def record_plan(plan: Plan, gate: GateResult | None) -> None:
    if gate is not None:
        GATE_VERDICTS.labels(str(gate.verdict)).inc()
        for name in gate.failed_gates:
            GATE_FAILURES.labels(name).inc()
    for event in plan.events:
        result = _RESULT_EVENTS.get(event.reason)
        if result:
            ROLLOUTS.labels(result).inc()


def observe_rollback_latency(seconds: float) -> None:
    ROLLBACK_SECONDS.observe(max(0.0, seconds))

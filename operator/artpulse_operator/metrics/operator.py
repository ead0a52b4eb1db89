"""The operator's own rollout metrics (exported on the operator's /metrics).

Who calls it: the reconcile handler, after executing a plan: :func:`record_plan` counts gate
verdicts and failed gates, :func:`rollout_results` names the rollouts the plan finished, and
:func:`observe_rollback_latency` records the time from the failing check to the moment the
weight-0 objects were written. ``handlers.telemetry.Telemetry`` owns one :class:`ModelSeries`,
the per-model series the alerts and dashboards in ``observability/`` read:

- ``artpulse_operator_phase{namespace,name,phase}``: 1 for the current phase, 0 for the others;
- ``artpulse_operator_canary_weight{namespace,name}``: ``status.canaryWeight``;
- ``artpulse_operator_rollouts_total{namespace,name,result}``: finished rollouts, every result
  at 0 from the moment a model is first seen, so ``increase()`` sees the first rollback.

A model is exported only while this process *follows* it (its Kopf daemon runs). Kopf stops a
resource's daemon when the resource is deleted and stops every daemon when peering pauses the
operator (another replica became active), so a deleted model or a standby replica exports no
per-model series; two replicas never disagree about one model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from artpulse_operator.engine.observations import GateResult
from artpulse_operator.engine.rollout import Plan
from artpulse_operator.engine.status import Phase, RolloutResult

__all__ = [
    "PHASES",
    "RESULTS",
    "ModelSeries",
    "observe_rollback_latency",
    "record_plan",
    "rollout_results",
]

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

PHASES: tuple[str, ...] = tuple(str(p) for p in Phase)
RESULTS: tuple[str, ...] = tuple(str(r) for r in RolloutResult)

PHASE_METRIC = "artpulse_operator_phase"
WEIGHT_METRIC = "artpulse_operator_canary_weight"
ROLLOUTS_METRIC = "artpulse_operator_rollouts"  # exposed as ..._total


def record_plan(plan: Plan, gate: GateResult | None) -> None:
    """Count the gate check the plan was made from (process-wide, not per model)."""
    if gate is not None:
        GATE_VERDICTS.labels(str(gate.verdict)).inc()
        for name in gate.failed_gates:
            GATE_FAILURES.labels(name).inc()


def rollout_results(plan: Plan) -> list[str]:
    """The rollouts this plan finished, by result (the engine announces each with an Event)."""
    return [event.reason for event in plan.events if event.reason in RESULTS]


def observe_rollback_latency(seconds: float) -> None:
    ROLLBACK_SECONDS.observe(max(0.0, seconds))


@dataclass
class _Model:
    phase: str | None = None
    weight: int | None = None
    rollouts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0.0))


class ModelSeries(Collector):
    """Per-model phase, canary weight and rollout counters, as a Prometheus collector.

    ``record`` stores what a reconcile saw; ``follow``/``forget`` say whether this process is
    responsible for the model right now. Only followed models are collected: a reconcile that
    finishes just after its model was forgotten (deleted, operator paused) cannot bring a stale
    series back. The methods are called on the event loop and ``collect`` from a scrape; a lock
    keeps a scrape from seeing half an update.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], _Model] = {}
        self._followed: set[tuple[str, str]] = set()

    def follow(self, namespace: str, name: str) -> None:
        """This process is now responsible for the model: export it (counters from 0)."""
        key = (namespace, name)
        with self._lock:
            self._followed.add(key)
            self._models.setdefault(key, _Model())

    def forget(self, namespace: str, name: str) -> None:
        """The model is gone or no longer ours: drop every series of it."""
        key = (namespace, name)
        with self._lock:
            self._followed.discard(key)
            self._models.pop(key, None)

    def record(
        self,
        namespace: str,
        name: str,
        phase: str,
        canary_weight: int,
        results: Iterable[str] = (),
    ) -> None:
        """The model's status after a reconcile, and the rollouts that reconcile finished."""
        with self._lock:
            model = self._models.setdefault((namespace, name), _Model())
            model.phase = phase
            model.weight = canary_weight
            for result in results:
                model.rollouts[result] = model.rollouts.get(result, 0.0) + 1

    def followed(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._followed)

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            models = {
                key: _Model(m.phase, m.weight, dict(m.rollouts))
                for key, m in self._models.items()
                if key in self._followed
            }
        return self._families(models)

    @staticmethod
    def _families(models: dict[tuple[str, str], _Model]) -> Iterator[Metric]:
        phase = GaugeMetricFamily(
            PHASE_METRIC,
            "1 for the ArtPulseModel's current status.phase, 0 for every other phase.",
            labels=["namespace", "name", "phase"],
        )
        weight = GaugeMetricFamily(
            WEIGHT_METRIC,
            "The ArtPulseModel's status.canaryWeight (percent of live traffic to the candidate).",
            labels=["namespace", "name"],
        )
        rollouts = CounterMetricFamily(
            ROLLOUTS_METRIC,
            "Finished rollouts per ArtPulseModel by result (Promoted, RolledBack, Aborted).",
            labels=["namespace", "name", "result"],
        )
        for (namespace, name), model in sorted(models.items()):
            # Phase and weight appear once a reconcile has read the status; counters at once.
            if model.phase is not None:
                for p in PHASES:
                    phase.add_metric([namespace, name, p], 1.0 if p == model.phase else 0.0)
            if model.weight is not None:
                weight.add_metric([namespace, name], float(model.weight))
            for result, value in sorted(model.rollouts.items()):
                rollouts.add_metric([namespace, name, result], value)
        yield phase
        yield weight
        yield rollouts

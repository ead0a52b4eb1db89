"""The per-model series bookkeeping (``artpulse_operator.metrics.operator.ModelSeries``).

Pure: a private CollectorRegistry, no process, no HTTP. Shows what /metrics carries for a model
the operator follows, that counters start at 0, that rollout results are counted from a plan's
Events, and that forgetting a model (deleted, or the replica paused by peering) drops every
series of it and keeps a late reconcile from bringing one back.
"""

from __future__ import annotations

import pytest
from artpulse_operator.engine.rollout import EventSpec, Plan
from artpulse_operator.engine.status import RolloutStatus
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.metrics.operator import PHASES, RESULTS, ModelSeries, rollout_results
from prometheus_client import CollectorRegistry, generate_latest

DESIGN_PHASES = [
    "Pending",
    "Stable",
    "Shadowing",
    "Progressing",
    "Paused",
    "Promoting",
    "RolledBack",
    "Degraded",
    "Failed",
]


@pytest.fixture
def series() -> tuple[ModelSeries, CollectorRegistry]:
    registry = CollectorRegistry()
    models = ModelSeries()
    registry.register(models)
    return models, registry


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def model_samples(registry: CollectorRegistry, namespace: str, name: str) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if f'name="{name}"' in line and f'namespace="{namespace}"' in line
    ]


def test_the_phase_list_is_designs() -> None:
    assert list(PHASES) == DESIGN_PHASES
    assert set(RESULTS) == {"Promoted", "RolledBack", "Aborted"}


def test_followed_model_exports_one_phase_at_1_the_weight_and_zero_counters(
    series: tuple[ModelSeries, CollectorRegistry],
) -> None:
    models, registry = series
    models.follow("ml", "clf")
    # Counters exist from the moment the model is followed, before any reconcile.
    for result in RESULTS:
        assert (
            value(
                registry,
                "artpulse_operator_rollouts_total",
                namespace="ml",
                name="clf",
                result=result,
            )
            == 0.0
        )
    assert value(registry, "artpulse_operator_canary_weight", namespace="ml", name="clf") is None

    models.record("ml", "clf", "Progressing", 10)
    phases = {
        p: value(registry, "artpulse_operator_phase", namespace="ml", name="clf", phase=p)
        for p in DESIGN_PHASES
    }
    assert phases == {p: (1.0 if p == "Progressing" else 0.0) for p in DESIGN_PHASES}
    assert value(registry, "artpulse_operator_canary_weight", namespace="ml", name="clf") == 10.0

    models.record("ml", "clf", "Stable", 0)
    assert (
        value(registry, "artpulse_operator_phase", namespace="ml", name="clf", phase="Stable")
        == 1.0
    )
    assert (
        value(registry, "artpulse_operator_phase", namespace="ml", name="clf", phase="Progressing")
        == 0.0
    )
    assert value(registry, "artpulse_operator_canary_weight", namespace="ml", name="clf") == 0.0


def test_rollout_results_come_from_the_plans_events_and_count_per_model(
    series: tuple[ModelSeries, CollectorRegistry],
) -> None:
    models, registry = series
    plan = Plan(
        status=RolloutStatus(),
        events=(
            EventSpec("Warning", "RolledBack", "p95 too high"),
            EventSpec("Normal", "PhaseChanged", "Progressing -> RolledBack"),
        ),
    )
    assert rollout_results(plan) == ["RolledBack"]
    assert rollout_results(Plan(status=RolloutStatus())) == []

    models.follow("ml", "a")
    models.follow("ml", "b")
    models.record("ml", "a", "RolledBack", 0, rollout_results(plan))
    models.record("ml", "a", "RolledBack", 0, ())
    models.record("ml", "b", "Stable", 0, ["Promoted"])
    total = "artpulse_operator_rollouts_total"
    assert value(registry, total, namespace="ml", name="a", result="RolledBack") == 1.0
    assert value(registry, total, namespace="ml", name="a", result="Promoted") == 0.0
    assert value(registry, total, namespace="ml", name="b", result="RolledBack") == 0.0
    assert value(registry, total, namespace="ml", name="b", result="Promoted") == 1.0


def test_a_model_recorded_before_its_daemon_runs_is_exported_once_followed(
    series: tuple[ModelSeries, CollectorRegistry],
) -> None:
    models, registry = series
    # The create handler may reconcile before Kopf has spawned the daemon.
    models.record("ml", "early", "Stable", 0)
    assert model_samples(registry, "ml", "early") == []
    models.follow("ml", "early")
    assert (
        value(registry, "artpulse_operator_phase", namespace="ml", name="early", phase="Stable")
        == 1.0
    )
    assert models.followed() == {("ml", "early")}


def test_forget_drops_every_series_and_a_late_record_stays_hidden(
    series: tuple[ModelSeries, CollectorRegistry],
) -> None:
    models, registry = series
    models.follow("ml", "gone")
    models.follow("ml", "kept")
    models.record("ml", "gone", "Progressing", 50, ["RolledBack"])
    models.record("ml", "kept", "Stable", 0)
    assert len(model_samples(registry, "ml", "gone")) == len(DESIGN_PHASES) + 1 + len(RESULTS)

    models.forget("ml", "gone")
    assert model_samples(registry, "ml", "gone") == []
    assert (
        value(registry, "artpulse_operator_phase", namespace="ml", name="kept", phase="Stable")
        == 1.0
    )

    # A reconcile that finishes after the daemon stopped (deleted, or peering paused us).
    models.record("ml", "gone", "Progressing", 50)
    assert model_samples(registry, "ml", "gone") == []

    # Followed again (the replica became active again): counters restart at 0.
    models.forget("ml", "gone")
    models.follow("ml", "gone")
    assert (
        value(
            registry,
            "artpulse_operator_rollouts_total",
            namespace="ml",
            name="gone",
            result="RolledBack",
        )
        == 0.0
    )
    assert (
        value(registry, "artpulse_operator_phase", namespace="ml", name="gone", phase="Progressing")
        is None
    )


def test_same_name_in_two_namespaces_are_two_models(
    series: tuple[ModelSeries, CollectorRegistry],
) -> None:
    models, registry = series
    for ns, weight in (("a", 10), ("b", 50)):
        models.follow(ns, "clf")
        models.record(ns, "clf", "Progressing", weight)
    models.forget("a", "clf")
    assert value(registry, "artpulse_operator_canary_weight", namespace="a", name="clf") is None
    assert value(registry, "artpulse_operator_canary_weight", namespace="b", name="clf") == 50.0


def test_telemetry_serves_the_model_series_in_its_own_registry() -> None:
    one, two = Telemetry(), Telemetry()
    one.models.follow("ml", "clf")
    one.models.record("ml", "clf", "Paused", 10)
    text = generate_latest(one.registry).decode()
    assert 'artpulse_operator_phase{name="clf",namespace="ml",phase="Paused"} 1.0' in text
    assert 'artpulse_operator_canary_weight{name="clf",namespace="ml"} 10.0' in text
    assert (
        'artpulse_operator_rollouts_total{name="clf",namespace="ml",result="Aborted"} 0.0' in text
    )
    assert "# TYPE artpulse_operator_rollouts_total counter" in text
    # A second process-like Telemetry shares nothing.
    assert 'name="clf"' not in generate_latest(two.registry).decode()

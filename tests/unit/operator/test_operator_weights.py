"""Table tests of the traffic-weight arithmetic (engine.weights), cases in tests/data/operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.weights import (
    ReplicaSplit,
    effective_weight,
    primary_and_secondary,
    split_replicas,
)

CASES: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "operator" / "weights_cases.yaml").read_text()
)


@pytest.mark.parametrize(
    "case", CASES["split_replicas"], ids=lambda c: f"{c['total']}@{c['weight']}"
)
def test_split_replicas(case: dict[str, Any]) -> None:
    assert split_replicas(case["total"], case["weight"]) == ReplicaSplit(
        stable=case["stable"], canary=case["canary"]
    )


def test_split_replicas_refuses_negative_total() -> None:
    with pytest.raises(ValueError, match="negative"):
        split_replicas(-1, 10)


@pytest.mark.parametrize("case", CASES["effective_weight"], ids=str)
def test_effective_weight(case: dict[str, Any]) -> None:
    assert effective_weight(ReplicaSplit(case["stable"], case["canary"])) == case["weight"]


@pytest.mark.parametrize("case", CASES["primary_and_secondary"], ids=str)
def test_primary_and_secondary(case: dict[str, Any]) -> None:
    assert primary_and_secondary(case["weights"], case["preferred"]) == (
        case["primary"],
        case["secondary"],
    )


def test_primary_and_secondary_needs_a_track() -> None:
    with pytest.raises(ValueError, match="no tracks"):
        primary_and_secondary({})

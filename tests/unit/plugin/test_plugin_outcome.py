"""What ``kubectl artpulse status`` waits for: the table of tests/data/plugin/outcomes.yaml."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from artpulse_operator.engine.status import Phase
from kubectl_artpulse.contract import FAILED_PHASES, IN_PROGRESS_PHASES, SUCCEEDED_PHASES
from kubectl_artpulse.outcome import Outcome, assess, exit_code
from plugin_fakes import load

CASES = load("outcomes.yaml")["cases"]


def merged(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    for section in ("metadata", "status"):
        if section not in case:
            continue
        if case[section] is None:
            obj.pop(section, None)
            continue
        target = obj.setdefault(section, {})
        for key, value in case[section].items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return obj


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_outcome(case: dict[str, Any], model: dict[str, Any]) -> None:
    assessment = assess(merged(model, case))
    assert str(assessment.outcome) == case["outcome"]
    assert case["detail"] in assessment.detail
    assert assessment.finished is (case["outcome"] != "InProgress")


def test_exit_codes() -> None:
    assert [exit_code(o) for o in Outcome] == [0, 1, 2]
    assert [str(o) for o in Outcome] == ["Succeeded", "Failed", "InProgress"]


def test_every_operator_phase_has_exactly_one_meaning() -> None:
    """A phase the operator adds must be sorted here, or status would wait on it forever."""
    groups = [SUCCEEDED_PHASES, FAILED_PHASES, IN_PROGRESS_PHASES]
    assert set().union(*groups) == {str(p) for p in Phase}
    assert sum(len(g) for g in groups) == len(Phase)


def test_garbage_is_in_progress_not_a_crash() -> None:
    for obj in ({}, {"status": "x"}, {"metadata": None, "status": {"phase": 3}}):
        assert assess(obj).outcome is Outcome.IN_PROGRESS

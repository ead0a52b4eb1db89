"""The data-quality gate, one failure at a time (cases in tests/data/training/quality_cases.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.core.quality import (
    CheckStatus,
    QualityThresholds,
    run_quality_checks,
)

CASES = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "training" / "quality_cases.yaml").read_text()
)


def build(case: dict[str, Any]) -> tuple[np.ndarray, list[str], list[str]]:
    labels = [label for label, count in case["labels"].items() for _ in range(count)]
    n = len(labels)
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 0.9, (n, len(FEATURE_NAMES)))
    names = list(FEATURE_NAMES)
    mutate = case.get("mutate", {})
    for row, feature, value in mutate.get("value", []):
        X[row, names.index(feature)] = value
    if "duplicate_rows" in mutate:
        X[1 : 1 + mutate["duplicate_rows"]] = X[0]
    if "constant" in mutate:
        feature, value = mutate["constant"]
        X[:, names.index(feature)] = value
    for old, new in mutate.get("rename", {}).items():
        names[names.index(old)] = new
    return X, labels, names


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_quality_gate_case(case: dict[str, Any]) -> None:
    X, labels, names = build(case)
    thresholds = QualityThresholds(**case.get("thresholds", {}))
    report = run_quality_checks(X, labels, names, thresholds=thresholds)
    by_status = {
        status: sorted(c.name for c in report.checks if c.status is status)
        for status in CheckStatus
    }
    assert by_status[CheckStatus.FAIL] == sorted(case["fail"])
    assert by_status[CheckStatus.WARN] == sorted(case.get("warn", []))
    assert report.passed is (not case["fail"])
    assert report.allows_training is (not case["fail"])
    messages = {c.name: c.message for c in report.checks}
    for check, fragment in case.get("messages", {}).items():
        assert fragment in messages[check], messages[check]
    if case["fail"]:
        # The one-line summary names the first failing check and its numbers.
        first = report.failures[0]
        assert report.summary() == f"data-quality gate failed: {first.name}: {first.message}" + (
            f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        )


def test_report_is_json_and_says_what_was_checked() -> None:
    X, labels, names = build({"labels": {"a": 20, "b": 20}})
    report = run_quality_checks(X, labels, names)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["gate"] == "passed"
    assert data["bypassed"] is False
    assert data["label_counts"] == {"a": 20, "b": 20}
    assert data["feature_names"] == list(FEATURE_NAMES)
    assert {c["name"] for c in data["checks"]} >= {
        "feature_schema",
        "finite_values",
        "value_range",
        "min_samples_total",
        "min_samples_per_label",
        "class_imbalance",
    }


def test_bypass_runs_the_checks_and_records_it_loudly() -> None:
    X, labels, names = build({"labels": {"a": 3, "b": 3}})
    report = run_quality_checks(X, labels, names, bypass=True)
    assert not report.passed
    assert report.allows_training
    data = report.to_dict()
    assert data["gate"] == "bypassed"
    assert data["summary"].startswith("data-quality gate BYPASSED, it would have failed: ")
    assert any("--skip-quality-checks" in note for note in data["notes"])


def test_row_and_label_count_mismatch_fails_the_schema() -> None:
    X, labels, names = build({"labels": {"a": 20, "b": 20}})
    report = run_quality_checks(X[:-1], labels, names)
    assert [c.name for c in report.failures] == ["feature_schema"]
    assert "39 feature rows but 40 labels" in report.failures[0].message


def test_wrong_column_count_fails_the_schema_without_crashing() -> None:
    X, labels, _ = build({"labels": {"a": 20, "b": 20}})
    report = run_quality_checks(X[:, :3], labels, FEATURE_NAMES)
    assert report.failures[0].name == "feature_schema"
    assert f"shape [40, 3], expected {len(FEATURE_NAMES)} columns" in report.failures[0].message

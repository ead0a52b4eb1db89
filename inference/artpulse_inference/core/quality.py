"""The data-quality gate run before training.

``artpulse train`` extracts features, then calls :func:`run_quality_checks` on the feature
matrix and the labels. Each check yields a :class:`CheckResult`; a ``fail`` stops training
(unless the user bypasses the gate, which the report records), a ``warn`` is logged and
reported. The report is written as ``data_quality_report.json`` and logged to MLflow.

Checks, in order: feature schema, finite values, range 0..1, number of labels, minimum
samples overall, minimum samples per label, class imbalance (warn), constant features
(warn), duplicate rows (warn). Every message says what was measured against what
threshold, so a failure says by how much.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from artpulse_inference.core.features import FEATURE_NAMES


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the gate (the CLI exposes them as options)."""

    min_samples_total: int = 30
    min_samples_per_label: int = 5
    min_labels: int = 2
    #: Warn when the largest class has more than this many times the smallest one's samples.
    imbalance_warn_ratio: float = 3.0
    #: Warn when more than this share of rows are exact duplicates of another row.
    duplicate_warn_fraction: float = 0.05


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    message: str
    measured: Any = None
    threshold: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "message": self.message,
            "measured": self.measured,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class QualityReport:
    checks: tuple[CheckResult, ...]
    n_samples: int
    label_counts: dict[str, int]
    feature_names: tuple[str, ...]
    thresholds: QualityThresholds
    #: True when the user bypassed the gate (--skip-quality-checks): failures do not stop.
    bypassed: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status is CheckStatus.FAIL)

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status is CheckStatus.WARN)

    @property
    def passed(self) -> bool:
        """Whether the checks themselves passed (regardless of a bypass)."""
        return not self.failures

    @property
    def allows_training(self) -> bool:
        return self.passed or self.bypassed

    def summary(self) -> str:
        """One line: the verdict and, on failure, the first failing check's message."""
        if self.passed:
            verdict = "passed"
            if self.warnings:
                verdict += f" with {len(self.warnings)} warning(s)"
            return f"data-quality gate {verdict}"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        prefix = (
            "data-quality gate BYPASSED, it would have failed"
            if self.bypassed
            else ("data-quality gate failed")
        )
        return f"{prefix}: {first.name}: {first.message}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "bypassed": self.bypassed,
            "gate": "bypassed" if self.bypassed else ("passed" if self.passed else "failed"),
            "summary": self.summary(),
            "n_samples": self.n_samples,
            "label_counts": dict(sorted(self.label_counts.items())),
            "feature_names": list(self.feature_names),
            "thresholds": {
                "min_samples_total": self.thresholds.min_samples_total,
                "min_samples_per_label": self.thresholds.min_samples_per_label,
                "min_labels": self.thresholds.min_labels,
                "imbalance_warn_ratio": self.thresholds.imbalance_warn_ratio,
                "duplicate_warn_fraction": self.thresholds.duplicate_warn_fraction,
            },
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
        }


def run_quality_checks(
    X: npt.ArrayLike,
    labels: Sequence[str],
    feature_names: Sequence[str],
    *,
    expected_names: Sequence[str] = FEATURE_NAMES,
    thresholds: QualityThresholds | None = None,
    bypass: bool = False,
) -> QualityReport:
    """Run every check on feature matrix ``X`` (rows x ``feature_names``) and ``labels``.

    With ``bypass`` the checks still run and are reported, but the report allows training.
    """
    limits = thresholds or QualityThresholds()
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix.reshape(-1, len(feature_names)) if len(feature_names) else matrix
    names = tuple(feature_names)
    counts = Counter(str(label) for label in labels)
    checks: list[CheckResult] = [
        _check_schema(matrix, names, tuple(expected_names), len(labels)),
    ]
    shape_ok = matrix.ndim == 2 and matrix.shape[1] == len(names)
    if shape_ok:
        checks.append(_check_finite(matrix, names))
        checks.append(_check_range(matrix, names))
    checks.append(_check_label_count(counts, limits))
    checks.append(_check_min_total(len(labels), limits))
    checks.append(_check_min_per_label(counts, limits))
    checks.append(_check_imbalance(counts, limits))
    if shape_ok and matrix.shape[0] > 1:
        checks.append(_check_constant(matrix, names))
        checks.append(_check_duplicates(matrix, limits))
    notes: tuple[str, ...] = ()
    if bypass:
        notes = ("--skip-quality-checks was given: the gate did not stop training",)
    return QualityReport(
        checks=tuple(checks),
        n_samples=len(labels),
        label_counts=dict(counts),
        feature_names=names,
        thresholds=limits,
        bypassed=bypass,
        notes=notes,
    )


def _check_schema(
    matrix: npt.NDArray[np.float64],
    names: tuple[str, ...],
    expected: tuple[str, ...],
    n_labels: int,
) -> CheckResult:
    name = "feature_schema"
    if names != expected:
        missing = [n for n in expected if n not in names]
        unexpected = [n for n in names if n not in expected]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if not parts:
            parts.append("same names in a different order")
        return CheckResult(
            name, CheckStatus.FAIL, "; ".join(parts), measured=list(names), threshold=list(expected)
        )
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        return CheckResult(
            name,
            CheckStatus.FAIL,
            f"matrix has shape {list(matrix.shape)}, expected {len(names)} columns",
            measured=list(matrix.shape),
            threshold=len(names),
        )
    if matrix.shape[0] != n_labels:
        return CheckResult(
            name,
            CheckStatus.FAIL,
            f"{matrix.shape[0]} feature rows but {n_labels} labels",
            measured=matrix.shape[0],
            threshold=n_labels,
        )
    return CheckResult(name, CheckStatus.PASS, f"{len(names)} features as expected")


def _check_finite(matrix: npt.NDArray[np.float64], names: tuple[str, ...]) -> CheckResult:
    bad = ~np.isfinite(matrix)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return CheckResult("finite_values", CheckStatus.PASS, "no NaN or infinite values", 0, 0)
    rows = int(bad.any(axis=1).sum())
    columns = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
    return CheckResult(
        "finite_values",
        CheckStatus.FAIL,
        f"{n_bad} NaN/infinite value(s) in {rows} row(s), features {columns}; allowed 0",
        measured=n_bad,
        threshold=0,
    )


def _check_range(matrix: npt.NDArray[np.float64], names: tuple[str, ...]) -> CheckResult:
    finite = np.where(np.isfinite(matrix), matrix, 0.5)
    outside = (finite < 0.0) | (finite > 1.0)
    n_out = int(outside.sum())
    if n_out == 0:
        return CheckResult("value_range", CheckStatus.PASS, "all values within 0..1", 0, [0, 1])
    columns = [names[j] for j in np.flatnonzero(outside.any(axis=0))]
    low, high = float(finite.min()), float(finite.max())
    excess = max(0.0 - low, high - 1.0)
    return CheckResult(
        "value_range",
        CheckStatus.FAIL,
        f"{n_out} value(s) outside 0..1 in features {columns} (min {low:.4g}, max {high:.4g}, "
        f"off by up to {excess:.4g})",
        measured={"outside": n_out, "min": low, "max": high},
        threshold=[0, 1],
    )


def _check_label_count(counts: Counter[str], limits: QualityThresholds) -> CheckResult:
    n = len(counts)
    if n < limits.min_labels:
        return CheckResult(
            "label_count",
            CheckStatus.FAIL,
            f"{n} label(s) {sorted(counts)}, need at least {limits.min_labels} "
            f"(short by {limits.min_labels - n})",
            n,
            limits.min_labels,
        )
    return CheckResult("label_count", CheckStatus.PASS, f"{n} labels", n, limits.min_labels)


def _check_min_total(n: int, limits: QualityThresholds) -> CheckResult:
    need = limits.min_samples_total
    if n < need:
        return CheckResult(
            "min_samples_total",
            CheckStatus.FAIL,
            f"{n} sample(s), need at least {need} (short by {need - n})",
            n,
            need,
        )
    return CheckResult("min_samples_total", CheckStatus.PASS, f"{n} samples", n, need)


def _check_min_per_label(counts: Counter[str], limits: QualityThresholds) -> CheckResult:
    need = limits.min_samples_per_label
    short = {label: c for label, c in sorted(counts.items()) if c < need}
    if short:
        detail = ", ".join(f"{label!r} has {c} (short by {need - c})" for label, c in short.items())
        return CheckResult(
            "min_samples_per_label",
            CheckStatus.FAIL,
            f"{detail}; need at least {need} per label",
            measured=short,
            threshold=need,
        )
    smallest = min(counts.values()) if counts else 0
    return CheckResult(
        "min_samples_per_label",
        CheckStatus.PASS,
        f"smallest label has {smallest}",
        smallest,
        need,
    )


def _check_imbalance(counts: Counter[str], limits: QualityThresholds) -> CheckResult:
    if len(counts) < 2:
        return CheckResult("class_imbalance", CheckStatus.PASS, "fewer than two labels", None)
    (big, n_big), *_ = counts.most_common()
    small, n_small = min(counts.items(), key=lambda item: (item[1], item[0]))
    ratio = n_big / max(n_small, 1)
    threshold = limits.imbalance_warn_ratio
    if ratio > threshold:
        return CheckResult(
            "class_imbalance",
            CheckStatus.WARN,
            f"{big!r} has {n_big} samples and {small!r} {n_small}: ratio {ratio:.2f} "
            f"exceeds {threshold:g}",
            round(ratio, 4),
            threshold,
        )
    return CheckResult(
        "class_imbalance",
        CheckStatus.PASS,
        f"largest/smallest ratio {ratio:.2f}",
        round(ratio, 4),
        threshold,
    )


def _check_constant(matrix: npt.NDArray[np.float64], names: tuple[str, ...]) -> CheckResult:
    finite = np.where(np.isfinite(matrix), matrix, 0.0)
    constant = [names[j] for j in range(len(names)) if np.ptp(finite[:, j]) == 0.0]
    if constant:
        return CheckResult(
            "constant_features",
            CheckStatus.WARN,
            f"features {constant} have the same value in every row (they carry no information)",
            constant,
            [],
        )
    return CheckResult("constant_features", CheckStatus.PASS, "every feature varies", [], [])


def _check_duplicates(matrix: npt.NDArray[np.float64], limits: QualityThresholds) -> CheckResult:
    unique = np.unique(matrix, axis=0).shape[0]
    duplicates = matrix.shape[0] - unique
    fraction = duplicates / matrix.shape[0]
    threshold = limits.duplicate_warn_fraction
    if fraction > threshold:
        return CheckResult(
            "duplicate_rows",
            CheckStatus.WARN,
            f"{duplicates} row(s) ({fraction:.1%}) duplicate another row; warn above "
            f"{threshold:.1%} (the same image twice?)",
            round(fraction, 4),
            threshold,
        )
    return CheckResult(
        "duplicate_rows",
        CheckStatus.PASS,
        f"{duplicates} duplicate row(s)",
        round(fraction, 4),
        threshold,
    )

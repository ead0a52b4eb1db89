"""PSI and the drift score: known values, same-distribution data low, shifted data high."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from artpulse_inference.core.drift import (
    bin_counts,
    compute_baseline,
    drift_score,
    psi,
    psi_from_counts,
    psi_per_feature,
)

NAMES = ("a", "b", "c", "d")


def sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.beta(2.0, 5.0, (n, len(NAMES))), 0.0, 1.0)


def test_psi_of_identical_proportions_is_zero() -> None:
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0


def test_psi_matches_the_formula() -> None:
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi([0.5, 0.5], [0.2, 0.8]) == pytest.approx(expected)


def test_psi_of_an_emptied_bin_is_large_but_finite() -> None:
    value = psi([0.5, 0.5], [0.0, 1.0])
    assert math.isfinite(value)
    assert value > 2.0


def test_psi_refuses_mismatched_bins() -> None:
    with pytest.raises(ValueError, match="bin count mismatch"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_baseline_has_the_documented_shape_and_is_json() -> None:
    X = sample(1000, 1)
    baseline = json.loads(json.dumps(compute_baseline(X, NAMES)))
    assert baseline["feature_names"] == list(NAMES)
    assert baseline["n_samples"] == 1000
    for name in NAMES:
        stats = baseline["features"][name]
        assert set(stats) == {"mean", "std", "min", "max", "bin_edges", "bin_fractions"}
        assert stats["bin_edges"][0] == 0.0
        assert stats["bin_edges"][-1] == 1.0
        assert len(stats["bin_fractions"]) == len(stats["bin_edges"]) - 1
        assert sum(stats["bin_fractions"]) == pytest.approx(1.0)
        # Quantile bins: each holds about a tenth of the training data.
        assert max(stats["bin_fractions"]) < 0.12


def test_a_mostly_constant_feature_gets_merged_bins() -> None:
    X = sample(500, 2)
    X[:400, 0] = 0.0
    stats = compute_baseline(X, NAMES)["features"]["a"]
    edges = stats["bin_edges"]
    assert edges == sorted(set(edges))
    assert len(edges) < 11
    assert sum(stats["bin_fractions"]) == pytest.approx(1.0)


def test_same_distribution_scores_low_and_shifted_scores_high() -> None:
    baseline = compute_baseline(sample(2000, 3), NAMES)
    same = drift_score(psi_per_feature(baseline, sample(500, 4)))
    shifted_data = sample(500, 5)
    shifted_data[:, :2] = np.clip(shifted_data[:, :2] + 0.25, 0.0, 1.0)
    shifted = drift_score(psi_per_feature(baseline, shifted_data))
    assert same < 0.1
    assert shifted > 0.25


def test_drift_score_is_the_mean_of_the_largest_quarter() -> None:
    values = {f"f{i}": v for i, v in enumerate([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9])}
    # 8 features -> top 2: (0.9 + 0.6) / 2
    assert drift_score(values) == pytest.approx(0.75)
    assert drift_score({"only": 0.4}) == pytest.approx(0.4)
    assert drift_score({}) == 0.0


def test_no_rows_is_no_measurement() -> None:
    baseline = compute_baseline(sample(100, 6), NAMES)
    assert psi_per_feature(baseline, np.zeros((0, len(NAMES)))) == {}


def test_wrong_column_count_is_refused() -> None:
    baseline = compute_baseline(sample(100, 7), NAMES)
    with pytest.raises(ValueError, match="4 columns"):
        psi_per_feature(baseline, np.zeros((5, 3)))


def test_baseline_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="zero samples"):
        compute_baseline(np.zeros((0, len(NAMES))), NAMES)


def test_values_outside_the_range_land_in_the_outer_bins() -> None:
    baseline = compute_baseline(sample(500, 8), NAMES)
    counts = bin_counts(baseline, np.array([[-1.0, 2.0, 0.0, 1.0]]))
    assert counts["a"][0] == 1
    assert counts["b"][-1] == 1


def test_accumulated_counts_give_the_same_psi() -> None:
    baseline = compute_baseline(sample(1000, 9), NAMES)
    recent = sample(300, 10)
    assert psi_from_counts(baseline, bin_counts(baseline, recent)) == pytest.approx(
        psi_per_feature(baseline, recent)
    )

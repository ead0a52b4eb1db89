"""Smoke test of the simulation core of loadtest/bench_judge.py: a handful of rollouts.

Checks the shape of the outcomes and that a seed reproduces them; no timing, no rates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtest"))

import bench_judge  # noqa: E402


def test_simulation_core_runs_a_few_rollouts() -> None:
    scenario = bench_judge.SCENARIOS[2]  # p95 +50 %
    out = bench_judge.simulate(50.0, 0.5, scenario, rollouts=4, seed=3)
    assert set(out) == set(bench_judge.METHODS)
    for outcomes in out.values():
        assert len(outcomes) == 4
        for o in outcomes:
            for t in (o.rollback_at, o.advance_at):
                assert t is None or 0 < t <= bench_judge.STEP_S
            if o.rollback_at is not None and o.advance_at is not None:
                assert o.advance_at < o.rollback_at  # a step cannot advance after its rollback
    assert out == bench_judge.simulate(50.0, 0.5, scenario, rollouts=4, seed=3)


def test_p95_matches_the_judge_histogram_quantile() -> None:
    from artpulse_operator.engine.judge import histogram_quantile

    probabilities = bench_judge.bucket_probabilities(1.0)
    counts = np.random.default_rng(5).multinomial(1000, probabilities, size=8)
    cumulative = np.cumsum(counts, axis=1)
    got = bench_judge.promql_p95_ms(cumulative)
    for row, p95 in zip(cumulative, got, strict=True):
        expected = histogram_quantile(
            0.95, dict(zip(bench_judge.BOUNDS, row.tolist(), strict=True))
        )
        assert expected is not None
        assert p95 == pytest.approx(expected * 1000)
    # The lognormal's p95 is 60 ms, within the bucketing error.
    assert float(np.median(got)) == pytest.approx(60.0, rel=0.1)

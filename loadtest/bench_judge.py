"""Sequential judge vs today's threshold gates: a simulation of one canary step.

    .venv/bin/python loadtest/bench_judge.py [--rollouts 1000] [--out docs/benchmarks.md]
    .venv/bin/python loadtest/bench_judge.py --quick          # smoke run, prints only

Synthetic traffic, drawn per 30 s analysis interval with numpy: Poisson arrivals at 5 and
50 req/s in total, split Bernoulli(weight) to the canary at 1 %, 10 % and 50 %; 0.5 % errors;
lognormal latency (median 20 ms, p95 60 ms) counted in the inference server's histogram buckets
(``DEFAULT_LATENCY_BUCKETS``); four labels at 25 % each, one row per served request. Scenarios:
a good candidate (identical to stable), 2x the error rate, latency scaled by 1.5 (p95 +50 %)
and a label-mix shift (one label 25 % -> 40 %). Each rollout is one step held for 30 minutes,
checked every 30 s by three deciders on the same traffic:

- ``judge``: ``engine.judge.judge`` on counts since the step start (alpha 0.01,
  min_candidate_requests 100); the first Fail rolls back, a Pass lets the step advance.
- ``judge + count()``: the same verdicts fed through ``engine.gates.count`` with today's
  counting rules (failureLimit 2, onInconclusive Hold, inconclusiveLimit 10), which is what
  reusing the counters unchanged would give.
- ``gates``: today's ``engine.gates.evaluate`` + ``count`` with the defaults (window 1m,
  minRequests 50, maxErrorRate 0.01, same counting rules) plus ``maxP95RatioToStable: 1.3``
  as the latency gate (relative, like the judge; p95 of each track's window computed from
  the bucket counts as PromQL's histogram_quantile does). No gate looks at labels.

Measured per (rate, weight) cell: false rollbacks of good candidates (held 30 min, and
before the step could advance); for the bad scenarios the share detected within 30 min,
the median and p90 time to the rollback (undetected rollouts count as never) and the share
"promoted" first: the step could advance (a pass seen and the step's pause, 60 s by default
as in the default first step, over) before the rollback. Prometheus is idealised: exact
counts, no scrape lag or extrapolation. Writes its section between ``<!-- BEGIN bench_judge
-->`` and ``<!-- END bench_judge -->`` of ``--out`` (and prints it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MARKER = "bench_judge"
sys.path[:0] = [str(REPO / "operator"), str(REPO / "inference"), str(Path(__file__).parent)]

from artpulse_inference.server.settings import DEFAULT_LATENCY_BUCKETS  # noqa: E402
from artpulse_operator.engine.gates import CheckOutcome, count, evaluate  # noqa: E402
from artpulse_operator.engine.judge import ArmCounts, judge  # noqa: E402
from artpulse_operator.engine.observations import (  # noqa: E402
    GateResult,
    TrackMeasurement,
    Verdict,
)
from artpulse_operator.engine.spec import AnalysisSpec, GatesSpec  # noqa: E402
from artpulse_operator.engine.status import AnalysisStatus  # noqa: E402
from report import BENCHMARKS_MD, machine_facts, write_section  # noqa: E402

BOUNDS = (*(float(b) for b in DEFAULT_LATENCY_BUCKETS.split(",")), math.inf)
LABELS = ("a", "b", "c", "d")
INTERVAL_S = 30.0
STEP_S = 1800.0
MEDIAN_S = 0.020
SIGMA = math.log(3.0) / 1.6448536  # p95 = 3 x median = 60 ms
RATES = (5.0, 50.0)
WEIGHTS = (0.01, 0.10, 0.50)
ALPHA = 0.01
MIN_CANDIDATE_REQUESTS = 100
GATES = AnalysisSpec(gates=GatesSpec(max_error_rate=0.01, max_p95_ratio_to_stable=1.3))
METHODS = ("judge", "judge + count()", "gates")
CELLS = tuple((rate, weight) for rate in RATES for weight in WEIGHTS)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    name: str
    error_rate: float = 0.005
    latency_scale: float = 1.0
    label_shares: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)


GOOD = Scenario("good (identical)")
SCENARIOS = (
    GOOD,
    Scenario("2x error rate (0.5 % -> 1 %)", error_rate=0.01),
    Scenario("p95 +50 % (latency x1.5)", latency_scale=1.5),
    Scenario("label shift (25 % -> 40 %)", label_shares=(0.40, 0.20, 0.20, 0.20)),
)


@dataclass(frozen=True)
class Outcome:
    """One decider on one rollout; times in seconds since the step started."""

    rollback_at: float | None  # the step held for STEP_S: when it would roll back
    by_inconclusive_limit: bool  # that rollback came at an Inconclusive check
    advance_at: float | None  # when the step could first advance (before any rollback)


def bucket_probabilities(scale: float) -> np.ndarray:
    """P(latency in each bucket) for the lognormal scaled by ``scale``; +Inf takes the rest."""
    cdf = [
        0.5 * (1 + math.erf(math.log(b / (MEDIAN_S * scale)) / (SIGMA * math.sqrt(2))))
        for b in BOUNDS[:-1]
    ]
    return np.diff([0.0, *cdf, 1.0])


def draw_arm(rng: np.random.Generator, shape: tuple[int, int], rate: float, s: Scenario) -> dict:
    """Per-interval counts of one track: (rollouts, intervals[, categories])."""
    requests = rng.poisson(rate * INTERVAL_S, size=shape)
    errors = rng.binomial(requests, s.error_rate)
    buckets = rng.multinomial(requests, bucket_probabilities(s.latency_scale))
    labels = rng.multinomial(requests - errors, s.label_shares)
    return {"requests": requests, "errors": errors, "buckets": buckets, "labels": labels}


def promql_p95_ms(cumulative: np.ndarray) -> np.ndarray:
    """histogram_quantile(0.95) over the last axis of cumulative bucket counts, in ms (NaN: no data)."""
    total = cumulative[..., -1]
    rank = 0.95 * total
    idx = np.argmax(cumulative >= rank[..., None], axis=-1)
    upper = np.asarray(BOUNDS)[idx]
    lower = np.where(idx > 0, np.asarray((0.0, *BOUNDS))[idx], 0.0)
    below = np.where(
        idx > 0, np.take_along_axis(cumulative, np.maximum(idx - 1, 0)[..., None], -1)[..., 0], 0
    )
    inside = np.take_along_axis(cumulative, idx[..., None], -1)[..., 0] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        value = lower + (upper - lower) * np.where(inside > 0, (rank - below) / inside, 1.0)
    value = np.where(idx == len(BOUNDS) - 1, BOUNDS[-2], value)  # in +Inf: highest finite bound
    return np.where(total > 0, value * 1000.0, np.nan)


def _windowed(x: np.ndarray, intervals: int) -> np.ndarray:
    """Sums over the gates' window (the last ``intervals`` intervals) at every check."""
    cum = np.cumsum(x, axis=1)
    shifted = np.zeros_like(cum)
    shifted[:, intervals:] = cum[:, :-intervals]
    return cum - shifted


def _measurements(arm: dict, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    requests = _windowed(arm["requests"], window).astype(float)
    errors = _windowed(arm["errors"], window)
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(requests > 0, errors / requests, np.nan)
    p95 = promql_p95_ms(np.cumsum(_windowed(arm["buckets"], window), axis=2))
    return requests, error_rate, p95


def _number(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def simulate(
    rate: float, weight: float, scenario: Scenario, rollouts: int, seed: int, pause: float = 60.0
) -> dict[str, list[Outcome]]:
    """The simulation core: ``rollouts`` rollouts of one cell, every decider on the same traffic."""
    rng = np.random.default_rng(seed)
    intervals = int(STEP_S // INTERVAL_S)
    shape = (rollouts, intervals)
    cand = draw_arm(rng, shape, rate * weight, scenario)
    stab = draw_arm(rng, shape, rate * (1 - weight), GOOD)
    window = max(1, round(GATES.window / INTERVAL_S))
    gate_c, gate_s = _measurements(cand, window), _measurements(stab, window)
    # Counts since the step started, as judge inputs (buckets cumulative over le as well).
    since = {
        name: {k: np.cumsum(v, axis=1) for k, v in arm.items()}
        for name, arm in (("c", cand), ("s", stab))
    }
    for arm in since.values():
        arm["buckets"] = np.cumsum(arm["buckets"], axis=2)
    out: dict[str, list[Outcome]] = {m: [] for m in METHODS}
    for r in range(rollouts):
        arms = {name: {k: v[r].tolist() for k, v in arm.items()} for name, arm in since.items()}
        deciders = {m: _Decider() for m in METHODS}
        for i in range(intervals):
            t = (i + 1) * INTERVAL_S
            counts = [
                ArmCounts(
                    requests=a["requests"][i],
                    errors=a["errors"][i],
                    latency_buckets=dict(zip(BOUNDS, a["buckets"][i], strict=True)),
                    labels=dict(zip(LABELS, a["labels"][i], strict=True)),
                )
                for a in (arms["c"], arms["s"])
            ]
            verdict = judge(*counts, alpha=ALPHA, min_candidate_requests=MIN_CANDIDATE_REQUESTS)
            measured = [
                TrackMeasurement(
                    requests=float(g[0][r, i]),
                    error_rate=_number(g[1][r, i]),
                    p95_latency_ms=_number(g[2][r, i]),
                )
                for g in (gate_c, gate_s)
            ]
            deciders["judge"].direct(verdict.verdict, t, pause)
            deciders["judge + count()"].counted(
                GateResult(verdict.verdict, {}, (), verdict.message), t, pause
            )
            deciders["gates"].counted(evaluate(GATES, measured[0], measured[1]), t, pause)
            if all(d.rollback_at is not None for d in deciders.values()):
                break
        for m, d in deciders.items():
            out[m].append(Outcome(d.rollback_at, d.by_inconclusive_limit, d.advance_at))
    return out


@dataclass
class _Decider:
    """One decider's state through a rollout (mutable: the simulation's bookkeeping)."""

    status: AnalysisStatus = field(default_factory=AnalysisStatus)
    rollback_at: float | None = None
    by_inconclusive_limit: bool = False
    passed: bool = False
    advance_at: float | None = None

    def direct(self, verdict: Verdict, t: float, pause: float) -> None:
        """The judge on its own: the first Fail rolls back, a Pass lets the step advance."""
        if self.rollback_at is None:
            self.passed = self.passed or verdict is Verdict.PASS
            self._after(verdict is Verdict.FAIL, False, t, pause)

    def counted(self, result: GateResult, t: float, pause: float) -> None:
        """Through today's counting rules (engine.gates.count)."""
        if self.rollback_at is None:
            counted = count(GATES, self.status, result, now=T0 + timedelta(seconds=t))
            self.status = counted.analysis
            self.passed = counted.analysis.passed_checks_in_step >= 1
            rollback = counted.outcome is CheckOutcome.ROLLBACK
            self._after(rollback, result.verdict is Verdict.INCONCLUSIVE, t, pause)

    def _after(self, rollback: bool, inconclusive: bool, t: float, pause: float) -> None:
        if rollback:
            self.rollback_at, self.by_inconclusive_limit = t, inconclusive
        elif self.advance_at is None and self.passed and t >= pause:
            self.advance_at = t


def _task(args: tuple[int, int, int, int, int, float]) -> tuple[int, int, dict[str, list[Outcome]]]:
    cell, scen, chunk, rollouts, seed, pause = args
    rate, weight = CELLS[cell]
    seq = np.random.SeedSequence([seed, cell, scen, chunk])
    seed_int = int(seq.generate_state(1)[0])
    return cell, scen, simulate(rate, weight, SCENARIOS[scen], rollouts, seed_int, pause)


def run_all(
    rollouts: int, workers: int, seed: int, pause: float
) -> dict[tuple[int, int], dict[str, list[Outcome]]]:
    chunk_size = 100
    tasks = []
    for cell in range(len(CELLS)):
        for scen in range(len(SCENARIOS)):
            for chunk, start in enumerate(range(0, rollouts, chunk_size)):
                tasks.append((cell, scen, chunk, min(chunk_size, rollouts - start), seed, pause))
    results: dict[tuple[int, int], dict[str, list[Outcome]]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for cell, scen, outcomes in pool.map(_task, tasks):
            merged = results.setdefault((cell, scen), {m: [] for m in METHODS})
            for m, items in outcomes.items():
                merged[m].extend(items)
    return results


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %"


def _quantile_time(times: list[float | None], q: float) -> str:
    """The q-quantile of the time to rollback, undetected rollouts counting as never."""
    done = sorted(t for t in times if t is not None)
    k = math.ceil(q * len(times))
    if k > len(done):
        return "> 30 min"
    t = done[max(k - 1, 0)]
    return f"{t / 60:.1f} min" if t >= 120 else f"{t:.0f} s"


def summarise(results: dict[tuple[int, int], dict[str, list[Outcome]]]) -> dict[str, Any]:
    good, bad = [], []
    for (cell, scen), by_method in sorted(results.items()):
        rate, weight = CELLS[cell]
        for m in METHODS:
            o = by_method[m]
            n = len(o)
            rolled = [x for x in o if x.rollback_at is not None]
            before_advance = [x for x in rolled if x.advance_at is None]
            row = {
                "scenario": SCENARIOS[scen].name, "rate": rate, "weight": weight, "method": m,
                "n": n, "rollback": len(rolled),
                "by_inconclusive": sum(x.by_inconclusive_limit for x in rolled),
                "rollback_before_advance": len(before_advance),
                "advanced": sum(x.advance_at is not None for x in o),
                "median_advance": _quantile_time([x.advance_at for x in o], 0.5),
                "median_detect": _quantile_time([x.rollback_at for x in o], 0.5),
                "p90_detect": _quantile_time([x.rollback_at for x in o], 0.9),
                "median_detect_s": _median_or_inf([x.rollback_at for x in o]),
                "promoted_first": sum(
                    x.advance_at is not None and (x.rollback_at is None or x.advance_at < x.rollback_at)
                    for x in o
                ),
            }  # fmt: skip
            (good if scen == 0 else bad).append(row)
    return {"good": good, "bad": bad}


def _median_or_inf(times: list[float | None]) -> float:
    done = sorted(t for t in times if t is not None)
    k = math.ceil(0.5 * len(times))
    return done[k - 1] if k <= len(done) else math.inf


def render(
    summary: dict[str, Any], info: dict[str, str], args: argparse.Namespace, wall: float
) -> str:
    n = args.rollouts
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Sequential judge vs threshold gates (simulation)",
        "",
        f"`loadtest/bench_judge.py --rollouts {n}`{' --quick' if args.quick else ''}: run "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['cpus']} CPUs "
        f"({info['cpu']}), {info['ram']} RAM, load average at the end {info['load']}; Python "
        f"{info['python']}, numpy {info['numpy']}; {wall:.0f} s with {args.workers} workers. "
        f"{n} simulated rollouts per cell and scenario, seed {args.seed}.",
        "",
        "Model (see the script's docstring): one canary step held 30 min, checked every 30 s; "
        "Poisson traffic at 5 or 50 req/s in total, canary weight 1/10/50 %; 0.5 % errors, "
        "lognormal latency (median 20 ms, p95 60 ms) in the server's buckets, 4 labels at 25 %. "
        f"**judge**: `engine.judge` (alpha {ALPHA}, min_candidate_requests "
        f"{MIN_CANDIDATE_REQUESTS}) on counts since the step started, its first Fail rolls back. "
        "**judge + count()**: the same verdicts through today's counting rules. **gates**: "
        "today's `evaluate` + `count` with the defaults (window 1m, minRequests 50, maxErrorRate "
        "0.01, failureLimit 2, onInconclusive Hold, inconclusiveLimit 10) and "
        "`maxP95RatioToStable: 1.3` (no gate reads labels). Same traffic for all three. "
        f'"Advance": a pass seen and the step\'s {args.pause:.0f} s pause over. Prometheus is '
        "idealised (exact counts). With 1,000 rollouts a rate of 1 % has a standard error of 0.3 %.",
        "",
        "### Good candidate: false rollbacks",
        "",
        "| req/s | canary | candidate req/30 min | decider | rolled back within 30 min | "
        "of which at the inconclusiveLimit | rolled back before it could advance | could advance "
        "| median time to advance |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["good"]:
        lines.append(
            f"| {r['rate']:g} | {r['weight']:.0%} | {r['rate'] * r['weight'] * STEP_S:.0f} | "
            f"{r['method']} | {_pct(r['rollback'], r['n'])} | {_pct(r['by_inconclusive'], r['n'])} "
            f"| {_pct(r['rollback_before_advance'], r['n'])} | {_pct(r['advanced'], r['n'])} | "
            f"{r['median_advance']} |"
        )
    lines += [
        "",
        "### Bad candidates: detection",
        "",
        "Time to detect = time of the rollback; the median and p90 count undetected rollouts "
        'as never ("> 30 min" when fewer than half or 90 % were detected). "Promoted first": '
        "the step could advance before the rollback.",
        "",
        "| scenario | req/s | canary | decider | detected within 30 min | of which at the "
        "inconclusiveLimit | median time to detect | p90 | promoted first |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["bad"]:
        lines.append(
            f"| {r['scenario']} | {r['rate']:g} | {r['weight']:.0%} | {r['method']} | "
            f"{_pct(r['rollback'], r['n'])} | {_pct(r['by_inconclusive'], r['n'])} | "
            f"{r['median_detect']} | {r['p90_detect']} | {_pct(r['promoted_first'], r['n'])} |"
        )
    lines += ["", *goals(summary), "", f"<!-- END {MARKER} -->"]
    return "\n".join(lines)


def goals(summary: dict[str, Any]) -> list[str]:
    """The issue's two goals, checked against this run's numbers."""
    judge_good = [r for r in summary["good"] if r["method"] == "judge"]
    worst = max(judge_good, key=lambda r: r["rollback"] / r["n"])
    out = [
        "Goals from the issue, checked on this run:",
        "",
        f"- False rollbacks at or under alpha (1 %), step held the full 30 min: the judge's "
        f"worst cell is {_pct(worst['rollback'], worst['n'])} ({worst['rate']:g} req/s, "
        f"{worst['weight']:.0%}): "
        + ("met." if all(r["rollback"] / r["n"] <= ALPHA for r in judge_good) else "missed.")
        + " Fed through today's count() the judge inherits the inconclusiveLimit rollbacks "
        "wherever it cannot reach min_candidate_requests within 10 checks.",
    ]
    from_data, timed_out = [], []
    for r in summary["bad"]:
        if r["method"] != "judge" or r["weight"] > 0.10:
            continue
        gate = next(
            g for g in summary["bad"]
            if g["method"] == "gates" and (g["scenario"], g["rate"], g["weight"]) == (r["scenario"], r["rate"], r["weight"])
        )  # fmt: skip
        cell = f"{r['scenario']} at {r['rate']:g} req/s, {r['weight']:.0%}"
        if gate["by_inconclusive"] * 2 >= gate["n"]:
            timed_out.append(f"{cell}: {r['median_detect']}")
        else:
            faster = r["median_detect_s"] < gate["median_detect_s"]
            from_data.append((faster, f"{cell}: {r['median_detect']} vs {gate['median_detect']}"))
    wins = [c for f, c in from_data if f]
    losses = [c for f, c in from_data if not f]
    out += [
        "- Detection faster than the threshold gates at 1 % and 10 % weight (median time to "
        f"detect, judge vs gates): in {len(from_data)} of the {len(from_data) + len(timed_out)} "
        f"bad cells the gates decided from data; the judge was faster in {len(wins)}"
        + (f" ({'; '.join(wins)})" if wins else "")
        + f" and not faster in {len(losses)}"
        + (f" ({'; '.join(losses)})" if losses else "")
        + ". In the other cells the canary's 1-minute window never reaches minRequests, so the "
        "gates only time out at the inconclusiveLimit (5.5 min), which rolls back good "
        "candidates just as often (first table); the judge's median time to detect there: "
        + "; ".join(timed_out)
        + ".",
        "",
        f"Reading: the judge rolled back {sum(r['rollback'] for r in judge_good)} of "
        f"{sum(r['n'] for r in judge_good)} good candidates, and it pays for that: "
        "each test must first earn the prior's cost (about 1/2 ln n per category, n counting "
        "stable's requests too) before any evidence counts, so small shifts on a rare "
        "outcome (0.5 % -> 1 % errors) need thousands of canary requests. Its Pass comes at "
        f"min_candidate_requests ({MIN_CANDIDATE_REQUESTS}) whatever evidence has built up, so "
        '"promoted first" is high wherever a regression needs more than that to show. '
        "Today's gates decide on a 1-minute window: a good candidate at 0.5 % errors exceeds "
        "maxErrorRate 1 % in a few hundred requests often enough that, checked every 30 s, "
        "two failures come within minutes; below 50 canary requests per minute they never "
        "decide and roll back at the inconclusiveLimit.",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=1000, help="per cell and scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pause", type=float, default=60.0, help="the step's pause, seconds")
    parser.add_argument("--out", type=Path, default=None, help=f"default {BENCHMARKS_MD}")
    parser.add_argument("--quick", action="store_true", help="30 rollouts, print only")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.rollouts = min(args.rollouts, 30)
    start = time.perf_counter()
    results = run_all(args.rollouts, args.workers, args.seed, args.pause)
    wall = time.perf_counter() - start
    text = render(summarise(results), machine_facts({"numpy": np.__version__}), args, wall)
    print(text)
    if not args.no_write and (args.out is not None or not args.quick):
        print(f"wrote {write_section(MARKER, text, args.out or BENCHMARKS_MD)}", file=sys.stderr)


if __name__ == "__main__":
    main()

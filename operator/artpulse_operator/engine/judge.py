"""The sequential canary-vs-stable judge (``analysis.judge``): anytime-valid tests on counts. Pure.

Called by the analysis handler with :class:`ArmCounts` for each track, accumulated since the
current step started (Prometheus ``increase()`` over the step's age), at every analysis
interval; ``judge`` returns a :class:`JudgeResult` whose ``to_status()`` goes to
``status.analysis.judge``. Only ``math`` is used: the operator image has no numpy or scipy.

Each test asks whether the canary's share of traffic is the same in every category of a 2xK
table (arm x category): ``errors`` (error / ok), ``latency`` (histogram buckets) and ``labels``
(predicted label). Under H0 (both tracks have the same outcome distribution) each request's
arm is Bernoulli(rho) independently of its category, rho being the unknown traffic share.

The e-value is universal inference (Wasserman, Ramdas, Balakrishnan 2020) with a mixture
numerator, as in Lindon, Sanden, Shirikian (KDD 2022): a Beta(a, b) prior on the canary share
of each category j gives the order-free marginal ``prod_j B(a + c_j, b + s_j) / B(a, b)``; the
denominator is H0's best fit ``rho^C (1 - rho)^S`` at ``rho = C / (C + S)``. The ratio is
bounded by a test martingale under H0 whatever rho is, so by Ville's inequality
P(ever >= 1/alpha) <= alpha, however often and for however long it is checked. An empty
category contributes a factor 1, so a label or bucket seen by neither track changes nothing.

Prior: Jeffreys, a = b = 1/2 (the Krichevsky-Trofimov mixture). Its cost against the best
per-category share is about ``1/2 ln n_j + 0.23`` nats for every rho, so it needs no guess of
the canary weight (a prior centred on 50 % would waste evidence at a 1 % step).

Latency is ordinal and a slow model moves mass across every bucket, so instead of one factor
per bucket (a cost in each) the latency e-value is the mean of the 2x2 e-values "at most le /
above le" over the histogram's bounds (a fixed mixture of e-processes is one). A shifted
distribution shows at some bound at the price of ln(#bounds), not of #buckets.

Worked example, errors: candidate 2000 requests with 40 errors (2 %), stable 18000 with 90
(0.5 %). ln numerator = ln B(40.5, 90.5) + ln B(1960.5, 17910.5) - 2 ln B(1/2, 1/2); ln
denominator = 2000 ln 0.1 + 18000 ln 0.9; ln E = 13.71, E = 9.0e5. At alpha 0.01 the threshold
is 1 / 0.01 = 100 when errors is the only test with data (3 / 0.01 = 300 with all three), so
errors rejects; the candidate's rate is the higher one, so it is a regression: Fail. With 4
and 36 errors (0.2 % in both) E = 0.0007: the prior's cost (7.3 nats here) must be earned
before anything rejects, which is what makes the judge conservative at small differences.

Assumptions: the counts restart with the step and the traffic share is constant within it (a
share that moves while the category mix drifts, e.g. latency under a load change, ties arm to
category and breaks H0); counts are the requests' (``increase()`` extrapolates to fractions,
which the Beta functions accept, the guarantee is for the true counts).

Rules: ``alpha`` is split equally (Bonferroni) over the tests with data in both tracks; a test
without data is skipped with a note (the split assumes a test lacks data because of what the
server exports, not by chance; in practice the set only changes when a track starts serving).
A rejection fails only in the harmful direction: errors when the candidate's error rate is
higher, latency when the candidate is slower at the bounds that carry the evidence (the
harmful-direction part of the mixture alone reaches the threshold), labels always. Verdict:
Fail on any regression, at any count; Pass once the candidate has ``min_candidate_requests``
without one; Inconclusive before that. Without stable traffic (a 100 % step) nothing can be
compared: Pass on the request count alone, with a note. Counts from a hostile or broken
Prometheus never crash the judge: a non-finite or negative request or error count is 0, a
bucket or label with one is left out of both tracks (no data, not a zero that would look like
a shift), and cumulative buckets are made non-decreasing. Label
rows are scaled to requests when a request predicts several rows (rows of one request share
its arm, so counting them as independent would overstate the evidence).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from artpulse_operator.engine.observations import Verdict

__all__ = [
    "ArmCounts",
    "JudgeResult",
    "JudgeTest",
    "TestEvidence",
    "histogram_quantile",
    "judge",
    "log_e_value",
]

PRIOR_A = 0.5  # Jeffreys Beta(1/2, 1/2) on the canary share of each category (module doc)
PRIOR_B = 0.5
E_VALUE_CAP = 1e300  # e-values beyond this (ln > 690) are reported as this, finite for JSON
_LOG_CAP = math.log(E_VALUE_CAP)
_LOG_BETA_PRIOR = math.lgamma(PRIOR_A) + math.lgamma(PRIOR_B) - math.lgamma(PRIOR_A + PRIOR_B)


@dataclass(frozen=True)
class ArmCounts:
    """Counts of one track accumulated since the step started (Prometheus increase())."""

    requests: float  # requests (production routes)
    errors: float  # 5xx among them
    # Histogram semantics: upper bound ``le`` in seconds (math.inf allowed) -> CUMULATIVE count.
    latency_buckets: Mapping[float, float] = field(default_factory=dict)
    labels: Mapping[str, float] = field(default_factory=dict)  # label -> predicted rows


class JudgeTest(StrEnum):
    ERRORS = "errors"
    LATENCY = "latency"
    LABELS = "labels"


@dataclass(frozen=True)
class TestEvidence:
    __test__ = False  # not a pytest test class despite the name

    test: JudgeTest
    e_value: float  # the e-process value (>= threshold rejects)
    threshold: float  # 1/alpha_i after the Bonferroni split
    rejected: bool
    regression: bool  # rejected in the harmful direction (only then it fails)
    # Readable per-arm statistic: error rate, bucket-estimated p95 in ms, or the shares of
    # the label whose share differs most between the tracks.
    candidate: float | None
    stable: float | None
    samples: tuple[float, float]  # (candidate, stable) counts the test used
    message: str


@dataclass(frozen=True)
class JudgeResult:
    verdict: Verdict  # Pass, Fail or Inconclusive (never Error)
    evidence: tuple[TestEvidence, ...]
    message: str

    def to_status(self) -> dict[str, Any]:
        """``status.analysis.judge``: camelCase, 4 significant digits, finite numbers only."""
        return {
            "verdict": str(self.verdict),
            "tests": {
                str(e.test): {
                    "eValue": _round(e.e_value),
                    "threshold": _round(e.threshold),
                    "rejected": e.rejected,
                    "regression": e.regression,
                    "candidate": _round(e.candidate),
                    "stable": _round(e.stable),
                    "samples": [_round(e.samples[0]), _round(e.samples[1])],
                }
                for e in self.evidence
            },
            "message": self.message,
        }


def _round(v: float | None) -> float | None:
    if v is None or math.isnan(v):
        return None
    return float(f"{max(-E_VALUE_CAP, min(E_VALUE_CAP, v)):.4g}")


def _fmt(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v:.2e}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _count(v: object) -> float:
    """A count from Prometheus: non-finite or negative is no data (0)."""
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return x if 0 < x < math.inf else 0.0  # NaN compares False


def _xlogx_over(x: float, n: float) -> float:
    return x * math.log(x / n) if x > 0 else 0.0


def _log_marginal(c: float, s: float) -> float:
    """ln of one category's Beta-Binomial factor ``B(a + c, b + s) / B(a, b)``."""
    return (
        math.lgamma(PRIOR_A + c) + math.lgamma(PRIOR_B + s) - math.lgamma(PRIOR_A + PRIOR_B + c + s)
    ) - _LOG_BETA_PRIOR


def _log_sup_h0(cand: float, stab: float) -> float:
    """ln max_rho rho^C (1 - rho)^S, at rho = C / (C + S)."""
    n = cand + stab
    return _xlogx_over(cand, n) + _xlogx_over(stab, n)


def log_e_value(table: Iterable[tuple[float, float]]) -> float:
    """ln E of a 2xK table given as (candidate, stable) counts per category (module doc)."""
    log_num = 0.0
    cand = stab = 0.0
    for c, s in table:
        if c > 0 or s > 0:  # an empty category's factor is 1
            log_num += _log_marginal(c, s)
            cand += c
            stab += s
    return log_num - _log_sup_h0(cand, stab) if cand + stab > 0 else 0.0


def _logmeanexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _cumulative(buckets: Mapping[float, float]) -> dict[float, float]:
    """Clean bucket bounds and counts, cumulative counts made non-decreasing."""
    clean: dict[float, float] = {}
    for le, v in buckets.items():
        try:
            bound, value = float(le), float(v)
        except (TypeError, ValueError):
            continue
        if bound >= 0 and 0 <= value < math.inf:  # comparisons with NaN are False
            clean[bound] = value
    running = 0.0
    out: dict[float, float] = {}
    for bound in sorted(clean):
        running = max(running, clean[bound])
        out[bound] = running
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Like PromQL's histogram_quantile on cumulative buckets: linear within the bucket.

    A quantile in the +Inf bucket is the highest finite bound; without data, ``None``.
    """
    return _quantile(q, _cumulative(buckets))


def _quantile(q: float, cum: Mapping[float, float]) -> float | None:
    bounds = sorted(cum)
    if not bounds or cum[bounds[-1]] <= 0:
        return None
    rank = q * cum[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if cum[bound] >= rank:
            if math.isinf(bound):
                finite = [b for b in bounds if math.isfinite(b)]
                return finite[-1] if finite else None
            inside = cum[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, cum[bound]
    return None


@dataclass(frozen=True)
class _Outcome:
    log_e: float
    log_e_harmful: float  # the harmful-direction part of the evidence
    candidate: float | None
    stable: float | None
    samples: tuple[float, float]
    detail: str


def _errors_test(cand: ArmCounts, stab: ArmCounts) -> _Outcome | None:
    rc, rs = _count(cand.requests), _count(stab.requests)
    ec, es = min(_count(cand.errors), rc), min(_count(stab.errors), rs)
    if rc <= 0 or rs <= 0:
        return None
    log_e = log_e_value([(ec, es), (rc - ec, rs - es)])
    worse = ec / rc > es / rs
    detail = f"error rate {ec / rc:.2%} vs {es / rs:.2%}"
    return _Outcome(log_e, log_e if worse else -math.inf, ec / rc, es / rs, (rc, rs), detail)


def _latency_test(cand: ArmCounts, stab: ArmCounts) -> _Outcome | None:
    cc, cs = _cumulative(cand.latency_buckets), _cumulative(stab.latency_buckets)
    bounds = sorted(set(cc) & set(cs))  # a coarser common binning is still a fixed one
    if len(bounds) < 2 or cc[bounds[-1]] <= 0 or cs[bounds[-1]] <= 0:
        return None
    tc, ts = cc[bounds[-1]], cs[bounds[-1]]
    log_den = _log_sup_h0(tc, ts)  # the same for every split
    logs, harmful = [], []
    best, best_bound = -math.inf, bounds[0]
    seen: dict[tuple[float, float], float] = {}  # bounds with the same split, e.g. empty ones
    for bound in bounds[:-1]:  # split "at most le" / "above le"
        lc, ls = cc[bound], cs[bound]
        log_e = seen.get((lc, ls))
        if log_e is None:
            log_e = _log_marginal(lc, ls) + _log_marginal(tc - lc, ts - ls) - log_den
            seen[lc, ls] = log_e
        logs.append(log_e)
        # The harmful part: only splits where the candidate has the larger share above.
        harmful.append(log_e if lc * ts < ls * tc else -math.inf)
        if log_e > best:
            best, best_bound = log_e, bound
    log_harm = _logmeanexp(harmful) if max(harmful) > -math.inf else -math.inf
    bound = best_bound
    above_c, above_s = (tc - cc[bound]) / tc, (ts - cs[bound]) / ts
    detail = f"{above_c:.1%} vs {above_s:.1%} of requests above {bound * 1000:g} ms"
    p95c, p95s = _quantile(0.95, cc), _quantile(0.95, cs)
    return _Outcome(
        _logmeanexp(logs),
        log_harm,
        None if p95c is None else p95c * 1000,
        None if p95s is None else p95s * 1000,
        (tc, ts),
        detail,
    )


def _labels_test(cand: ArmCounts, stab: ArmCounts) -> _Outcome | None:
    # A label with a non-finite or negative count in either track is unknown: left out of both.
    names = sorted(
        (n for n in set(cand.labels) | set(stab.labels) if _valid(cand, n) and _valid(stab, n)),
        key=str,
    )
    rows = [(_count(cand.labels.get(n)), _count(stab.labels.get(n))) for n in names]
    tc, ts = sum(c for c, _ in rows), sum(s for _, s in rows)
    if tc <= 0 or ts <= 0:
        return None
    # Rows of one request share its arm: count request-equivalents when requests batch rows.
    requests = _count(cand.requests) + _count(stab.requests)
    scale = min(1.0, requests / (tc + ts)) if requests > 0 else 1.0
    log_e = log_e_value([(c * scale, s * scale) for c, s in rows])
    _, i = max((abs(c / tc - s / ts), i) for i, (c, s) in enumerate(rows))
    share_c, share_s = rows[i][0] / tc, rows[i][1] / ts
    detail = f"label {names[i]!r} {share_c:.1%} vs {share_s:.1%} of rows"
    return _Outcome(log_e, log_e, share_c, share_s, (tc * scale, ts * scale), detail)


def _valid(arm: ArmCounts, label: str) -> bool:
    try:
        return 0 <= float(arm.labels.get(label, 0.0)) < math.inf
    except (TypeError, ValueError):
        return False


_TESTS = {
    JudgeTest.ERRORS: _errors_test,
    JudgeTest.LATENCY: _latency_test,
    JudgeTest.LABELS: _labels_test,
}
_NOT_FAILING = {True: "differs, not in the harmful direction", False: "no evidence yet"}
_NO_DATA = {
    JudgeTest.ERRORS: "no requests in one of the tracks",
    JudgeTest.LATENCY: "no latency buckets in one of the tracks",
    JudgeTest.LABELS: "no predicted labels in one of the tracks",
}


def judge(
    candidate: ArmCounts,
    stable: ArmCounts,
    *,
    alpha: float = 0.01,
    min_candidate_requests: int = 100,
    tests: Sequence[JudgeTest] = tuple(JudgeTest),
) -> JudgeResult:
    """Judge the candidate against stable on counts since the step started (module doc)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    requests = _count(candidate.requests)
    enough = requests >= min_candidate_requests
    progress = f"{_fmt(requests)}/{min_candidate_requests} candidate requests"
    if _count(stable.requests) <= 0:
        if enough:
            return JudgeResult(Verdict.PASS, (), f"no stable traffic to compare; {progress}")
        return JudgeResult(
            Verdict.INCONCLUSIVE, (), f"no stable traffic to compare; accumulating: {progress}"
        )
    outcomes: dict[JudgeTest, _Outcome] = {}
    notes: list[str] = []
    for test in dict.fromkeys(tests):
        outcome = _TESTS[test](candidate, stable)
        if outcome is None:
            notes.append(f"{test} skipped: {_NO_DATA[test]}")
        else:
            outcomes[test] = outcome
    threshold = len(outcomes) / alpha
    log_threshold = math.log(threshold) if outcomes else math.inf
    evidence = []
    for test, o in outcomes.items():
        rejected = o.log_e >= log_threshold
        regression = rejected and o.log_e_harmful >= log_threshold
        state = "regression" if regression else _NOT_FAILING[rejected]
        e_value = math.exp(min(o.log_e, _LOG_CAP))
        message = f"{test} {state}: {o.detail}, e {_fmt(e_value)}/{_fmt(threshold)}"
        evidence.append(
            TestEvidence(
                test=test,
                e_value=e_value,
                threshold=threshold,
                rejected=rejected,
                regression=regression,
                candidate=o.candidate,
                stable=o.stable,
                samples=o.samples,
                message=message,
            )
        )
    failing = [e.message for e in evidence if e.regression]
    if failing:
        return JudgeResult(Verdict.FAIL, tuple(evidence), "; ".join(failing))
    others = [e.message for e in evidence if e.rejected] + notes
    if enough:
        head = f"no regression detected in {_fmt(requests)} candidate requests"
        return JudgeResult(Verdict.PASS, tuple(evidence), "; ".join([head, *others]))
    scores = ", ".join(f"e {e.test} {_fmt(e.e_value)}/{_fmt(e.threshold)}" for e in evidence)
    head = f"accumulating: {progress}" + (f", {scores}" if scores else "")
    return JudgeResult(Verdict.INCONCLUSIVE, tuple(evidence), "; ".join([head, *others]))

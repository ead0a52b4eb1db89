"""The whole ArtPulse story on the real one-node cluster, asserted: every part real.

ArtPulse as the shipped manifests install it (`manifests/overlays/local`, conftest.py):
the operator as 2 pods with Kopf peering under its ServiceAccount and RBAC, MLflow and
Prometheus (Kubernetes service discovery) as pods, Traefik serving the Gateway, the
inference servers as pods the operator creates from the locally built image. All traffic
goes through the Gateway, with an API key.

- Canary: v2 is promoted through the steps (the champion alias moves, no request
  through the gateway fails meanwhile), then a bad v3 (latency fault) is rolled back
  by the operator within `interval x failureLimit` (plus a little) of its first
  failed check, again without a failed request; Events and `status.history` tell it.
- BlueGreen: a bad candidate takes over after the switch, fails its verification and the
  colours flip back at once to the old colour, kept warm (its pods never restarted).
- The canary's story, measured: the business-impact one-pager's figures (Prometheus, MLflow,
  the status history) and a short wrk run through the Gateway (e2e_reports.py).
- The active operator pod is deleted in the middle of a canary: the standby takes over,
  no step is repeated or skipped, one promotion.

The driver (`Story`) is the one `make demo` uses (artpulse_dev.story).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from artpulse_dev.story import Story, parse_time, rollout_record

from .e2e_reports import assert_reports_from_the_story
from .e2e_support import (
    E2E,
    assert_no_failed_requests,
    event_reasons,
    route_weights,
    stable_is,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INTERVAL_S = 5.0  # analysis.interval in tests/data/e2e/*.yaml
FAILURE_LIMIT = 2  # analysis.failureLimit
FAULT_LATENCY_MS = 600  # far above the 250 ms p95 gate


def pod_uids(story: Story, track: str) -> set[str]:
    """UIDs of the running pods of one of the model's tracks."""
    out = story.kubectl(
        "get", "pods", "-n", story.namespace,
        "-l", f"app.kubernetes.io/instance={story.name},artpulse.io/track={track}",
        "-o", "jsonpath={range .items[*]}{.metadata.uid} {.status.phase}{\"\\n\"}{end}",
    )  # fmt: skip
    return {line.split()[0] for line in out.splitlines() if line.endswith("Running")}


def test_canary_promotes_a_good_version_and_rolls_back_a_bad_one(
    artpulse: E2E, tmp_path: Path
) -> None:
    story, v1, v2 = artpulse.start("canary", "canary.yaml")
    scenario_started = time.time()
    load = story.start_traffic(rps=20)
    story.start_sampler(interval=0.5)
    try:
        wait_for(lambda: len(load.outcomes) >= 30, 60, "traffic flowing on v1")

        # v2 becomes the challenger: the canary walks its steps and is promoted.
        promote_started = time.time()
        story.set_alias("challenger", v2)
        status = story.wait(stable_is(v2), 300, "v2 promoted")
        promoted_at = time.time()
        assert story.alias("champion") == v2
        record = rollout_record(status, v2)
        assert record is not None
        assert record["result"] == "Promoted"
        walked = [s.weight for s in story.samples if s.candidate == v2]
        assert {20, 50} <= set(walked), walked  # each step was served (held >= one interval)
        assert walked == sorted(walked), walked  # never backwards
        assert_no_failed_requests(load.failures(promote_started, promoted_at + 2))
        assert load.between(promote_started, promoted_at)  # traffic did flow meanwhile
        assert story.version_tags(v2).get("artpulse.rollout.result") == "promoted"

        # A bad v3 (v2 slowed by injected latency) becomes the challenger: rolled back.
        v3 = story.register_faulty_copy(v2, latency_ms=FAULT_LATENCY_MS)
        rollback_started = time.time()
        story.set_alias("challenger", v3)
        status = story.wait(lambda s: s.get("phase") == "RolledBack", 300, "v3 rolled back")
        rolled_back_at = time.time()
        record = rollout_record(status, v3)
        assert record is not None
        assert record["result"] == "RolledBack"
        assert (status.get("stable") or {}).get("version") == v2
        assert story.alias("champion") == v2
        assert int(status.get("canaryWeight") or 0) == 0
        assert story.version_tags(v3).get("artpulse.rollout.result") == "rolled_back"

        # Within interval x failureLimit (plus a few seconds) of the first failed check.
        first_fail = next(
            (s for s in story.samples if s.candidate == v3 and s.verdict == "Fail"), None
        )
        assert first_fail is not None, "no failed check was observed"
        first_fail_at = parse_time(first_fail.analysis.get("lastCheckTime"))
        finished_at = parse_time(record.get("finishedAt"))
        assert first_fail_at is not None
        assert finished_at is not None
        assert finished_at - first_fail_at <= INTERVAL_S * FAILURE_LIMIT + 5, (
            first_fail_at,
            finished_at,
        )

        # Traffic is back on v2 only: 20 answers in a row from v2.
        seen = len(load.outcomes)
        wait_for(
            lambda: (
                len(tail := [o for o in load.outcomes[seen:] if o.ok]) >= 20
                and all(o.version == v2 for o in tail[-20:])
            ),
            60,
            "traffic back on v2",
        )
        # Not one request failed while the bad version came and went (checked last).
        rollback_failures = load.failures(rollback_started, rolled_back_at + 2)
    finally:
        story.stop()

    # The story, told by the resource itself.
    history = [(str(h.get("version")), h.get("result")) for h in status.get("history") or []]
    assert (v2, "Promoted") in history
    assert (v3, "RolledBack") in history or (status.get("lastRollout") or {}).get(
        "result"
    ) == "RolledBack"
    reasons = event_reasons(story)
    for reason in ("RolloutStarted", "StepAdvanced", "Promoted", "AnalysisFailed", "RolledBack"):
        assert reason in reasons, reasons
    assert reasons.index("Promoted") < reasons.index("RolledBack"), reasons
    warnings = [e for e in story.events() if e.get("type") == "Warning"]
    assert any(v3 in str(e.get("message")) for e in warnings), warnings
    assert v1 != v2
    assert_no_failed_requests(rollback_failures)

    # The reports of `make business-impact-report` and `make loadtest`, from what this
    # scenario left: a promotion, a rollback, minutes of traffic (e2e_reports.py).
    assert_reports_from_the_story(
        artpulse.local, story, scenario_started, time.time(), v2, tmp_path
    )


def test_bluegreen_rolls_back_a_bad_candidate_at_once(artpulse: E2E) -> None:
    story, v1, v2 = artpulse.start("bluegreen", "bluegreen.yaml")
    status = story.status()
    active = status.get("activeColor")
    assert active in ("blue", "green")
    active_pods = pod_uids(story, active)
    assert active_pods
    load = story.start_traffic(rps=20)
    story.start_sampler(interval=0.5)
    try:
        wait_for(lambda: len(load.outcomes) >= 30, 60, "traffic flowing on v1")
        bad = story.register_faulty_copy(v2, latency_ms=FAULT_LATENCY_MS)
        started = time.time()
        story.set_alias("challenger", bad)
        status = story.wait(
            lambda s: s.get("phase") == "RolledBack", 300, "bad candidate rolled back"
        )
        rolled_back_at = time.time()

        # The colours switched, the verification failed, and they flipped back: the old
        # colour is active again with the very processes it had (kept warm, never restarted).
        reasons = event_reasons(story)
        assert "Switched" in reasons, reasons
        assert reasons.index("Switched") < reasons.index("RolledBack"), reasons
        assert status.get("activeColor") == active
        assert (status.get("stable") or {}).get("version") == v1
        assert active_pods <= pod_uids(story, active)
        # The bad colour gets nothing through the gateway any more: the route says so, and
        # the next 20 answers through Traefik all come from v1.
        weights = route_weights(story)
        assert weights[f"{story.name}-{active}"] == 100, weights
        assert sum(weights.values()) == 100, weights
        seen = len(load.outcomes)
        wait_for(
            lambda: (
                len(tail := [o for o in load.outcomes[seen:] if o.ok]) >= 20
                and all(o.version == v1 for o in tail[-20:])
            ),
            60,
            "traffic on the old colour only",
        )
        assert story.version_tags(bad).get("artpulse.rollout.result") == "rolled_back"
        assert_no_failed_requests(load.failures(started, rolled_back_at))
    finally:
        story.stop()


def test_active_operator_pod_deleted_mid_canary_standby_resumes_without_repeating_a_step(
    artpulse: E2E,
) -> None:
    story, _v1, v2 = artpulse.start("restart", "restart.yaml")
    load = story.start_traffic(rps=20)
    story.start_sampler(interval=0.5)
    try:
        story.set_alias("challenger", v2)
        before = story.wait(
            lambda s: (
                (s.get("candidate") or {}).get("version") == v2 and s.get("canaryWeight") == 40
            ),
            240,
            "the canary at its second step",
        )
        local = artpulse.local
        active = local.active_operator()
        assert active is not None, local.operator_pods()
        local.kubectl("-n", "artpulse-system", "delete", "pod", active, "--wait=false")
        # The standby (the other replica) takes over: a different pod becomes active.
        wait_for(
            lambda: (a := local.active_operator()) is not None and a != active,
            60,
            "the standby operator pod active",
        )
        after = story.wait(stable_is(v2), 300, "v2 promoted after the restart")
        # The step the operator was killed in was not started over: its start time held.
        assert before.get("currentStep") == 1
        in_step = {s.step_started_at for s in story.samples if s.candidate == v2 and s.step == 1}
        assert in_step == {before.get("stepStartedAt")}, in_step
        weights = [s.weight for s in story.samples if s.candidate == v2]
        steps = [w for i, w in enumerate(weights) if i == 0 or w != weights[i - 1]]
        # A leading 0 is the wait for the canary's workload to be ready, before the first step.
        if steps[:1] == [0]:
            steps = steps[1:]
        assert steps in ([20, 40, 60, 100], [20, 40, 60]), steps  # each once, in order
        promoted = [h for h in after.get("history") or [] if h.get("result") == "Promoted"]
        assert [str(h.get("version")) for h in promoted].count(v2) == 1
        assert event_reasons(story).count("Promoted") == 1
        assert story.alias("champion") == v2
        assert_no_failed_requests(load.failures())
    finally:
        story.stop()

"""The whole ArtPulse story on the local cluster, asserted: every part real.

One module-wide local cluster on the session's control plane: the operator as `kopf
run` with the shipped RBAC, the process runtime running the real inference server,
nginx as the gateway, MLflow and Prometheus. Models are trained once with the real
`artpulse` CLI; each scenario registers copies of those versions under its own model
name, so the scenarios do not share aliases.

- Canary: v2 is promoted through the steps (the champion alias moves, no request
  through the gateway fails meanwhile), then a bad v3 (latency fault) is rolled back
  by the operator within `interval x failureLimit` (plus a little) of its first
  failed check; Events and `status.history` tell the story.
- BlueGreen: a bad candidate takes over after the switch, fails its verification and the
  colours flip back at once to the old colour, kept warm (its processes never stopped).
- The operator killed in the middle of a canary and started again: no step repeated
  or skipped, one promotion.

The driver (`Story`) is the one `make demo` uses (hack/demo.py).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from artpulse_dev.controlplane import ControlPlane
from artpulse_dev.gateway import NginxGateway
from artpulse_dev.localcluster import LocalCluster
from artpulse_dev.runtime import ProcessRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "tests" / "data" / "e2e"
sys.path.insert(0, str(REPO_ROOT / "hack"))

from demo import Story, parse_time, rollout_record  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INTERVAL_S = 5.0  # analysis.interval in tests/data/e2e/*.yaml
FAILURE_LIMIT = 2  # analysis.failureLimit
FAULT_LATENCY_MS = 600  # far above the 250 ms p95 gate


@dataclass
class E2E:
    cluster: LocalCluster
    namespaces: dict[str, str]
    workdir: Path
    base: Story  # trained the versions below under its model
    v1: str
    v2: str

    @property
    def runtime(self) -> ProcessRuntime:
        assert self.cluster.runtime is not None
        return self.cluster.runtime

    @property
    def gateway(self) -> NginxGateway:
        assert self.cluster.gateway is not None
        return self.cluster.gateway

    def story(self, scenario: str) -> Story:
        """A fresh model name per scenario, holding copies of the trained v1 and v2."""
        return Story(
            self.cluster,
            workdir=self.workdir,
            namespace=self.namespaces[scenario],
            name=f"art-{scenario}",
            model=f"e2e-{scenario}-{uuid.uuid4().hex[:6]}",
        )


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not true after {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def e2e(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    suffix = uuid.uuid4().hex[:6]
    namespaces = {s: f"e2e-{s}-{suffix}" for s in ("canary", "bluegreen", "restart")}
    for ns in namespaces.values():
        control_plane.kubectl("create", "namespace", ns)
    workdir = tmp_path_factory.mktemp("e2e")
    cluster = LocalCluster(
        state_dir=workdir / "cluster",
        control_plane=control_plane,
        namespaces=set(namespaces.values()),
    )
    cluster.start()
    try:
        base = Story(
            cluster, workdir=workdir, namespace=namespaces["canary"], model=f"e2e-base-{suffix}"
        )
        base.demo_data(per_class=60)
        v1 = base.train("--no-alias")
        v2 = base.train("--no-alias", "--param", "C=2.0")
        yield E2E(cluster, namespaces, workdir, base, v1, v2)
    finally:
        for ns in namespaces.values():
            # With the operator still running, so its finalizers are handled.
            control_plane.kubectl(
                "delete", "artpulsemodels", "--all", "-n", ns, "--timeout=60s", check=False
            )
        cluster.stop()
        for ns in namespaces.values():
            control_plane.kubectl(
                "delete",
                "deployments,services,ingresses,httproutes",
                "--all",
                "-n",
                ns,
                check=False,
            )
            control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _stable_is(version: str) -> Any:
    return lambda s: (
        s.get("phase") == "Stable" and (s.get("stable") or {}).get("version") == version
    )


def _start(e2e: E2E, scenario: str, manifest: str) -> tuple[Story, str, str]:
    """The scenario's model with v1 champion and v2 ready, the resource applied, v1 serving."""
    story = e2e.story(scenario)
    v1 = story.copy_version(e2e.base.model, e2e.v1)
    v2 = story.copy_version(e2e.base.model, e2e.v2)
    story.set_alias("champion", v1)
    story.apply(story.render((DATA / manifest).read_text()))
    story.wait(_stable_is(v1), 240, f"{scenario}: v1 stable")
    story.wait_route_ready()
    return story, v1, v2


def _reasons(story: Story) -> list[str]:
    """Event reasons on the resource, an event repeated `count` times listed that often."""
    return [str(e.get("reason")) for e in story.events() for _ in range(int(e.get("count") or 1))]


def test_canary_promotes_a_good_version_and_rolls_back_a_bad_one(e2e: E2E) -> None:
    story, v1, v2 = _start(e2e, "canary", "canary.yaml")
    load = story.start_traffic(rps=20)
    story.start_sampler(interval=0.5)
    try:
        wait_for(lambda: len(load.outcomes) >= 30, 60, "traffic flowing on v1")

        # v2 becomes the challenger: the canary walks its steps and is promoted.
        promote_started = time.time()
        story.set_alias("challenger", v2)
        status = story.wait(_stable_is(v2), 300, "v2 promoted")
        promoted_at = time.time()
        assert story.alias("champion") == v2
        record = rollout_record(status, v2)
        assert record is not None
        assert record["result"] == "Promoted"
        walked = [s.weight for s in story.samples if s.candidate == v2]
        assert {20, 50} <= set(walked), walked  # each step was served (held >= one interval)
        assert walked == sorted(walked), walked  # never backwards
        failures = load.failures(promote_started, promoted_at + 2)
        assert failures == [], failures[:5]
        assert load.between(promote_started, promoted_at)  # traffic did flow meanwhile
        assert story.version_tags(v2).get("artpulse.rollout.result") == "promoted"

        # A bad v3 (v2 slowed by injected latency) becomes the challenger: rolled back.
        v3 = story.register_faulty_copy(v2, latency_ms=FAULT_LATENCY_MS)
        story.set_alias("challenger", v3)
        status = story.wait(lambda s: s.get("phase") == "RolledBack", 300, "v3 rolled back")
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
    finally:
        story.stop()

    # The story, told by the resource itself.
    history = [(str(h.get("version")), h.get("result")) for h in status.get("history") or []]
    assert (v2, "Promoted") in history
    assert (v3, "RolledBack") in history or (status.get("lastRollout") or {}).get(
        "result"
    ) == "RolledBack"
    reasons = _reasons(story)
    for reason in ("RolloutStarted", "StepAdvanced", "Promoted", "AnalysisFailed", "RolledBack"):
        assert reason in reasons, reasons
    assert reasons.index("Promoted") < reasons.index("RolledBack"), reasons
    warnings = [e for e in story.events() if e.get("type") == "Warning"]
    assert any(v3 in str(e.get("message")) for e in warnings), warnings
    assert v1 != v2


def test_bluegreen_rolls_back_a_bad_candidate_at_once(e2e: E2E) -> None:
    story, v1, v2 = _start(e2e, "bluegreen", "bluegreen.yaml")
    status = story.status()
    active = status.get("activeColor")
    assert active in ("blue", "green")
    active_pods = {
        p["pid"]
        for p in e2e.runtime.snapshot()
        if p["namespace"] == story.namespace and p["deployment"] == f"{story.name}-{active}"
    }
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
        reasons = _reasons(story)
        assert "Switched" in reasons, reasons
        assert reasons.index("Switched") < reasons.index("RolledBack"), reasons
        assert status.get("activeColor") == active
        assert (status.get("stable") or {}).get("version") == v1
        still = {
            p["pid"]
            for p in e2e.runtime.snapshot()
            if p["namespace"] == story.namespace and p["deployment"] == f"{story.name}-{active}"
        }
        assert active_pods <= still
        # The bad colour gets nothing through the gateway any more.
        route = f"{story.namespace}/{story.name}"

        def idle_share() -> float:
            for r in e2e.gateway.describe():
                if r["route"] == route:
                    return float(
                        sum(
                            b["share"]
                            for b in r["backends"]
                            if not b["service"].endswith(f"-{active}")
                        )
                    )
            return -1.0

        wait_for(lambda: idle_share() == 0, 10, "no traffic on the idle colour")
        assert load.failures(started, rolled_back_at) == []
        assert story.version_tags(bad).get("artpulse.rollout.result") == "rolled_back"
    finally:
        story.stop()


def test_operator_killed_mid_canary_resumes_without_repeating_a_step(e2e: E2E) -> None:
    story, _v1, v2 = _start(e2e, "restart", "restart.yaml")
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
        e2e.cluster.kill_operator()
        e2e.cluster.start_operator()
        after = story.wait(_stable_is(v2), 300, "v2 promoted after the restart")
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
        assert _reasons(story).count("Promoted") == 1
        assert story.alias("champion") == v2
        assert load.failures() == []
    finally:
        story.stop()

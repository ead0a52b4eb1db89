"""The sequential judge, header routing and custom metrics on the real cluster.

A bad candidate (v2 with 300 ms of injected latency) is held at 10 % with no latency
threshold at all: only the judge, comparing the canary's latency histogram with stable's on
the requests both served since the step began, can see it. It must fail the check and the
operator roll back, with the judge's evidence (e-values against 1/alpha) in the status.
Meanwhile a tester's request carrying the header reaches the candidate through the real
Gateway (Traefik) whatever its weight, and the custom metrics appear in the status, the
dry-run one never deciding.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from artpulse_dev.loadgen import version_of

from .e2e_support import E2E, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HEADER = {"X-ArtPulse-Canary": "tester"}  # tests/data/e2e/judge.yaml headerRoute
CANARY_WEIGHT = 10


def _answered_by(story: Any, headers: dict[str, str]) -> str | None:
    row = story.feature_rows(limit=1)[0]
    response = httpx.post(
        story.route_url("/predict"),
        json={"rows": [row]},
        headers={**story.route_headers(), **headers},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:300]
    return version_of(response)


def test_judge_catches_a_slow_candidate_at_10_percent(artpulse: E2E) -> None:
    story, v1, v2 = artpulse.start("judge", "judge.yaml")
    load = story.start_traffic(rps=20)
    story.start_sampler(interval=0.5)
    try:
        wait_for(lambda: len(load.outcomes) >= 30, 60, "traffic flowing on v1")
        assert _answered_by(story, HEADER) == v1  # no candidate yet: the header changes nothing

        bad = story.register_faulty_copy(v2, latency_ms=300)
        started = time.time()
        story.set_alias("challenger", bad)
        story.wait(
            lambda s: (
                (s.get("candidate") or {}).get("version") == bad
                and int(s.get("canaryWeight") or 0) == CANARY_WEIGHT
            ),
            180,
            "the bad candidate at 10 %",
        )
        # A tester reaches the candidate by header, at 10 % weight, every time.
        assert {_answered_by(story, HEADER) for _ in range(5)} == {bad}

        status = story.wait(lambda s: s.get("phase") == "RolledBack", 300, "judge rolls back")
        detected_s = time.time() - started
    finally:
        story.stop()

    analysis = status["analysis"]
    assert "judge" in analysis["failedGates"], analysis
    judge = analysis["judge"]
    assert judge["verdict"] == "Fail", judge
    latency = judge["tests"]["latency"]
    assert latency["rejected"], latency
    assert latency["regression"], latency
    assert latency["eValue"] >= latency["threshold"] > 0, latency
    assert latency["candidate"] > latency["stable"], latency  # the candidate's p95 is higher
    # The weight never went past the first step while the judge decided.
    assert max(s.weight for s in story.samples if s.candidate == bad) == CANARY_WEIGHT
    # The custom metrics were checked; the failing dry-run one did not decide.
    metrics = analysis["metrics"]
    assert metrics["error-ratio"]["verdict"] == "Pass", metrics
    assert metrics["canary-p99-dry-run"]["dryRun"] is True, metrics
    assert metrics["canary-p99-dry-run"]["verdict"] == "Fail", metrics
    assert "canary-p99-dry-run" not in analysis["failedGates"]
    assert story.version_tags(bad).get("artpulse.rollout.result") == "rolled_back"
    # CI gates on the plugin: `kubectl artpulse status` exits non-zero on this rollback.
    gate = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubectl-artpulse"),
            "-n", story.namespace, "status", story.name, "--timeout", "30s",
        ],
        env={
            **os.environ,
            "ARTPULSE_KUBECTL": str(artpulse.local.node.binaries.kubectl),
            "KUBECONFIG": str(artpulse.local.kubeconfig),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert gate.returncode == 1, (gate.returncode, gate.stdout, gate.stderr)
    assert "RolledBack" in gate.stdout + gate.stderr
    # Back on stable: the header reaches stable again (the canary's pods are gone).
    wait_for(lambda: _answered_by(story, HEADER) == v1, 120, "header traffic back on v1")
    # Leave the node as the later scenarios expect it: their models alone on it.
    story.kubectl("delete", "apm", story.name, "-n", story.namespace, "--wait=false")
    print(f"judge: slow candidate rolled back {detected_s:.1f}s after the alias moved")

"""The measured reports on the session cluster, checked at the end of the canary scenario.

Not a scenario of its own: the canary scenario (test_e2e_story.py) already promotes v2 and
rolls back a bad v3 under 20 req/s through the Gateway, which is what the one-pager
measures; a scenario of its own would repeat minutes of rollouts. Called after the
scenario's own assertions, it costs about 15 s of cluster time:

- the business-impact collectors against the real Prometheus, MLflow and resource over
  the scenario's window: every figure (p95, accuracy, macro F1, deploy lead time, rollback
  time) is measured, finite and names its source, and the one-pager shows each of them;
- a 3 s wrk run through the Gateway at the model (its Host header, its API key): requests
  were answered, none failed, all by v2 (the stable version after the rollback), and the
  loadtest report shows the run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from artpulse_dev import gateway_load
from artpulse_dev.localcluster import LocalCluster
from artpulse_dev.sources import Kubectl
from artpulse_dev.story import Story

from .e2e_support import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "loadtest"))

import cluster_reports
import reports
from report import machine_facts

FIGURES = {
    "p95 latency of predictions",
    "accuracy (held-out)",
    "macro F1 (held-out)",
    "deploy lead time",
    "rollback time",
}


def assert_reports_from_the_story(
    local: LocalCluster, story: Story, started: float, ended: float, stable: str, out: Path
) -> None:
    kubectl = Kubectl(local.kubeconfig, str(local.node.binaries.kubectl))

    measured = cluster_reports.collect_business(
        kubectl, story.namespace, story.name, (started, ended, "the canary scenario"),
        local.prometheus_url, local.tracking_uri,
    )  # fmt: skip
    figures = reports.business_figures(measured)
    assert {f.name for f in figures} == FIGURES
    for figure in figures:
        assert figure.value is not None, (figure.name, figure.reason, figure.source)
        assert math.isfinite(figure.value), figure
        assert figure.source, figure
    by_name = {f.name: f for f in figures}
    assert 0 < by_name["p95 latency of predictions"].value < 10_000  # type: ignore[operator]
    assert 0 <= by_name["accuracy (held-out)"].value <= 1  # type: ignore[operator]
    assert by_name["rollback time"].value > 0  # type: ignore[operator]
    page = cluster_reports.write_business(measured, out).read_text()
    for figure in figures:
        assert f"| {figure.name} | {figure.shown()} | {figure.source} |" in page
    assert "| not measured" not in page  # no figure row (the manual baselines say they were not)

    run = gateway_load.run_load(
        kubectl, namespace=story.namespace, name=story.name, duration_s=3, connections=4,
        threads=1, tool="wrk", set_up=False, mlflow_url=local.tracking_uri, say=story.say,
    )  # fmt: skip
    result = reports.raw_result(run)
    assert result["target"]["hostname"] == story.hostname
    assert result["probe"] == {"status": 200, "version": stable}
    assert (result["requests"] or 0) > 0, result
    assert result["errors"]["total"] == 0, result["errors"]
    assert set(result["versions"]) == {stable}, result["versions"]
    assert math.isfinite(result["latencyMs"]["p95"]), result["latencyMs"]
    text = reports.loadtest_report([result], machine_facts({"wrk": str(result["toolVersion"])}))
    assert f"`{story.hostname}/predict`" in text
    assert f"v{stable}: {result['versions'][stable]}" in text

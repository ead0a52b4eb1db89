"""`make demo`: the whole ArtPulse story on a real one-node cluster, in a few minutes.

Development tooling. It starts its own local cluster (`artpulse_dev.localcluster`: a
real node, our images, and ArtPulse installed from `manifests/overlays/local`: the
operator, MLflow, Prometheus and Traefik as pods), then:

1. generates the demo images, trains model v1 (`artpulse demo-data`, `artpulse train`)
   against the cluster's MLflow: v1 is registered and gets the `champion` alias;
2. applies an `ArtPulseModel` with kubectl (Canary through the Gateway API route,
   short intervals, an API key from a Secret) and sends traffic through Traefik;
3. trains v2, which becomes `challenger`: the canary walks its steps, is promoted,
   and `champion` now points to v2;
4. registers a bad v3 (v2's model, with the fault-injection tag
   `artpulse.fault.latency_ms` that the server honours because the resource sets
   `ARTPULSE_ALLOW_FAULT_INJECTION=true`; a test feature, off by default) and makes
   it `challenger`: the latency gate fails and the operator rolls back by itself;
   v3 is tagged in MLflow and traffic is back on v2;
5. prints a summary (timeline, promote and rollback durations, failed requests, the
   pods and the cluster's memory) and writes a plot of weight and p95 over time to
   `artifacts/demo-rollout.png`.

It leaves nothing running when it ends or on Ctrl-C (unless `--keep-cluster`), and
prints where the logs are. The e2e tests (tests/e2e/) drive the same `Story`.

    python hack/demo.py [--rps 20] [--keep-cluster]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

HACK_DIR = Path(__file__).resolve().parent
REPO_ROOT = HACK_DIR.parent

from artpulse_dev.loadgen import summarize  # noqa: E402
from artpulse_dev.localcluster import LocalCluster  # noqa: E402
from artpulse_dev.memory import cluster_memory  # noqa: E402
from artpulse_dev.story import (  # noqa: E402
    FAULT_LATENCY_TAG,
    Story,
    duration,
    first_sample,
    now,
    parse_time,
    rollout_record,
)

# --- the summary ----------------------------------------------------------------------------


def plot(story: Story, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = story.samples
    t0 = story.started
    ts = [s.t - t0 for s in samples]
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.step(
        ts, [s.weight for s in samples], where="post", color="tab:blue", label="canary weight (%)"
    )
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("canary weight (%)", color="tab:blue")
    ax.set_ylim(-5, 105)
    ax2 = ax.twinx()
    for track, color in (("stable", "tab:green"), ("canary", "tab:red")):
        points = [(s.t - t0, s.p95_ms[track]) for s in samples if track in s.p95_ms]
        if points:
            ax2.plot(
                *zip(*points, strict=True),
                ".-",
                color=color,
                markersize=3,
                label=f"p95 {track} (ms)",
            )
    ax2.set_ylabel("p95 latency (ms, Prometheus, 10 s window)")
    for t, text in story.marks:
        ax.axvline(t - t0, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            text, (t - t0, 102), rotation=90, fontsize=7, va="top", ha="right", color="grey"
        )
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center left", fontsize=8)
    ax.set_title(
        f"ArtPulse demo: {story.namespace}/{story.name} canary, promotion and automatic rollback"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def timeline(story: Story) -> Iterator[str]:
    """The demo's own marks and the resource's Events, in time order."""
    t0 = story.started
    entries = [(t, text) for t, text in story.marks]
    for event in story.events():
        when = parse_time(event.get("lastTimestamp") or event.get("eventTime")) or t0
        entries.append(
            (when, f"event {event.get('type')}/{event.get('reason')}: {event.get('message')}")
        )
    for t, text in sorted(entries, key=lambda e: e[0]):
        yield f"  {t - t0:7.1f}s  {text}"


# --- the story -------------------------------------------------------------------------------


def run_story(story: Story, rps: float) -> dict[str, Any]:
    say, mark = story.say, story.mark

    say("1/5 demo images and model v1")
    story.demo_data()
    v1 = story.train()
    mark(f"v1 trained: version {v1}, champion -> {story.alias('champion')}")
    if story.alias("champion") != v1:
        story.set_alias("champion", v1)

    say("2/5 the ArtPulseModel, applied with kubectl")
    story.apply(story.manifest())
    story.wait(
        lambda s: s.get("phase") == "Stable" and (s.get("stable") or {}).get("version") == v1,
        240,
        "v1 stable",
    )
    story.wait_route_ready()
    mark(f"v1 serving through the gateway: {story.route_url('/predict')}")
    story.start_traffic(rps)
    story.start_sampler()
    time.sleep(5)  # a few seconds of baseline traffic for the plot, not a synchronisation

    say("3/5 model v2 trained: it becomes the challenger")
    v2 = story.train("--param", "C=2.0")  # another regularisation: a different model
    if story.alias("challenger") != v2:
        story.set_alias("challenger", v2)
    promote_started = now()
    mark(f"v2 challenger (version {v2})")
    status = story.wait(
        lambda s: (s.get("stable") or {}).get("version") == v2 and s.get("phase") == "Stable",
        300,
        "v2 promoted",
    )
    promoted_at = now()
    mark(f"v2 promoted: champion -> {story.alias('champion')}")
    promotion_failures = story.load.failures(promote_started, promoted_at) if story.load else []

    say("4/5 a bad v3 (v2 slowed by 600 ms of injected latency) becomes the challenger")
    v3 = story.register_faulty_copy(v2, latency_ms=600)
    story.set_alias("challenger", v3)
    rollback_started = now()
    mark(f"v3 challenger (version {v3}, fault tag {FAULT_LATENCY_TAG}=600)")
    status = story.wait(lambda s: s.get("phase") == "RolledBack", 300, "v3 rolled back")
    rolled_back_at = now()
    mark("v3 rolled back by the operator")
    time.sleep(5)  # traffic after the rollback, for the plot
    pods = story.kubectl("get", "pods", "-A", "-o", "wide")
    node = story.cluster.node
    assert node.node is not None
    memory = cluster_memory(node.run_dir, node.node.socket_dir)
    story.stop()

    say("5/5 summary")
    first_fail = first_sample(
        story.samples, lambda s: s.verdict == "Fail" and s.candidate == v3, rollback_started
    )
    weight_zero = first_sample(
        story.samples, lambda s: s.weight == 0, first_fail.t if first_fail else rolled_back_at
    )
    return {
        "v1": v1,
        "v2": v2,
        "v3": v3,
        "champion": story.alias("champion"),
        "v3Tags": story.version_tags(v3),
        "status": status,
        "promoteSeconds": promoted_at - promote_started,
        "promoteRecordSeconds": duration(rollout_record(status, v2)),
        "rollbackSeconds": rolled_back_at - rollback_started,
        "rollbackRecordSeconds": duration(rollout_record(status, v3)),
        "failToZeroSeconds": (weight_zero.t - first_fail.t) if first_fail and weight_zero else None,
        "promotionFailures": len(promotion_failures),
        "traffic": summarize(story.load.outcomes) if story.load else {},
        "pods": pods,
        "memory": memory,
    }


def print_summary(story: Story, result: Mapping[str, Any], png: Path, wall: float) -> None:
    """The story in numbers, then the pods it ran on and what the cluster held in memory."""

    def secs(value: float | None) -> str:
        return f"{value:.1f} s" if value is not None else "n/a"

    print("\n=== ArtPulse demo summary ===")
    print(
        f"model {story.model}: v{result['v1']} -> v{result['v2']} promoted; v{result['v3']} rolled back"
    )
    print(f"MLflow champion alias now -> version {result['champion']}")
    tags = {k: v for k, v in result["v3Tags"].items() if k.startswith("artpulse.")}
    print(f"v{result['v3']} tags: {json.dumps(tags)}")
    print(f"promotion:  {secs(result['promoteSeconds'])} from challenger to champion "
          f"(operator record {secs(result['promoteRecordSeconds'])}); "
          f"{result['promotionFailures']} failed requests during it")  # fmt: skip
    print(f"rollback:   {secs(result['rollbackSeconds'])} from bad challenger to RolledBack "
          f"(operator record {secs(result['rollbackRecordSeconds'])}); "
          f"first failed check -> weight 0: {secs(result['failToZeroSeconds'])} (1 s sampling)")  # fmt: skip
    traffic = result["traffic"]
    print(f"traffic:    {traffic.get('requests', 0)} requests through the Gateway (Traefik), {traffic.get('failed', 0)} failed, "
          f"p50 {traffic.get('p50_ms')} ms, p95 {traffic.get('p95_ms')} ms, by version {traffic.get('versions')}")  # fmt: skip
    print("timeline:")
    for line in timeline(story):
        print(line)
    print(f"plot:       {png}")
    print(
        f"logs:       {story.cluster.logs_dir} (training.log), node: {story.cluster.node.logs_dir}"
    )
    print("pods (kubectl get pods -A, during the demo):")
    for line in result["pods"].splitlines():
        print(f"  {line}")
    memory = result["memory"]
    print(f"memory:     {sum(memory.values()):.0f} MiB PSS for the whole cluster; by part:")
    for part, mib in list(memory.items())[:14]:
        print(f"  {mib:7.1f} MiB  {part}")
    print(f"wall time:  {wall:.0f} s")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "waiting for version" chatter
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=20.0, help="load through the gateway")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".artpulse" / "demo")
    parser.add_argument("--artifacts", type=Path, default=REPO_ROOT / "artifacts")
    parser.add_argument(
        "--keep-state", action="store_true", help="keep the previous run's state dir"
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the cluster running at the end"
    )
    args = parser.parse_args(argv)
    wall_start = now()
    state_dir: Path = args.state_dir.resolve()
    if state_dir.exists() and not args.keep_state:
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    # The harness's own log lines go to a file; the console tells the story.
    logging.basicConfig(
        filename=state_dir / "logs" / "cluster.log",
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    print(f"ArtPulse demo: starting a local cluster (logs in {state_dir / 'logs'}) ...", flush=True)
    cluster = LocalCluster(state_dir=state_dir)
    story: Story | None = None
    try:
        cluster.start()
        story = Story(cluster, workdir=state_dir, started=wall_start)
        story.say(f"cluster up: gateway {cluster.gateway_url}; "
                  f"`export KUBECONFIG={cluster.kubeconfig}` to watch with kubectl get apm -A -w")  # fmt: skip
        result = run_story(story, args.rps)
        png = plot(story, args.artifacts.resolve() / "demo-rollout.png")
        (args.artifacts / "demo-summary.json").write_text(
            json.dumps({k: v for k, v in result.items() if k != "status"}, indent=1, default=str)
        )
        print_summary(story, result, png, now() - wall_start)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"\nthe demo failed: {exc}\nlogs: {state_dir / 'logs'}", file=sys.stderr)
        if story is not None and story.samples:
            plot(story, args.artifacts.resolve() / "demo-rollout.png")
        return 1
    finally:
        if story is not None:
            story.stop()
        if args.keep_cluster and cluster.cluster is not None:
            print(f"the cluster goes on: export KUBECONFIG={cluster.kubeconfig}; "
                  "`make cluster-down` stops it", file=sys.stderr)  # fmt: skip
        else:
            cluster.stop()
            print(f"everything stopped; logs kept in {state_dir / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

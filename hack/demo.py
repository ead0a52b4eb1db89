"""`make demo`: the whole ArtPulse story on one machine, on real parts, in a few minutes.

Development tooling. It starts its own local cluster (`artpulse_dev.localcluster`:
kube-apiserver + etcd, MLflow, Prometheus, the operator as `kopf run`, the process
runtime and nginx), then:

1. generates the demo images, trains model v1 (`artpulse demo-data`, `artpulse train`):
   v1 is registered and gets the `champion` alias;
2. applies an `ArtPulseModel` with kubectl (Canary through the gateway, short
   intervals) and sends traffic through nginx with a load generator;
3. trains v2, which becomes `challenger`: the canary walks its steps, is promoted,
   and `champion` now points to v2;
4. registers a bad v3 (v2's model, with the fault-injection tag
   `artpulse.fault.latency_ms` that the server honours because the resource sets
   `ARTPULSE_ALLOW_FAULT_INJECTION=true`; a test feature, off by default) and makes
   it `challenger`: the latency gate fails and the operator rolls back by itself;
   v3 is tagged in MLflow and traffic is back on v2;
5. prints a summary (timeline, promote and rollback durations, failed requests) and
   writes a plot of weight and p95 over time to `artifacts/demo-rollout.png`.

It leaves nothing running when it ends or on Ctrl-C, and prints where the logs are.
The e2e tests (tests/e2e/) import `Story` from here and assert the same outcomes.

    python hack/demo.py [--rps 20] [--keep-state]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HACK_DIR = Path(__file__).resolve().parent
REPO_ROOT = HACK_DIR.parent
if str(HACK_DIR) not in sys.path:
    sys.path.insert(0, str(HACK_DIR))

from artpulse_dev.localcluster import LocalCluster  # noqa: E402
from loadgen import LoadGenerator, summarize  # noqa: E402

NAMESPACE = "ml"
NAME = "art-classifier"
MODEL = "artpulse-classifier"
FAULT_LATENCY_TAG = "artpulse.fault.latency_ms"

# The resource the demo applies. Short intervals so the story takes minutes; the gates
# are loose enough for a shared 2-core machine and tight enough for a 600 ms fault.
MANIFEST = """\
apiVersion: artpulse.io/v1alpha1
kind: ArtPulseModel
metadata:
  name: {name}
  namespace: {namespace}
spec:
  model:
    name: {model}
    trackingUri: {tracking_uri}
    pollInterval: 5s
  serving:
    image: artpulse-inference:dev
    replicas: 1
    env:
      - {{name: ENVIRONMENT, value: development}}
      - {{name: ARTPULSE_ALLOW_FAULT_INJECTION, value: "true"}}
  strategy:
    type: Canary
    canary:
      steps:
        # 20 % of 20 rps: the canary has the 100 rows its drift score needs in ~25 s.
        - {{weight: 20, pause: 5s}}
        - {{weight: 50, pause: 5s}}
        - {{weight: 100}}
  trafficRouting:
    provider: GatewayAPI
    gatewayAPI:
      parentRefs: [{{name: artpulse-gateway, namespace: gateway}}]
      hostnames: [art.artpulse.local]
  analysis:
    interval: 5s
    window: 20s
    failureLimit: 2
    minRequests: 10
    onInconclusive: Hold
    inconclusiveLimit: 20
    prometheus: {{address: {prometheus}}}
    gates:
      p95LatencyMs: 250
      maxErrorRate: 0.02
      maxDriftScore: 0.5
  rollback: {{automatic: true, tagFailedVersion: true}}
"""


def now() -> float:
    return time.time()


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


@dataclass
class Sample:
    """One look at the rollout (once a second): what the plot and the live view show."""

    t: float
    phase: str
    weight: int
    stable: str | None
    candidate: str | None
    step: int | None
    step_started_at: str | None
    verdict: str | None
    p95_ms: dict[str, float]  # by track, from Prometheus
    analysis: dict[str, Any]
    rps: float
    failed: int


@dataclass
class Story:
    """The demo's steps against a running `LocalCluster`; also the e2e tests' driver."""

    cluster: LocalCluster
    workdir: Path
    namespace: str = NAMESPACE
    name: str = NAME
    model: str = MODEL
    out: Callable[[str], None] = print
    started: float = field(default_factory=now)
    samples: list[Sample] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    load: LoadGenerator | None = None
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_line: tuple[Any, ...] = ()
    _last_print: float = 0.0

    # -- plumbing ------------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        assert self.cluster.mlflow is not None
        return self.cluster.mlflow.tracking_uri

    @property
    def prometheus_url(self) -> str:
        assert self.cluster.prometheus is not None
        return self.cluster.prometheus.url

    @property
    def gateway_url(self) -> str:
        assert self.cluster.gateway is not None
        return self.cluster.gateway.url

    def route_url(self, path: str) -> str:
        return f"{self.gateway_url}/{self.namespace}/{self.name}{path}"

    def say(self, text: str) -> None:
        self.out(f"[{now() - self.started:6.1f}s] {text}")

    def mark(self, text: str) -> None:
        self.marks.append((now(), text))
        self.say(text)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.cluster.kubectl(*args, input=input, check=check).stdout

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def artpulse(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The training CLI (`artpulse`), against this cluster's MLflow; output to the log."""
        exe = Path(sys.executable).with_name("artpulse")
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.tracking_uri, "PYTHONUNBUFFERED": "1"}
        log_path = self.cluster.logs_dir / "training.log"
        with log_path.open("a") as log:
            log.write(f"--- {' '.join(args)}\n")
            log.flush()
            result = subprocess.run(
                [str(exe if exe.exists() else "artpulse"), *args],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text().splitlines()[-30:])
            raise RuntimeError(f"`artpulse {' '.join(args)}` failed ({result.returncode}):\n{tail}")
        return result

    # -- the model side --------------------------------------------------------------------

    @property
    def dataset_dir(self) -> Path:
        return self.workdir / "demo-images"

    def demo_data(self, per_class: int = 60) -> None:
        if not self.dataset_dir.exists():
            self.artpulse(
                "demo-data",
                "--out",
                str(self.dataset_dir),
                "--per-class",
                str(per_class),
                "--no-progress",
            )

    def versions(self) -> list[int]:
        found = self.mlflow().search_model_versions(f"name='{self.model}'")
        return sorted(int(v.version) for v in found)

    def train(self, *extra: str) -> str:
        """`artpulse train` on the demo images; the new version's number."""
        before = set(self.versions()) if self._model_exists() else set()
        self.artpulse(
            "train",
            "--dataset-dir", str(self.dataset_dir),
            "--register", self.model,
            "--artifacts-dir", str(self.workdir / "training-artifacts"),
            "--no-progress",
            *extra,
        )  # fmt: skip
        new = sorted(set(self.versions()) - before)
        if not new:
            raise RuntimeError("`artpulse train` registered no new model version")
        return str(new[-1])

    def _model_exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.mlflow().get_registered_model(self.model)
        except MlflowException:
            return False
        return True

    def alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.mlflow().get_model_version_by_alias(self.model, alias).version)
        except MlflowException:
            return None

    def set_alias(self, alias: str, version: str) -> None:
        self.mlflow().set_registered_model_alias(self.model, alias, version)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.mlflow().get_model_version(self.model, version).tags)

    def register_faulty_copy(self, of_version: str, latency_ms: int) -> str:
        """A new version with `of_version`'s model and the latency fault tag set at creation."""
        # A registered-model source: the server fills in the run (for the baseline artifact).
        created = self.mlflow().create_model_version(
            self.model,
            f"models:/{self.model}/{of_version}",
            tags={FAULT_LATENCY_TAG: str(latency_ms)},
            description=f"demo: v{of_version} slowed by {latency_ms} ms of injected latency",
        )
        return str(created.version)

    def copy_version(
        self, from_model: str, version: str, tags: Mapping[str, str] | None = None
    ) -> str:
        """Register another model's version (same artifacts and run) as a new version of ours."""
        from mlflow.exceptions import MlflowException

        client = self.mlflow()
        try:
            client.get_registered_model(self.model)
        except MlflowException:
            client.create_registered_model(self.model)
        # A registered-model source: the server fills in the run (for the baseline artifact).
        created = client.create_model_version(
            self.model, f"models:/{from_model}/{version}", tags=dict(tags or {})
        )
        return str(created.version)

    def feature_rows(self, limit: int = 600) -> list[dict[str, float]]:
        """Rows computed from the demo images with the serving features, shuffled.

        Many distinct rows from the training distribution, so the servers' drift score
        (PSI of a window of recent inputs) stays low for a good model: a few rows
        repeated would look like drift.
        """
        import random

        from artpulse_inference.core.features import features_from_path

        images = sorted(
            p for p in self.dataset_dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
        random.Random(7).shuffle(images)
        return [features_from_path(p) for p in images[:limit]]

    # -- the resource ------------------------------------------------------------------------

    def manifest(self) -> str:
        return MANIFEST.format(
            name=self.name,
            namespace=self.namespace,
            model=self.model,
            tracking_uri=self.tracking_uri,
            prometheus=self.prometheus_url,
        )

    def render(self, template: str) -> str:
        """A resource template (tests/data/e2e/*.yaml) with this story's names and URLs."""
        for key, value in {
            "@NAME@": self.name,
            "@NAMESPACE@": self.namespace,
            "@MODEL@": self.model,
            "@TRACKING_URI@": self.tracking_uri,
            "@PROMETHEUS@": self.prometheus_url,
        }.items():
            template = template.replace(key, value)
        return template

    def apply(self, manifest: str) -> None:
        if self.kubectl("get", "namespace", self.namespace, check=False).strip() == "":
            self.kubectl("create", "namespace", self.namespace, check=False)
        self.kubectl("apply", "-f", "-", input=manifest)

    def resource(self) -> dict[str, Any]:
        out = self.kubectl("get", "artpulsemodel", self.name, "-n", self.namespace, "-o", "json")
        return dict(json.loads(out))

    def status(self) -> dict[str, Any]:
        return dict(self.resource().get("status") or {})

    def events(self) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "events", "-n", self.namespace,
            "--field-selector", f"involvedObject.name={self.name},involvedObject.kind=ArtPulseModel",
            "-o", "json",
        )  # fmt: skip
        items = json.loads(out).get("items") or []
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def wait(
        self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Wait until `check(status)` holds, failing with the last status after `timeout`."""
        deadline = now() + timeout
        status: dict[str, Any] = {}
        while now() < deadline:
            try:
                status = self.status()
            except subprocess.CalledProcessError:
                status = {}
            if check(status):
                return status
            time.sleep(0.25)
        raise TimeoutError(
            f"{what}: not reached in {timeout:.0f}s; last status:\n{json.dumps(status, indent=1)}"
        )

    def wait_route_ready(self, timeout: float = 180) -> None:
        deadline = now() + timeout
        while now() < deadline:
            try:
                with urllib.request.urlopen(self.route_url("/ready"), timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"{self.route_url('/ready')} not ready in {timeout:.0f}s")

    # -- traffic and the live view ------------------------------------------------------------

    def start_traffic(self, rps: float = 20.0) -> LoadGenerator:
        rows = self.feature_rows()
        counter = iter(range(1 << 62))

        def next_body() -> tuple[bytes, Mapping[str, str]]:
            # One row per request, cycling through the demo rows.
            row = rows[next(counter) % len(rows)]
            return json.dumps({"rows": [row]}).encode(), {"content-type": "application/json"}

        self.load = LoadGenerator(self.route_url("/predict"), next_body, rps=rps, workers=4).start()
        return self.load

    def p95_by_track(self, window: str = "10s") -> dict[str, float]:
        expr = (
            "1000 * histogram_quantile(0.95, sum by (le, track) (rate("
            f'artpulse_http_request_duration_seconds_bucket{{namespace="{self.namespace}",'
            f'model="{self.model}",route=~"/predict.*"}}[{window}])))'
        )
        query = urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(
                f"{self.prometheus_url}/api/v1/query?{query}", timeout=5
            ) as r:
                result = json.load(r)["data"]["result"]
        except (OSError, KeyError, ValueError):
            return {}
        values: dict[str, float] = {}
        for item in result:
            value = float(item["value"][1])
            if value == value:  # NaN: no requests in the window
                values[item["metric"].get("track", "?")] = round(value, 1)
        return values

    def start_sampler(self, interval: float = 1.0) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.sample()
                except Exception as exc:
                    self.say(f"(live view: {exc})")

        self._sampler = threading.Thread(target=run, name="demo-sampler", daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=10)
        if self.load is not None:
            self.load.stop()

    def sample(self) -> Sample:
        status = self.status()
        analysis = status.get("analysis") or {}
        recent = summarize(self.load.recent(5)) if self.load else {"rps": 0.0, "failed": 0}
        sample = Sample(
            t=now(),
            phase=str(status.get("phase") or "-"),
            weight=int(status.get("canaryWeight") or 0),
            stable=(status.get("stable") or {}).get("version"),
            candidate=(status.get("candidate") or {}).get("version"),
            step=status.get("currentStep"),
            step_started_at=status.get("stepStartedAt"),
            verdict=analysis.get("verdict"),
            p95_ms=self.p95_by_track(),
            analysis=analysis,
            rps=float(recent["rps"]),
            failed=int(recent["failed"]),
        )
        self.samples.append(sample)
        self._live(sample)
        return sample

    def _live(self, s: Sample) -> None:
        key = (
            s.phase,
            s.weight,
            s.stable,
            s.candidate,
            s.step,
            s.verdict,
            s.analysis.get("lastCheckTime"),
        )
        if key == self._last_line and now() - self._last_print < 10:
            return
        self._last_line, self._last_print = key, now()
        a = s.analysis
        p95 = " ".join(f"{t} {v:.0f}ms" for t, v in sorted(s.p95_ms.items())) or "-"
        err = a.get("errorRate")
        drift = a.get("driftScore")
        rollout = f"v{s.stable}" + (f" -> v{s.candidate} @ {s.weight}%" if s.candidate else "")
        step = f" step {s.step}" if s.candidate and s.step is not None else ""
        check = (
            f" | check {a.get('verdict')} p95 {a.get('p95LatencyMs') or 0:.0f}ms"
            f" err {(err or 0) * 100:.1f}% drift {drift if drift is not None else '-'}"
            f" fails {a.get('failedChecks', 0)}"
            if a.get("verdict")
            else ""
        )
        self.say(
            f"{s.phase:<11} {rollout}{step}{check} | p95 {p95} | {s.rps:.0f} rps, {s.failed} failed"
        )


# --- the summary ----------------------------------------------------------------------------


def rollout_record(status: Mapping[str, Any], version: str) -> dict[str, Any] | None:
    records = [*(status.get("history") or []), status.get("lastRollout") or {}]
    matching = [r for r in records if r and str(r.get("version")) == str(version)]
    return matching[-1] if matching else None


def duration(record: Mapping[str, Any] | None) -> float | None:
    if not record:
        return None
    start, end = parse_time(record.get("startedAt")), parse_time(record.get("finishedAt"))
    return end - start if start is not None and end is not None else None


def first_sample(
    samples: list[Sample], check: Callable[[Sample], bool], after: float = 0.0
) -> Sample | None:
    return next((s for s in samples if s.t >= after and check(s)), None)


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
    }


def print_summary(story: Story, result: Mapping[str, Any], png: Path, wall: float) -> None:
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
    print(f"traffic:    {traffic.get('requests', 0)} requests through nginx, {traffic.get('failed', 0)} failed, "
          f"p50 {traffic.get('p50_ms')} ms, p95 {traffic.get('p95_ms')} ms, by version {traffic.get('versions')}")  # fmt: skip
    print("timeline:")
    for line in timeline(story):
        print(line)
    print(f"plot:       {png}")
    print(
        f"logs:       {story.cluster.logs_dir} (operator.log, training.log; pods in {story.cluster.state_dir / 'runtime' / 'pods'})"
    )
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
    args = parser.parse_args(argv)
    wall_start = now()
    state_dir: Path = args.state_dir.resolve()
    if state_dir.exists() and not args.keep_state:
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    # The runtime's and the gateway's own log lines go to a file; the console tells the story.
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
        story.say(f"cluster up: gateway {cluster.gateway.url if cluster.gateway else '?'}; "
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
        cluster.stop()
        print(f"everything stopped; logs kept in {state_dir / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""The ArtPulse story, step by step, against the local cluster: the demo's and the e2e tests' driver.

Development tooling. `Story` trains and registers models with the real `artpulse` CLI
against the cluster's MLflow, applies an `ArtPulseModel` with kubectl, sends traffic
through the Gateway (Traefik, by the route's hostname) with an API key, samples the
rollout once a second for the live view and the plot, and reads the resource's status
and Events. `hack/demo.py` tells the story on the console; `tests/e2e` asserts it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from artpulse_dev.loadgen import LoadGenerator, summarize
from artpulse_dev.localcluster import (
    INFERENCE_IMAGE,
    MLFLOW_CLUSTER_URL,
    PROMETHEUS_CLUSTER_URL,
    LocalCluster,
)

NAMESPACE = "ml"
NAME = "art-classifier"
MODEL = "artpulse-classifier"
FAULT_LATENCY_TAG = "artpulse.fault.latency_ms"
AUTH_SECRET = "artpulse-auth"

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
    image: {image}
    replicas: 1
    secretRef: {{name: {secret}}}
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
      hostnames: [{hostname}]
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
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    _sampler: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _last_line: tuple[Any, ...] = ()
    _last_print: float = 0.0

    # -- plumbing ------------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        """MLflow as this process reaches it (the inference pods use MLFLOW_CLUSTER_URL)."""
        return self.cluster.tracking_uri

    @property
    def prometheus_url(self) -> str:
        return self.cluster.prometheus_url

    @property
    def hostname(self) -> str:
        """The HTTPRoute's hostname: how the Gateway tells this model's traffic apart."""
        return f"{self.name}.{self.namespace}.artpulse.local"

    def route_url(self, path: str) -> str:
        return f"{self.cluster.gateway_url}{path}"

    def route_headers(self) -> dict[str, str]:
        return {"host": self.hostname, "x-api-key": self.api_key}

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
            tracking_uri=MLFLOW_CLUSTER_URL,
            prometheus=PROMETHEUS_CLUSTER_URL,
            image=INFERENCE_IMAGE,
            secret=AUTH_SECRET,
            hostname=self.hostname,
        )

    def render(self, template: str) -> str:
        """A resource template (tests/data/e2e/*.yaml) with this story's names and URLs."""
        for key, value in {
            "@NAME@": self.name,
            "@NAMESPACE@": self.namespace,
            "@MODEL@": self.model,
            "@TRACKING_URI@": MLFLOW_CLUSTER_URL,
            "@PROMETHEUS@": PROMETHEUS_CLUSTER_URL,
            "@IMAGE@": INFERENCE_IMAGE,
            "@SECRET@": AUTH_SECRET,
            "@HOSTNAME@": self.hostname,
        }.items():
            template = template.replace(key, value)
        return template

    def apply(self, manifest: str) -> None:
        """The namespace, the API key Secret the servers read, then the resource."""
        if self.kubectl("get", "namespace", self.namespace, check=False).strip() == "":
            self.kubectl("create", "namespace", self.namespace, check=False)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": AUTH_SECRET, "namespace": self.namespace},
            "stringData": {"API_KEY": self.api_key},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(secret))
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
        """The Gateway routes this model's hostname to a server that has its model loaded."""
        deadline = now() + timeout
        last = ""
        while now() < deadline:
            try:
                response = httpx.get(
                    self.route_url("/ready"), headers={"host": self.hostname}, timeout=2
                )
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise TimeoutError(f"{self.hostname}/ready not ready in {timeout:.0f}s: {last}")

    # -- traffic and the live view ------------------------------------------------------------

    def start_traffic(self, rps: float = 20.0) -> LoadGenerator:
        rows = self.feature_rows()
        counter = iter(range(1 << 62))

        def next_body() -> tuple[bytes, Mapping[str, str]]:
            # One row per request, cycling through the demo rows.
            row = rows[next(counter) % len(rows)]
            headers = {"content-type": "application/json", **self.route_headers()}
            return json.dumps({"rows": [row]}).encode(), headers

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
            response = httpx.get(f"{self.prometheus_url}/api/v1/query?{query}", timeout=5)
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
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

"""`make loadtest`: load on one served model through the local cluster's Gateway, measured.

Development tooling. The target is an `ArtPulseModel` that is `Stable` (or `RolledBack`) and routed by the
Gateway API (an HTTPRoute hostname on `gateway/artpulse-gateway`): the one named on the
command line, else the first such model in the cluster (what `make demo --keep-cluster`
or your own resources left), else one set up here on the running cluster with the demo's
`Story`: demo images, `artpulse train`, a `Single`-strategy resource through the Gateway
(`loadtest/k8s/single-gateway.yaml`) in the namespace `artpulse-loadtest`, kept for the
next run. The cluster itself must be running (`make cluster-up`): starting one is minutes
and leaves a machine-wide node behind, so it is not done behind the user's back.

Every request goes to `http://10.0.0.80<path>/predict` with the route's `Host` header and
the model's API key (read from the Secret in `spec.serving.secretRef`). The body is one row
of the served version's training means (`baseline_feature_stats.json` of its run), so the
server's feature bounds accept it. k6 (`loadtest/k6/predict.js`, `--summary-export`) runs
when it is on PATH, else wrk with `loadtest/bench_inference_post.lua`, whose done() writes
its summary, and the versions that answered, as JSON. `run_load` returns that summary with
the route, the window and the tool; `loadtest/cluster_reports.py` shapes and stores it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from artpulse_dev.controlplane import REPO_ROOT
from artpulse_dev.localcluster import (
    DEFAULT_STATE_DIR,
    GATEWAY_HOST_URL,
    MLFLOW_HOST_URL,
    LocalCluster,
)
from artpulse_dev.sources import Kubectl, artpulse_models, mlflow_version

LOADTEST_DIR = REPO_ROOT / "loadtest"
WRK_SCRIPT = LOADTEST_DIR / "bench_inference_post.lua"
K6_SCRIPT = LOADTEST_DIR / "k6" / "predict.js"
SINGLE_MANIFEST = LOADTEST_DIR / "k8s" / "single-gateway.yaml"
CLUSTER_INFO = DEFAULT_STATE_DIR / "cluster.json"  # written by `make cluster-up`
OWN = {"namespace": "artpulse-loadtest", "name": "art-loadtest", "model": "artpulse-loadtest"}


# No rollout running: every request reaches the stable version (after a rollback, too).
SERVING_PHASES = ("Stable", "RolledBack")


class NoCluster(RuntimeError):
    """No running local cluster to load."""


@dataclass(frozen=True)
class GatewayTarget:
    """A served model as the Gateway reaches it."""

    namespace: str
    name: str
    model: str
    hostname: str
    path: str  # the route's path prefix, "" for "/"
    secret: str | None  # spec.serving.secretRef.name
    version: str | None  # status.stable.version

    @property
    def predict_path(self) -> str:
        return f"{self.path}/predict"


def gateway_target(resource: Mapping[str, Any]) -> GatewayTarget | None:
    """The resource as a Gateway target, or None: a rollout is running, or no route hostname.

    >>> gateway_target({"metadata": {"name": "a", "namespace": "ml"},
    ...     "spec": {"model": {"name": "m"}, "trafficRouting": {"provider": "GatewayAPI",
    ...              "gatewayAPI": {"hostnames": ["a.ml.artpulse.local"]}}},
    ...     "status": {"phase": "Stable", "stable": {"version": "2"}}}).hostname
    'a.ml.artpulse.local'
    """
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    status = resource.get("status") or {}
    routing = spec.get("trafficRouting") or {}
    gateway = routing.get("gatewayAPI") or {}
    hostnames = [h for h in gateway.get("hostnames") or [] if isinstance(h, str) and h]
    model = (spec.get("model") or {}).get("name")
    if routing.get("provider") != "GatewayAPI" or not hostnames or not model:
        return None
    if (
        status.get("phase") not in SERVING_PHASES
        or not meta.get("name")
        or not meta.get("namespace")
    ):
        return None
    secret = (spec.get("serving") or {}).get("secretRef") or {}
    version = (status.get("stable") or {}).get("version")
    return GatewayTarget(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        model=str(model),
        hostname=hostnames[0],
        path=str(gateway.get("path") or "/").rstrip("/"),
        secret=str(secret["name"]) if secret.get("name") else None,
        version=str(version) if version is not None else None,
    )


def running_cluster(kubeconfig: Path | None, kubectl: str | None) -> Kubectl:
    """kubectl for `kubeconfig`, or for the cluster `make cluster-up` started."""
    if kubeconfig is not None:
        return Kubectl(kubeconfig, kubectl or "kubectl")
    if not CLUSTER_INFO.exists():
        raise NoCluster(
            "no local cluster is running: start it with `make cluster-up` (it stays up until "
            "`make cluster-down`), or pass --kubeconfig for another one"
        )
    info = json.loads(CLUSTER_INFO.read_text())
    client = Kubectl(Path(info["kubeconfig"]), kubectl or str(info["kubectl"]))
    if client.run("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        raise NoCluster(
            f"{CLUSTER_INFO} names a cluster that does not answer: `make cluster-up` again"
        )
    return client


def api_key(kubectl: Kubectl, target: GatewayTarget) -> str | None:
    """The first key in the target's Secret (`API_KEY`, else the first of `API_KEYS`)."""
    if target.secret is None:
        return None
    secret = kubectl.json("get", "secret", target.secret, "-n", target.namespace)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    if data.get("API_KEY", "").strip():
        return data["API_KEY"].strip()
    keys = [k.strip() for k in data.get("API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else None


def find_target(kubectl: Kubectl, namespace: str | None, name: str | None) -> GatewayTarget | None:
    models = artpulse_models(kubectl)
    for resource in models:
        meta = resource.get("metadata") or {}
        if namespace and meta.get("namespace") != namespace:
            continue
        if name and meta.get("name") != name:
            continue
        if (target := gateway_target(resource)) is not None:
            return target
    return None


# --- setting up a model of our own ------------------------------------------------------------


@dataclass
class AttachedLocalCluster(LocalCluster):
    """The running local cluster (`make cluster-up`) for a `Story`, reached by kubectl only."""

    client: Kubectl | None = None

    @property
    def kubeconfig(self) -> Path:
        assert self.client is not None
        return self.client.kubeconfig

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert self.client is not None
        return self.client.run(*args, input=input, check=check, timeout=timeout)


def set_up_own_model(kubectl: Kubectl, say: Any = print) -> GatewayTarget:
    """Train v1 and serve it with a Single-strategy resource through the Gateway (minutes)."""
    from artpulse_dev.story import Story

    workdir = REPO_ROOT / ".artpulse" / "loadtest"
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    local = AttachedLocalCluster(state_dir=workdir, client=kubectl)
    story = Story(
        local, workdir=workdir, namespace=OWN["namespace"], name=OWN["name"], model=OWN["model"],
        out=say,
    )  # fmt: skip
    exists = kubectl.run(
        "get", "artpulsemodel", OWN["name"], "-n", OWN["namespace"], check=False
    ).returncode == 0  # fmt: skip
    if not exists:
        say(f"no served model through the Gateway: setting up {OWN['namespace']}/{OWN['name']}")
        story.demo_data()
        version = story.train()
        if story.alias("champion") != version:
            story.set_alias("champion", version)
        story.apply(story.render(SINGLE_MANIFEST.read_text()))
    else:
        say(f"{OWN['namespace']}/{OWN['name']} exists: waiting for it to be Stable")
    story.wait(lambda s: s.get("phase") in SERVING_PHASES, 300, f"{OWN['name']} Stable")
    story.wait_route_ready()
    target = find_target(kubectl, OWN["namespace"], OWN["name"])
    if target is None:
        raise RuntimeError(f"{OWN['namespace']}/{OWN['name']} is Stable but not a Gateway target")
    return target


# --- the request and the run ------------------------------------------------------------------


def request_row(
    target: GatewayTarget, headers: Mapping[str, str], mlflow_url: str
) -> tuple[dict[str, float], str]:
    """One row the server accepts, and what it is: the served version's training means, else
    0.5 per column of /metadata (a model without a baseline has no feature bounds)."""
    measured = mlflow_version(mlflow_url, target.model, target.version, "champion")
    run_id = ((measured.get("versionResponse") or {}).get("model_version") or {}).get("run_id")
    if run_id:
        try:
            from artpulse_inference.training.mlflow_ops import load_baseline

            baseline = load_baseline(str(run_id), mlflow_url)
            row = {
                name: float(baseline["features"][name]["mean"])
                for name in baseline["feature_names"]
            }
            return row, f"the training means of run {run_id} (baseline_feature_stats.json)"
        except Exception as exc:  # any failure: fall back to /metadata, and say so
            why = f"no baseline ({type(exc).__name__}: {str(exc)[:200]})"
    else:
        why = f"no training run ({measured.get('error') or 'the version names none'})"
    metadata = httpx.get(
        f"{GATEWAY_HOST_URL}{target.path}/metadata", headers=dict(headers), timeout=10
    )
    metadata.raise_for_status()
    names = (metadata.json().get("model") or {}).get("feature_names") or []
    if not names:
        raise RuntimeError(
            f"{target.hostname}/metadata lists no feature columns: {metadata.text[:300]}"
        )
    return {str(n): 0.5 for n in names}, f"0.5 per column of /metadata: {why}"


def probe(url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """One request before the run: it must be answered 200, and says which version answered."""
    response = httpx.post(url, content=body, headers=dict(headers), timeout=10)
    if response.status_code != 200:
        raise RuntimeError(
            f"POST {url} (host {headers.get('Host')}): {response.status_code} {response.text[:300]}"
        )
    version = (response.json().get("model") or {}).get("version")
    return {
        "status": response.status_code,
        "version": str(version) if version is not None else None,
    }


def tool_version(binary: str) -> str:
    out = subprocess.run(
        [binary, "--version" if "k6" in binary else "-v"], capture_output=True, text=True
    )
    first = (out.stdout or out.stderr).strip().splitlines()
    match = re.search(r"v?\d+\.\d+[\w.+~-]*", first[0]) if first else None
    return match[0] if match else "?"


def run_load(
    kubectl: Kubectl,
    *,
    namespace: str | None = None,
    name: str | None = None,
    duration_s: int = 30,
    connections: int = 16,
    threads: int = 2,
    tool: str | None = None,
    set_up: bool = True,
    mlflow_url: str = MLFLOW_HOST_URL,
    say: Any = print,
) -> dict[str, Any]:
    """Load the target for `duration_s` and return what was measured (see the module doc)."""
    target = find_target(kubectl, namespace, name)
    if target is None:
        if not set_up or namespace or name:
            where = f"{namespace or '*'}/{name or '*'}"
            raise RuntimeError(f"no Stable ArtPulseModel {where} routed by the Gateway API")
        target = set_up_own_model(kubectl, say)
    key = api_key(kubectl, target)
    headers = {"Host": target.hostname, "Content-Type": "application/json"}
    if key:
        headers["x-api-key"] = key
    url = f"{GATEWAY_HOST_URL}{target.predict_path}"
    row, row_source = request_row(target, headers, mlflow_url)
    body = json.dumps({"rows": [row]}).encode()
    first = probe(url, headers, body)
    chosen = tool or ("k6" if shutil.which("k6") else "wrk")
    say(f"{chosen}: {connections} connections for {duration_s} s at {url} (host {target.hostname})")
    with tempfile.TemporaryDirectory(prefix="artpulse-loadtest-") as tmp:
        work = Path(tmp)
        started = time.time()
        if chosen == "k6":
            summary = _run_k6(work, url, headers, row, duration_s, connections)
        else:
            summary = _run_wrk(work, url, headers, body, duration_s, connections, threads)
        finished = time.time()
    return {
        "tool": chosen,
        "toolVersion": tool_version(chosen),
        "startedTs": started,
        "finishedTs": finished,
        "target": {**asdict(target), "gateway": GATEWAY_HOST_URL, "url": url},
        "settings": {
            "connections": connections,
            "threads": threads,
            "durationS": duration_s,
            "rowsPerRequest": 1,
            "row": row_source,
        },
        "probe": first,
        "summary": summary,
    }


def _run_wrk(
    work: Path, url: str, headers: Mapping[str, str], body: bytes, duration_s: int,
    connections: int, threads: int,
) -> dict[str, Any]:  # fmt: skip
    body_file, summary_file = work / "body.json", work / "summary.json"
    body_file.write_bytes(body)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_SUMMARY_FILE": str(summary_file)}
    # "Host" capitalised: wrk replaces its own Host header only when the name matches exactly.
    header_args = [
        a for k, v in headers.items() if k != "Content-Type" for a in ("-H", f"{k}: {v}")
    ]
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
           "-s", str(WRK_SCRIPT), *header_args, url]  # fmt: skip
    subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=True
    )
    return {"wrk": json.loads(summary_file.read_text())}


def _run_k6(
    work: Path, url: str, headers: Mapping[str, str], row: Mapping[str, float], duration_s: int,
    connections: int,
) -> dict[str, Any]:  # fmt: skip
    export = work / "summary.json"
    base = url.removesuffix("/predict")
    env_args = {"BASE_URL": base, "HOST": headers["Host"], "ROW": json.dumps(row),
                "VUS": str(connections), "DURATION": f"{duration_s}s"}  # fmt: skip
    if "x-api-key" in headers:
        env_args["API_KEY"] = headers["x-api-key"]
    cmd = ["k6", "run", "--quiet", "--summary-export", str(export),
           "--summary-trend-stats", "avg,min,med,max,p(50),p(90),p(95),p(99)",
           *[a for k, v in env_args.items() for a in ("-e", f"{k}={v}")], str(K6_SCRIPT)]  # fmt: skip
    # Not check=True: k6 exits 99 when a threshold of the scenario fails; the numbers stand.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 120)
    if not export.exists():
        raise RuntimeError(f"k6 wrote no summary ({done.returncode}): {done.stderr[-500:]}")
    return {"k6": json.loads(export.read_text())}

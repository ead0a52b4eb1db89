"""Test helpers: the operator as a real process under its shipped RBAC, and small kube helpers.

Used by the operator's integration tests. The operator runs exactly as in the container
(``python -m artpulse_operator``), authenticated as the ServiceAccount identity of the harness
(``control_plane.operator_kubeconfig``), after ``manifests/base/rbac.yaml`` has been applied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from artpulse_dev._proc import free_port, spawn, stop
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (
            subprocess.CalledProcessError,
            AssertionError,
            KeyError,
            IndexError,
            TypeError,
        ) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        time.sleep(interval)


def apply_rbac(control_plane: Any) -> None:
    """The operator's ServiceAccount and ClusterRole as shipped."""
    control_plane.kubectl("create", "namespace", "artpulse-system", check=False)
    control_plane.kubectl("apply", "-f", str(REPO / "manifests" / "base" / "rbac.yaml"))


def operator_for(
    control_plane: Any, mlflow_uri: str, log_path: Path, namespaces: str, **env: str
) -> OperatorProcess:
    """An operator process (not started) watching ``namespaces`` (a glob), MLflow at mlflow_uri."""
    return OperatorProcess(
        control_plane,
        log_path,
        {"ARTPULSE_MLFLOW_TRACKING_URI": mlflow_uri, "ARTPULSE_NAMESPACES": namespaces, **env},
    )


@contextmanager
def running_operator(
    control_plane: Any, mlflow_uri: str, log_path: Path, namespaces: str, **env: str
) -> Iterator[OperatorProcess]:
    """``operator_for`` under the shipped RBAC, started; stopped after, with its log printed."""
    apply_rbac(control_plane)
    proc = operator_for(control_plane, mlflow_uri, log_path, namespaces, **env).start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log_tail())


@contextmanager
def fresh_namespace(control_plane: Any, prefix: str) -> Iterator[Kube]:
    """A new namespace ``<prefix><random>``, deleted (without waiting) afterwards."""
    namespace = f"{prefix}{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", namespace)
    try:
        yield Kube(control_plane, namespace)
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@dataclass
class OperatorProcess:
    control_plane: Any
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.control_plane.operator_kubeconfig),
            "ARTPULSE_KUBECONFIG": str(self.control_plane.operator_kubeconfig),
            "ARTPULSE_HEALTH_HOST": "127.0.0.1",
            "ARTPULSE_HEALTH_PORT": str(self.port),
            "ARTPULSE_LOG_LEVEL": "INFO",
            **self.env,
        }
        self.proc = spawn([sys.executable, "-m", "artpulse_operator"], self.log_path, env=env)
        wait_for(self.healthy, "the operator's /healthz", timeout=90)
        return self

    def stop(self) -> None:
        stop(self.proc)

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited:\n{self.log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metric(self, name: str) -> float:
        """Sum of every sample of ``name`` (all label sets)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text()[-chars:]


class Kube:
    """kubectl as admin in one namespace, JSON in and out."""

    def __init__(self, control_plane: Any, namespace: str) -> None:
        self.cp = control_plane
        self.ns = namespace

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return str(self.cp.kubectl(*args, "-n", self.ns, input=input, check=check).stdout)

    def apply(self, obj: dict[str, Any]) -> None:
        self.run("apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(obj))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.cp.kubectl("get", kind, name, "-n", self.ns, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def names(self, kind: str, selector: str) -> set[str]:
        out = json.loads(self.run("get", kind, "-l", selector, "-o", "json"))
        return {i["metadata"]["name"] for i in out["items"]}

    def merge(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        self.run("patch", kind, name, "--type=merge", "-p", json.dumps(patch))

    def events(self, name: str) -> list[dict[str, Any]]:
        out = json.loads(
            self.run(
                "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
            )
        )
        items: list[dict[str, Any]] = out["items"]
        return items


# The test workload (images/testhost): real pods with real probes that need no model, for
# tests on the real node whose subject is the operator (weights, readiness, rollouts).
TESTHOST_IMAGE = "localhost/artpulse-testhost:0.1.0"


def model_resource(
    name: str, model: str, image: str = "artpulse-inference:test", **spec: Any
) -> dict[str, Any]:
    """An ArtPulseModel; `image` defaults to one no node runs (API-only tests)."""
    base: dict[str, Any] = {
        "model": {"name": model, "pollInterval": "5s"},
        "serving": {"image": image, "replicas": 2},
    }
    base.update(spec)
    return {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseModel",
        "metadata": {"name": name},
        "spec": base,
    }


def register_model(tracking_uri: str, versions: int, aliases: dict[str, str]) -> str:
    """A registered model with ``versions`` versions (each from a run) and the given aliases."""
    client = MlflowClient(tracking_uri=tracking_uri)
    name = f"opr-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    experiment = client.create_experiment(f"exp-{name}")
    for _ in range(versions):
        run = client.create_run(experiment)
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    for alias, version in aliases.items():
        client.set_registered_model_alias(name, alias, version)
    return name


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((body or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None

"""The local development cluster: every real part of ArtPulse on one machine, no containers.

Development tooling, not part of the product (production runs on a real cluster).
It starts, in order:

1. the control plane (etcd + kube-apiserver, `controlplane.py`) with our CRDs and the
   Gateway API CRDs, and the RBAC we ship (`manifests/base/rbac.yaml`) applied;
2. a real MLflow server (`mlflow_server.py`);
3. Debian's Prometheus (`prometheus.py`) reading the runtime's file_sd targets;
4. nginx as the gateway (`gateway.py`) and the process runtime (`runtime.py`) that
   stands in for kubelets;
5. the operator as the real `kopf run`, with the operator's own kubeconfig (the
   ServiceAccount identity, so only the shipped RBAC lets it act).

    python -m artpulse_dev.localcluster up       # start in the background, print where things are
    python -m artpulse_dev.localcluster status   # what runs, where, and the routes
    python -m artpulse_dev.localcluster down     # stop everything (idempotent)
    python -m artpulse_dev.localcluster up --foreground   # run until Ctrl-C

State and logs live under `.artpulse/cluster/` in the repository (or
`$ARTPULSE_CLUSTER_DIR`); `export KUBECONFIG=.artpulse/cluster/kubeconfig` makes
`kubectl get apm -w` work. `make cluster-up`, `make cluster-down` and `hack/demo.py`
call this module; the e2e tests use `LocalCluster` with the session control plane.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config as kube_config

from artpulse_dev._proc import free_port, spawn, stop, stop_pid, wait_until
from artpulse_dev.controlplane import OPERATOR_NAMESPACE, REPO_ROOT, ControlPlane
from artpulse_dev.gateway import NginxGateway
from artpulse_dev.mlflow_server import MlflowServer
from artpulse_dev.prometheus import Prometheus
from artpulse_dev.runtime import ProcessRuntime

log = logging.getLogger("artpulse_dev.localcluster")

DEFAULT_STATE_DIR = Path(
    os.environ.get("ARTPULSE_CLUSTER_DIR", REPO_ROOT / ".artpulse" / "cluster")
)
RBAC_MANIFEST = REPO_ROOT / "manifests" / "base" / "rbac.yaml"
# The recording rules and alerts the cluster's Prometheus loads, so they work locally too.
PROMETHEUS_RULES = REPO_ROOT / "observability" / "prometheus" / "rules"
VENV_BIN = Path(sys.executable).parent
# How the operator runs (operator/README.md): the real `kopf run` on the handlers module.
OPERATOR_MODULE = "artpulse_operator.handlers"


def _venv_tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


@dataclass
class LocalCluster:
    """All parts of the local cluster in this process (runtime, gateway) or as children.

    `control_plane`: reuse a running one (the e2e tests pass the session's); else one
    is started under `state_dir`. `namespaces`: limit the runtime and the gateway to
    those (None: all). `operator_env`: extra environment for the operator process.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    control_plane: ControlPlane | None = None
    namespaces: set[str] | None = None
    operator_env: Mapping[str, str] = field(default_factory=dict)
    with_operator: bool = True
    prometheus_rule_files: list[Path] = field(
        default_factory=lambda: sorted(PROMETHEUS_RULES.glob("*.yml"))
    )
    mlflow: MlflowServer | None = None
    prometheus: Prometheus | None = None
    gateway: NginxGateway | None = None
    runtime: ProcessRuntime | None = None
    operator: subprocess.Popen[bytes] | None = None
    operator_health_port: int = 0
    _own_control_plane: bool = False

    # -- where things are -------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def operator_log(self) -> Path:
        return self.logs_dir / "operator.log"

    @property
    def file_sd_dir(self) -> Path:
        return self.state_dir / "prometheus" / "targets"

    @property
    def plane(self) -> ControlPlane:
        assert self.control_plane is not None, "the cluster is not started"
        return self.control_plane

    def describe(self) -> dict[str, Any]:
        return {
            "apiServer": self.control_plane.url if self.control_plane else None,
            "kubeconfig": str(self.kubeconfig),
            "operatorKubeconfig": str(self.plane.operator_kubeconfig)
            if self.control_plane
            else None,
            "mlflow": self.mlflow.tracking_uri if self.mlflow else None,
            "prometheus": self.prometheus.url if self.prometheus else None,
            "gateway": self.gateway.url if self.gateway else None,
            "logs": str(self.logs_dir),
            "runtimeLogs": str(self.state_dir / "runtime" / "pods"),
            "kubectl": str(self.plane.binaries.kubectl) if self.control_plane else None,
        }

    def child_pids(self) -> list[int]:
        pids = [
            p.pid
            for p in (self.mlflow, self.prometheus, self.gateway)
            if p is not None and p.pid is not None
        ]
        if self.operator is not None:
            pids.append(self.operator.pid)
        return pids

    def plane_pids(self) -> list[int]:
        """etcd and kube-apiserver, when this cluster started them (for `down` after a crash)."""
        plane_state = self.state_dir / "controlplane" / "state.json"
        if not self._own_control_plane or not plane_state.exists():
            return []
        return [int(p) for p in json.loads(plane_state.read_text()).get("pids", [])]

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> LocalCluster:
        self.state_dir = self.state_dir.resolve()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.control_plane is None:
            log.info("starting the control plane")
            self.control_plane = ControlPlane(self.state_dir / "controlplane")
            self._own_control_plane = True
            self.control_plane.start()
        shutil.copyfile(self.plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.apply_rbac()
        log.info("starting mlflow")
        self.mlflow = MlflowServer(self.state_dir / "mlflow").start()
        log.info("starting prometheus")
        self.prometheus = Prometheus(
            self.state_dir / "prometheus",
            file_sd_dir=self.file_sd_dir,
            rule_files=self.prometheus_rule_files,
        ).start()
        log.info("starting the gateway and the runtime")
        self.gateway = NginxGateway(self.state_dir / "gateway").start()
        api = kube_config.new_client_from_config(config_file=str(self.plane.kubeconfig))  # type: ignore[no-untyped-call]
        path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        base_env = {
            k: os.environ[k] for k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ") if k in os.environ
        }
        self.runtime = ProcessRuntime(
            api,
            self.state_dir / "runtime",
            listener=self.gateway,
            file_sd_dir=self.file_sd_dir,
            base_env={**base_env, "PATH": path, "VIRTUAL_ENV": str(VENV_BIN.parent)},
            namespaces=self.namespaces,
        ).start()
        if self.with_operator:
            self.start_operator()

    def apply_rbac(self) -> None:
        """The operator's namespace, ServiceAccount and RBAC exactly as shipped."""
        plane = self.plane
        if plane.kubectl("get", "namespace", OPERATOR_NAMESPACE, check=False).returncode != 0:
            plane.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        if not RBAC_MANIFEST.exists():
            raise FileNotFoundError(
                f"{RBAC_MANIFEST} is missing: the operator would have no rights"
            )
        plane.kubectl("apply", "-n", OPERATOR_NAMESPACE, "-f", str(RBAC_MANIFEST))

    def operator_environment(self) -> dict[str, str]:
        """The operator's settings (operator/artpulse_operator/settings.py, ARTPULSE_*)."""
        assert self.mlflow is not None
        assert self.prometheus is not None
        env = {
            **os.environ,
            "KUBECONFIG": str(self.plane.operator_kubeconfig),
            "ARTPULSE_KUBECONFIG": str(self.plane.operator_kubeconfig),
            # The operator's defaults when a resource names no tracking URI or Prometheus.
            "ARTPULSE_MLFLOW_TRACKING_URI": self.mlflow.tracking_uri,
            "ARTPULSE_PROMETHEUS_URL": self.prometheus.url,
            "ARTPULSE_HEALTH_HOST": "127.0.0.1",
            "ARTPULSE_HEALTH_PORT": str(self.operator_health_port),
            "ARTPULSE_NAMESPACES": ",".join(sorted(self.namespaces or ())),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.operator_env)
        return env

    def start_operator(self) -> subprocess.Popen[bytes]:
        """`kopf run` with the operator's kubeconfig; returns once its health endpoint answers."""
        if not self.operator_health_port:
            self.operator_health_port = free_port()
        argv = [
            _venv_tool("kopf"),
            "run",
            "--standalone",
            "--log-format=plain",
            "-m",
            OPERATOR_MODULE,
        ]
        if self.namespaces:
            for ns in sorted(self.namespaces):
                argv += ["--namespace", ns]
        else:
            argv.append("--all-namespaces")
        with self.operator_log.open("a") as f:
            f.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(argv)}\n")
        self.operator = spawn(
            argv, self.operator_log, env=self.operator_environment(), cwd=REPO_ROOT
        )
        url = f"http://127.0.0.1:{self.operator_health_port}/healthz"
        wait_until(
            lambda: urllib.request.urlopen(url, timeout=1).status == 200,
            90,
            "operator (kopf run)",
            self.operator,
            self.operator_log,
            interval=0.2,
        )
        return self.operator

    def kill_operator(self, sig: int = signal.SIGKILL) -> None:
        """Kill the operator abruptly (the e2e restart test); `start_operator()` brings it back."""
        if self.operator is not None and self.operator.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.operator.pid, sig)
            self.operator.wait(timeout=30)
        self.operator = None

    def stop(self) -> None:
        """Stop everything this cluster started, the operator first (it writes objects)."""
        if self.operator is not None:
            stop(self.operator, timeout=10)
            self.operator = None
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None
        for part in (self.gateway, self.prometheus, self.mlflow):
            if part is not None:
                part.stop()
        self.gateway = self.prometheus = self.mlflow = None
        if self._own_control_plane and self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.plane.kubectl(*args, input=input, check=check)


# --- the background cluster (`up` / `down` / `status`) ----------------------------------


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    path = _state_file(state_dir)
    if not path.exists():
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def serve(state_dir: Path, announce: bool = False, with_operator: bool = True) -> int:
    """Run the cluster in this process until SIGTERM/SIGINT; `up` starts this in the background."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster = LocalCluster(state_dir=state_dir, with_operator=with_operator)
    state = _state_file(state_dir)
    try:
        cluster.start()
        pods_file = state_dir / "runtime" / "pods.json"

        def write_state() -> None:
            info = {
                "pid": os.getpid(),
                "ready": True,
                **cluster.describe(),
                "children": cluster.child_pids() + cluster.plane_pids(),
            }
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps(info, indent=1))
            tmp.replace(state)
            if cluster.runtime is not None:
                pods = cluster.runtime.snapshot()
                pods_file.write_text(json.dumps(pods, indent=1))

        write_state()
        if announce:
            _print_where(cluster.describe())
        while not stopping.wait(2.0):
            if cluster.operator is not None and cluster.operator.poll() is not None:
                log.error("the operator exited (%s); restarting it", cluster.operator.returncode)
                cluster.start_operator()
            write_state()
        return 0
    finally:
        cluster.stop()
        state.unlink(missing_ok=True)


def down(state_dir: Path, quiet: bool = False) -> bool:
    """Stop a background cluster and anything it left behind; False when nothing ran."""
    state = _read_state(state_dir)
    pods_file = state_dir / "runtime" / "pods.json"
    ran = False
    if state is not None:
        pid = int(state.get("pid", 0))
        if pid and _alive(pid):
            ran = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 90
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                stop_pid(pid, timeout=1)
        # Whatever survived a crashed supervisor: its children and the pods.
        for child in state.get("children", []):
            if _alive(int(child)):
                ran = True
                stop_pid(int(child))
    if pods_file.exists():
        with contextlib.suppress(ValueError, OSError):
            for pod in json.loads(pods_file.read_text()):
                if pod.get("pid") and _alive(int(pod["pid"])):
                    stop_pid(int(pod["pid"]), timeout=5)
        pods_file.unlink(missing_ok=True)
    _state_file(state_dir).unlink(missing_ok=True)
    if not quiet:
        print("local cluster stopped" if ran else "no local cluster was running")
    return ran


def _print_where(info: Mapping[str, Any]) -> None:
    print(f"""local cluster is up (development tooling: processes stand in for pods)
  API server   {info["apiServer"]}
  MLflow       {info["mlflow"]}
  Prometheus   {info["prometheus"]}
  gateway      {info["gateway"]}   (path /<namespace>/<name>/... or a route's Host header)
  logs         {info["logs"]}   (pods: {info["runtimeLogs"]})

  export KUBECONFIG={info["kubeconfig"]}
  export PATH={Path(str(info["kubectl"])).parent}:$PATH   # kubectl {Path(str(info["kubectl"])).parent}
  kubectl get apm -A -w
stop it with `make cluster-down` (python -m artpulse_dev.localcluster down)""")


def up(state_dir: Path, timeout: float = 600, with_operator: bool = True) -> int:
    state = _read_state(state_dir)
    if state is not None and _alive(int(state.get("pid", 0))) and state.get("ready"):
        print("the local cluster is already running")
        _print_where(state)
        return 0
    down(state_dir, quiet=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "logs" / "cluster.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    proc = spawn(
        [
            sys.executable,
            "-m",
            "artpulse_dev.localcluster",
            "serve",
            "--state-dir",
            str(state_dir),
            *([] if with_operator else ["--no-operator"]),
        ],
        log_path,
        cwd=REPO_ROOT,
    )
    print(f"starting the local cluster (log: {log_path}) ...", flush=True)
    try:
        wait_until(
            lambda: bool((_read_state(state_dir) or {}).get("ready")),
            timeout,
            "local cluster",
            proc,
            log_path,
            interval=0.5,
        )
    except (RuntimeError, TimeoutError, KeyboardInterrupt) as exc:
        down(state_dir, quiet=True)
        stop(proc)
        print(f"the local cluster did not start: {exc}", file=sys.stderr)
        return 1
    _print_where(_read_state(state_dir) or {})
    return 0


def status(state_dir: Path) -> int:
    state = _read_state(state_dir)
    if state is None or not _alive(int(state.get("pid", 0))):
        print("no local cluster is running")
        return 1
    _print_where(state)
    pods_file = state_dir / "runtime" / "pods.json"
    if pods_file.exists():
        pods = json.loads(pods_file.read_text())
        print(f"\nprocesses ({len(pods)}):")
        for pod in pods:
            flag = (
                "terminating" if pod["terminating"] else ("ready" if pod["ready"] else "starting")
            )
            print(f"  {pod['namespace']}/{pod['name']:<40} 127.0.0.1:{pod['port']:<6} {flag}")
    routes = state_dir / "gateway" / "routes.json"
    if routes.exists():
        print("\nroutes:")
        for route in json.loads(routes.read_text()):
            split = ", ".join(
                f"{b['service'].split('/')[1]} {b['share'] * 100:.0f}%"
                for b in route["backends"]
                if b["share"]
            )
            print(f"  {route['path']:<40} {route['kind']:<9} {split or 'no ready backend'}")
    return 0


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[LocalCluster]:
    cluster = LocalCluster(**kwargs)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m artpulse_dev.localcluster", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--foreground", action="store_true", help="up: run until Ctrl-C")
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="everything but the operator (to run it yourself: see operator/README.md)",
    )
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.command == "down":
        down(state_dir)
        return 0
    if args.command == "status":
        return status(state_dir)
    if args.command == "serve" or (args.command == "up" and args.foreground):
        if args.command == "up":
            down(state_dir, quiet=True)
            print(
                f"running the local cluster in the foreground; Ctrl-C stops it (logs: {state_dir / 'logs'})"
            )
        return serve(state_dir, announce=args.command == "up", with_operator=not args.no_operator)
    return up(state_dir, with_operator=not args.no_operator)


if __name__ == "__main__":
    sys.exit(main())

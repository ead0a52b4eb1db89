"""The servers ArtPulse is compared with, run as real processes on loopback.

Called by ``loadtest/bench_inference.py`` (side by side, under load) and by
``tests/integration/inference_server/test_inference_server_oip_conformance.py`` (the same
requests to MLServer and to ours). Each peer serves the *same fitted estimator* as our
server: :func:`export_joblib` reads the registered skops model back with the server's own
trusted loader and writes it as ``model.joblib``, the file MLServer's and KServe's sklearn
runtimes load.

- MLServer 1.7.1 + mlserver-sklearn (``mlserver start DIR``), in ``peers/mlserver``;
- KServe's model server with a scikit-learn model (``hack/peers/kserve_sklearn.py``) on
  kserve 0.21.0, in ``peers/kserve``;
- ``mlflow models serve --env-manager local`` from our own venv (it is a peer: it loads the
  model its own way, in its own process);
- a bare endpoint on our server's HTTP stack (:mod:`artpulse_dev.bare_endpoint`), the ceiling.

The peers' venvs are made by ``hack/peers.sh`` (``make peers``), cached under
``${ARTPULSE_CACHE:-~/.cache/artpulse}/peers``; :func:`peer_python` runs it, so a first use
installs them and a later one only checks the stamps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from artpulse_dev._proc import free_port, spawn, stop

REPO = Path(__file__).resolve().parents[2]
PEERS_SH = REPO / "hack" / "peers.sh"
KSERVE_RUNNER = REPO / "hack" / "peers" / "kserve_sklearn.py"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def peer_python(peer: str) -> Path:
    """The python of the peer venv ``peer`` (``mlserver`` or ``kserve``), installed if needed."""
    out = subprocess.run(
        ["bash", str(PEERS_SH), "python", peer],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/peers.sh python {peer} failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def peer_versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
    """``{package: version}`` as installed in the venv of ``python``."""
    code = (
        "import importlib.metadata as m, json, sys;"
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def export_joblib(tracking_uri: str, model_uri: str, dst_dir: Path) -> Path:
    """Write the estimator of ``model_uri`` (a skops model in MLflow) as ``dst_dir/model.joblib``.

    Read with the server's own path (MLmodel decided first, then the skops file loaded with
    ``core.skops_trust``), so the peers get exactly the estimator our server serves.
    """
    import joblib
    import mlflow
    from artpulse_inference.core.skops_trust import load_trusted_skops
    from artpulse_inference.server.model_format import MLMODEL_FILE, decide, read_mlmodel

    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(dst_dir / "mlflow")))
    servable = decide(read_mlmodel(local / MLMODEL_FILE))
    estimator = load_trusted_skops(local / servable.estimator_file)
    dst_dir.mkdir(parents=True, exist_ok=True)
    path = dst_dir / "model.joblib"
    joblib.dump(estimator, path)
    return path


def mlserver_repository(
    root: Path, name: str, version: str, joblib_path: Path, *, parallel_workers: int = 0
) -> Path:
    """An MLServer model repository serving ``joblib_path`` as ``name`` (``version``).

    ``parallel_workers=0`` (the default here): inference in the server process, like ours
    (one process, no queue to a worker pool). MLServer's own default is 1: one inference
    worker process behind the HTTP process. Ports come from the environment (:func:`mlserver`).
    """
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(joblib_path), "version": version},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))
    (root / "settings.json").write_text(
        json.dumps(
            {"parallel_workers": parallel_workers, "debug": False, "load_models_at_startup": True}
        )
    )
    return root


@dataclass
class PeerProcess:
    """One server process on ``port``: started, waited for, measured and stopped."""

    name: str
    argv: list[str]
    ready_path: str
    log_path: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> PeerProcess:
        """Spawn and wait until ``ready_path`` answers 200; ``startup_s`` is spawn to ready."""
        started = time.monotonic()
        self.proc = spawn(self.argv, self.log_path, env={**os.environ, **self.env}, cwd=self.cwd)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self._tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as answer:
                    if answer.status == 200:
                        self.startup_s = time.monotonic() - started
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s: {self._tail()}")

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """The process and its descendants (``mlflow models serve`` runs uvicorn as a child)."""
        if self.proc is None:
            return []
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        tree = [self.proc.pid]
        for pid in tree:  # grows while it is walked: breadth first
            tree += [child for child, parent in parents.items() if parent == pid]
        return tree

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process tree so far (``/proc/<pid>/stat``)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / _CLK_TCK

    def rss_mb(self) -> float:
        """Resident memory of the process tree, MiB."""
        total_kb = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        return total_kb / 1024.0

    def _tail(self) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "log tail:\n" + self.log_path.read_text(errors="replace")[-3000:]


def ours(env: Mapping[str, str], log_path: Path) -> PeerProcess:
    """Our server (``python -m artpulse_inference.server``) with ``env`` (MODEL_URI, ...)."""
    port = free_port()
    return PeerProcess(
        "ours",
        [sys.executable, "-m", "artpulse_inference.server"],
        "/ready",
        log_path,
        port,
        env={"HOST": "127.0.0.1", "PORT": str(port), **env},
    )


def mlserver(repository: Path, model_name: str, log_path: Path) -> PeerProcess:
    """``mlserver start`` on ``repository`` (see :func:`mlserver_repository`), ready when
    ``model_name`` is (its server-level readiness can answer before a worker has loaded it)."""
    python = peer_python("mlserver")
    port = free_port()
    env = {
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_HOST": "127.0.0.1",
    }
    return PeerProcess(
        "mlserver",
        [str(python.with_name("mlserver")), "start", str(repository)],
        f"/v2/models/{model_name}/ready",
        log_path,
        port,
        env=env,
        cwd=repository,  # its Prometheus multiprocess files go to ./.metrics
    )


def kserve_sklearn(
    model_dir: Path, model_name: str, log_path: Path, *, predict_proba: bool = False
) -> PeerProcess:
    """KServe's ModelServer serving ``model_dir/model.joblib`` as ``model_name``.

    ``predict_proba``: answer probabilities (its ``PREDICT_PROBA``) instead of labels. Over
    v2 it can only answer numbers: string labels fail with 500 "decoding str is not
    supported" (``get_predict_response``), so OIP clients of a classifier need it. Its gRPC
    server is off (ours is off by default too) and so are its two log lines per request
    (access log and latency trace; ours logs no request either).
    """
    python = peer_python("kserve")
    port = free_port()
    log_config = log_path.with_suffix(".logging.json")
    log_config.write_text(json.dumps(_QUIET_LOGGING))
    argv = [str(python), str(KSERVE_RUNNER), "--model_dir", str(model_dir),
            "--model_name", model_name, "--http_port", str(port), "--workers", "1",
            "--enable_grpc", "false", "--enable_latency_logging", "false",
            "--log_config_file", str(log_config)]  # fmt: skip
    return PeerProcess(
        "kserve",
        argv,
        f"/v2/models/{model_name}/ready",
        log_path,
        port,
        env={"PREDICT_PROBA": str(predict_proba).lower()},
        cwd=model_dir,
    )


# Python logging config for KServe: warnings and errors only, no line per request.
_QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "WARNING", "handlers": ["stderr"]},
    "loggers": {
        name: {"level": "WARNING", "handlers": ["stderr"], "propagate": False}
        for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.access", "uvicorn.error")
    },
}


def mlflow_serve(tracking_uri: str, model_uri: str, log_path: Path) -> PeerProcess:
    """``mlflow models serve --env-manager local`` (uvicorn, 1 worker) from our venv."""
    port = free_port()
    venv_bin = Path(sys.executable).parent
    argv = [str(venv_bin / "mlflow"), "models", "serve", "-m", model_uri,
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]  # fmt: skip
    # It execs `uvicorn` from PATH: this venv's first. MLflow 3.17 loads no model file, skops
    # included, unless told to trust it; this peer is told so, in its own process only (our
    # server never runs MLflow's loaders: core.skops_trust decides what it builds).
    env = {
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": str(venv_bin) + os.pathsep + os.environ.get("PATH", ""),
    }
    return PeerProcess("mlflow", argv, "/ping", log_path, port, env=env)


def bare(log_path: Path) -> PeerProcess:
    """The ceiling: a constant answer on our HTTP stack (:mod:`artpulse_dev.bare_endpoint`)."""
    port = free_port()
    return PeerProcess(
        "bare",
        [sys.executable, "-m", "artpulse_dev.bare_endpoint", "--port", str(port)],
        "/ready",
        log_path,
        port,
    )

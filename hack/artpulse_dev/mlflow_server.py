"""A real `mlflow server` on loopback: SQLite backend store and served artifacts.

Used by the test fixtures and the local cluster. The tracking URI it prints is
what the operator, the inference server and the training CLI are pointed at.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from artpulse_dev._proc import free_port, spawn, stop, wait_until


@dataclass
class MlflowServer:
    state_dir: Path
    port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the MLFLOW_WEBHOOK_* switches
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "mlflow.log"

    def start(self, timeout: float = 120) -> MlflowServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        # No job runner: it starts five huey worker processes (~250 MB each) that ArtPulse never uses.
        env = {
            **os.environ,
            "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **self.extra_env,
        }
        self._proc = spawn(
            [
                mlflow_bin if mlflow_bin.exists() else "mlflow",
                "server",
                "--backend-store-uri", f"sqlite:///{self.state_dir / 'mlflow.db'}",
                "--artifacts-destination", self.state_dir / "artifacts",
                "--serve-artifacts",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--workers", "1",
            ],
            self.log_path,
            env=env,
            cwd=self.state_dir,
        )  # fmt: skip
        wait_until(
            lambda: urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2).status == 200,
            timeout,
            "mlflow server",
            self._proc,
            self.log_path,
            interval=0.25,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        stop(self._proc)

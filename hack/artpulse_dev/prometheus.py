"""A real Prometheus (Debian's package) on loopback with a generated configuration.

Used by the test fixtures and the local cluster: it scrapes real inference servers
every second, from static targets or from file-based service discovery (the local
cluster's process runtime writes those files with the pod labels).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from artpulse_dev._proc import free_port, spawn, stop, wait_until


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise FileNotFoundError("prometheus not found: run `make install` (Debian's prometheus)")
    return found


@dataclass
class Prometheus:
    state_dir: Path
    targets: Sequence[str] = ()
    rule_files: Sequence[Path] = ()
    file_sd_dir: Path | None = None
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    extra_labels: dict[str, str] = field(default_factory=dict)
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        scrape_configs: list[dict[str, Any]] = []
        if self.targets:
            scrape_configs.append(
                {
                    "job_name": "static",
                    "static_configs": [
                        {"targets": list(self.targets), "labels": self.extra_labels}
                    ],
                }
            )
        if self.file_sd_dir is not None:
            scrape_configs.append(
                {
                    "job_name": "artpulse-pods",
                    "file_sd_configs": [
                        {"files": [str(self.file_sd_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            )
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": scrape_configs,
        }

    def start(self, timeout: float = 60) -> Prometheus:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.file_sd_dir is not None:
            self.file_sd_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self._proc = spawn(
            [
                prometheus_binary(),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.state_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.log_path,
        )
        wait_until(
            lambda: urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).status == 200,
            timeout,
            "prometheus",
            self._proc,
            self.log_path,
            interval=0.2,
        )
        return self

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        data = self.api("query", query=expr)
        return list(data["result"])

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        stop(self._proc)

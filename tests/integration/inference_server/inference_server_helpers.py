"""Helpers for the inference-server integration tests and the benchmark.

``register_model`` trains a small scikit-learn classifier on random rows with the real
FEATURE_NAMES columns, logs it to the real MLflow server with a signature and the run
artifacts the server reads (baseline_feature_stats.json, training_summary.json,
data_quality_report.json) and registers a version. ``ServerProcess`` runs
``python -m artpulse_inference.server`` as a real uvicorn process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from artpulse_dev._proc import free_port, spawn, stop
from artpulse_inference.core.drift import compute_baseline
from artpulse_inference.core.features import FEATURE_NAMES

LABELS = ("impressionism", "minimalism", "pop_art")


def training_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(FEATURE_NAMES)))


def rule_labels(X: np.ndarray) -> np.ndarray:
    # A learnable rule on three features, so predictions are not all one class.
    score = X[:, 0] + X[:, 2] - X[:, 6]
    return np.where(score < 0.35, LABELS[1], np.where(score < 0.9, LABELS[0], LABELS[2]))


def register_model(
    tracking_uri: str,
    name: str,
    *,
    kind: str = "logreg",
    seed: int = 0,
    n: int = 600,
    tags: Mapping[str, str] | None = None,
    with_baseline: bool = True,
    flip_labels: bool = False,
) -> str:
    """Train, log and register; returns the new version number as a string."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X = training_rows(n, seed)
    y = rule_labels(X)
    if flip_labels:  # a deliberately different model, for shadow disagreement
        y = np.roll(y, 1)
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    if kind == "logreg":
        model: Any = LogisticRegression(max_iter=500)
    elif kind == "forest":
        model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    else:
        raise ValueError(kind)
    model.fit(frame, y)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"inference-server-{name}")
    with mlflow.start_run() as run:
        mlflow.log_param("kind", kind)
        if with_baseline:
            mlflow.log_dict(compute_baseline(X, FEATURE_NAMES), "baseline_feature_stats.json")
        mlflow.log_dict({"model": kind, "accuracy": 0.95, "n_samples": n}, "training_summary.json")
        mlflow.log_dict(
            {"passed": True, "skipped": False, "checks": []}, "data_quality_report.json"
        )
        from artpulse_inference.core.skops_trust import check_estimator_types

        # skops, the only format the server loads; the types beyond skops' defaults (the
        # trees of a forest) must be on the server's fixed list, which this checks.
        trusted = check_estimator_types(model)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=trusted or None,
            signature=infer_signature(frame.iloc[:5], model.predict(frame.iloc[:5])),
            registered_model_name=name,
        )
    client = mlflow.MlflowClient(tracking_uri)
    version = str(info.registered_model_version)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    assert run.info.run_id
    return version


def feature_row(value: float = 0.5) -> dict[str, float]:
    return {name: value for name in FEATURE_NAMES}


def random_rows(n: int, seed: int, shift: float = 0.0) -> list[dict[str, float]]:
    X = training_rows(n, seed)
    if shift:
        X = np.clip(X * 0.3 + shift, 0.0, 1.0)
    return [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in X]


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as exc:  # not ready yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@dataclass
class ServerProcess:
    """``python -m artpulse_inference.server`` on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 120.0) -> ServerProcess:
        self.port = self.port or free_port()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **self.env}
        self.proc = spawn(
            [sys.executable, "-m", "artpulse_inference.server"], self.log_path, env=env
        )
        path = "/ready" if wait_ready else "/health"

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return bool(response.status == 200)

        try:
            wait_for(up, timeout, f"inference server {path}", interval=0.1)
        except AssertionError:
            log = self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
            self.stop()
            raise AssertionError(f"inference server did not come up; log tail:\n{log}") from None
        return self

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RegisteredModels:
    tracking_uri: str
    name: str
    v1: str  # LogisticRegression, with baseline
    v2: str  # a different model (flipped labels), with baseline
    faulty: str  # like v1, tagged artpulse.fault.error_rate=1 and latency 50 ms

    def uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"


_REGISTERED: dict[str, RegisteredModels] = {}


def registered_models(tracking_uri: str) -> RegisteredModels:
    """The test models, registered once per MLflow server and test process."""
    if tracking_uri not in _REGISTERED:
        name = "art-inference-test"
        v1 = register_model(tracking_uri, name, seed=1)
        v2 = register_model(tracking_uri, name, seed=2, flip_labels=True)
        faulty = register_model(
            tracking_uri,
            name,
            seed=1,
            tags={"artpulse.fault.error_rate": "1.0", "artpulse.fault.latency_ms": "50"},
        )
        _REGISTERED[tracking_uri] = RegisteredModels(tracking_uri, name, v1, v2, faulty)
    return _REGISTERED[tracking_uri]


def make_image(path: Path, fmt: str, size: tuple[int, int] = (96, 80), seed: int = 0) -> Path:
    """A small colourful test image with texture, saved as JPEG or PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.zeros((size[1], size[0], 3), dtype=np.float64)
    base[..., 0] = np.linspace(0, 255, size[0])[None, :]
    base[..., 1] = np.linspace(255, 0, size[1])[:, None]
    base[..., 2] = 120
    noisy = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy, "RGB").save(path, format=fmt)
    return path


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


class Browser:
    """Headless Debian chromium driven through chromedriver's W3C WebDriver HTTP API."""

    def __init__(self, work: Path) -> None:
        import httpx

        self.work = work
        self.port = free_port()
        self.proc = spawn(["chromedriver", f"--port={self.port}"], work / "chromedriver.log")
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        wait_for(
            lambda: self.http.get("/status").json()["value"]["ready"],
            30,
            "chromedriver",
            interval=0.1,
        )
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [*CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}"],
                    },
                }
            }
        }
        session = self.http.post("/session", json=caps).json()["value"]
        if "sessionId" not in session:
            self.close()
            raise AssertionError(f"chromium did not start: {session}")
        self.session = f"/session/{session['sessionId']}"

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, self.session + path, json=payload)
        value = response.json()["value"]
        if response.status_code >= 400:
            raise AssertionError(f"webdriver {method} {path}: {value}")
        return value

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find(self, css: str) -> str:
        element = self._call("POST", "/element", {"using": "css selector", "value": css})
        return str(next(iter(element.values())))

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css: str) -> str:
        return str(self._call("GET", f"/element/{self.find(css)}/text"))

    def script(self, source: str) -> Any:
        return self._call("POST", "/execute/sync", {"script": source, "args": []})

    def wait_text(
        self, css: str, predicate: Callable[[str], bool], what: str, timeout: float = 30
    ) -> str:
        def check() -> str | None:
            try:
                value = self.text(css)
            except AssertionError:
                return None
            return value if predicate(value) else None

        return str(wait_for(check, timeout, what, interval=0.1))

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path

    def close(self) -> None:
        try:
            if hasattr(self, "session"):
                self.http.delete(self.session)
        finally:
            self.http.close()
            stop(self.proc)

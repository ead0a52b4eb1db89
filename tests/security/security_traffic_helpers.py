"""Helpers of the traffic attack tests: a real trained model, app settings, the gate's view.

``TrainedLoader`` trains a real scikit-learn LogisticRegression on random rows of the
image feature columns and wraps it exactly as ``model_store`` does for an MLflow sklearn
model (``_sklearn_predictor``), with the baseline ``core.drift.compute_baseline`` computes
in training; only the MLflow download is skipped. ``gate_value`` evaluates the operator's
own gate query selector over the server's /metrics text, so a test sees what a rollout
gate would read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from artpulse_dev._proc import free_port
from artpulse_inference.core.drift import compute_baseline
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server.model_store import LoadedModel, _sklearn_predictor
from artpulse_inference.server.settings import Settings

API_KEY = "traffic-api-key-0123456789abcdef"
DEMO_KEY = "traffic-demo-key-0123456789abcdef0123"
MODEL_NAME = "clf"
MODEL_URI = f"models:/{MODEL_NAME}/1"
CLASSES = ("impressionism", "minimalism", "pop_art")
HERE = Path(__file__).resolve().parent


def training_rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(FEATURE_NAMES)))


class TrainedLoader:
    """``ModelLoader`` of a LogisticRegression trained here (``strip_bounds``: an old
    baseline without min/max)."""

    def __init__(self, *, strip_bounds: bool = False) -> None:
        self.strip_bounds = strip_bounds

    def load(self, uri: str) -> LoadedModel:
        from sklearn.linear_model import LogisticRegression

        X = training_rows(600)
        y = np.array(CLASSES)[(X[:, 0] * 3).astype(int).clip(0, 2)]
        estimator = LogisticRegression(max_iter=500).fit(X, y)
        predict, classes, _ = _sklearn_predictor(estimator, X.shape[1])
        baseline = compute_baseline(X, FEATURE_NAMES)
        if self.strip_bounds:
            for stats in baseline["features"].values():
                del stats["min"], stats["max"]
        return LoadedModel(
            uri=uri,
            name=MODEL_NAME,
            version="1",
            alias="",
            run_id="run-1",
            flavor="sklearn",
            feature_names=tuple(FEATURE_NAMES),
            classes=classes,
            predict=predict,
            loaded_at=time.time(),
            load_seconds=0.0,
            baseline=baseline,
        )


def make_settings(tmp: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "model_uri": MODEL_URI,
        "model_name": MODEL_NAME,
        "model_version": "1",
        "api_keys": API_KEY,
        "demo_jwk_current_kid": "k1",
        "demo_jwk_keys_json": json.dumps({"k1": DEMO_KEY}),
        "drift_history_path": str(tmp / "drift.jsonl"),
        "drift_interval_seconds": 3600,
        "model_load_retry_seconds": 0.2,
    }
    values |= over
    return Settings(**values)


def row(value: float = 0.5) -> dict[str, float]:
    return {name: value for name in FEATURE_NAMES}


def random_rows(n: int, seed: int = 1) -> list[dict[str, float]]:
    return [dict(zip(FEATURE_NAMES, r, strict=True)) for r in training_rows(n, seed).tolist()]


# ---- what the gates read --------------------------------------------------------------

# ---- a real server process --------------------------------------------------------------


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def server_process(tmp: Path, env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """``security_traffic_server.py`` (``__main__.serve`` with the trained model) on a free
    loopback port; stdout and stderr are captured in files the caller reads after exit."""
    import httpx

    port = free_port()
    full_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp),
        "ENVIRONMENT": "production",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_URI": MODEL_URI,
        "MODEL_NAME": MODEL_NAME,
        "MODEL_VERSION": "1",
        "API_KEYS": API_KEY,
        "DEMO_ENABLED": "false",
        "DRIFT_HISTORY_PATH": str(tmp / "drift.jsonl"),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    out = (tmp / "stdout.log").open("w")
    err = (tmp / "stderr.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "security_traffic_server.py")],
        env=full_env,
        stdout=out,
        stderr=err,
        text=True,
    )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {(tmp / 'stderr.log').read_text()[-2000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 120, "the server process to be ready")
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        out.close()
        err.close()

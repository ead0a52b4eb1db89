"""Support for the Open Inference Protocol tests: a real model, the app, the gate's view.

Used by ``tests/unit/inference_server/test_inference_server_oip.py`` (REST, in process),
``tests/integration/inference_server/test_inference_server_oip_grpc.py`` and
``tests/security/test_security_oip.py`` (gRPC on loopback: :func:`grpc_app`).

``RealModelLoader`` trains a scikit-learn LogisticRegression on random rows of the image
feature columns and wraps it exactly as ``model_store`` wraps an MLflow skops model
(``_sklearn_predictor``, the compiled fast path included), with the baseline training
computes, so feature bounds and drift behave as in production; only the MLflow download
is skipped. ``gate_selected`` applies the label matchers of the operator's own default
gate query to the server's /metrics, so a test sees what a rollout gate would count.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from artpulse_inference.core.drift import compute_baseline
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server import create_app
from artpulse_inference.server.model_store import LoadedModel, ModelLoadError, _sklearn_predictor
from artpulse_inference.server.oip_proto import grpc_predict_v2_pb2_grpc as pb_grpc
from artpulse_inference.server.settings import Settings
from artpulse_inference.server.state import ServerState
from artpulse_operator.metrics.prometheus import gate_queries
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from artpulse_dev._proc import free_port

API_KEY = "oip-predict-key-0123456789abcdef"
OPS_KEY = "oip-ops-key-0123456789abcdef0123"
MODEL_NAME = "clf"
MODEL_VERSION = "1"
CLASSES = ("impressionism", "minimalism", "pop_art")
KEY = {"x-api-key": API_KEY}
N_FEATURES = len(FEATURE_NAMES)


def training_rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, N_FEATURES))


class RealModelLoader:
    """``ModelLoader`` of a LogisticRegression trained here; ``estimator`` is kept so a
    test can compare the server's answer with scikit-learn's own."""

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        X = training_rows(600)
        y = np.array(CLASSES)[(X[:, 0] * 3).astype(int).clip(0, 2)]
        self.estimator = LogisticRegression(max_iter=500).fit(X, y)
        self.baseline = compute_baseline(X, FEATURE_NAMES)

    def load(self, uri: str) -> LoadedModel:
        predict, classes, _ = _sklearn_predictor(self.estimator, N_FEATURES)
        return LoadedModel(
            uri=uri,
            name=MODEL_NAME,
            version=MODEL_VERSION,
            alias="",
            run_id="run-1",
            flavor="sklearn",
            feature_names=tuple(FEATURE_NAMES),
            classes=classes,
            predict=predict,
            loaded_at=time.time(),
            load_seconds=0.0,
            baseline=self.baseline,
        )


class FailingLoader:
    def load(self, uri: str) -> LoadedModel:
        raise ModelLoadError("registry unreachable (test)")


def make_settings(tmp: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "model_uri": f"models:/{MODEL_NAME}/{MODEL_VERSION}",
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "api_keys": API_KEY,
        "ops_api_keys": OPS_KEY,
        "demo_enabled": False,
        "drift_history_path": str(tmp / "drift.jsonl"),
        "drift_interval_seconds": 3600,
        "model_load_retry_seconds": 0.2,
    }
    values |= over
    return Settings(**values)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def running(
    settings: Settings, loader: Any = None, *, wait_ready: bool = True
) -> Iterator[TestClient]:
    app = create_app(settings, loader=loader or RealModelLoader())
    with TestClient(app, raise_server_exceptions=False) as client:
        if wait_ready:
            wait_for(lambda: client.get("/ready").status_code == 200, 60, "the model to load")
        yield client


# Every call of a test gets a deadline: a server that stops answering fails the test.
CALL_DEADLINE_SECONDS = 30.0


class _DefaultDeadline(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.timeout is None:
            details = details._replace(timeout=CALL_DEADLINE_SECONDS)
        return continuation(details, request)


@contextmanager
def grpc_app(
    settings_of: Callable[[int], Settings], loader: Any = None, *, wait_ready: bool = True
) -> Iterator[tuple[TestClient, pb_grpc.GRPCInferenceServiceStub]]:
    """The app with its gRPC server on a free loopback port (``settings_of(port)``), and a
    stub whose calls have a deadline. A port taken between the choice and the bind (by
    another process on the machine) is retried with another one."""
    with ExitStack() as stack:
        for attempt in range(5):
            port = free_port()
            try:
                client = stack.enter_context(
                    running(settings_of(port), loader, wait_ready=wait_ready)
                )
                break
            except RuntimeError as exc:
                if "cannot listen for gRPC" not in str(exc) or attempt == 4:
                    raise
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{port}"))
        grpc.channel_ready_future(channel).result(timeout=CALL_DEADLINE_SECONDS)
        stub = pb_grpc.GRPCInferenceServiceStub(grpc.intercept_channel(channel, _DefaultDeadline()))  # type: ignore[no-untyped-call]
        yield client, stub


def state_of(client: TestClient) -> ServerState:
    state: ServerState = client.app.state.artpulse  # type: ignore[attr-defined]
    return state


def matrix_input(X: np.ndarray, name: str = "features", datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": list(X.shape), "datatype": datatype, "data": X.ravel().tolist()}


def column_inputs(X: np.ndarray, shape_1: bool = False) -> list[dict[str, Any]]:
    n = X.shape[0]
    return [
        {
            "name": name,
            "shape": [n, 1] if shape_1 else [n],
            "datatype": "FP64",
            "data": X[:, j].tolist(),
        }
        for j, name in enumerate(FEATURE_NAMES)
    ]


def outputs_by_name(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in answer["outputs"]}


# ---- what the gates read --------------------------------------------------------------

_MATCHER = re.compile(r'(\w+)(=~|!~|!=|=)"((?:[^"\\]|\\.)*)"')


def _gate_matchers(gate: str) -> list[tuple[str, str, str]]:
    """Label matchers of the last selector of the operator's default ``gate`` query (for
    the error rate, its denominator), values unescaped as PromQL reads them."""
    query = gate_queries("ns", MODEL_NAME, "stable", MODEL_VERSION, 60.0)[gate]
    selectors = re.findall(r"artpulse_\w+\{([^}]*)\}", query)
    assert selectors, f"no selector in {query}"
    return [(n, op, json.loads(f'"{v}"')) for n, op, v in _MATCHER.findall(selectors[-1])]


def _selected(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        if name == "namespace":  # added by Prometheus from service discovery
            continue
        have = labels.get(name, "")
        full = re.fullmatch(value, have) is not None
        if (
            (op == "=" and have != value)
            or (op == "!=" and have == value)
            or (op == "=~" and not full)
            or (op == "!~" and full)
        ):
            return False
    return True


def gate_value(metrics_text: str, gate: str, sample: str) -> float:
    """Sum of the exposition samples named ``sample`` that the operator's ``gate`` query
    selects (``requests``, ``error_rate``, ``p95_latency_ms``), as Prometheus would."""
    matchers = _gate_matchers(gate)
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == sample and _selected(dict(s.labels), matchers)
    )


def gate_selected(metrics_text: str, sample: str = "artpulse_http_requests_total") -> float:
    """Sum of the ``sample`` series the operator's default ``requests`` gate selects."""
    return gate_value(metrics_text, "requests", sample)


def sample_value(metrics_text: str, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )

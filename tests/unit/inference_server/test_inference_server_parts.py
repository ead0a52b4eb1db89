"""Pure parts of the server: micro-batching, drift monitor, trend, fault tags, URIs, base URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from artpulse_inference.core.drift import compute_baseline
from artpulse_inference.server.batching import MicroBatcher
from artpulse_inference.server.drift_monitor import DriftMonitor, trend_of
from artpulse_inference.server.metrics import ServerMetrics
from artpulse_inference.server.model_store import (
    FaultConfig,
    LoadedModel,
    ModelLoadError,
    Prediction,
    parse_fault_tags,
    parse_models_uri,
)
from artpulse_inference.server.routers.pages import public_base_url
from starlette.requests import Request

NAMES = ("a", "b", "c")


def threshold_model(calls: list[int] | None = None, baseline: dict | None = None) -> LoadedModel:
    """A stand-in model: label 'high' when the first column is above 0.5."""

    def predict(X: np.ndarray) -> Prediction:
        if calls is not None:
            calls.append(X.shape[0])
        p = np.stack([1 - X[:, 0], X[:, 0]], axis=1)
        return Prediction(["high" if x > 0.5 else "low" for x in X[:, 0]], p)

    return LoadedModel(
        uri="models:/m/1", name="m", version="1", alias="", run_id="r", flavor="test",
        feature_names=NAMES, classes=("low", "high"), predict=predict, loaded_at=0.0, load_seconds=0.0,
        baseline=baseline,
    )  # fmt: skip


async def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    calls: list[int] = []
    model = threshold_model(calls)
    batcher = MicroBatcher(max_rows=64)
    batcher.start()
    try:
        inputs = [np.full((1 + i % 3, 3), (i % 10) / 10.0) for i in range(40)]
        results = await asyncio.gather(*(batcher.predict(model, X) for X in inputs))
    finally:
        await batcher.stop()
    for X, result in zip(inputs, results, strict=True):
        assert len(result.labels) == X.shape[0]
        assert result.labels == ["high" if X[0, 0] > 0.5 else "low"] * X.shape[0]
        assert result.probabilities is not None
        assert np.allclose(result.probabilities[:, 1], X[:, 0])
    assert sum(calls) == sum(X.shape[0] for X in inputs)
    assert len(calls) < len(inputs), "concurrent requests were not batched"
    assert max(calls) <= 64


async def test_a_failing_model_call_fails_only_its_batch() -> None:
    def broken(X: np.ndarray) -> Prediction:
        raise RuntimeError("boom")

    bad = threshold_model()
    bad.predict = broken
    good = threshold_model()
    batcher = MicroBatcher(max_rows=8)
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(bad, np.zeros((1, 3)))
        assert (await batcher.predict(good, np.ones((1, 3)))).labels == ["high"]
    finally:
        await batcher.stop()


def test_drift_monitor_low_for_same_distribution_high_for_shift(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    baseline = compute_baseline(rng.random((2000, 3)), NAMES)
    metrics = ServerMetrics((0.1, 1.0), "canary")
    history = tmp_path / "drift.jsonl"
    monitor = DriftMonitor(
        metrics, window_size=500, min_samples=100, history_path=str(history), trend_points=10
    )
    model = threshold_model(baseline=baseline)
    monitor.set_model(model)
    assert monitor.evaluate() is None  # no data is not a measurement
    for _ in range(10):
        monitor.record(model, rng.random((50, 3)))
    same = monitor.evaluate(now=1.0)
    assert same is not None
    assert same.samples == 500
    assert same.score < 0.1
    for _ in range(10):
        monitor.record(model, np.clip(rng.random((50, 3)) * 0.3 + 0.6, 0, 1))
    shifted = monitor.evaluate(now=2.0)
    assert shifted is not None
    assert shifted.score > 1.0
    assert set(shifted.psi) == set(NAMES)
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [round(line["ts"]) for line in lines] == [1, 2]
    assert lines[1]["drift_score"] == shifted.score
    gauge = metrics.registry.get_sample_value(
        "artpulse_drift_score", {"model": "m", "version": "1", "track": "canary"}
    )
    assert gauge == shifted.score
    psi_a = metrics.registry.get_sample_value(
        "artpulse_feature_drift_psi",
        {"model": "m", "version": "1", "track": "canary", "feature": "a"},
    )
    assert psi_a == shifted.psi["a"]


def test_drift_ignores_rows_of_another_model_and_models_without_baseline(tmp_path: Path) -> None:
    metrics = ServerMetrics((0.1,), "stable")
    monitor = DriftMonitor(metrics, window_size=100, min_samples=1, history_path="", trend_points=5)
    no_baseline = threshold_model()
    monitor.set_model(no_baseline)
    monitor.record(no_baseline, np.ones((10, 3)))
    assert not monitor.enabled
    assert monitor.evaluate() is None
    other = threshold_model(
        baseline=compute_baseline(np.random.default_rng(1).random((100, 3)), NAMES)
    )
    monitor.record(other, np.ones((10, 3)))
    assert monitor.evaluate() is None


@pytest.mark.parametrize(
    ("scores", "trend"),
    [
        ([], "unknown"),
        ([0.1, 0.2], "unknown"),
        ([0.1, 0.1, 0.1, 0.1], "flat"),
        ([0.05, 0.1, 0.2, 0.3], "rising"),
        ([0.4, 0.3, 0.2, 0.1], "falling"),
    ],
)
def test_trend(scores: list[float], trend: str) -> None:
    assert trend_of(scores) == trend


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, FaultConfig()),
        (
            {"artpulse.fault.latency_ms": "250", "artpulse.fault.error_rate": "0.5"},
            FaultConfig(250.0, 0.5),
        ),
        ({"artpulse.fault.latency_ms": "slow"}, FaultConfig()),
        ({"artpulse.fault.error_rate": "1.5"}, FaultConfig()),
        ({"artpulse.fault.latency_ms": "-1"}, FaultConfig()),
    ],
)
def test_fault_tags(tags: dict[str, str], expected: FaultConfig) -> None:
    assert parse_fault_tags(tags) == expected


def test_models_uri() -> None:
    assert parse_models_uri("models:/art/3") == ("art", "3", None)
    assert parse_models_uri("models:/art@champion") == ("art", None, "champion")
    for bad in ("runs:/abc/model", "models:/art", "models:/a/b/c", ""):
        with pytest.raises(ModelLoadError):
            parse_models_uri(bad)


def request_with(headers: dict[str, str], host: str = "10.0.0.5:8000") -> Request:
    raw = [(b"host", host.encode())] + [(k.encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": raw,
            "scheme": "http",
            "server": ("10.0.0.5", 8000),
            "query_string": b"",
        }
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "http://10.0.0.5:8000"),
        (
            {"x-forwarded-proto": "https", "x-forwarded-host": "api.example.com"},
            "https://api.example.com",
        ),
        (
            {"x-forwarded-proto": "https, http", "x-forwarded-host": "api.example.com:8443, inner"},
            "https://api.example.com:8443",
        ),
        (
            {"x-forwarded-proto": "javascript", "x-forwarded-host": "<script>"},
            "http://10.0.0.5:8000",
        ),
    ],
)
def test_public_base_url_is_proxy_aware_and_refuses_junk(
    headers: dict[str, str], expected: str
) -> None:
    assert public_base_url(request_with(headers)) == expected

"""Attacks on the traffic the gates read, on the limiter, and on input and error sizes.

Findings 4, 5, 6 and 9 of issue 13, each attack sent for real through the real app
(TestClient) with a real trained model (``security_traffic_helpers.TrainedLoader``). The
gate's view is the operator's own gate query evaluated over the server's /metrics.
The real-process attacks (audit lines, header size, slow bodies) are in
``test_security_traffic_process.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artpulse_dev.oip_testing import gate_value, sample_value
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server import create_app
from artpulse_inference.server.error_bodies import MAX_BODY_BYTES, bounded_errors
from artpulse_inference.server.forwarded import client_from_forwarded
from artpulse_inference.server.settings import Settings
from artpulse_inference.server.state import ServerState
from fastapi.testclient import TestClient
from security_traffic_helpers import (
    API_KEY,
    TrainedLoader,
    make_settings,
    random_rows,
    row,
    wait_for,
)

KEY = {"x-api-key": API_KEY}
REQUESTS = "artpulse_http_requests_total"
DURATION_COUNT = "artpulse_http_request_duration_seconds_count"


@contextmanager
def running(settings: Settings, loader: TrainedLoader | None = None) -> Iterator[TestClient]:
    app = create_app(settings, loader=loader or TrainedLoader())
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_for(lambda: client.get("/ready").status_code == 200, 60, "the model to load")
        yield client


def state_of(client: TestClient) -> ServerState:
    state: ServerState = client.app.state.artpulse  # type: ignore[attr-defined]
    return state


def demo_token(client: TestClient, headers: dict[str, str] | None = None) -> str:
    minted = client.post("/demo/token", headers=headers or {})
    assert minted.status_code == 200, minted.text
    token: str = minted.json()["access_token"]
    return token


# ---- finding 4: the gate series hold only authenticated production traffic ---------------


def test_refused_requests_do_not_move_the_series_the_gates_read(tmp_path: Path) -> None:
    with running(make_settings(tmp_path)) as client:
        assert client.post("/predict", json={"rows": [row()]}, headers=KEY).status_code == 200
        before = client.get("/metrics").text
        codes = [
            client.post("/predict", json={"rows": [row()]}, headers=h).status_code
            for h in (
                {},
                {"x-api-key": "wrong-key-0123456789abcdef"},
                {"Authorization": "Bearer x"},
            )
            for _ in range(20)
        ]
        assert set(codes) == {401, 429}
        after = client.get("/metrics").text
    for gate, sample in (
        ("requests", REQUESTS),
        ("error_rate", REQUESTS),
        ("p95_latency_ms", DURATION_COUNT),
    ):
        assert gate_value(after, gate, sample) == gate_value(before, gate, sample) == 1.0, gate
    # Still visible, in a series of their own.
    refused = sample_value(after, "artpulse_http_refused_requests_total", route="/predict")
    assert refused == 60


def test_demo_predictions_stay_out_of_the_gate_series_and_of_drift(tmp_path: Path) -> None:
    with running(make_settings(tmp_path)) as client:
        state = state_of(client)
        token = demo_token(client)
        assert client.post("/predict", json={"rows": [row()]}, headers=KEY).status_code == 200
        samples_before = state.drift.summary()["samples"]
        before = client.get("/metrics").text
        answer = client.post(
            "/demo/predict",
            json={"rows": random_rows(20)},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        after = client.get("/metrics").text
        assert state.drift.summary()["samples"] == samples_before == 1
    assert gate_value(after, "requests", REQUESTS) == gate_value(before, "requests", REQUESTS)
    assert sample_value(after, REQUESTS, route="/demo/predict", status="200") == 1


def test_demo_rows_per_request_are_capped(tmp_path: Path) -> None:
    with running(make_settings(tmp_path, demo_max_rows=20)) as client:
        token = demo_token(client)
        answer = client.post(
            "/demo/predict",
            json={"rows": random_rows(21)},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 422, answer.text
    message = json.dumps(answer.json())
    assert "limit is 20" in message
    assert "DEMO_MAX_ROWS" in message


def test_one_big_request_moves_at_most_its_share_of_the_drift_window(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, drift_window_size=1000, drift_min_samples=100, drift_max_request_share=0.01
    )
    with running(settings) as client:
        state = state_of(client)
        for seed in range(100):  # a window of ordinary traffic, ten rows a request
            rows = random_rows(10, seed=100 + seed)
            assert client.post("/predict", json={"rows": rows}, headers=KEY).status_code == 200
        calm = state.drift.evaluate()
        assert calm is not None
        assert calm.samples == 1000
        shifted = [row(0.97) for _ in range(1000)]
        assert client.post("/predict", json={"rows": shifted}, headers=KEY).status_code == 200
        poisoned = state.drift.evaluate()
        assert poisoned is not None
    # Ten of the thousand rows at most, so the score barely moves (before: 0.03 -> 8.28).
    window = np.concatenate(list(state.drift._rows))[-1000:]
    assert int((window == 0.97).all(axis=1).sum()) <= 10
    assert poisoned.score < 0.25, (calm.score, poisoned.score)


# ---- finding 5: a limiter before authentication, per trusted client address --------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "hops", "client"),
    [
        ("10.0.0.9", ["6.6.6.6"], 0, "10.0.0.9"),
        ("10.0.0.9", ["6.6.6.6, 198.51.100.1"], 1, "198.51.100.1"),
        ("10.0.0.9", ["6.6.6.6", "198.51.100.1"], 1, "198.51.100.1"),
        ("10.0.0.9", ["6.6.6.6, 198.51.100.1, 10.0.0.2"], 2, "198.51.100.1"),
        ("10.0.0.9", ["198.51.100.1"], 2, "10.0.0.9"),
        ("10.0.0.9", [], 1, "10.0.0.9"),
        ("10.0.0.9", ["6.6.6.6, not-an-ip"], 1, "10.0.0.9"),
        ("10.0.0.9", ["6.6.6.6, [2001:db8::1]:443"], 1, "2001:db8::1"),
        (None, ["6.6.6.6"], 0, "unknown"),
    ],
    ids=[
        "no-hops-ignores-xff",
        "one-hop-rightmost",
        "one-hop-split-headers",
        "two-hops",
        "fewer-entries-than-hops",
        "no-xff",
        "garbage-entry",
        "ipv6-with-port",
        "no-peer",
    ],
)
def test_client_address_is_the_entry_the_trusted_hops_added(
    peer: str | None, forwarded: list[str], hops: int, client: str
) -> None:
    assert client_from_forwarded(peer, forwarded, hops) == client


@pytest.mark.parametrize(
    "over",
    [{"trust_forwarded_for": True}, {"trusted_proxy_hops": 1}],
    ids=["legacy-TRUST_FORWARDED_FOR", "TRUSTED_PROXY_HOPS=1"],
)
def test_rotating_the_first_forwarded_entry_gets_no_more_demo_tokens(
    tmp_path: Path, over: dict[str, Any]
) -> None:
    settings = make_settings(
        tmp_path, demo_token_rate_limit_per_minute=6, demo_token_rate_limit_burst=3, **over
    )
    with running(settings) as client:
        codes = [
            client.post(
                "/demo/token", headers={"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.7"}
            ).status_code
            for i in range(50)
        ]
        # Another real client (a different address added by the proxy) has its own bucket.
        other = client.post("/demo/token", headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.8"})
    assert codes.count(200) == 3
    assert codes.count(429) == 47
    assert other.status_code == 200


def test_rotating_the_first_forwarded_entry_gets_no_more_demo_predictions(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, trust_forwarded_for=True, demo_rate_limit_per_minute=6, demo_rate_limit_burst=4
    )
    with running(settings) as client:
        token = demo_token(client, {"X-Forwarded-For": "198.51.100.9"})
        codes = [
            client.post(
                "/demo/predict",
                json={"rows": [row()]},
                headers={
                    "Authorization": f"Bearer {token}",
                    "X-Forwarded-For": f"203.0.113.{i}, 198.51.100.7",
                },
            ).status_code
            for i in range(30)
        ]
    assert codes.count(200) == 4
    assert codes.count(429) == 26


def test_failed_authentication_is_counted_and_throttled_before_the_credential_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, auth_failure_limit_per_minute=5, trusted_proxy_hops=1)
    attacker = {"X-Forwarded-For": "6.6.6.6, 203.0.113.66"}
    audit_log = logging.getLogger("artpulse.audit")
    audit_log.addHandler(caplog.handler)
    try:
        with running(settings) as client, caplog.at_level(logging.INFO, "artpulse.audit"):
            wrong = [
                client.post(
                    "/predict",
                    json={"rows": [row()]},
                    headers={**attacker, "x-api-key": f"guess-{i:020d}"},
                )
                for i in range(5)
            ]
            # The sixth attempt carries the right key: refused before it is even looked at.
            throttled = client.post("/predict", json={"rows": [row()]}, headers={**attacker, **KEY})
            bystander = client.post(
                "/predict",
                json={"rows": [row()]},
                headers={"X-Forwarded-For": "203.0.113.77", **KEY},
            )
            metrics = client.get("/metrics").text
    finally:
        audit_log.removeHandler(caplog.handler)
    assert [r.status_code for r in wrong] == [401] * 5
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "failed authentications" in throttled.json()["detail"]
    assert bystander.status_code == 200
    failures = "artpulse_auth_failures_total"
    assert sample_value(metrics, failures, family="predict", reason="invalid_credential") == 5
    assert sample_value(metrics, failures, family="predict", reason="throttled") == 1
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "artpulse.audit"]
    assert [line["allowed"] for line in lines] == [False] * 6 + [True]
    assert lines[5]["reason"].startswith("throttled")
    assert {line["client"] for line in lines[:6]} == {"203.0.113.66"}


@pytest.mark.parametrize(
    ("route", "method"),
    [("/ops/summary", "GET"), ("/reload-model", "POST"), ("/demo/status", "GET")],
)
def test_failed_authentication_is_throttled_on_ops_and_demo_routes(
    tmp_path: Path, route: str, method: str
) -> None:
    with running(make_settings(tmp_path, auth_failure_limit_per_minute=3)) as client:
        codes = [
            client.request(method, route, headers={"Authorization": "Bearer forged"}).status_code
            for _ in range(6)
        ]
        metrics = client.get("/metrics").text
    # 401 (bad token), or 403 where a CSRF header is required first: failures either way.
    assert set(codes[:3]) <= {401, 403}, codes
    assert codes[3:] == [429] * 3, codes
    family = "demo" if route.startswith("/demo") else "ops"
    assert sample_value(metrics, "artpulse_auth_failures_total", family=family) == 6


def test_ops_routes_have_a_per_address_limit(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        ops_rate_limit_per_minute=6,
        ops_rate_limit_burst=3,
        auth_failure_limit_per_minute=0,
    )
    with running(settings) as client:
        codes = [client.get("/ops/summary").status_code for _ in range(5)]
        limited = client.get("/ops/summary")
    assert codes == [401, 401, 401, 429, 429]
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers


# ---- finding 6: extreme finite inputs -------------------------------------------------------


def test_extreme_finite_value_is_refused_naming_the_column_and_range(tmp_path: Path) -> None:
    column = FEATURE_NAMES[3]
    with running(make_settings(tmp_path)) as client:
        answer = client.post("/predict", json={"rows": [row() | {column: 1e308}]}, headers=KEY)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "rows", 0, column]
    assert error["type"] == "out_of_range"
    assert "allowed range [" in error["msg"]
    assert "FEATURE_BOUNDS_MARGIN" in error["msg"]


def test_clamp_mode_predicts_on_the_nearest_bound(tmp_path: Path) -> None:
    with running(make_settings(tmp_path, feature_bounds="clamp")) as client:
        answer = client.post("/predict", json={"rows": [row(1e308)]}, headers=KEY)
    assert answer.status_code == 200, answer.text
    probabilities = answer.json()["predictions"][0]["probabilities"]
    assert all(isinstance(p, float) for p in probabilities.values())


@pytest.mark.parametrize(
    ("over", "loader"),
    [({"feature_bounds": "off"}, TrainedLoader()), ({}, TrainedLoader(strip_bounds=True))],
    ids=["bounds-off", "old-baseline-without-min-max"],
)
def test_a_non_finite_model_output_is_a_422_never_null(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, over: dict[str, Any], loader: TrainedLoader
) -> None:
    with caplog.at_level(logging.WARNING), running(make_settings(tmp_path, **over), loader) as c:
        answer = c.post("/predict", json={"rows": [row(1e308)]}, headers=KEY)
        ordinary = c.post("/predict", json={"rows": [row()]}, headers=KEY)
    assert answer.status_code == 422, answer.text
    assert "non-finite model output" in answer.json()["detail"]
    assert "null" not in answer.text
    assert ordinary.status_code == 200
    if loader.strip_bounds:
        assert "baseline has no min/max" in caplog.text


# ---- finding 9: error bodies do not grow with the request ------------------------------------


def _unknown_keys_body(total_bytes: int) -> bytes:
    keys = {f"unknown_{i:07d}_{'x' * 40}": 1 for i in range(total_bytes // 60)}
    return json.dumps({"rows": [row()], **keys}).encode()


@pytest.mark.parametrize("shape", ["top-level-keys", "row-keys", "one-huge-key"])
def test_a_3mb_body_of_unknown_keys_gets_a_small_422(tmp_path: Path, shape: str) -> None:
    if shape == "top-level-keys":
        body = _unknown_keys_body(3_000_000)
    elif shape == "row-keys":
        extra = {f"feature_{i:07d}_{'y' * 40}": 1.0 for i in range(50_000)}
        body = json.dumps({"rows": [row() | extra]}).encode()
    else:
        body = json.dumps({"rows": [row() | {"k" * 3_000_000: 1.0}]}).encode()
    assert len(body) >= 2_900_000
    with running(make_settings(tmp_path)) as client:
        answer = client.post(
            "/predict", content=body, headers={**KEY, "Content-Type": "application/json"}
        )
    assert answer.status_code == 422
    assert len(answer.content) <= MAX_BODY_BYTES, len(answer.content)
    detail = answer.json()["detail"]
    assert 1 <= len(detail) <= 21
    named = [e for e in detail if e["type"] == "extra_forbidden"]
    assert named
    assert all(len(str(part)) <= 70 for e in named for part in e["loc"])
    if shape != "one-huge-key":
        assert "more" in detail[-1]["msg"] or len(named) == 20


def test_fastapi_validation_errors_are_bounded_too() -> None:
    huge = "z" * 1_000_000
    errors = [
        {
            "loc": ["body", f"field_{i}_{huge}"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
            "input": huge,
            "ctx": {"x": huge},
        }
        for i in range(1000)
    ]
    bounded = bounded_errors(errors)
    assert len(json.dumps(bounded)) <= MAX_BODY_BYTES
    assert len(bounded) == 21
    assert "980 more" in bounded[-1]["msg"]
    assert bounded[0]["loc"][1].startswith("field_0_")
    assert len(bounded[0]["input"]) <= 203
    assert "ctx" not in bounded[0]

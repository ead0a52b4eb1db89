"""The server as a real uvicorn process: scraped by a real Prometheus, reloaded under load.

The gate queries are the operator's defaults from DESIGN.md section 3, run against what
Prometheus scraped, with ``namespace`` added as a target label the way the cluster's
service discovery (and the local cluster's file_sd targets) add it.
"""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_server_helpers import (
    RegisteredModels,
    ServerProcess,
    feature_row,
    random_rows,
    registered_models,
    wait_for,
)

pytestmark = pytest.mark.integration

API_KEY = "process-test-api-key-0123456789"
OPS_API_KEY = "process-test-ops-key-9876543210"
NAMESPACE = "ml-gates"


@pytest.fixture(scope="module")
def models(mlflow_server: Any) -> RegisteredModels:
    return registered_models(mlflow_server.tracking_uri)


def server_env(models: RegisteredModels, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "production",
        "MODEL_URI": models.uri(models.v1),
        "MODEL_NAME": models.name,
        "MODEL_VERSION": models.v1,
        "MODEL_ALIAS": "challenger",
        "ARTPULSE_TRACK": "canary",
        "MLFLOW_TRACKING_URI": models.tracking_uri,
        "API_KEYS": API_KEY,
        "OPS_API_KEYS": OPS_API_KEY,
        "PREDICT_REQUIRE_AUTH": "false",
        # Production never serves /predict anonymously unless told so.
        "ALLOW_ANONYMOUS_PREDICT": "true",
        "DRIFT_INTERVAL_SECONDS": "0.5",
        "DRIFT_MIN_SAMPLES": "100",
        # 50 of the 1000-row window per request (default 10): the 30-row batches below
        # count in full, as they did before the per-request cap.
        "DRIFT_MAX_REQUEST_SHARE": "0.05",
        "DRIFT_HISTORY_PATH": str(tmp / "drift.jsonl"),
        "HTTP_LATENCY_BUCKETS_SECONDS": "0.001,0.005,0.01,0.05,0.1,0.5,1",
        **extra,
    }


def test_prometheus_scrapes_the_metrics_the_gates_query(
    models: RegisteredModels, tmp_path: Path, prometheus_factory: Any
) -> None:
    with ServerProcess(server_env(models, tmp_path), tmp_path / "server.log").start() as server:
        own = httpx.get(server.url + "/metrics").text
        assert "namespace=" not in own  # Prometheus adds it from the target, never the server
        prom = prometheus_factory(
            targets=[f"127.0.0.1:{server.port}"], extra_labels={"namespace": NAMESPACE}
        )
        selector = f'namespace="{NAMESPACE}",model="{models.name}",track="canary",version="{models.v1}",route=~"/predict.*"'
        requests = f"sum(increase(artpulse_http_requests_total{{{selector}}}[1m]))"
        rows = random_rows(3000, 4)
        sent = [0]

        def traffic_is_counted() -> bool:
            # increase() needs the counter to grow between two scrapes, so keep sending
            # (like a real canary's traffic) until Prometheus has seen it grow.
            with httpx.Client(base_url=server.url) as client:
                start = sent[0] % 2900
                batch = client.post("/predict", json={"rows": rows[start : start + 30]})
                single = client.post("/predict", json={"rows": [feature_row()]})
                bad = client.post("/predict", json={"rows": []})
                assert (batch.status_code, single.status_code, bad.status_code) == (200, 200, 422)
                sent[0] += 30
            result = prom.query(requests)
            return bool(result) and float(result[0]["value"][1]) > 0

        wait_for(traffic_is_counted, 90, "requests in Prometheus", interval=0.3)

        series = prom.query(f"artpulse_http_requests_total{{{selector}}}")
        labels = {frozenset(s["metric"]) for s in series}
        assert labels == {
            frozenset(
                {
                    "__name__",
                    "namespace",
                    "model",
                    "version",
                    "track",
                    "route",
                    "method",
                    "status",
                    "job",
                    "instance",
                }
            )
        }
        statuses = {s["metric"]["status"] for s in series}
        assert statuses == {"200", "422"}

        p95 = prom.query(
            "1000 * histogram_quantile(0.95, sum by (le) "
            f"(rate(artpulse_http_request_duration_seconds_bucket{{{selector}}}[1m])))"
        )
        assert 0 < float(p95[0]["value"][1]) <= 1000
        errors = prom.query(
            f'sum(rate(artpulse_http_requests_total{{{selector},status=~"5.."}}[1m])) or vector(0)'
        )
        assert float(errors[0]["value"][1]) == 0.0
        drift_query = f'max(artpulse_drift_score{{namespace="{NAMESPACE}",model="{models.name}",track="canary",version="{models.v1}"}})'
        drift = wait_for(
            lambda: prom.query(drift_query), 60, "drift score in Prometheus", interval=0.5
        )
        assert 0 <= float(drift[0]["value"][1]) < 0.25
        info = prom.query(f'artpulse_model_info{{namespace="{NAMESPACE}",role="primary"}}')
        assert info[0]["metric"]["version"] == models.v1
        assert info[0]["metric"]["alias"] == "challenger"
        for name in (
            "artpulse_inference_duration_seconds_count",
            "artpulse_predictions_total",
            "artpulse_feature_drift_psi",
        ):
            found = prom.query(f'{name}{{namespace="{NAMESPACE}",track="canary"}}')
            assert found, name
            assert {"model", "version", "track"} <= set(found[0]["metric"]), name


def test_reload_under_load_drops_nothing_and_sigterm_stops_cleanly(
    models: RegisteredModels, tmp_path: Path
) -> None:
    server = ServerProcess(server_env(models, tmp_path), tmp_path / "server.log").start()
    try:
        stop = threading.Event()
        outcomes: Counter[str] = Counter()
        failures: list[str] = []

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    try:
                        response = client.post("/predict", json={"rows": [feature_row(0.3)]})
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text}")
                    else:
                        outcomes[response.json()["model"]["version"]] += 1

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: sum(outcomes.values()) > 50, 60, "load before the reload")
            with httpx.Client(
                base_url=server.url,
                headers={"x-api-key": OPS_API_KEY, "x-artpulse-csrf": "1"},
                timeout=120,
            ) as ops:
                swapped = ops.post("/reload-model", json={"model_uri": models.uri(models.v2)})
                assert swapped.status_code == 200, swapped.text
                seen = outcomes[models.v2]
                wait_for(lambda: outcomes[models.v2] > seen + 50, 60, "load on the new model")
                failed = ops.post("/reload-model", json={"model_uri": models.uri("424242")})
                assert failed.status_code == 409
                back = ops.post("/reload-model")
                assert back.json()["version"] == models.v1
                count = outcomes[models.v1]
                wait_for(lambda: outcomes[models.v1] > count + 50, 60, "load after reloading back")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert failures == []
        assert outcomes[models.v1] > 0
        assert outcomes[models.v2] > 0

        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal (exit status -15).
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Finished server process" in server.log_path.read_text()
        assert "Traceback" not in server.log_path.read_text()
    finally:
        server.stop()


def test_bad_settings_exit_with_one_clear_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "ENVIRONMENT": "production", "JWT_SECRET": "changeme", "PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "artpulse_inference.server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "JWT_SECRET is a placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_landing_page_follows_forwarded_headers(models: RegisteredModels, tmp_path: Path) -> None:
    with ServerProcess(server_env(models, tmp_path), tmp_path / "server.log").start() as server:
        request = urllib.request.Request(
            server.url + "/",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "art.example.com"},
        )
        with urllib.request.urlopen(request) as response:
            page = response.read().decode()
            csp = response.headers["Content-Security-Policy"]
        assert "https://art.example.com/demo/token" in page
        assert "script-src 'self'" in csp
        plain = httpx.get(server.url + "/").text
        assert f"http://127.0.0.1:{server.port}/demo/token" in plain
        assert json.loads(httpx.get(server.url + "/metadata").text)["track"] == "canary"

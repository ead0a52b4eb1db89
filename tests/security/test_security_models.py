"""A model that runs code on load is refused, and nothing in it runs (issue 13, finding 1).

Every attack is a real model in a real MLflow registry (SQLite and artifacts in a temporary
directory, built by ``hostile_models.py``), served by the real app through HTTP
(TestClient):

- a pickle and a cloudpickle sklearn model whose unpickling writes a marker file;
- a skops model of an attacker's class whose MLmodel file trusts that class (and
  ``builtins.exec``): loading it with the MLmodel's list runs the class's code;
- a pyfunc ``python_model`` (cloudpickled) and a pyfunc with its own ``loader_module``;
- ``/reload-model`` naming another registered model.

Each hostile model is first shown to be live: after the server refused it, the test
loads it the way MLflow would have (``pickle.load``, ``skops.io.load`` with the MLmodel's
list, importing the loader module) and the marker appears. The good models come from the
training pipeline itself (``train_on_features`` on a generated image set) and predict.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from artpulse_inference.core.skops_trust import TRUSTED_SKOPS_TYPES
from artpulse_inference.server import Settings, create_app
from artpulse_inference.training.models import MODELS
from fastapi.testclient import TestClient
from hostile_models import OTHER, SERVED, Registry, build_registry, downloaded

PREDICT_KEY = "models-predict-key-7Qm2vX9rT4kL8pZ3"
OPS_KEY = "models-ops-key-Hc5nW1yB6dF0sJ7eR2"
PREDICT = {"x-api-key": PREDICT_KEY}
# The ops credential, and the marker a state-changing ops POST carries (csrf.py).
OPS = {"x-api-key": OPS_KEY, "x-artpulse-csrf": "1"}


# ---- the registry and the server --------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    code_dir = tmp_path_factory.mktemp("attacker_code")
    sys.path.insert(0, str(code_dir))  # the attacker's modules must be importable
    try:
        yield build_registry(
            tmp_path_factory.mktemp("registry"),
            tmp_path_factory.mktemp("markers"),
            code_dir,
            tmp_path_factory.mktemp("train"),
        )
    finally:
        sys.path.remove(str(code_dir))


def settings_for(registry: Registry, tmp: Path, version: str, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "api_keys": PREDICT_KEY,
        "ops_api_keys": OPS_KEY,
        "demo_enabled": False,
        "model_uri": registry.uri(version),
        "model_name": SERVED,
        "mlflow_tracking_uri": registry.tracking_uri,
        "drift_history_path": str(tmp / "drift.jsonl"),
        "model_load_retry_seconds": 0.2,
    } | over
    return Settings(**values)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def serving(settings: Settings, *, ready: bool = True) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        if ready:
            wait_until(lambda: client.get("/ready").status_code == 200, "the model to load")
        yield client


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("server")
    with serving(settings_for(registry, tmp, registry.good["logreg"])) as client:
        yield client


def serving_version(client: TestClient) -> str:
    return str(client.get("/metadata").json()["model"]["version"])


# ---- (a)-(d): hostile formats are refused and do not run ------------------------------------

HOSTILE = ["pickle", "cloudpickle", "skops", "python_model", "loader_module"]


@pytest.mark.parametrize("case", HOSTILE)
def test_reload_refuses_a_model_that_runs_code_and_nothing_runs(
    server: TestClient, registry: Registry, case: str
) -> None:
    hostile = registry.hostile[case]
    before = serving_version(server)
    uri = registry.uri(hostile.version)
    answer = server.post("/reload-model", json={"model_uri": uri}, headers=OPS)
    assert not hostile.marker.exists(), f"the {case} model ran code in the server"
    assert answer.status_code == 409, answer.text
    message = answer.json()["detail"]["message"]
    assert hostile.refusal in message
    assert "still serving" in message
    assert serving_version(server) == before
    assert (
        server.post("/predict", json={"rows": [registry.row]}, headers=PREDICT).status_code == 200
    )
    # The model really is hostile: loaded the way MLflow loads it, its code runs.
    hostile.run_payload()
    assert hostile.marker.read_text() == "code ran"
    hostile.marker.unlink()


@pytest.mark.parametrize("case", ["pickle", "skops"])
def test_a_hostile_model_at_start_up_leaves_the_server_not_ready_without_a_traceback(
    registry: Registry, tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = registry.hostile[case]
    caplog.set_level(logging.WARNING)
    with serving(settings_for(registry, tmp_path, hostile.version), ready=False) as client:
        wait_until(
            lambda: "refused" in client.get("/ready").json().get("reason", ""),
            "the refusal to show in /ready",
        )
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert client.get("/health").status_code == 200
        assert (
            client.post("/predict", json={"rows": [registry.row]}, headers=PREDICT).status_code
            == 503
        )
    assert not hostile.marker.exists()
    assert not [r for r in caplog.records if r.exc_info], "a refusal is not an exception"


def test_the_server_process_switches_unpickling_off_even_when_told_otherwise(
    registry: Registry, tmp_path: Path
) -> None:
    """MLflow's own loaders refuse too, in any process that imported the server."""
    hostile = registry.hostile["pickle"]
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    location = client.get_model_version_download_uri(SERVED, hostile.version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(tmp_path / "model"), tracking_uri=registry.tracking_uri
    )
    script = textwrap.dedent(
        f"""
        import artpulse_inference.server
        import mlflow.sklearn
        try:
            mlflow.sklearn.load_model({local!r})
        except Exception as exc:
            print("refused:", exc)
        """
    )
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert "refused: Deserializing this model is disallowed" in done.stdout, done.stderr[-2000:]
    assert not hostile.marker.exists()


def test_the_inference_image_switches_unpickling_off() -> None:
    dockerfile = (Path(__file__).parents[2] / "Dockerfile.inference").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false" in runtime


# ---- (e): only versions of the served model ------------------------------------------------


def test_reload_of_another_registered_model_is_refused_naming_the_field(
    server: TestClient, registry: Registry
) -> None:
    before = server.get("/ops/summary", headers=OPS).json()["last_reload"]
    for uri in (registry.uri(registry.other_version, OTHER), f"models:/{OTHER}@champion"):
        answer = server.post("/reload-model", json={"model_uri": uri}, headers=OPS)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("model_uri: ")
        assert SERVED in detail
        assert OTHER in detail
    assert server.get("/ops/summary", headers=OPS).json()["last_reload"] == before
    assert serving_version(server) == registry.good["logreg"]


# ---- (f): what the training pipeline makes is served ---------------------------------------


@pytest.mark.parametrize("kind", list(MODELS))
def test_a_model_from_the_training_pipeline_loads_and_predicts(
    server: TestClient, registry: Registry, kind: str
) -> None:
    version = registry.good[kind]
    answer = server.post("/reload-model", json={"model_uri": registry.uri(version)}, headers=OPS)
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == version
    predicted = server.post(
        "/predict", json={"rows": [registry.row, registry.row]}, headers=PREDICT
    )
    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["model"]["version"] == version
    assert len(body["predictions"]) == 2
    assert sum(body["predictions"][0]["probabilities"].values()) == pytest.approx(1.0)


def test_the_pipeline_logs_skops_with_trusted_types_inside_our_list(
    registry: Registry, tmp_path: Path
) -> None:
    for kind, version in registry.good.items():
        path = downloaded(registry.tracking_uri, registry.uri(version), "MLmodel", tmp_path / kind)
        sklearn_flavor = yaml.safe_load(path.read_text())["flavors"]["sklearn"]
        assert sklearn_flavor["serialization_format"] == "skops", kind
        assert set(sklearn_flavor["skops_trusted_types"] or []) <= set(TRUSTED_SKOPS_TYPES), kind

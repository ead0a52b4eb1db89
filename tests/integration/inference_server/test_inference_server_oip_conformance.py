"""Open Inference Protocol conformance: MLServer's and KServe's own clients, and MLServer itself.

Three real processes on loopback, no cluster: our server (``python -m
artpulse_inference.server``, production settings, an API key) serving a LogisticRegression
from the session's MLflow; MLServer 1.7.1 with mlserver-sklearn serving the *same fitted
estimator* (read back from MLflow by ``artpulse_dev.peers.export_joblib``) under the same
name and version; and the peers' clients, run with the python of their own venv
(``hack/peers.sh``, ``make peers``; the first run installs them, about two minutes).

- ``oip_peer_clients.py mlserver``: requests built by ``mlserver.types``/``mlserver.codecs``
  (NumpyCodec, PandasCodec), answers parsed by ``InferenceResponse.model_validate``;
- ``oip_peer_clients.py kserve``: ``kserve.InferRequest`` sent by ``InferenceRESTClient``;
- the requests of ``tests/data/inference_server/oip_conformance_requests.yaml`` to MLServer
  and to ours, compared field by field; health, readiness and metadata side by side.
"""

from __future__ import annotations

import json
import math
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml
from artpulse_dev import peers
from artpulse_inference.core.features import FEATURE_NAMES
from inference_server_helpers import ServerProcess, register_model, training_rows

pytestmark = pytest.mark.integration

API_KEY = "oip-conformance-api-key-0123456789"
MODEL_NAME = "oip-conformance"
CLIENTS = Path(__file__).with_name("oip_peer_clients.py")
CASES: list[dict[str, Any]] = yaml.safe_load(
    (
        Path(__file__).parents[2] / "data" / "inference_server" / "oip_conformance_requests.yaml"
    ).read_text()
)
FLOAT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Served:
    version: str
    estimator: Any  # the fitted estimator both servers load
    ours: str  # base URLs
    mlserver: str


@pytest.fixture(scope="module")
def served(mlflow_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("oip-conformance")
    uri_version = register_model(mlflow_server.tracking_uri, MODEL_NAME, kind="logreg", seed=7)
    model_uri = f"models:/{MODEL_NAME}/{uri_version}"
    joblib_path = peers.export_joblib(mlflow_server.tracking_uri, model_uri, work / "joblib")
    env = {
        "ENVIRONMENT": "production",
        "API_KEYS": API_KEY,
        "MODEL_URI": model_uri,
        "MODEL_NAME": MODEL_NAME,
        "MODEL_VERSION": uri_version,
        "MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
        "DRIFT_HISTORY_PATH": str(work / "drift.jsonl"),
        "LOG_LEVEL": "warning",
    }
    repository = peers.mlserver_repository(work / "mlserver", MODEL_NAME, uri_version, joblib_path)
    mlserver = peers.mlserver(repository, MODEL_NAME, work / "mlserver.log")
    with ServerProcess(env, work / "ours.log").start() as ours, mlserver.start():
        yield Served(uri_version, joblib.load(joblib_path), ours.url, mlserver.url)


def rows(n: int, seed: int = 5) -> np.ndarray:
    return training_rows(n, seed)


def run_client(peer: str, served: Served, X: np.ndarray, tmp_path: Path) -> dict[str, Any]:
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps({"columns": list(FEATURE_NAMES), "rows": X.tolist()}))
    argv = [str(peers.peer_python(peer)), str(CLIENTS), peer, "--url", served.ours,
            "--model", MODEL_NAME, "--version", served.version, "--api-key", API_KEY,
            "--rows", str(rows_file)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{peer}'s client failed against ours:\n{done.stderr[-4000:]}"
    return dict(json.loads(done.stdout))


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"x-api-key": API_KEY}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        if exc.headers.get_content_type() != "application/json":
            return exc.code, raw.decode(errors="replace")  # e.g. MLServer's plain-text 500
        return exc.code, json.loads(raw) if raw else None


def assert_close(ours: Any, theirs: Any, where: str) -> None:
    """Equal, with floats within FLOAT_TOLERANCE; ``where`` names the field on failure."""
    if isinstance(theirs, float) or isinstance(ours, float):
        assert isinstance(ours, int | float), where
        assert isinstance(theirs, int | float), where
        assert math.isclose(ours, theirs, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE), (
            f"{where}: ours {ours}, MLServer {theirs}"
        )
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{where}: ours {ours!r:.200}, MLServer a list"
        assert len(ours) == len(theirs), f"{where}: ours {ours!r:.200}, MLServer {theirs!r:.200}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_close(a, b, f"{where}[{i}]")
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: ours {ours!r:.200}, MLServer an object"
        assert set(ours) == set(theirs), (
            f"{where}: ours has {sorted(ours)}, MLServer {sorted(theirs)}"
        )
        for key in theirs:
            assert_close(ours[key], theirs[key], f"{where}.{key}")
    else:
        assert ours == theirs, f"{where}: ours {ours!r}, MLServer {theirs!r}"


def request_of(case: dict[str, Any]) -> dict[str, Any]:
    X = rows(case["rows"])
    if case["datatype"] == "FP32":
        X = X.astype(np.float32).astype(np.float64)  # the values an FP32 tensor can carry
    if case["layout"] == "per_column":
        inputs = [
            {
                "name": column,
                "shape": [len(X), 1],
                "datatype": case["datatype"],
                "data": X[:, i].tolist(),
            }
            for i, column in enumerate(FEATURE_NAMES)
        ]
        body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    else:
        data = X.tolist() if case["layout"] == "tensor_nested" else X.ravel().tolist()
        inputs = [{"name": case["input_name"], "shape": list(X.shape),
                   "datatype": case["datatype"], "data": data}]  # fmt: skip
        body = {"inputs": inputs}
    if "id" in case:
        body["id"] = case["id"]
    if "outputs" in case:
        body["outputs"] = [{"name": name} for name in case["outputs"]]
    return body


def infer_path(case: dict[str, Any], version: str) -> str:
    return {
        "infer": f"/v2/models/{MODEL_NAME}/infer",
        "versioned": f"/v2/models/{MODEL_NAME}/versions/{version}/infer",
        "wrong_model": f"/v2/models/not-{MODEL_NAME}/infer",
        "wrong_version": f"/v2/models/{MODEL_NAME}/versions/{int(version) + 40}/infer",
    }[case["path"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_request_same_answer_as_mlserver(served: Served, case: dict[str, Any]) -> None:
    body, path = request_of(case), infer_path(case, served.version)
    ours_status, ours = call("POST", served.ours + path, body)
    theirs_status, theirs = call("POST", served.mlserver + path, body)
    if case["expect"] == "error":
        assert 400 <= theirs_status < 500, (theirs_status, theirs)
        assert (ours_status, sorted(ours)) == (theirs_status, ["error"]), ours
        assert isinstance(ours["error"], str), ours
        assert ours["error"], ours
        return
    assert theirs_status == 200, theirs
    assert ours_status == 200, ours
    for field in ("model_name", "model_version"):
        assert ours[field] == theirs[field], (field, ours[field], theirs[field])
    # An id sent is echoed by both; without one, MLServer makes one up and ours sends none
    # (the protocol asks for neither).
    if "id" in body:
        assert ours["id"] == theirs["id"] == body["id"]
    assert [o["name"] for o in ours["outputs"]] == [o["name"] for o in theirs["outputs"]]
    for mine, other in zip(ours["outputs"], theirs["outputs"], strict=True):
        assert_close(mine, other, f"outputs[{other['name']}]")


def test_bad_shape_is_an_error_body_from_both(served: Served) -> None:
    """Eleven of the twelve columns: both refuse it; ours with the protocol's 400 error body
    naming the field. MLServer 1.7.1 answers a plain-text ``500 Internal Server Error`` here
    (scikit-learn's ValueError escapes its runtime), so only its refusal is compared."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 11], "datatype": "FP64",
                        "data": rows(1)[0, :11].tolist()}]}  # fmt: skip
    path = f"/v2/models/{MODEL_NAME}/infer"
    ours_status, ours = call("POST", served.ours + path, body)
    theirs_status, theirs = call("POST", served.mlserver + path, body)
    assert theirs_status >= 400, (theirs_status, theirs)
    assert ours_status == 400, ours
    assert sorted(ours) == ["error"], ours
    assert "shape" in ours["error"], ours


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{MODEL_NAME}/ready",
        f"/v2/models/{MODEL_NAME}/versions/{{version}}/ready",
        f"/v2/models/{MODEL_NAME}",
        f"/v2/models/{MODEL_NAME}/versions/{{version}}",
        "/v2",
    ],
)
def test_health_and_metadata_answer_like_mlserver(served: Served, path: str) -> None:
    path = path.format(version=served.version)
    ours_status, ours = call("GET", served.ours + path)
    theirs_status, theirs = call("GET", served.mlserver + path)
    assert (ours_status, theirs_status) == (200, 200)
    if theirs is None:  # MLServer's health and readiness answers are empty 200s
        return
    # Every field MLServer answers, ours answers, with the same JSON type; the model's own
    # name is the same (MLServer leaves its inputs and outputs empty without a schema).
    assert set(theirs) <= set(ours), (theirs, ours)
    for key, value in theirs.items():
        assert type(ours[key]) is type(value), (key, ours[key], value)
    if "name" in theirs and path != "/v2":
        assert ours["name"] == theirs["name"] == MODEL_NAME


def test_mlserver_client_types_against_ours(served: Served, tmp_path: Path) -> None:
    X = rows(5)
    result = run_client("mlserver", served, X, tmp_path)
    labels = served.estimator.predict(X).tolist()
    proba = served.estimator.predict_proba(X)

    numpy_answer = result["numpy"]
    assert numpy_answer["status"] == 200
    assert (numpy_answer["id"], numpy_answer["model_name"], numpy_answer["model_version"]) == (
        "mlserver-np-1",
        MODEL_NAME,
        served.version,
    )
    assert numpy_answer["output_names"] == ["predict", "predict_proba"]
    assert numpy_answer["predict"] == labels == numpy_answer["predict_as_str"]
    np.testing.assert_allclose(numpy_answer["predict_proba"], proba, rtol=FLOAT_TOLERANCE)

    pandas_answer = result["pandas"]
    assert (pandas_answer["status"], pandas_answer["id"]) == (200, "mlserver-pd-1")
    assert pandas_answer["output_names"] == ["label", "probabilities"]
    assert pandas_answer["label"] == labels
    np.testing.assert_allclose(pandas_answer["probabilities"], proba, rtol=FLOAT_TOLERANCE)

    assert result["bad_shape"]["status"] == 400
    assert "shape" in result["bad_shape"]["error"]
    assert result["wrong_model"]["status"] == 404
    assert f"not-{MODEL_NAME}" in result["wrong_model"]["error"]

    metadata = result["model_metadata"]
    assert (metadata["status"], metadata["name"], metadata["versions"]) == (
        200,
        MODEL_NAME,
        [served.version],
    )
    assert metadata["inputs"] == [[name, "FP64", [-1, 1]] for name in FEATURE_NAMES]
    assert [name for name, _, _ in metadata["outputs"]] == ["probabilities", "label"]
    assert result["server_metadata"]["status"] == 200


def test_kserve_client_types_against_ours(served: Served, tmp_path: Path) -> None:
    X = rows(4)
    result = run_client("kserve", served, X, tmp_path)
    labels = served.estimator.predict(X).tolist()
    proba = served.estimator.predict_proba(X)

    assert (result["live"], result["ready"], result["model_ready"]) == (True, True, True)
    answer = result["json"]
    # (kserve's InferResponse keeps no model_version from a REST answer.)
    assert (answer["id"], answer["model_name"]) == ("kserve-json-1", MODEL_NAME)
    assert answer["datatypes"] == {"probabilities": "FP64", "label": "BYTES"}
    assert answer["shapes"] == {"probabilities": [4, 3], "label": [4]}
    np.testing.assert_allclose(answer["outputs"]["probabilities"], proba, rtol=FLOAT_TOLERANCE)
    assert [str(v) for v in answer["outputs"]["label"]] == labels

    per_column = result["per_column"]
    assert per_column["id"] == "kserve-pd-1"
    np.testing.assert_allclose(per_column["outputs"]["probabilities"], proba, rtol=FLOAT_TOLERANCE)

    # The client's default binary tensor extension is not part of the core protocol: a
    # clear 4xx with the protocol's error body, never a 5xx.
    binary = result["binary"]
    assert 400 <= binary["status"] < 500, binary
    assert isinstance(binary["body"]["error"], str), binary

    assert result["wrong_model"]["status"] == 404
    assert isinstance(result["wrong_model"]["body"]["error"], str)

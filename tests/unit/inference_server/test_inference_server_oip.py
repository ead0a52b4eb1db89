"""The Open Inference Protocol over REST, in process, with a real trained model.

Every layout, datatype and output selection is checked against scikit-learn's own
``predict_proba`` of the same rows; errors are the protocol's ``{"error": ...}``; the
served requests land in the series the operator's gate query reads, the refused ones
do not.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artpulse_dev.oip_testing import (
    CLASSES,
    KEY,
    MODEL_NAME,
    N_FEATURES,
    OPS_KEY,
    FailingLoader,
    RealModelLoader,
    column_inputs,
    gate_selected,
    make_settings,
    matrix_input,
    outputs_by_name,
    running,
    sample_value,
    state_of,
    training_rows,
)
from artpulse_inference.core.features import FEATURE_NAMES
from fastapi.testclient import TestClient

INFER = f"/v2/models/{MODEL_NAME}/infer"
INFER_V1 = f"/v2/models/{MODEL_NAME}/versions/1/infer"
ROUTE = "/v2/models/{name}/infer"
ROUTE_VERSIONED = "/v2/models/{name}/versions/{version}/infer"


@pytest.fixture(scope="module")
def loader() -> RealModelLoader:
    return RealModelLoader()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, loader: RealModelLoader) -> Any:
    with running(make_settings(tmp_path_factory.mktemp("oip")), loader) as c:
        yield c


def infer(client: TestClient, body: Any, path: str = INFER, **kw: Any) -> Any:
    return client.post(path, json=body, headers=kw.pop("headers", KEY), **kw)


def expected_proba(loader: RealModelLoader, X: np.ndarray) -> np.ndarray:
    return np.asarray(loader.estimator.predict_proba(X))


def assert_answer(answer: Any, loader: RealModelLoader, X: np.ndarray) -> None:
    assert answer.status_code == 200, answer.text
    out = outputs_by_name(answer.json())
    proba = out["probabilities"]
    assert proba["datatype"] == "FP64"
    assert proba["shape"] == [X.shape[0], len(CLASSES)]
    got = np.array(proba["data"]).reshape(proba["shape"])
    np.testing.assert_allclose(got, expected_proba(loader, X), rtol=0, atol=1e-12)
    label = out["label"]
    assert (label["datatype"], label["shape"]) == ("BYTES", [X.shape[0]])
    assert label["data"] == loader.estimator.predict(X).tolist()


# ---- health and metadata ----------------------------------------------------------------


def test_server_metadata_and_health(client: TestClient) -> None:
    meta = client.get("/v2")
    assert meta.status_code == 200
    assert meta.json()["name"] == "artpulse-inference"
    assert meta.json()["extensions"] == []
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


@pytest.mark.parametrize(
    "path", [f"/v2/models/{MODEL_NAME}", f"/v2/models/{MODEL_NAME}/versions/1"]
)
def test_model_metadata_lists_the_signature_columns_and_outputs(
    client: TestClient, path: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 200
    meta = answer.json()
    assert (meta["name"], meta["versions"], meta["platform"]) == (MODEL_NAME, ["1"], "sklearn")
    assert [i["name"] for i in meta["inputs"]] == list(FEATURE_NAMES)
    assert {(i["datatype"], tuple(i["shape"])) for i in meta["inputs"]} == {("FP64", (-1, 1))}
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["parameters"]["classes"] == '["impressionism", "minimalism", "pop_art"]'


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v2/models/other", "'other' is not served"),
        ("/v2/models/clf/versions/2", "version '2' of model 'clf' is not served"),
        ("/v2/models/other/ready", "'other' is not served"),
        ("/v2/models/clf/versions/7/ready", "version '7'"),
    ],
)
def test_metadata_and_ready_of_another_model_or_version_are_not_found(
    client: TestClient, path: str, needle: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert needle in answer.json()["error"]


def test_model_ready(client: TestClient) -> None:
    for path in ("/v2/models/clf/ready", "/v2/models/clf/versions/1/ready"):
        answer = client.get(path)
        assert (answer.status_code, answer.json()) == (200, {"name": "clf", "ready": True})


def test_without_a_model_ready_is_503_and_infer_says_why(tmp_path: Path) -> None:
    with running(make_settings(tmp_path), FailingLoader(), wait_ready=False) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 503
        assert c.get("/v2/models/clf/ready").status_code == 503
        assert c.get("/v2/models/other/ready").status_code == 404
        assert c.get("/v2/models/clf").status_code == 503
        answer = infer(c, {"inputs": [matrix_input(training_rows(1))]})
        assert answer.status_code == 503
        assert "no model loaded yet" in answer.json()["error"]
        assert answer.headers["retry-after"] == "5"


# ---- inference: layouts, datatypes, outputs ----------------------------------------------


@pytest.mark.parametrize("rows", [1, 7, 100])
def test_one_tensor_flat_row_major(client: TestClient, loader: RealModelLoader, rows: int) -> None:
    X = training_rows(rows, seed=rows)
    assert_answer(infer(client, {"inputs": [matrix_input(X)]}), loader, X)


def test_one_tensor_nested_equals_flat(client: TestClient, loader: RealModelLoader) -> None:
    X = training_rows(5, seed=3)
    body = {
        "inputs": [{"name": "x", "shape": [5, N_FEATURES], "datatype": "FP64", "data": X.tolist()}]
    }
    assert_answer(infer(client, body), loader, X)


@pytest.mark.parametrize("shape_1", [False, True], ids=["shape-N", "shape-N-1"])
def test_one_tensor_per_feature_in_any_order(
    client: TestClient, loader: RealModelLoader, shape_1: bool
) -> None:
    X = training_rows(4, seed=9)
    inputs = column_inputs(X, shape_1=shape_1)[::-1]
    assert_answer(infer(client, {"inputs": inputs}, INFER_V1), loader, X)


def test_per_feature_tensors_nested_as_n_by_1(client: TestClient, loader: RealModelLoader) -> None:
    X = training_rows(3, seed=4)
    inputs = [
        {"name": n, "shape": [3, 1], "datatype": "FP64", "data": [[v] for v in X[:, j]]}
        for j, n in enumerate(FEATURE_NAMES)
    ]
    assert_answer(infer(client, {"inputs": inputs}), loader, X)


@pytest.mark.parametrize(
    "datatype",
    [
        "FP64",
        "FP32",
        "FP16",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    ],
)
def test_every_numeric_datatype(client: TestClient, loader: RealModelLoader, datatype: str) -> None:
    # Integers 0 and 1 are valid for every type and inside the training range.
    X = (training_rows(3, seed=11) > 0.5).astype(np.float64)
    data = [int(v) for v in X.ravel()]
    body = {"inputs": [{"name": "x", "shape": [3, N_FEATURES], "datatype": datatype, "data": data}]}
    assert_answer(infer(client, body), loader, X)


@pytest.mark.parametrize(
    ("outputs", "names"),
    [
        ([{"name": "label"}], ["label"]),
        ([{"name": "probabilities"}], ["probabilities"]),
        ([{"name": "label"}, {"name": "probabilities"}], ["label", "probabilities"]),
        ([{"name": "predict_proba"}, {"name": "predict"}], ["predict_proba", "predict"]),
        (None, ["probabilities", "label"]),
    ],
    ids=["label", "probabilities", "both-in-order", "mlserver-names", "default"],
)
def test_outputs_selection(
    client: TestClient,
    loader: RealModelLoader,
    outputs: list[dict[str, str]] | None,
    names: list[str],
) -> None:
    X = training_rows(2, seed=5)
    body: dict[str, Any] = {"inputs": [matrix_input(X)]}
    if outputs is not None:
        body["outputs"] = outputs
    answer = infer(client, body)
    assert answer.status_code == 200, answer.text
    got = answer.json()["outputs"]
    assert [o["name"] for o in got] == names
    for o in got:
        if o["datatype"] == "BYTES":
            assert o["data"] == loader.estimator.predict(X).tolist()
        else:
            np.testing.assert_allclose(
                np.array(o["data"]).reshape(o["shape"]), expected_proba(loader, X), atol=1e-12
            )


def test_id_is_echoed_and_parameters_are_accepted(client: TestClient) -> None:
    X = training_rows(1)
    body = {
        "id": "req-42",
        "parameters": {"content_type": "np", "priority": 3, "trace": True},
        "inputs": [matrix_input(X) | {"parameters": {"content_type": "np"}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    }
    answer = infer(client, body, INFER_V1).json()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("req-42", "clf", "1")
    assert answer["parameters"] == {}
    no_id = infer(client, {"inputs": [matrix_input(X)]}).json()
    assert "id" not in no_id


def test_mlserver_label_name_answers_in_mlservers_n_by_1_shape(client: TestClient) -> None:
    X = training_rows(3, seed=2)
    body = {"inputs": [matrix_input(X)], "outputs": [{"name": "predict"}, {"name": "label"}]}
    got = outputs_by_name(infer(client, body).json())
    assert (got["predict"]["shape"], got["predict"]["parameters"]) == (
        [3, 1],
        {"content_type": "np"},
    )
    assert (got["label"]["shape"], got["label"]["parameters"]) == ([3], {"content_type": "str"})
    assert got["predict"]["data"] == got["label"]["data"]


@pytest.mark.parametrize("version", [None, "", "1"])
def test_model_name_and_version_in_the_body_as_kserves_client_sends_them(
    client: TestClient, loader: RealModelLoader, version: str | None
) -> None:
    X = training_rows(2, seed=4)
    body: dict[str, Any] = {"model_name": "clf", "inputs": [matrix_input(X)]}
    if version is not None:
        body["model_version"] = version
    assert_answer(infer(client, body), loader, X)


@pytest.mark.parametrize(
    ("field", "value"), [("model_name", "other"), ("model_version", "7"), ("model_name", 3)]
)
def test_a_body_naming_another_model_or_version_is_400_naming_the_field(
    client: TestClient, field: str, value: Any
) -> None:
    answer = infer(client, {field: value, "inputs": [matrix_input(training_rows(1))]})
    assert answer.status_code == 400, answer.text
    assert f"'{field}'" in answer.json()["error"]


# ---- errors -------------------------------------------------------------------------------


def tensor_bytes(name: str, data: list[Any] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": [1], "datatype": "BYTES", "data": data or ["aGk="]}


def one(X: np.ndarray | None = None, **over: Any) -> dict[str, Any]:
    tensor = matrix_input(training_rows(1) if X is None else X) | over
    return {"inputs": [tensor]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (one(shape=[1, 11]), "one tensor holds all features as [N, 12]"),
        (one(shape=[2, N_FEATURES]), "needs 24 elements"),
        (one(shape=[0, N_FEATURES]), "send at least one row"),
        (one(shape=[-3, N_FEATURES]), "send at least one row"),
        (one(shape=[1001, N_FEATURES]), "the limit is 1000 per request (MAX_BATCH_ROWS)"),
        (one(shape=[1, N_FEATURES, 1]), "one tensor holds all features"),
        (one(shape=["1", N_FEATURES]), "dimensions must be integers"),
        (one(datatype="BOOL"), "datatype BOOL is not accepted"),
        (one(datatype="BYTES"), "a BYTES input is one image (JPEG or PNG), shape [1]"),
        (
            {"inputs": [*column_inputs(training_rows(1))[1:], tensor_bytes("hue_mean")]},
            "datatype BYTES is not accepted here",
        ),
        ({"inputs": [tensor_bytes("img", ["not base64!"])]}, "this is not base64"),
        ({"inputs": [tensor_bytes("img", ["aGk=", "aGk="])]}, "must hold exactly one image"),
        ({"inputs": [tensor_bytes("img", [7])]}, "the image must be base64 text, got int"),
        ({"inputs": [tensor_bytes("img", ["aGVsbG8="])]}, "only JPEG and PNG images"),
        (
            {"inputs": [tensor_bytes("img", ["aGk=", "aGk="]) | {"shape": [2]}]},
            "a BYTES input is one image",
        ),
        (
            {
                "inputs": [
                    matrix_input(training_rows(1)) | {"parameters": {"content_type": "base64"}}
                ]
            },
            "content_type' 'base64' is not accepted here",
        ),
        (one(datatype="FP128"), "unknown datatype 'FP128'"),
        (one(datatype="INT64"), "datatype INT64 needs integers"),
        (one(datatype="INT8", data=[300] * N_FEATURES), "outside the range of INT8"),
        (one(datatype="UINT8", data=[-1] * N_FEATURES), "outside the range of UINT8"),
        (one(data=[True] * N_FEATURES), "needs numbers, the data holds a boolean"),
        (one(data=["0.5"] * N_FEATURES), "needs numbers, the data holds '0.5'"),
        (one(data=[0.5] * (N_FEATURES - 1) + [5.0]), "outside the allowed range"),
        (one(data="0.5"), ".data must be a list"),
        (
            {"inputs": [matrix_input(training_rows(1)), matrix_input(training_rows(1))]},
            "appears more than once",
        ),
        ({"inputs": column_inputs(training_rows(1))[1:]}, "missing input(s) 'hue_mean'"),
        (
            {"inputs": [*column_inputs(training_rows(1)), matrix_input(training_rows(1))]},
            "unknown input",
        ),
        ({"inputs": []}, "'inputs' is empty"),
        ({"rows": []}, "unknown field(s) 'rows'"),
        ({}, "'inputs' must be a list"),
        ([1, 2], "must be a JSON object"),
        (one() | {"id": 7}, "'id' must be a string"),
        (one() | {"id": "x" * 300}, "the limit is 256"),
        (one() | {"parameters": [1]}, "'parameters' must be an object"),
        (one() | {"parameters": {"content_type": "str"}}, "content_type' 'str' is not accepted"),
        (one() | {"outputs": [{"name": "logits"}]}, "unknown output 'logits'"),
        (one() | {"outputs": [{"name": "label"}, {"name": "label"}]}, "requested twice"),
        (one() | {"outputs": "label"}, "'outputs' must be a list"),
    ],
)
def test_bad_requests_are_400_with_the_protocols_error_body(
    client: TestClient, body: Any, needle: str
) -> None:
    answer = infer(client, body)
    assert answer.status_code == 400, answer.text
    assert list(answer.json()) == ["error"]
    assert needle in answer.json()["error"]


def test_non_finite_values_are_refused_naming_the_input(client: TestClient) -> None:
    text = (
        '{"inputs": [{"name": "x", "shape": [1, 12], "datatype": "FP64", "data": [NaN'
        + ", 0.5" * 11
        + "]}]}"
    )
    answer = client.post(INFER, content=text, headers=KEY | {"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "inputs[0] ('x'): values must be finite numbers, got nan"


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/v2/models/other/infer", "model 'other' is not served here"),
        ("/v2/models/clf/versions/2/infer", "version '2' of model 'clf' is not served here"),
    ],
)
def test_infer_on_another_model_or_version_is_404(
    client: TestClient, path: str, needle: str
) -> None:
    answer = infer(client, one(), path)
    assert answer.status_code == 404
    assert needle in answer.json()["error"]


def test_size_and_content_type_limits_answer_in_the_protocols_shape(tmp_path: Path) -> None:
    with running(make_settings(tmp_path, max_request_bytes=2048)) as c:
        big = c.post(INFER, json=one(training_rows(30)), headers=KEY)
        assert big.status_code == 413
        assert "exceeds the limit of 2048 bytes" in big.json()["error"]
        text = c.post(INFER, content=b"{}", headers=KEY | {"content-type": "text/plain"})
        assert text.status_code == 415
        assert "error" in text.json()


# ---- auth, limits, gate series, drift ------------------------------------------------------


def test_auth_is_the_predict_scope_and_refusals_stay_out_of_the_gate_series(tmp_path: Path) -> None:
    with running(make_settings(tmp_path)) as c:
        before = c.get("/metrics").text
        missing = infer(c, one(), headers={})
        wrong = infer(c, one(), headers={"x-api-key": "wrong-key-0123456789abcdef"})
        ops = infer(c, one(), INFER_V1, headers={"x-api-key": OPS_KEY})
        after = c.get("/metrics").text
    assert (missing.status_code, wrong.status_code, ops.status_code) == (401, 401, 403)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing credential" in missing.json()["error"]
    assert "predict" in ops.json()["error"]
    assert gate_selected(after) == gate_selected(before) == 0
    refused = "artpulse_http_refused_requests_total"
    assert sample_value(after, refused, route=ROUTE, status="401") == 2
    assert sample_value(after, refused, route=ROUTE_VERSIONED, status="403") == 1


def test_rate_limit_is_shared_with_predict_and_answers_429(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_rate_limit_per_minute=1, api_rate_limit_burst=2)
    with running(settings) as c:
        row = dict(zip(FEATURE_NAMES, training_rows(1)[0].tolist(), strict=True))
        assert c.post("/predict", json={"rows": [row]}, headers=KEY).status_code == 200
        assert infer(c, one()).status_code == 200
        limited = infer(c, one())
        metrics = c.get("/metrics").text
    assert limited.status_code == 429
    assert "rate limit exceeded" in limited.json()["error"]
    assert int(limited.headers["retry-after"]) >= 1
    assert (
        sample_value(metrics, "artpulse_http_refused_requests_total", route=ROUTE, status="429")
        == 1
    )
    assert gate_selected(metrics) == 2


def test_served_requests_are_in_the_gate_series_under_the_route_template(tmp_path: Path) -> None:
    with running(make_settings(tmp_path)) as c:
        row = dict(zip(FEATURE_NAMES, training_rows(1)[0].tolist(), strict=True))
        assert c.post("/predict", json={"rows": [row]}, headers=KEY).status_code == 200
        for _ in range(3):
            assert infer(c, one()).status_code == 200
        assert infer(c, one(), INFER_V1).status_code == 200
        assert infer(c, one(shape=[1, 3])).status_code == 400
        assert c.get("/v2/health/ready").status_code == 200
        metrics = c.get("/metrics").text
        stats = state_of(c).request_stats.summary()
    requests = "artpulse_http_requests_total"
    assert sample_value(metrics, requests, route=ROUTE, status="200") == 3
    assert sample_value(metrics, requests, route=ROUTE, status="400") == 1
    assert sample_value(metrics, requests, route=ROUTE_VERSIONED, status="200") == 1
    assert sample_value(metrics, requests, route="/v2/models/clf/infer") == 0
    # The operator's gate: /predict and both infer templates; not the health probe.
    assert gate_selected(metrics) == 6
    assert gate_selected(metrics, "artpulse_http_request_duration_seconds_count") == 6
    assert stats["requests"] == 6


def test_infer_rows_feed_drift_with_the_per_request_share(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, drift_window_size=1000, drift_max_request_share=0.01)
    with running(settings) as c:
        drift = state_of(c).drift
        assert infer(c, one(training_rows(3, seed=1))).status_code == 200
        assert drift.summary()["samples"] == 3
        big = training_rows(500, seed=2)
        assert infer(c, {"inputs": column_inputs(big)}).status_code == 200
        assert drift.summary()["samples"] == 3 + 10


def test_null_parameters_mean_unset(client: TestClient) -> None:
    body = one() | {"id": None, "parameters": {"content_type": None, "headers": None}}
    assert infer(client, body).status_code == 200


def test_openapi_documents_the_protocols_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
    ):
        assert "get" in paths[path], path
    for path in (ROUTE, ROUTE_VERSIONED):
        assert "inputs" in str(paths[path]["post"]["requestBody"]), path


def png_base64(seed: int = 0) -> tuple[bytes, str]:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue(), base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize("shape", [[1], [1, 1]])
def test_one_image_as_a_base64_bytes_tensor_answers_like_predict_image(
    client: TestClient, shape: list[int]
) -> None:
    image, text = png_base64(seed=len(shape))
    expected = client.post(
        "/predict-image", content=image, headers=KEY | {"content-type": "image/png"}
    ).json()["predictions"][0]
    data: list[Any] = [text] if shape == [1] else [[text]]
    tensor = {"name": "image", "shape": shape, "datatype": "BYTES", "data": data}
    tensor["parameters"] = {"content_type": "base64"}
    answer = infer(client, {"inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    out = outputs_by_name(answer.json())
    assert out["label"]["data"] == [expected["label"]]
    proba = dict(zip(CLASSES, out["probabilities"]["data"], strict=True))
    assert proba == pytest.approx(expected["probabilities"], abs=1e-12)


def test_images_over_the_byte_limit_or_the_decode_budget_are_413(tmp_path: Path) -> None:
    from PIL import Image

    # 1024 x 1024 of one colour: a few kilobytes of PNG, 3 MiB once decoded. (The pixel
    # limit is not used here: it is Pillow's process-wide setting.)
    out = io.BytesIO()
    Image.new("RGB", (1024, 1024), (200, 30, 30)).save(out, format="PNG")
    flat = base64.b64encode(out.getvalue()).decode()
    _, noisy = png_base64()
    settings = make_settings(tmp_path, max_image_decoded_bytes=256 * 1024, max_image_bytes=6000)

    def image(text: str) -> dict[str, Any]:
        return {"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES", "data": [text]}]}

    with running(settings) as c:
        budget = infer(c, image(flat))
        size = infer(c, image(noisy))
    assert len(out.getvalue()) < 6000 < len(base64.b64decode(noisy))
    assert budget.status_code == 413
    assert "MAX_IMAGE_DECODED_BYTES" in budget.json()["error"]
    assert size.status_code == 413
    assert "(MAX_IMAGE_BYTES)" in size.json()["error"]


def test_grpc_needs_a_port_of_its_own(tmp_path: Path) -> None:
    assert make_settings(tmp_path).grpc_port == 0  # off unless asked for
    with pytest.raises(ValueError, match="GRPC_PORT: 8000 is also PORT"):
        make_settings(tmp_path, grpc_port=8000, port=8000)

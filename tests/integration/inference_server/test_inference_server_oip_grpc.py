"""The Open Inference Protocol over gRPC, through a real channel on loopback.

The app runs in process (its lifespan starts the gRPC server on ``GRPC_PORT``); the
client is grpcio with the stubs generated from the protocol's proto. Answers are
checked against scikit-learn's own ``predict_proba``; refusals are the gRPC codes of
their HTTP statuses and land in the series the gates do not read.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import numpy as np
import pytest
from artpulse_dev.oip_testing import (
    API_KEY,
    MODEL_NAME,
    N_FEATURES,
    OPS_KEY,
    FailingLoader,
    RealModelLoader,
    gate_selected,
    grpc_app,
    make_settings,
    sample_value,
    state_of,
    training_rows,
)
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server.oip_proto import grpc_predict_v2_pb2 as pb
from artpulse_inference.server.oip_proto import grpc_predict_v2_pb2_grpc as pb_grpc
from artpulse_inference.server.settings import Settings
from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

JWT_SECRET = "oip-grpc-jwt-secret-0123456789abcdef0123456789"
KEY = (("x-api-key", API_KEY),)
INFER_ROUTE = "/inference.GRPCInferenceService/ModelInfer"


class Served:
    def __init__(self, client: TestClient, stub: pb_grpc.GRPCInferenceServiceStub) -> None:
        self.client = client
        self.stub = stub


def grpc_settings(tmp: Path, **over: Any) -> Callable[[int], Settings]:
    return lambda port: make_settings(tmp, grpc_port=port, grpc_host="127.0.0.1", **over)


@pytest.fixture(scope="module")
def loader() -> RealModelLoader:
    return RealModelLoader()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, loader: RealModelLoader) -> Iterator[Served]:
    settings = grpc_settings(tmp_path_factory.mktemp("grpc"), jwt_secret=JWT_SECRET)
    with grpc_app(settings, loader) as (client, stub):
        yield Served(client, stub)


def raw_request(
    X: np.ndarray, dtype: str = "<f8", datatype: str = "FP64", **over: Any
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=MODEL_NAME,
        raw_input_contents=[np.ascontiguousarray(X, dtype=dtype).tobytes()],
        **over,
    )
    request.inputs.add(name="features", datatype=datatype, shape=list(X.shape))
    return request


def typed_request(
    X: np.ndarray, datatype: str = "FP64", field: str = "fp64_contents"
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add(name="features", datatype=datatype, shape=list(X.shape))
    values = X.ravel().tolist() if datatype.startswith("FP") else [int(v) for v in X.ravel()]
    getattr(tensor.contents, field).extend(values)
    return request


def outputs(response: pb.ModelInferResponse) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for o in response.outputs:
        if o.datatype == "BYTES":
            got[o.name] = [b.decode() for b in o.contents.bytes_contents]
        else:
            got[o.name] = np.array(o.contents.fp64_contents).reshape(list(o.shape))
    return got


def assert_matches(response: pb.ModelInferResponse, loader: RealModelLoader, X: np.ndarray) -> None:
    got = outputs(response)
    np.testing.assert_allclose(
        got["probabilities"], loader.estimator.predict_proba(X), rtol=0, atol=1e-12
    )
    assert got["label"] == loader.estimator.predict(X).tolist()
    assert (response.model_name, response.model_version) == (MODEL_NAME, "1")


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    error: Any = info.value
    return error.code(), error.details()


# ---- health and metadata ----------------------------------------------------------------


def test_health_and_server_metadata(served: Served) -> None:
    assert served.stub.ServerLive(pb.ServerLiveRequest()).live is True
    assert served.stub.ServerReady(pb.ServerReadyRequest()).ready is True
    meta = served.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (meta.name, list(meta.extensions)) == ("artpulse-inference", [])
    assert served.stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME)).ready is True
    assert served.stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME, version="1")).ready is True


def test_model_metadata(served: Served) -> None:
    meta = served.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL_NAME, version="1"))
    assert (meta.name, list(meta.versions), meta.platform) == (MODEL_NAME, ["1"], "sklearn")
    assert [i.name for i in meta.inputs] == list(FEATURE_NAMES)
    assert [(o.name, o.datatype, list(o.shape)) for o in meta.outputs] == [
        ("probabilities", "FP64", [-1, 3]),
        ("label", "BYTES", [-1]),
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ModelReady(pb.ModelReadyRequest(name="other")),
        lambda s: s.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME, version="2")),
        lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name="other")),
        lambda s: s.ModelMetadata(pb.ModelMetadataRequest(name=MODEL_NAME, version="9")),
    ],
    ids=[
        "ready-other-model",
        "ready-other-version",
        "metadata-other-model",
        "metadata-other-version",
    ],
)
def test_another_model_or_version_is_not_found(served: Served, call: Any) -> None:
    code, details = code_of(lambda: call(served.stub))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "is not served here" in details


# ---- inference ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [("<f8", "FP64"), ("<f4", "FP32"), ("<f2", "FP16")],
)
def test_raw_input_contents(
    served: Served, loader: RealModelLoader, dtype: str, datatype: str
) -> None:
    X = training_rows(5, seed=3).astype(dtype).astype(np.float64)
    response = served.stub.ModelInfer(raw_request(X, dtype, datatype, id="r-1"), metadata=KEY)
    assert response.id == "r-1"
    assert_matches(response, loader, X)


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [("<i1", "INT8"), ("<i4", "INT32"), ("<i8", "INT64"), ("<u1", "UINT8"), ("<u8", "UINT64")],
)
def test_raw_integer_tensors(
    served: Served, loader: RealModelLoader, dtype: str, datatype: str
) -> None:
    X = (training_rows(3, seed=8) > 0.5).astype(np.float64)
    assert_matches(served.stub.ModelInfer(raw_request(X, dtype, datatype), metadata=KEY), loader, X)


@pytest.mark.parametrize(
    ("datatype", "field"),
    [
        ("FP64", "fp64_contents"),
        ("FP32", "fp32_contents"),
        ("INT16", "int_contents"),
        ("INT64", "int64_contents"),
        ("UINT32", "uint_contents"),
        ("UINT64", "uint64_contents"),
    ],
)
def test_typed_contents(served: Served, loader: RealModelLoader, datatype: str, field: str) -> None:
    X = training_rows(4, seed=5)
    if not datatype.startswith("FP"):
        X = (X > 0.5).astype(np.float64)
    elif datatype == "FP32":
        X = X.astype(np.float32).astype(np.float64)
    assert_matches(
        served.stub.ModelInfer(typed_request(X, datatype, field), metadata=KEY), loader, X
    )


def test_one_tensor_per_feature_and_output_selection(
    served: Served, loader: RealModelLoader
) -> None:
    X = training_rows(3, seed=6)
    request = pb.ModelInferRequest(model_name=MODEL_NAME, model_version="1")
    for j, name in reversed(list(enumerate(FEATURE_NAMES))):
        tensor = request.inputs.add(name=name, datatype="FP64", shape=[3, 1])
        tensor.contents.fp64_contents.extend(X[:, j].tolist())
    request.outputs.add(name="predict")
    request.parameters["content_type"].string_param = "pd"
    response = served.stub.ModelInfer(request, metadata=KEY)
    assert [o.name for o in response.outputs] == ["predict"]
    assert outputs(response)["predict"] == loader.estimator.predict(X).tolist()


def test_a_bearer_token_in_the_authorization_metadata(
    served: Served, loader: RealModelLoader
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {"iss": "artpulse", "aud": "artpulse-inference", "sub": "ci", "iat": now, "exp": now + 60},
        JWT_SECRET,
        algorithm="HS256",
    )
    X = training_rows(1)
    response = served.stub.ModelInfer(
        raw_request(X), metadata=(("authorization", f"Bearer {token}"),)
    )
    assert_matches(response, loader, X)


# ---- refusals -----------------------------------------------------------------------------


def _nan_request() -> pb.ModelInferRequest:
    X = training_rows(1)
    X[0, 3] = np.nan
    return raw_request(X)


def _both_contents() -> pb.ModelInferRequest:
    request = raw_request(training_rows(1))
    request.inputs[0].contents.fp64_contents.append(0.5)
    return request


def _wrong_field() -> pb.ModelInferRequest:
    return typed_request(training_rows(1), "FP64", "fp32_contents")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: _shape([3, 12]), "needs 36 elements"),
        (lambda: _raw_bytes(b"\x00" * 13), "not a whole number of FP64 elements"),
        (lambda: _extra_raw(), "raw_input_contents has 2 entries for 1 inputs"),
        (_both_contents, "contents and raw_input_contents are both set"),
        (_wrong_field, "takes its data in contents.fp64_contents"),
        (
            lambda: typed_request(np.full((1, N_FEATURES), 300.0), "INT8", "int_contents"),
            "outside the range of INT8",
        ),
        (
            lambda: typed_request(training_rows(1), "FP16", "fp32_contents"),
            "FP16 has no typed contents",
        ),
        (
            lambda: raw_request(training_rows(1), datatype="BYTES"),
            "a raw BYTES element claims",
        ),
        (lambda: _image_request(b"GIF89a....", shape=[1]), "only JPEG and PNG images"),
        (lambda: _image_request(png_bytes(), shape=[2]), "a BYTES input is one image"),
        (lambda: raw_request(training_rows(1), datatype="BOOL"), "datatype BOOL is not accepted"),
        (_nan_request, "values must be finite numbers, got nan"),
        (lambda: raw_request(np.full((1, N_FEATURES), 1e308)), "outside the allowed range"),
        (lambda: _shape([0, 12]), "send at least one row"),
        (lambda: _shape([2**40, 12]), "the limit is 1000 per request"),
        (lambda: _shape([]), "1 to 8 dimensions"),
        (lambda: _with_output("logits"), "unknown output 'logits'"),
        (lambda: raw_request(training_rows(1), id="x" * 300), "the limit is 256"),
    ],
    ids=[
        "shape-data-mismatch",
        "raw-partial-element",
        "raw-count",
        "contents-and-raw",
        "wrong-contents-field",
        "int8-range",
        "fp16-typed",
        "bytes-numbers",
        "image-not-jpeg-or-png",
        "two-images",
        "bool",
        "nan",
        "1e308",
        "zero-rows",
        "huge-shape-claim",
        "no-shape",
        "unknown-output",
        "long-id",
    ],
)
def test_bad_tensors_are_invalid_argument(served: Served, make: Any, needle: str) -> None:
    code, details = code_of(lambda: served.stub.ModelInfer(make(), metadata=KEY))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert needle in details


def png_bytes(seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def _image_request(image: bytes, shape: list[int], raw: bool = False) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add(name="image", datatype="BYTES", shape=shape)
    if raw:
        request.raw_input_contents.append(len(image).to_bytes(4, "little") + image)
    else:
        tensor.contents.bytes_contents.append(image)
    return request


@pytest.mark.parametrize("raw", [False, True], ids=["bytes_contents", "raw_input_contents"])
def test_an_image_as_one_bytes_tensor_matches_predict_image(served: Served, raw: bool) -> None:
    image = png_bytes(seed=4)
    expected = served.client.post(
        "/predict-image", content=image, headers={"x-api-key": API_KEY, "content-type": "image/png"}
    ).json()["predictions"][0]
    response = served.stub.ModelInfer(_image_request(image, [1], raw=raw), metadata=KEY)
    got = outputs(response)
    assert got["label"] == [expected["label"]]
    classes = sorted(expected["probabilities"])
    np.testing.assert_allclose(
        got["probabilities"][0], [expected["probabilities"][c] for c in classes], atol=1e-12
    )


def _shape(shape: list[int]) -> pb.ModelInferRequest:
    request = raw_request(training_rows(2))
    del request.inputs[0].shape[:]
    request.inputs[0].shape.extend(shape)
    return request


def _raw_bytes(raw: bytes) -> pb.ModelInferRequest:
    request = raw_request(training_rows(1))
    request.raw_input_contents[0] = raw
    return request


def _extra_raw() -> pb.ModelInferRequest:
    request = raw_request(training_rows(1))
    request.raw_input_contents.append(b"")
    return request


def _with_output(name: str) -> pb.ModelInferRequest:
    request = raw_request(training_rows(1))
    request.outputs.add(name=name)
    return request


@pytest.mark.parametrize(
    ("model", "version"), [("other", ""), (MODEL_NAME, "2")], ids=["other-model", "other-version"]
)
def test_infer_on_another_model_or_version_is_not_found(
    served: Served, model: str, version: str
) -> None:
    request = raw_request(training_rows(1), model_version=version)
    request.model_name = model
    code, details = code_of(lambda: served.stub.ModelInfer(request, metadata=KEY))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "is not served here" in details


def test_credentials_are_checked_and_refusals_stay_out_of_the_gate_series(served: Served) -> None:
    before = served.client.get("/metrics").text
    request = raw_request(training_rows(1))
    refusals = [
        code_of(lambda: served.stub.ModelInfer(request))[0],
        code_of(
            lambda: served.stub.ModelInfer(
                request, metadata=(("x-api-key", "wrong-key-0123456789abcdef"),)
            )
        )[0],
        code_of(lambda: served.stub.ModelInfer(request, metadata=(("x-api-key", OPS_KEY),)))[0],
    ]
    middle = served.client.get("/metrics").text
    assert served.stub.ModelInfer(request, metadata=KEY).outputs
    after = served.client.get("/metrics").text
    assert refusals == [
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    ]
    refused = "artpulse_http_refused_requests_total"
    assert (
        sample_value(middle, refused, route=INFER_ROUTE)
        - sample_value(before, refused, route=INFER_ROUTE)
        == 3
    )
    assert gate_selected(middle) == gate_selected(before)
    # A served call is in the gate series, under the method name.
    assert gate_selected(after) == gate_selected(middle) + 1
    assert sample_value(after, "artpulse_http_requests_total", route=INFER_ROUTE, status="200") >= 1


def test_failed_authentications_throttle_the_address_before_any_credential(tmp_path: Path) -> None:
    with grpc_app(grpc_settings(tmp_path, auth_failure_limit_per_minute=3)) as (_, stub):
        request = raw_request(training_rows(1))
        bad = (("x-api-key", "wrong-key-0123456789abcdef"),)
        codes = [code_of(lambda: stub.ModelInfer(request, metadata=bad))[0] for _ in range(3)]
        code, details = code_of(lambda: stub.ModelInfer(request, metadata=KEY))
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 3
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many failed authentications" in details


def test_the_rate_limit_is_resource_exhausted(tmp_path: Path) -> None:
    settings = grpc_settings(tmp_path, api_rate_limit_per_minute=1, api_rate_limit_burst=1)
    with grpc_app(settings) as (client, stub):
        request = raw_request(training_rows(1))
        assert stub.ModelInfer(request, metadata=KEY).outputs
        code, details = code_of(lambda: stub.ModelInfer(request, metadata=KEY))
        metrics = client.get("/metrics").text
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit exceeded" in details
    assert (
        sample_value(
            metrics, "artpulse_http_refused_requests_total", route=INFER_ROUTE, status="429"
        )
        == 1
    )


def test_without_a_model_infer_is_unavailable(tmp_path: Path) -> None:
    with grpc_app(grpc_settings(tmp_path), FailingLoader(), wait_ready=False) as (_, stub):
        assert stub.ServerReady(pb.ServerReadyRequest()).ready is False
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL_NAME)).ready is False
        code, details = code_of(
            lambda: stub.ModelInfer(raw_request(training_rows(1)), metadata=KEY)
        )
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "no model loaded yet" in details


def test_infer_rows_feed_drift(served: Served) -> None:
    drift = state_of(served.client).drift
    before = drift.summary()["samples"]
    served.stub.ModelInfer(raw_request(training_rows(4, seed=2)), metadata=KEY)
    assert drift.summary()["samples"] == before + 4

"""Hostile Open Inference Protocol requests: every one is a bounded 4xx, never a 500.

Sent for real through the app (TestClient) with a real trained model
(``security_traffic_helpers.TrainedLoader``), over REST and over gRPC on loopback: shape
claims far beyond the data, negative, zero and overflowing dimensions, data nested
thousands deep, values that overflow a float or a linear model, NaN in every spelling,
megabytes of BYTES, duplicate inputs, unknown outputs, oversized ids and parameters.
The answer is the protocol's error, small, and the gates' error rate does not move.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from artpulse_dev.oip_testing import gate_value, grpc_app, sample_value
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server import create_app
from artpulse_inference.server.oip_proto import grpc_predict_v2_pb2 as pb
from artpulse_inference.server.oip_proto import grpc_predict_v2_pb2_grpc as pb_grpc
from artpulse_inference.server.settings import Settings
from fastapi.testclient import TestClient
from security_traffic_helpers import (
    API_KEY,
    MODEL_NAME,
    TrainedLoader,
    make_settings,
    wait_for,
)

KEY = {"x-api-key": API_KEY, "content-type": "application/json"}
INFER = f"/v2/models/{MODEL_NAME}/infer"
N = len(FEATURE_NAMES)
MAX_ERROR_BYTES = 2048
REQUESTS = "artpulse_http_requests_total"


def tensor(**over: Any) -> dict[str, Any]:
    return {"name": "x", "shape": [1, N], "datatype": "FP64", "data": [0.5] * N} | over


def body(*inputs: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(inputs) or [tensor()], **top}).encode()


def nested(depth: int) -> str:
    return "[" * depth + "0.5" + "]" * depth


def raw_text(data: str, shape: str = f"[1, {N}]") -> bytes:
    return f'{{"inputs": [{{"name": "x", "shape": {shape}, "datatype": "FP64", "data": {data}}}]}}'.encode()


def columns(n_of: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [n_of.get(name, 1)],
            "datatype": "FP64",
            "data": [0.5] * n_of.get(name, 1),
        }
        for name in FEATURE_NAMES
    ]


HOSTILE: dict[str, bytes] = {
    "huge-shape-tiny-data": body(tensor(shape=[10**18, N], data=[0.5])),
    "huge-second-dim": body(tensor(shape=[1, 10**18], data=[0.5])),
    "shape-product-overflow": body(tensor(shape=[2**62, 2**62], data=[0.5])),
    "shape-beyond-uint64": body(tensor(shape=[2**70, N])),
    "negative-dims": body(tensor(shape=[-1, -N])),
    "zero-dims": body(tensor(shape=[0, N], data=[])),
    "million-dims": body(tensor(shape=[1] * 1_000_000)),
    "float-dims": body(tensor(shape=[1.0, float(N)])),
    "column-rows-disagree": body(*columns({"hue_mean": 2})),
    "column-huge-claim": body(
        *columns({name: 1 for name in FEATURE_NAMES})[:-1],
        tensor(name=FEATURE_NAMES[-1], shape=[2**63], data=[0.5]),
    ),
    "nested-10000-deep": raw_text(nested(10_000)),
    "nested-900-deep": raw_text(nested(900)),
    "nested-ragged": body(tensor(shape=[2, N], data=[[0.5] * N, [0.5] * (N - 1)])),
    "nested-too-deep-for-shape": body(tensor(data=[[[0.5]] * N])),
    "1e308": body(tensor(data=[1e308] * N)),
    "-1e308": body(tensor(data=[-1e308] * N)),
    "1e400-literal": raw_text("[" + ", ".join(["1e400"] * N) + "]"),
    "int-beyond-float": raw_text("[" + ", ".join(["1" + "0" * 400] * N) + "]"),
    "int64-overflow": body(tensor(datatype="INT64", data=[2**63] * N)),
    "nan-literal": raw_text("[NaN" + ", 0.5" * (N - 1) + "]"),
    "infinity-literal": raw_text("[-Infinity" + ", 0.5" * (N - 1) + "]"),
    "nan-as-string": body(tensor(data=["NaN"] * N)),
    "numbers-as-strings": body(tensor(data=["0.5"] * N)),
    "booleans": body(tensor(data=[True] * N)),
    "nulls": body(tensor(data=[None] * N)),
    "objects": body(tensor(data=[{}] * N)),
    "bytes-megabytes": body(tensor(datatype="BYTES", shape=[1], data=["A" * 3_000_000])),
    "bytes-many": body(tensor(datatype="BYTES", shape=[200_000], data=["x"] * 200_000)),
    "duplicate-inputs": body(tensor(), tensor()),
    "duplicate-columns": body(*columns({}), columns({})[0]),
    "thousands-of-inputs": body(*[tensor(name=f"in{i}") for i in range(5000)]),
    "unknown-outputs": body(outputs=[{"name": "logits"}]),
    "many-outputs": body(outputs=[{"name": "label"}] * 100_000),
    "huge-name": body(tensor(name="n" * 1_000_000)),
    "huge-datatype": body(tensor(datatype="F" * 1_000_000)),
    "huge-id": body(id="i" * 1_000_000),
    "many-parameters": body(parameters={f"p{i}": i for i in range(100_000)}),
    "nested-parameters": body(parameters={"a": {"b": {"c": 1}}}),
    "content-type-str": body(parameters={"content_type": "str"}),
    "unknown-top-level": json.dumps({f"k{i}": i for i in range(50_000)}).encode(),
    "not-an-object": b"[1, 2, 3]",
    "not-json": b"\xff\xfe garbage",
    "empty": b"",
    "too-large": body(tensor(shape=[1, N], data=[0.5] * 600_000)),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("oip-hostile"))
    with TestClient(
        create_app(settings, loader=TrainedLoader()), raise_server_exceptions=False
    ) as c:
        wait_for(lambda: c.get("/ready").status_code == 200, 60, "the model to load")
        yield c


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_rest_bodies_get_a_small_4xx_in_the_protocols_shape(
    client: TestClient, name: str
) -> None:
    answer = client.post(INFER, content=HOSTILE[name], headers=KEY)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    assert len(answer.content) <= MAX_ERROR_BYTES, answer.text[:500]
    assert list(answer.json()) == ["error"]


def test_a_flood_of_hostile_bodies_leaves_the_gates_error_rate_at_zero(client: TestClient) -> None:
    assert client.post(INFER, content=body(), headers=KEY).status_code == 200
    for data in HOSTILE.values():
        client.post(INFER, content=data, headers=KEY)
    metrics = client.get("/metrics").text
    five_xx = sum(
        sample_value(metrics, REQUESTS, route="/v2/models/{name}/infer", status=str(s))
        for s in range(500, 600)
    )
    assert five_xx == 0
    # They are served (4xx) requests, so the gate counts them: its error rate reads 0.
    served = sample_value(metrics, REQUESTS, route="/v2/models/{name}/infer")
    assert served >= len(HOSTILE) + 1
    assert gate_value(metrics, "requests", REQUESTS) == served


# ---- gRPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    tmp = tmp_path_factory.mktemp("oip-grpc-hostile")

    def settings_of(port: int) -> Settings:
        return make_settings(tmp, grpc_port=port, grpc_host="127.0.0.1")

    with grpc_app(settings_of, TrainedLoader()) as (_, grpc_stub):
        yield grpc_stub


def grpc_request(
    shape: list[int], raw: bytes | None = None, datatype: str = "FP64", **over: Any
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL_NAME, **over)
    request.inputs.add(name="x", datatype=datatype, shape=shape)
    request.raw_input_contents.append(np.full(N, 0.5).tobytes() if raw is None else raw)
    return request


def _many_params() -> pb.ModelInferRequest:
    request = grpc_request([1, N])
    for i in range(10_000):
        request.parameters[f"p{i}"].int64_param = i
    return request


GRPC_HOSTILE = {
    "huge-shape-tiny-data": lambda: grpc_request([2**62, N]),
    "shape-product-overflow": lambda: grpc_request([2**62, 2**62]),
    "negative-dims": lambda: grpc_request([-5, N]),
    "thousand-dims": lambda: grpc_request([1] * 1000),
    "nan-raw": lambda: grpc_request([1, N], np.full(N, np.nan).tobytes()),
    "1e308-raw": lambda: grpc_request([1, N], np.full(N, 1e308).tobytes()),
    "bytes-megabytes": lambda: grpc_request([1], b"A" * 3_000_000, datatype="BYTES"),
    "over-the-message-limit": lambda: grpc_request([1, N], b"\x00" * 5_000_000),
    "odd-raw-length": lambda: grpc_request([1, N], b"\x00" * 95),
    "huge-id": lambda: grpc_request([1, N], id="i" * 1_000_000),
    "huge-name": lambda: _grpc_named("n" * 1_000_000),
    "many-parameters": _many_params,
    "unknown-output": lambda: _grpc_with_outputs(["logits"]),
    "many-outputs": lambda: _grpc_with_outputs(["label"] * 50_000),
}


def _grpc_named(name: str) -> pb.ModelInferRequest:
    request = grpc_request([1, N])
    request.inputs[0].name = name
    return request


def _grpc_with_outputs(names: list[str]) -> pb.ModelInferRequest:
    request = grpc_request([1, N])
    for name in names:
        request.outputs.add(name=name)
    return request


@pytest.mark.parametrize("name", list(GRPC_HOSTILE))
def test_hostile_grpc_requests_are_refused_as_client_errors(
    stub: pb_grpc.GRPCInferenceServiceStub, name: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(GRPC_HOSTILE[name](), metadata=(("x-api-key", API_KEY),))
    error: Any = info.value
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), (
        error.code(),
        error.details(),
    )
    assert len(error.details() or "") <= MAX_ERROR_BYTES

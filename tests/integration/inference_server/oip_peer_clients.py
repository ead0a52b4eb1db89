"""MLServer's and KServe's own Python client types, pointed at an OIP server; run in a peer venv.

``<peer python> oip_peer_clients.py mlserver|kserve --url URL --model NAME --version V
--api-key KEY --rows ROWS.json`` (ROWS.json: ``{"columns": [...], "rows": [[...], ...]}``).
Started as a subprocess by ``test_inference_server_oip_conformance.py`` with the python of
``~/.cache/artpulse/peers/<peer>`` (``hack/peers.sh``), since neither package installs beside
our lock. Every request is built by the peer's own types (``mlserver.types`` and
``mlserver.codecs``; ``kserve.InferRequest`` sent by ``kserve.InferenceRESTClient``) and every
answer parsed by them (``InferenceResponse.model_validate``, ``InferResponse``): a body they
reject makes this script fail. It prints one JSON object of what it decoded, which the test
compares with scikit-learn's own answer. Nothing here is asserted about our values.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """JSON-ready: bytes (how the clients decode BYTES tensors) as text, arrays as lists."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def run_mlserver(args: argparse.Namespace, columns: list[str], X: np.ndarray) -> dict[str, Any]:
    import pandas as pd
    from mlserver.codecs import NumpyCodec, PandasCodec, StringCodec
    from mlserver.types import (
        InferenceErrorResponse,
        InferenceRequest,
        InferenceResponse,
        MetadataModelResponse,
        MetadataServerResponse,
        RequestOutput,
    )

    key = {"x-api-key": args.api_key}
    base = f"{args.url}/v2/models/{args.model}"
    out: dict[str, Any] = {}

    status, body = http("GET", f"{args.url}/v2")
    out["server_metadata"] = {
        "status": status,
        **MetadataServerResponse.model_validate(body).model_dump(),
    }
    status, body = http("GET", base)
    meta = MetadataModelResponse.model_validate(body)
    out["model_metadata"] = {
        "status": status,
        "name": meta.name,
        "versions": meta.versions,
        "inputs": [(t.name, t.datatype, t.shape) for t in meta.inputs or []],
        "outputs": [(t.name, t.datatype, t.shape) for t in meta.outputs or []],
    }

    def infer(request: InferenceRequest, path: str = f"{base}/versions/{args.version}/infer"):
        status, body = http("POST", path, request.model_dump(exclude_none=True), key)
        if status != 200:
            return status, InferenceErrorResponse.model_validate(body)
        return status, InferenceResponse.model_validate(body)

    # The numpy codec: one [N, n_features] tensor; MLServer's output names.
    request = InferenceRequest(
        id="mlserver-np-1",
        inputs=[NumpyCodec.encode_input("input-0", X)],
        outputs=[RequestOutput(name="predict"), RequestOutput(name="predict_proba")],
    )
    status, response = infer(request)
    by_name = {o.name: o for o in response.outputs}
    out["numpy"] = {
        "status": status,
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "output_names": [o.name for o in response.outputs],
        "predict_proba": NumpyCodec.decode_output(by_name["predict_proba"]).tolist(),
        "predict": [
            s.decode() if isinstance(s, bytes) else str(s)
            for s in np.asarray(NumpyCodec.decode_output(by_name["predict"])).ravel()
        ],
        "predict_as_str": StringCodec.decode_output(by_name["predict"]),
    }

    # The pandas codec: one input per column, content_type "pd"; our output names.
    frame = pd.DataFrame(X, columns=columns)
    request = PandasCodec.encode_request(frame)
    request.id = "mlserver-pd-1"
    request.outputs = [RequestOutput(name="label"), RequestOutput(name="probabilities")]
    status, response = infer(request, f"{base}/infer")
    by_name = {o.name: o for o in response.outputs}
    out["pandas"] = {
        "status": status,
        "id": response.id,
        "output_names": [o.name for o in response.outputs],
        "label": StringCodec.decode_output(by_name["label"]),
        "probabilities": NumpyCodec.decode_output(by_name["probabilities"]).tolist(),
    }

    # Errors are InferenceErrorResponse bodies.
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("input-0", X[:, :-1])])
    status, error = infer(request, f"{base}/infer")
    out["bad_shape"] = {"status": status, "error": error.error}
    status, error = infer(
        InferenceRequest(inputs=[NumpyCodec.encode_input("input-0", X)]),
        f"{args.url}/v2/models/not-{args.model}/infer",
    )
    out["wrong_model"] = {"status": status, "error": error.error}
    return out


async def run_kserve(args: argparse.Namespace, columns: list[str], X: np.ndarray) -> dict[str, Any]:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    key = {"x-api-key": args.api_key}
    out: dict[str, Any] = {}
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        out["live"] = await client.is_server_live(args.url)
        out["ready"] = await client.is_server_ready(args.url)
        out["model_ready"] = await client.is_model_ready(args.url, args.model)

        def request(binary: bool, request_id: str) -> InferRequest:
            tensor = InferInput("input-0", list(X.shape), "FP64")
            tensor.set_data_from_numpy(X, binary_data=binary)
            return InferRequest(args.model, infer_inputs=[tensor], request_id=request_id)

        response = await client.infer(
            args.url, request(False, "kserve-json-1"), model_name=args.model, headers=key
        )
        out["json"] = {
            "id": response.id,
            "model_name": response.model_name,
            "model_version": response.model_version,
            "outputs": {o.name: plain(o.as_numpy()) for o in response.outputs},
            "datatypes": {o.name: o.datatype for o in response.outputs},
            "shapes": {o.name: list(o.shape) for o in response.outputs},
        }
        # Per-feature inputs, one column each (the layout of KServe's own mixed-type sample
        # test/e2e/data/sklearn_mixed_v2.json), with the request's content_type "pd".
        tensors = []
        for i, column in enumerate(columns):
            tensor = InferInput(column, [X.shape[0]], "FP64")
            tensor.set_data_from_numpy(X[:, i], binary_data=False)
            tensors.append(tensor)
        response = await client.infer(
            args.url,
            InferRequest(
                args.model,
                infer_inputs=tensors,
                request_id="kserve-pd-1",
                parameters={"content_type": "pd"},
            ),
            model_name=args.model,
            headers=key,
        )
        out["per_column"] = {
            "id": response.id,
            "outputs": {o.name: plain(o.as_numpy()) for o in response.outputs},
        }
        # The client's default: the binary tensor extension (not part of the core protocol).
        try:
            await client.infer(
                args.url, request(True, "kserve-bin-1"), model_name=args.model, headers=key
            )
            out["binary"] = {"status": 200}
        except httpx.HTTPStatusError as exc:
            out["binary"] = {"status": exc.response.status_code, "body": exc.response.json()}
        try:
            await client.infer(
                args.url, request(False, "kserve-x"), model_name=f"not-{args.model}", headers=key
            )
            out["wrong_model"] = {"status": 200}
        except httpx.HTTPStatusError as exc:
            out["wrong_model"] = {"status": exc.response.status_code, "body": exc.response.json()}
    finally:
        await client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["mlserver", "kserve"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--rows", required=True)
    args = parser.parse_args()
    with open(args.rows) as f:
        given = json.load(f)
    X = np.asarray(given["rows"], dtype=np.float64)
    if args.peer == "mlserver":
        result = run_mlserver(args, given["columns"], X)
    else:
        result = asyncio.run(run_kserve(args, given["columns"], X))
    json.dump(result, sys.stdout, default=str)


if __name__ == "__main__":
    main()

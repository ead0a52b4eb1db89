"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` on ``GRPC_PORT``.

``app.create_app``'s lifespan starts :func:`start_grpc_server` on the app's own event loop
when ``GRPC_PORT`` is set (0, the default, leaves it off) and stops it with the app. The
messages are the protocol's (``oip_proto/grpc_predict_v2.proto``, generated code
committed); the tensors go through ``oip_codec`` exactly as the REST ones do.

What holds for ``/predict`` holds here, by running the same code: every RPC is turned
into a Starlette request carrying the call's metadata as headers and its peer as the
client, and ``ModelInfer`` passes it through ``deps.api_caller`` (the per-address limiter
and failed-auth throttle before the credential, ``x-api-key`` or
``authorization: Bearer``, scope ``predict``, the audit line, the per-client limit).
Refusals map to gRPC codes (401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED``, 429
``RESOURCE_EXHAUSTED``, 400 ``INVALID_ARGUMENT``, 404 ``NOT_FOUND``, 503 ``UNAVAILABLE``).

Metrics: each RPC is one request in the HTTP series, ``route`` the gRPC method
(``/inference.GRPCInferenceService/ModelInfer``), ``method`` ``POST`` (what gRPC is on
the wire) and ``status`` the HTTP status of the same outcome (the table above, 200 for
OK), so the gates' ``5..`` error rate and latency read gRPC like REST; refusals go to
``artpulse_http_refused_requests_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
import numpy as np
from fastapi import HTTPException
from google.protobuf.message import Message
from starlette.requests import Request

from .deps import api_caller
from .middleware import REFUSED_STATUSES
from .oip_codec import (
    NUMERIC_CONTENT_TYPES,
    OUTPUT_NAMES,
    OutputTensor,
    check_model,
    check_parameters,
    content_types,
    decode_inputs,
    model_metadata,
    select_outputs,
    server_metadata,
)
from .oip_inference import run_inference
from .oip_proto import grpc_predict_v2_pb2 as pb
from .oip_proto import grpc_predict_v2_pb2_grpc as pb_grpc
from .oip_tensors import (
    FLOAT_TYPES,
    INT_RANGES,
    MAX_DIMS,
    MAX_ID_CHARS,
    MAX_INPUTS,
    MAX_NAME_CHARS,
    MAX_PARAMETERS,
    RAW_DTYPES,
    InputTensor,
    OipError,
    cut,
    shown,
)
from .state import PREDICT_ROUTES, ServerState

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
INFER_METHOD = f"/{SERVICE}/ModelInfer"
MAX_CONCURRENT_RPCS = 1024
STOP_GRACE_SECONDS = 5.0

GRPC_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# A cancelled call (the client gave up) is not a server error.
CLIENT_CLOSED = 499

# Where the typed contents of each datatype are (FP16 has none: raw only).
CONTENT_FIELDS: dict[str, str] = {
    "FP64": "fp64_contents",
    "FP32": "fp32_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}

Reply = TypeVar("Reply", bound=Message)


# ---- decoding and encoding (pure) -------------------------------------------------------


def _parameters(
    params: Mapping[str, pb.InferParameter],
    where: str,
    allowed: frozenset[str] = NUMERIC_CONTENT_TYPES,
) -> None:
    if len(params) > MAX_PARAMETERS:
        raise OipError(f"'{where}' has {len(params)} entries, the limit is {MAX_PARAMETERS}")
    values: dict[str, Any] = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        values[key] = getattr(param, choice) if choice else None
    check_parameters(values, where, allowed)


def _raw_bytes_elements(where: str, raw: bytes) -> list[bytes]:
    """BYTES raw contents: each element a 4-byte little-endian length, then its bytes."""
    elements = []
    at = 0
    while at < len(raw):
        if len(raw) - at < 4:
            raise OipError(f"{where}: raw BYTES contents end inside an element's length")
        size = int.from_bytes(raw[at : at + 4], "little")
        at += 4
        if size > len(raw) - at:
            raise OipError(f"{where}: a raw BYTES element claims {size} bytes past the end")
        elements.append(raw[at : at + size])
        at += size
        if len(elements) > 1:
            break  # one image per request: the count is refused by image_tensor
    return elements


def _raw_array(where: str, datatype: str, raw: bytes) -> Any:
    if datatype == "BYTES":
        return _raw_bytes_elements(where, raw)
    dtype = RAW_DTYPES.get(datatype)
    if dtype is None:  # BOOL or unknown: refused by name in tensors_to_matrix
        return np.empty(0)
    size = np.dtype(dtype).itemsize
    if len(raw) % size:
        raise OipError(
            f"{where}: raw_input_contents has {len(raw)} bytes, not a whole number of "
            f"{datatype} elements ({size} bytes each)"
        )
    return np.frombuffer(raw, dtype=dtype)


def _typed_array(where: str, datatype: str, contents: pb.InferTensorContents) -> Any:
    if datatype == "BYTES":
        return list(contents.bytes_contents[:2])  # one image per request (image_tensor)
    field = CONTENT_FIELDS.get(datatype)
    if field is None:
        if datatype == "FP16":
            raise OipError(f"{where}: FP16 has no typed contents; send it as raw_input_contents")
        return np.empty(0)
    values = getattr(contents, field)
    if not values and contents.ByteSize():
        raise OipError(f"{where}: datatype {datatype} takes its data in contents.{field}")
    kind = (
        np.float64 if datatype in FLOAT_TYPES else np.uint64 if datatype == "UINT64" else np.int64
    )
    array = np.fromiter(values, dtype=kind, count=len(values))
    if datatype in INT_RANGES and array.size:
        # int_contents / uint_contents carry INT8/INT16 and UINT8/UINT16 in 32 bits.
        low, high = INT_RANGES[datatype]
        if int(array.min()) < low or int(array.max()) > high:
            raise OipError(f"{where}: a value is outside the range of {datatype} [{low}, {high}]")
    return array


def input_tensors(request: pb.ModelInferRequest) -> list[InputTensor]:
    """The request's inputs, typed ``contents`` or ``raw_input_contents``, as codec tensors."""
    if len(request.inputs) > MAX_INPUTS:
        raise OipError(f"'inputs' has {len(request.inputs)} tensors, the limit is {MAX_INPUTS}")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise OipError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs "
            "(one per input, in order)"
        )
    tensors = []
    for i, tensor in enumerate(request.inputs):
        if not tensor.name or len(tensor.name) > MAX_NAME_CHARS:
            raise OipError(f"inputs[{i}].name must be a string of 1 to {MAX_NAME_CHARS} characters")
        where = f"inputs[{i}] ({cut(tensor.name)!r})"
        if len(tensor.shape) > MAX_DIMS:
            raise OipError(f"{where}.shape must have 1 to {MAX_DIMS} dimensions")
        _parameters(tensor.parameters, f"inputs[{i}].parameters", content_types(tensor.datatype))
        if raw:
            if tensor.HasField("contents"):
                raise OipError(f"{where}: contents and raw_input_contents are both set")
            data = _raw_array(where, tensor.datatype, raw[i])
        else:
            data = _typed_array(where, tensor.datatype, tensor.contents)
        tensors.append(InputTensor(where, tensor.name, tensor.datatype, tuple(tensor.shape), data))
    return tensors


def infer_response(
    model_name: str, model_version: str, request_id: str, outputs: list[OutputTensor]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id
    )
    for o in outputs:
        out = response.outputs.add(name=o.name, datatype=o.datatype, shape=list(o.shape))
        for key, value in o.parameters.items():
            out.parameters[key].string_param = value
        if isinstance(o.data, list):
            out.contents.bytes_contents.extend(label.encode() for label in o.data)
        else:
            out.contents.fp64_contents.extend(o.data.tolist())
    return response


def metadata_response(meta: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    def tensors(items: list[dict[str, Any]]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(
                name=t["name"], datatype=t["datatype"], shape=t["shape"]
            )
            for t in items
        ]

    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=tensors(meta["inputs"]),
        outputs=tensors(meta["outputs"]),
    )


# ---- the service ------------------------------------------------------------------------


def _peer_host(peer: str) -> str:
    """``ipv4:10.0.0.5:41234`` -> ``10.0.0.5``; ``ipv6:[::1]:5`` -> ``::1``."""
    kind, _, address = peer.partition(":")
    if kind == "ipv6" and address.startswith("["):
        return address[1 : address.find("]")]
    if kind == "ipv4":
        return address.rsplit(":", 1)[0]
    return address or "unknown"


def call_request(context: grpc.aio.ServicerContext, method: str) -> Request:
    """The call as a Starlette request (metadata as headers), for ``deps``' checks."""
    headers = [
        (key.encode("latin-1", "replace"), value.encode("latin-1", "replace"))
        for key, value in context.invocation_metadata() or ()
        if isinstance(value, str)  # -bin metadata is bytes: never a credential
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": method,
        "raw_path": method.encode(),
        "query_string": b"",
        "headers": headers,
        "client": (_peer_host(context.peer() or ""), 0),
        "scheme": "grpc",
        "server": None,
        "root_path": "",
    }
    return Request(scope)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        name: str,
        handler: Callable[[Request], Awaitable[Reply]],
        *,
        authenticate: bool = False,
    ) -> Reply:
        method = f"/{SERVICE}/{name}"
        started = time.perf_counter()
        http = call_request(context, method)
        status = 500
        try:
            if authenticate:
                await api_caller(http, self.state)
            reply = await handler(http)
            status = 200
            return reply
        except OipError as exc:
            status = 404 if exc.not_found else 400
            await context.abort(GRPC_CODES[status], exc.message)
        except HTTPException as exc:
            status = exc.status_code
            code = GRPC_CODES.get(status, grpc.StatusCode.INTERNAL)
            await context.abort(code, cut(str(exc.detail), 1000))
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", method)
            await context.abort(
                grpc.StatusCode.INTERNAL, "internal error; the server log has the details"
            )
        finally:
            self._observe(http, method, status, time.perf_counter() - started)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _observe(self, http: Request, method: str, status: int, seconds: float) -> None:
        state = self.state
        model = http.scope.get("artpulse.model")
        name, version = (
            (model.name, model.version)
            if model is not None
            else (state.label_model, state.label_version)
        )
        if status in REFUSED_STATUSES:
            state.metrics.observe_refused(name, version, method, "POST", status)
            return
        state.metrics.observe_request(name, version, method, "POST", status, seconds)
        if method in PREDICT_ROUTES:
            state.request_stats.add(method, status, seconds)

    # ---- health and metadata ----------------------------------------------------------
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        async def live(_: Request) -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=True)

        return await self._serve(context, "ServerLive", live)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        async def ready(_: Request) -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self.state.readiness()[0])

        return await self._serve(context, "ServerReady", ready)

    def _served_model(self, name: str, version: str) -> Any:
        state = self.state
        model = state.model
        if model is None:
            if name != state.default_model_name:
                raise OipError(f"model {shown(name)} is not served here", not_found=True)
            return None
        check_model(model, name, version or None)
        return model

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        async def ready(_: Request) -> pb.ModelReadyResponse:
            model = self._served_model(request.name, request.version)
            return pb.ModelReadyResponse(ready=model is not None and self.state.readiness()[0])

        return await self._serve(context, "ModelReady", ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        async def metadata(_: Request) -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(**server_metadata())

        return await self._serve(context, "ServerMetadata", metadata)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        async def metadata(_: Request) -> pb.ModelMetadataResponse:
            model = self._served_model(request.name, request.version)
            if model is None:
                raise self._not_loaded()
            return metadata_response(model_metadata(model))

        return await self._serve(context, "ModelMetadata", metadata)

    def _not_loaded(self) -> HTTPException:
        return HTTPException(503, detail=f"no model loaded yet ({self.state.readiness()[1]})")

    # ---- inference --------------------------------------------------------------------
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        return await self._serve(
            context, "ModelInfer", lambda http: self._infer(request, http), authenticate=True
        )

    async def _infer(self, request: pb.ModelInferRequest, http: Request) -> pb.ModelInferResponse:
        state = self.state
        model = state.model
        if model is None:
            raise self._not_loaded()
        check_model(model, request.model_name, request.model_version or None)
        http.scope["artpulse.model"] = model
        if len(request.id) > MAX_ID_CHARS:
            raise OipError(f"'id' is {len(request.id)} characters, the limit is {MAX_ID_CHARS}")
        _parameters(request.parameters, "parameters")
        if len(request.outputs) > len(OUTPUT_NAMES):
            raise OipError(f"'outputs' lists {len(request.outputs)} tensors; the model has 2")
        for i, out in enumerate(request.outputs):
            _parameters(out.parameters, f"outputs[{i}].parameters")
        outputs = select_outputs([o.name for o in request.outputs] or None)
        decoded = decode_inputs(
            request.id or None,
            input_tensors(request),
            outputs,
            model.feature_names,
            state.settings.max_batch_rows,
        )
        return infer_response(
            model.name, model.version, request.id, await run_inference(state, model, decoded)
        )


async def start_grpc_server(state: ServerState) -> grpc.aio.Server:
    """Serve :class:`InferenceService` on ``GRPC_HOST:GRPC_PORT`` (default ``HOST``)."""
    settings = state.settings
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # A port already in use is an error, not a second server sharing it.
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(state), server)  # type: ignore[no-untyped-call]
    address = f"{settings.grpc_host or settings.host}:{settings.grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen for gRPC on {address} (GRPC_PORT): {exc}") from None
    await server.start()
    log.info("Open Inference Protocol gRPC on %s", address)
    return server


async def stop_grpc_server(server: grpc.aio.Server) -> None:
    await server.stop(STOP_GRACE_SECONDS)

"""The Open Inference Protocol (KServe v2) over REST, next to ``/predict``.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: server metadata and health;
- ``GET /v2/models/{name}[/versions/{version}]`` and ``.../ready``: model metadata and
  readiness (404 for a model or version that is not the served one);
- ``POST /v2/models/{name}[/versions/{version}]/infer``: inference, with the same
  credential (scope ``predict``), limits, validation, feature bounds, metrics, drift and
  shadow as ``/predict``.

The messages are checked by ``oip_codec`` and the tensors decoded by ``oip_tensors``
(both shared with gRPC). Every error answer is the
protocol's ``{"error": "..."}``: 400 for a bad request, 404 for an unknown model or
version, 401/403/429/413/415/503 as on ``/predict``. Like ``POST /predict``, the infer
routes are plain Starlette endpoints placed by ``app.create_app`` in front of the
documented FastAPI ones (same code, no per-request dependency solving); they name
their route template for the metrics, so the gate series see ``/v2/models/{name}/infer``,
never a raw path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from ..deps import State, api_caller
from ..inputs import read_body, require_json_content_type
from ..oip_codec import (
    check_model,
    error_body,
    model_metadata,
    parse_infer_body,
    response_body,
    server_metadata,
)
from ..oip_inference import run_inference
from ..oip_tensors import OipError, shown
from ..responses import json_response
from ..state import ServerState

router = APIRouter(tags=["open inference protocol"])

INFER_ROUTE = "/v2/models/{name}/infer"
INFER_VERSION_ROUTE = "/v2/models/{name}/versions/{version}/infer"
INFER_ROUTES = (INFER_ROUTE, INFER_VERSION_ROUTE)


def oip_error(status: int, message: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(error_body(message)),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def _not_loaded(state: ServerState) -> Response:
    return oip_error(503, f"no model loaded yet ({state.readiness()[1]})", {"Retry-After": "5"})


def parse_body(body: bytes) -> Any:
    if not body:
        raise OipError('empty body: send {"inputs": [...]}')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_error:
        # orjson refuses NaN/Infinity literals; the standard parser reads them, so the
        # tensor check can then name the input that holds one.
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise OipError(f"the body is not valid JSON: {fast_error}") from None
    except RecursionError:
        raise OipError("the body is nested too deeply") from None


async def infer(state: ServerState, request: Request, name: str, version: str | None) -> Response:
    model = state.model
    if model is None:
        return _not_loaded(state)
    check_model(model, name, version)
    request.scope["artpulse.model"] = model
    require_json_content_type(request)
    settings = state.settings
    body = parse_body(await read_body(request, settings.max_request_bytes))
    parsed = parse_infer_body(body, model, settings.max_batch_rows, path_version=version)
    outputs = await run_inference(state, model, parsed)
    return Response(
        orjson.dumps(response_body(model, parsed.id, outputs), option=orjson.OPT_SERIALIZE_NUMPY),
        media_type="application/json",
    )


async def infer_endpoint(request: Request) -> Response:
    """``POST .../infer`` as a plain Starlette endpoint (see the module docstring)."""
    state: ServerState = request.app.state.artpulse
    params = request.path_params
    version = params.get("version")
    request.scope["artpulse.route"] = INFER_ROUTE if version is None else INFER_VERSION_ROUTE
    try:
        await api_caller(request, state)
        return await infer(state, request, params["name"], version)
    except OipError as exc:
        return oip_error(404 if exc.not_found else 400, exc.message)
    except HTTPException as exc:
        return oip_error(exc.status_code, exc.detail, exc.headers)


INFER_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string", "maxLength": 256},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "description": "One tensor [N, n_features] (columns in the order "
                            "of the model metadata's inputs) or one tensor per feature, named "
                            "after it, shape [N] or [N, 1]; FP64/FP32/FP16/INT*/UINT*.",
                            "items": {"type": "object"},
                        },
                        "outputs": {
                            "type": "array",
                            "description": "probabilities and/or label (default both)",
                            "items": {"type": "object"},
                        },
                    },
                },
            }
        },
    }
}

INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": '{"error": ...}: the tensors do not fit the model (input named)'},
    401: {"description": "missing or invalid credential"},
    404: {"description": "the model or version in the path is not the one served"},
    413: {"description": "body too large"},
    429: {"description": "rate limit exceeded (see Retry-After)"},
    503: {"description": "no model loaded yet"},
}


@router.post(
    INFER_ROUTE,
    openapi_extra=INFER_BODY_SCHEMA,
    responses=INFER_RESPONSES,
    summary="Infer (Open Inference Protocol)",
)
async def infer_route(request: Request, name: str) -> Response:
    return await infer_endpoint(request)


@router.post(
    INFER_VERSION_ROUTE,
    openapi_extra=INFER_BODY_SCHEMA,
    responses=INFER_RESPONSES,
    summary="Infer on a version (Open Inference Protocol)",
)
async def infer_version_route(request: Request, name: str, version: str) -> Response:
    return await infer_endpoint(request)


@router.get("/v2", summary="Server metadata (Open Inference Protocol)")
async def server_metadata_route() -> Response:
    return json_response(server_metadata())


@router.get("/v2/health/live", summary="Server live (Open Inference Protocol)")
async def server_live(state: State) -> Response:
    return json_response({"live": True})


@router.get("/v2/health/ready", summary="Server ready (Open Inference Protocol)")
async def server_ready(state: State) -> Response:
    is_ready, _ = state.readiness()
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


def _metadata(state: ServerState, name: str, version: str | None) -> Response:
    model = state.model
    if model is None:
        if name != state.default_model_name:
            return oip_error(404, f"model {shown(name)} is not served here")
        return _not_loaded(state)
    try:
        check_model(model, name, version)
    except OipError as exc:
        return oip_error(404, exc.message)
    return json_response(model_metadata(model))


def _model_ready(state: ServerState, name: str, version: str | None) -> Response:
    model = state.model
    try:
        if model is not None:
            check_model(model, name, version)
        elif name != state.default_model_name:
            raise OipError(f"model {shown(name)} is not served here", not_found=True)
    except OipError as exc:
        return oip_error(404, exc.message)
    is_ready, _ = state.readiness()
    return json_response({"name": name, "ready": is_ready}, 200 if is_ready else 503)


@router.get("/v2/models/{name}", summary="Model metadata (Open Inference Protocol)")
async def model_metadata_route(state: State, name: str) -> Response:
    return _metadata(state, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}",
    summary="Model version metadata (Open Inference Protocol)",
)
async def model_version_metadata_route(state: State, name: str, version: str) -> Response:
    return _metadata(state, name, version)


@router.get("/v2/models/{name}/ready", summary="Model ready (Open Inference Protocol)")
async def model_ready_route(state: State, name: str) -> Response:
    return _model_ready(state, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    summary="Model version ready (Open Inference Protocol)",
)
async def model_version_ready_route(state: State, name: str, version: str) -> Response:
    return _model_ready(state, name, version)

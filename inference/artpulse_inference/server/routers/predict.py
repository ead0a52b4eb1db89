"""``POST /predict`` (feature rows) and ``POST /predict-image`` (JPEG/PNG upload).

The hot path: read the body with a size cap, parse with orjson, check the rows against
the model's feature schema into a float64 matrix, hand it to the micro-batcher, answer
with orjson. The model reference is taken once per request, so a reload in the middle
of a request cannot mix two models.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from artpulse_inference.core.features import (
    FEATURE_NAMES,
    ImageDecodeError,
    decode_image,
    extract_features,
)

from ..deps import ApiCaller, State, api_caller
from ..inputs import parse_json, read_body, read_image_upload, require_json_content_type
from ..model_store import LoadedModel, Prediction
from ..state import ServerState
from ..validation import RequestValidationFailure, rows_to_matrix

router = APIRouter(tags=["predict"])

_EXAMPLE_ROW = {name: 0.5 for name in FEATURE_NAMES}

PREDICT_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["rows"],
                    "additionalProperties": False,
                    "properties": {
                        "rows": {
                            "type": "array",
                            "minItems": 1,
                            "description": "Feature rows; each object has exactly the model's feature "
                            "columns (GET /metadata lists them) with finite numbers.",
                            "items": {"type": "object", "additionalProperties": {"type": "number"}},
                        }
                    },
                },
                "example": {"rows": [_EXAMPLE_ROW]},
            }
        },
    }
}

IMAGE_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JPEG or PNG"}
                    },
                }
            },
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def serving_model(state: ServerState, request: Request) -> LoadedModel:
    model = state.model
    if model is None:
        raise HTTPException(
            503,
            detail=f"no model loaded yet ({state.readiness()[1]})",
            headers={"Retry-After": "5"},
        )
    request.scope["artpulse.model"] = model
    return model


async def apply_faults(model: LoadedModel) -> None:
    """Injected latency and errors (only when ARTPULSE_ALLOW_FAULT_INJECTION=true at load)."""
    fault = model.fault
    if not fault.active:
        return
    if fault.latency_ms > 0:
        await asyncio.sleep(fault.latency_ms / 1000.0)
    if fault.error_rate > 0 and random.random() < fault.error_rate:
        raise HTTPException(
            500,
            detail=f"injected fault: artpulse.fault.error_rate={fault.error_rate:g} on version {model.version}",
        )


def render_predictions(
    model: LoadedModel, result: Prediction, extra: dict[str, Any] | None = None
) -> bytes:
    if result.probabilities is not None:
        classes = model.classes
        predictions: list[dict[str, Any]] = [
            {"label": label, "probabilities": dict(zip(classes, row, strict=True))}
            for label, row in zip(result.labels, result.probabilities.tolist(), strict=True)
        ]
    else:
        predictions = [{"label": label} for label in result.labels]
    payload: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version},
        "predictions": predictions,
    }
    if extra:
        payload.update(extra)
    return orjson.dumps(payload)


async def predict_rows(state: ServerState, request: Request) -> Response:
    model = serving_model(state, request)
    require_json_content_type(request)
    body = parse_json(await read_body(request, state.settings.max_request_bytes))
    try:
        X = rows_to_matrix(body, model.feature_names, state.settings.max_batch_rows)
    except RequestValidationFailure as exc:
        raise HTTPException(422, detail=exc.errors) from None
    await apply_faults(model)
    result = await state.predict(model, X)
    return Response(render_predictions(model, result), media_type="application/json")


async def predict_image(state: ServerState, request: Request) -> Response:
    model = serving_model(state, request)
    if not model.image_features_supported:
        missing = sorted(set(model.feature_names) - set(FEATURE_NAMES))
        raise HTTPException(
            409,
            detail=f"model {model.uri} expects features the image extractor does not produce: {', '.join(missing)}",
        )
    data = await read_image_upload(request, state.settings.max_image_bytes)
    try:
        # Decoding is CPU work: keep it off the event loop.
        features = await asyncio.to_thread(
            _features_of, data, state.settings.max_image_bytes, state.settings.max_image_pixels
        )
    except ImageDecodeError as exc:
        # Too many bytes or pixels (a decompression bomb included) is "too large"; the rest
        # (corrupt, truncated, unreadable) is unprocessable.
        message = str(exc)
        status = 413 if ("too large" in message or "decompression bomb" in message) else 422
        raise HTTPException(status, detail=f"image refused: {exc}") from None
    await apply_faults(model)
    X = model.image_row(features)
    result = await state.predict(model, X)
    return Response(
        render_predictions(model, result, {"features": features}), media_type="application/json"
    )


def _features_of(data: bytes, max_bytes: int, max_pixels: int) -> dict[str, float]:
    return extract_features(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels))


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid credential"},
    413: {"description": "body too large"},
    415: {"description": "wrong content type"},
    422: {"description": "the rows do not match the model's feature schema (row and field named)"},
    429: {"description": "rate limit exceeded (see Retry-After)"},
    503: {"description": "no model loaded yet"},
}


@router.post(
    "/predict",
    openapi_extra=PREDICT_BODY_SCHEMA,
    responses=PREDICT_RESPONSES,
    summary="Predict feature rows",
)
async def predict(request: Request, state: State, caller: ApiCaller) -> Response:
    return await predict_rows(state, request)


@router.post(
    "/predict-image",
    openapi_extra=IMAGE_BODY_SCHEMA,
    responses=PREDICT_RESPONSES,
    summary="Predict an image",
)
async def predict_image_route(request: Request, state: State, caller: ApiCaller) -> Response:
    return await predict_image(state, request)


async def predict_fast_endpoint(request: Request) -> Response:
    """``POST /predict`` as a plain Starlette endpoint, without FastAPI's per-request
    dependency solving (measured at a third of the CPU of a one-row prediction).

    ``app.create_app`` puts it in front of the documented route above, which stays for
    the OpenAPI schema; both run the same auth, limit and prediction code. Errors are
    HTTPExceptions and get the same JSON answers from the app's handlers.
    """
    state: ServerState = request.app.state.artpulse
    # FastAPI's router records only its own routes in scope["route"]; name ours for metrics.
    request.scope["artpulse.route"] = "/predict"
    await api_caller(request, state)
    return await predict_rows(state, request)

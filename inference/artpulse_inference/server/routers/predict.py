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

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Request, Response

from artpulse_inference.core.features import FEATURE_NAMES, ImageDecodeError, ImageTooLarge

from ..deps import ApiCaller, State, api_caller
from ..error_bodies import bounded_errors
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


# Named in a 413 so an operator knows which setting refused the image.
IMAGE_LIMIT_SETTINGS = {
    "max_bytes": "MAX_IMAGE_BYTES",
    "max_pixels": "MAX_IMAGE_PIXELS",
    "max_decoded_bytes": "MAX_IMAGE_DECODED_BYTES",
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


def require_finite_output(model: LoadedModel, result: Prediction) -> None:
    """A NaN or infinite probability never reaches a client (it would render as null)."""
    proba = result.probabilities
    if proba is not None and not np.isfinite(proba).all():
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(proba))[0]})
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise HTTPException(
            422,
            detail=f"the input produced a non-finite model output (NaN or infinity) for "
            f"row(s) {shown}; send feature values on the scale of the training data "
            f"(GET /metadata)",
        )


async def predict_rows(state: ServerState, request: Request, *, demo: bool = False) -> Response:
    """Rows from the body through the model. ``demo`` rows are capped at DEMO_MAX_ROWS and
    kept out of drift and shadow (the gates read production traffic only)."""
    model = serving_model(state, request)
    require_json_content_type(request)
    body = parse_json(await read_body(request, state.settings.max_request_bytes))
    settings = state.settings
    max_rows = settings.demo_max_rows if demo else settings.max_batch_rows
    try:
        X = rows_to_matrix(body, model.feature_names, max_rows)
        X = state.feature_bounds.apply(model, X)
    except RequestValidationFailure as exc:
        errors = exc.errors
        if demo and errors and errors[0]["type"] == "too_long":
            errors[0]["msg"] += " on the public demo (DEMO_MAX_ROWS)"
        raise HTTPException(422, detail=bounded_errors(errors)) from None
    await apply_faults(model)
    result = await state.predict(model, X, production=not demo)
    require_finite_output(model, result)
    return Response(render_predictions(model, result), media_type="application/json")


async def predict_image(state: ServerState, request: Request, *, demo: bool = False) -> Response:
    model = serving_model(state, request)
    if not model.image_features_supported:
        missing = sorted(set(model.feature_names) - set(FEATURE_NAMES))
        raise HTTPException(
            409,
            detail=f"model {model.uri} expects features the image extractor does not produce: {', '.join(missing)}",
        )
    data = await read_image_upload(request, state.settings.max_image_bytes)
    try:
        # Off the event loop, at most IMAGE_DECODE_CONCURRENCY at a time.
        features = await state.image_decoder.features(data)
    except ImageTooLarge as exc:
        setting = IMAGE_LIMIT_SETTINGS.get(exc.limit, exc.limit)
        raise HTTPException(413, detail=f"image refused: {exc} ({setting})") from None
    except ImageDecodeError as exc:
        # Corrupt, truncated, animated or not an image: unprocessable.
        raise HTTPException(422, detail=f"image refused: {exc}") from None
    await apply_faults(model)
    X = model.image_row(features)
    result = await state.predict(model, X, production=not demo)
    require_finite_output(model, result)
    return Response(
        render_predictions(model, result, {"features": features}), media_type="application/json"
    )


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid credential"},
    413: {"description": "body too large, or an image over its pixel or decode budget"},
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

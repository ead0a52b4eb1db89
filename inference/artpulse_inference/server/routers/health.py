"""``/health`` (the process is up), ``/ready`` (the expected model is loaded), ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import State
from ..responses import json_response

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health(state: State) -> Response:
    return json_response({"status": "ok"})


@router.get("/ready", summary="Readiness: the expected model version is loaded")
async def ready(state: State) -> Response:
    is_ready, reason = state.readiness()
    model = state.model
    body = {
        "ready": is_ready,
        "reason": reason,
        "expected_version": state.settings.model_version or None,
        "loaded_version": model.version if model else None,
    }
    return json_response(body, 200 if is_ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

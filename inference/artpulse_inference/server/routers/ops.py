"""``GET /metadata`` (public model facts), ``GET /ops/summary`` and ``POST /reload-model``.

The ops routes need an ops credential (``deps.OpsCaller``); the reload, which changes
state, also passes the CSRF guard (``deps.OpsWriteCaller``: ``x-artpulse-csrf`` header,
same or trusted Origin).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..deps import OpsCaller, OpsWriteCaller, State
from ..model_store import LoadedModel, ModelLoadError, parse_models_uri
from ..responses import json_response
from ..state import ServerState

router = APIRouter(tags=["ops"])


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_uri: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^models:/[^/@]+(/[^/@]+|@[^/@]+)$",
        description="models:/<name>/<version> or models:/<name>@<alias>; default MODEL_URI",
    )


def _model_facts(model: LoadedModel | None, state: ServerState) -> dict[str, Any]:
    settings = state.settings
    if model is None:
        return {
            "name": state.default_model_name,
            "version": None,
            "alias": settings.model_alias or None,
            "uri": settings.model_uri or None,
            "loaded": False,
        }
    return {
        "name": model.name,
        "version": model.version,
        "alias": settings.model_alias or model.alias or None,
        "uri": model.uri,
        "run_id": model.run_id,
        "flavor": model.flavor,
        "classes": list(model.classes),
        "feature_names": list(model.feature_names),
        "feature_schema": [
            {"name": n, "type": "double", "range": [0.0, 1.0]} for n in model.feature_names
        ],
        "image_input": model.image_features_supported,
        "loaded": True,
        "loaded_at": model.loaded_at,
        "registry_aliases": model.registry_aliases,
    }


@router.get("/metadata", summary="What this server serves")
async def metadata(state: State) -> Response:
    settings = state.settings
    return json_response(
        {
            "model": _model_facts(state.model, state),
            "track": settings.artpulse_track,
            "expected_version": settings.model_version or None,
            "limits": {
                "max_batch_rows": settings.max_batch_rows,
                "max_request_bytes": settings.max_request_bytes,
                "max_image_bytes": settings.max_image_bytes,
                "max_image_pixels": settings.max_image_pixels,
                "max_image_decoded_bytes": settings.max_image_decoded_bytes,
                "image_decode_concurrency": settings.image_decode_concurrency,
            },
            "auth": {
                "predict_requires_credential": settings.predict_auth_required,
                "demo_enabled": state.demo.enabled,
            },
        }
    )


def _quality_status(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    passed = report.get("passed")
    if passed is None and isinstance(report.get("status"), str):
        passed = report["status"].lower() in ("passed", "pass", "ok")
    return {
        "passed": passed,
        "skipped": bool(report.get("skipped", False)),
        "failed_checks": [
            c.get("name")
            for c in report.get("checks", [])
            if isinstance(c, dict) and c.get("passed") is False
        ],
        "warnings": report.get("warnings", []),
    }


@router.get("/ops/summary", summary="Operational summary (ops credential)")
async def ops_summary(state: State, caller: OpsCaller) -> Response:
    model = state.model
    settings = state.settings
    ready, reason = state.readiness()
    stats = state.request_stats.summary()
    last = state.last_reload
    summary = model.training_summary if model else None
    return json_response(
        {
            "model": _model_facts(model, state),
            "track": settings.artpulse_track,
            "ready": ready,
            "ready_reason": reason,
            "run_id": model.run_id if model else None,
            "feature_schema": list(model.feature_names) if model else [],
            "requests": stats,
            "request_count": stats["requests_total"],
            "error_rate": stats["error_rate"],
            "p95_latency_ms": stats["p95_latency_ms"],
            "inference_p95_ms": state.inference_p95_ms(),
            "batching": {"model_calls": state.batcher.batches, "rows": state.batcher.rows},
            "drift": state.drift.summary(),
            "shadow": state.shadow.summary()
            | {
                "configured_uri": settings.shadow_model_uri or None,
                "load_error": state.shadow_load_error,
            },
            "last_reload": None
            if last is None
            else {
                "at": last.at,
                "uri": last.uri,
                "ok": last.ok,
                "version": last.version,
                "message": last.message,
                "seconds": last.seconds,
            },
            "training": {
                "run_started_at": model.run_started_at if model else None,
                "summary": summary,
                "quality_gate": _quality_status(model.quality_report if model else None),
            },
            "fault_injection": {
                "latency_ms": model.fault.latency_ms,
                "error_rate": model.fault.error_rate,
            }
            if model
            else None,
            "uptime_seconds": time.time() - state.started_at,
            "caller": caller.subject,
        }
    )


def served_model_name(state: ServerState) -> str | None:
    """MODEL_NAME, else the name in MODEL_URI; None when the server is given neither."""
    settings = state.settings
    if settings.model_name:
        return settings.model_name
    try:
        return parse_models_uri(settings.model_uri)[0] if settings.model_uri else None
    except ModelLoadError:
        return None


def foreign_model_refusal(uri: str, served: str | None) -> str | None:
    """Why ``uri`` may not be loaded here, or None: only versions of the served model may.

    Anyone who can register a model in MLflow can name it anything; a reload must never
    swap in another registered model, whatever its format.
    """
    try:
        name, _, _ = parse_models_uri(uri)
    except ModelLoadError:
        return f"{uri[:200]!r} is not models:/<name>/<version> or models:/<name>@<alias>"
    if served is None:
        return "this server has no MODEL_NAME or MODEL_URI, so it reloads no other URI"
    if name != served:
        return (
            f"only versions of the served model {served!r} can be loaded here, "
            f"not of {name[:200]!r}"
        )
    return None


@router.post(
    "/reload-model",
    summary="Load the model again (or another URI) and swap it in without dropping requests",
    responses={
        409: {"description": "reload failed or model refused; the previous model keeps serving"},
        422: {"description": "model_uri is not a version of the served MODEL_NAME"},
    },
)
async def reload_model(
    request: Request, state: State, caller: OpsWriteCaller, body: ReloadRequest | None = None
) -> Response:
    if body is not None and body.model_uri is not None:
        refusal = foreign_model_refusal(body.model_uri, served_model_name(state))
        if refusal is not None:
            raise HTTPException(422, detail=f"model_uri: {refusal}")
    record = await state.reload(body.model_uri if body else None)
    payload = {
        "ok": record.ok,
        "uri": record.uri,
        "version": record.version,
        "message": record.message,
        "seconds": record.seconds,
        "serving": state.model.uri if state.model else None,
        "ready": state.readiness()[0],
    }
    if not record.ok:
        raise HTTPException(409, detail=payload)
    return json_response(payload)

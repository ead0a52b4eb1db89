"""The public demo behind the landing page: mint a short-lived token, check status, predict.

``POST /demo/token`` is open but rate-limited per address; ``/demo/status`` and
``/demo/predict`` accept only demo tokens (signed with the rotating ``DEMO_JWK_*`` keys,
never the main API's credentials) and have their own per-address limit, checked before
the token. Demo rows are capped at ``DEMO_MAX_ROWS`` per request and never reach the drift
window or the shadow comparison; their requests are counted under ``route="/demo/predict"``,
which the rollout gates do not read.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from ..deps import DemoCaller, State, client_address, enforce_rate_limit
from ..responses import json_response
from .predict import IMAGE_BODY_SCHEMA, PREDICT_BODY_SCHEMA, predict_image, predict_rows

router = APIRouter(prefix="/demo", tags=["demo"])

_DEMO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **PREDICT_BODY_SCHEMA["requestBody"]["content"],
            **IMAGE_BODY_SCHEMA["requestBody"]["content"],
        },
    }
}


@router.post("/token", summary="Mint a short-lived demo token")
async def demo_token(request: Request, state: State) -> Response:
    if not state.demo.enabled:
        raise HTTPException(404, detail="the public demo is not enabled on this server")
    client = client_address(request, state)
    enforce_rate_limit(state.demo_token_limiter, f"ip:{client}", "demo token minting")
    token, claims = state.demo.mint()
    return json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.demo.ttl_seconds,
            "expires_at": claims["exp"],
            "kid": state.demo.current_kid,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/status", summary="Demo status (demo token)")
async def demo_status(request: Request, state: State, caller: DemoCaller) -> Response:
    model = state.model
    ready, reason = state.readiness()
    return json_response(
        {
            "ready": ready,
            "reason": reason,
            "model": {"name": model.name, "version": model.version} if model else None,
            "track": state.settings.artpulse_track,
            "feature_names": list(model.feature_names) if model else [],
            "classes": list(model.classes) if model else [],
            "image_input": model.image_features_supported if model else False,
            "rate_limit_per_minute": state.demo_limiter.per_minute,
            "max_rows": state.settings.demo_max_rows,
            "subject": caller.subject,
        }
    )


@router.post("/predict", openapi_extra=_DEMO_BODY, summary="Predict rows or an image (demo token)")
async def demo_predict(request: Request, state: State, caller: DemoCaller) -> Response:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if (
        media.startswith("multipart/")
        or media.startswith("image/")
        or media == "application/octet-stream"
    ):
        return await predict_image(state, request, demo=True)
    return await predict_rows(state, request, demo=True)

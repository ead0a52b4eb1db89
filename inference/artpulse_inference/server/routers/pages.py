"""``GET /`` (landing page with the try-it flow) and ``GET /admin`` (ops panel).

The pages are static shells: the landing page's data comes from ``/metadata`` and the
``/demo/*`` endpoints, the panel's from ``/ops/summary`` (authenticated: by the
identity-aware proxy's headers, or an API key the operator types in, kept in the tab's
sessionStorage). The shells carry no data and no secret, so serving them openly gives
nothing away. The base URL shown in the examples follows ``x-forwarded-proto`` and
``x-forwarded-host`` so it is right behind an ingress.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..deps import State

router = APIRouter(tags=["pages"], include_in_schema=False)

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
PAGE_HEADERS = {
    # No inline script or style: everything comes from /static, fetches go to this origin.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def public_base_url(request: Request) -> str:
    """scheme://host as the client sees it, from the first value of the forwarded headers."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = request.url.scheme
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    if not host or not _HOST.match(host):
        host = request.headers.get("host", "")
        if not _HOST.match(host):
            host = f"{request.url.hostname or 'localhost'}:{request.url.port or 80}"
    return f"{proto}://{host}"


@lru_cache(maxsize=8)
def _template(name: str) -> str:
    return (
        resources.files("artpulse_inference")
        .joinpath("templates", name)
        .read_text(encoding="utf-8")
    )


def render(name: str, values: dict[str, str]) -> str:
    text = _template(name)
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", html.escape(value, quote=True))
    return text


@router.get("/", response_class=HTMLResponse)
async def landing(request: Request, state: State) -> HTMLResponse:
    model = state.model
    values = {
        "base_url": public_base_url(request),
        "model_name": model.name if model else state.default_model_name,
        "model_version": model.version if model else "not loaded",
        "track": state.settings.artpulse_track,
        "demo_enabled": "true" if state.demo.enabled else "false",
    }
    return HTMLResponse(render("landing.html", values), headers=PAGE_HEADERS)


@router.get("/admin", response_class=HTMLResponse)
async def admin(request: Request, state: State) -> HTMLResponse:
    values = {
        "base_url": public_base_url(request),
        "oidc": "true" if state.proxy_identity.active else "false",
    }
    return HTMLResponse(render("admin.html", values), headers=PAGE_HEADERS)

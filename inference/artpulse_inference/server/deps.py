"""FastAPI dependencies: the server state, and who may call what.

Routers declare ``state: State`` and one of ``ApiCaller`` (``/predict*``), ``OpsCaller``
(``/ops/*``, ``/reload-model``) or ``DemoCaller`` (``/demo/predict``, ``/demo/status``).
Each auth decision writes one audit line; a refused one becomes 401/403, an exhausted
rate limit 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .audit import audit
from .ratelimit import RateDecision, RateLimiter
from .security import AuthError, Principal, bearer_token
from .state import ServerState

ANONYMOUS = Principal("anonymous", "")

# Every dependency below is async on purpose: FastAPI runs plain `def` dependencies in a
# worker thread, a hand-off per dependency that cost more than the whole prediction.


async def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.artpulse
    return state


State = Annotated[ServerState, Depends(get_state)]


def client_address(request: Request, state: ServerState) -> str:
    if state.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else "unknown"


def _decide(
    request: Request, state: ServerState, client: str, check: Principal | AuthError
) -> Principal:
    route = request.url.path
    if isinstance(check, AuthError):
        audit(
            route=route,
            method=request.method,
            client=client,
            scheme=check.scheme,
            principal=check.principal,
            allowed=False,
            reason=check.reason,
        )
        headers = {"WWW-Authenticate": "Bearer"} if check.status == 401 else None
        raise HTTPException(check.status, detail=check.reason, headers=headers)
    audit(
        route=route,
        method=request.method,
        client=client,
        scheme=check.scheme,
        principal=check.subject,
        allowed=True,
        reason="ok",
    )
    return check


def _api_credential(request: Request, state: ServerState) -> Principal | AuthError:
    key = request.headers.get("x-api-key")
    if key is not None:
        if not state.api_keys.enabled:
            return AuthError(401, "API keys are not configured on this server", scheme="api_key")
        try:
            return state.api_keys.check(key)
        except AuthError as exc:
            return exc
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        if not state.jwt.enabled:
            return AuthError(
                401,
                "bearer tokens are not configured on this server (JWT_SECRET unset)",
                scheme="jwt",
            )
        try:
            return state.jwt.verify(token)
        except AuthError as exc:
            return exc
    return AuthError(401, "missing credential: send x-api-key or Authorization: Bearer <token>")


def enforce_rate_limit(limiter: RateLimiter, key: str, who: str) -> RateDecision:
    decision = limiter.hit(key)
    if not decision.allowed:
        raise HTTPException(
            429,
            detail=f"rate limit exceeded for {who}: {limiter.per_minute:g} requests per minute "
            f"(burst {limiter.burst}); retry in {decision.retry_after_seconds}s",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )
    return decision


async def api_caller(request: Request, state: State) -> Principal:
    client = client_address(request, state)
    if state.settings.predict_auth_required:
        principal = _decide(request, state, client, _api_credential(request, state))
    else:
        principal = ANONYMOUS
    if state.api_limiter.enabled:
        enforce_rate_limit(state.api_limiter, principal.subject or f"ip:{client}", "this client")
    return principal


async def ops_caller(request: Request, state: State) -> Principal:
    client = client_address(request, state)
    oidc = state.oidc
    email = request.headers.get(oidc.header)
    if oidc.trusted and email is not None:
        try:
            check: Principal | AuthError = oidc.check(email)
        except AuthError as exc:
            check = exc
        return _decide(request, state, client, check)
    check = _api_credential(request, state)
    if isinstance(check, AuthError) and email is not None and not oidc.trusted:
        check.reason += (
            f"; the {oidc.header} header is ignored (OPS_OIDC_TRUST_HEADERS is not true)"
        )
    return _decide(request, state, client, check)


async def demo_caller(request: Request, state: State) -> Principal:
    client = client_address(request, state)
    if not state.demo.enabled:
        raise HTTPException(404, detail="the public demo is not enabled on this server")
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        check: Principal | AuthError = AuthError(
            401,
            "missing demo token: POST /demo/token, then send Authorization: Bearer <token>",
            scheme="demo",
        )
    else:
        try:
            check = state.demo.verify(token)
        except AuthError as exc:
            check = exc
    principal = _decide(request, state, client, check)
    # Per address, not per token: minting a fresh token must not reset the limit.
    enforce_rate_limit(state.demo_limiter, f"ip:{client}", "demo clients")
    return principal


ApiCaller = Annotated[Principal, Depends(api_caller)]
OpsCaller = Annotated[Principal, Depends(ops_caller)]
DemoCaller = Annotated[Principal, Depends(demo_caller)]

"""FastAPI dependencies: the server state, and who may call what.

Routers declare ``state: State`` and one of ``ApiCaller`` (``/predict*``, scope
``predict``), ``OpsCaller`` (``GET /ops/*``, scope ``ops``), ``OpsWriteCaller``
(``POST /reload-model`` and any ops POST: the CSRF guard, then scope ``ops``) or
``DemoCaller`` (``/demo/predict``, ``/demo/status``). A predict credential never reaches
an ops route (403 naming the credential needed); the identity proxy's headers count
only with its proof (``proxy_identity``).
Each auth decision writes one audit line; a refused one becomes 401/403, an exhausted
rate limit 429 with ``Retry-After``.

Before any credential is looked at, :func:`guard_address` refuses (429) a client address
that failed authentication ``AUTH_FAILURE_LIMIT_PER_MINUTE`` times in the last minute, or
that exhausted its route family's per-address limit (predict, ops, demo). A failed check
takes a token from the failure throttle and counts in ``artpulse_auth_failures_total``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from .audit import audit
from .csrf import CSRF_HEADER
from .forwarded import client_from_forwarded
from .ratelimit import RateDecision, RateLimiter
from .security import SCOPE_OPS, SCOPE_PREDICT, AuthError, Principal, bearer_token, require_scope
from .state import ServerState

ANONYMOUS = Principal("anonymous", "")

# Every dependency below is async on purpose: FastAPI runs plain `def` dependencies in a
# worker thread, a hand-off per dependency that cost more than the whole prediction.


async def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.artpulse
    return state


State = Annotated[ServerState, Depends(get_state)]


def client_address(request: Request, state: ServerState) -> str:
    """The socket peer, or the X-Forwarded-For entry of the outermost trusted proxy."""
    peer = request.client.host if request.client else None
    hops = state.settings.proxy_hops
    if hops == 0:
        return peer or "unknown"
    return client_from_forwarded(peer, request.headers.getlist("x-forwarded-for"), hops)


def guard_address(
    request: Request, state: ServerState, client: str, family: str, limiter: RateLimiter
) -> None:
    """The checks that run before authentication: the failed-auth throttle, then the
    family's per-address limit. Both answer 429 with Retry-After."""
    request.scope["artpulse.family"] = family
    throttle = state.auth_failure_limiter
    blocked = throttle.peek(f"ip:{client}")
    if not blocked.allowed:
        state.metrics.auth_failures_total.labels(family, "none", "throttled").inc()
        audit(
            route=request.url.path,
            method=request.method,
            client=client,
            scheme="none",
            principal="",
            allowed=False,
            reason="throttled: too many failed authentications from this address",
        )
        raise HTTPException(
            429,
            detail=f"too many failed authentications from this address "
            f"(AUTH_FAILURE_LIMIT_PER_MINUTE={throttle.per_minute:g}); "
            f"retry in {blocked.retry_after_seconds}s",
            headers={"Retry-After": str(blocked.retry_after_seconds)},
        )
    if limiter.enabled:
        enforce_rate_limit(limiter, f"ip:{client}", f"{family} clients at this address")


def _failure_reason(check: AuthError) -> str:
    """A bounded label value for the failures counter (the reason text is free-form)."""
    if check.status == 403:
        return "forbidden"
    if check.reason.startswith("missing"):
        return "missing_credential"
    return "invalid_credential"


def _decide(
    request: Request, state: ServerState, client: str, check: Principal | AuthError
) -> Principal:
    route = request.url.path
    if isinstance(check, AuthError):
        family = str(request.scope.get("artpulse.family", "predict"))
        state.auth_failure_limiter.hit(f"ip:{client}")
        reason = _failure_reason(check)
        state.metrics.auth_failures_total.labels(family, check.scheme, reason).inc()
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


async def _api_credential(
    request: Request, state: ServerState, scope: str
) -> Principal | AuthError:
    """The x-api-key or bearer credential, if it grants ``scope`` (else 403 naming it)."""
    for name in ("x-api-key", "authorization"):
        if len(request.headers.getlist(name)) > 1:
            return AuthError(400, f"the {name} header appears more than once; send one credential")
    key = request.headers.get("x-api-key")
    token = bearer_token(request.headers.get("authorization"))
    try:
        if key is not None:
            if not state.api_keys.enabled:
                raise AuthError(401, "API keys are not configured on this server", scheme="api_key")
            principal = state.api_keys.check(key)
        elif token is not None:
            if not state.jwt.enabled:
                raise AuthError(
                    401,
                    "bearer tokens are not configured on this server "
                    "(JWT_SECRET and JWT_JWKS_URL unset)",
                    scheme="jwt",
                )
            if state.jwt.may_fetch(token):
                # The JWKS fetch blocks (up to JWT_JWKS_TIMEOUT_SECONDS): not on the loop.
                principal = await asyncio.to_thread(state.jwt.verify, token)
            else:
                principal = state.jwt.verify(token)
        else:
            raise AuthError(
                401, "missing credential: send x-api-key or Authorization: Bearer <token>"
            )
        return require_scope(principal, scope, request.url.path)
    except AuthError as exc:
        return exc


async def _ops_credential(request: Request, state: ServerState) -> Principal | AuthError:
    """The identity proxy's proven email, else an ops-scoped x-api-key or bearer token."""
    proxy = state.proxy_identity
    try:
        asserted = proxy.read(request.headers.getlist)
        if asserted.proven and asserted.email is not None:
            return proxy.principal_for(asserted.email)
    except AuthError as exc:
        return exc
    check = await _api_credential(request, state, SCOPE_OPS)
    if isinstance(check, AuthError) and asserted.ignored_because:
        check.reason += f"; {asserted.ignored_because}"
    return check


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
    guard_address(request, state, client, "predict", state.predict_address_limiter)
    if state.settings.predict_auth_required:
        check = await _api_credential(request, state, SCOPE_PREDICT)
        principal = _decide(request, state, client, check)
    else:
        principal = ANONYMOUS
    if state.api_limiter.enabled:
        enforce_rate_limit(state.api_limiter, principal.subject or f"ip:{client}", "this client")
    return principal


async def ops_caller(request: Request, state: State) -> Principal:
    client = client_address(request, state)
    guard_address(request, state, client, "ops", state.ops_limiter)
    return _decide(request, state, client, await _ops_credential(request, state))


async def ops_write_caller(request: Request, state: State) -> Principal:
    """``ops_caller`` for state-changing POSTs: the CSRF guard runs first (403)."""
    client = client_address(request, state)
    guard_address(request, state, client, "ops", state.ops_limiter)
    headers = request.headers
    refusal = state.csrf.refusal(
        origin=headers.get("origin"),
        host=headers.get("host"),
        fetch_site=headers.get("sec-fetch-site"),
        marker=headers.get(CSRF_HEADER),
    )
    if refusal is not None:
        _decide(request, state, client, AuthError(403, refusal, scheme="csrf"))
    return _decide(request, state, client, await _ops_credential(request, state))


async def demo_caller(request: Request, state: State) -> Principal:
    client = client_address(request, state)
    if not state.demo.enabled:
        raise HTTPException(404, detail="the public demo is not enabled on this server")
    # Per address, not per token, and before the token is checked: minting a fresh token
    # must not reset the limit, and a flood of bad tokens is throttled like good ones.
    guard_address(request, state, client, "demo", state.demo_limiter)
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
    return _decide(request, state, client, check)


ApiCaller = Annotated[Principal, Depends(api_caller)]
OpsCaller = Annotated[Principal, Depends(ops_caller)]
OpsWriteCaller = Annotated[Principal, Depends(ops_write_caller)]
DemoCaller = Annotated[Principal, Depends(demo_caller)]

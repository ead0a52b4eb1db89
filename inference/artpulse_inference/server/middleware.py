"""Request metrics as a plain ASGI middleware (no BaseHTTPMiddleware: it is on every request).

Installed by ``app.create_app``. Times each HTTP request from the first call to the last
body byte, takes the route template from the matched route (``scope["route"]``, never the
raw path, so label cardinality stays bounded) and records it in Prometheus and, for
prediction routes, in the recent-request stats behind /ops/summary. Refused requests
(401/403/429) go to a series of their own and not into those stats.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .state import PREDICT_ROUTES, ServerState

# Refused before serving (no or bad credential, throttled): counted in
# artpulse_http_refused_requests_total, never in the request series the gates read, so an
# anonymous flood can neither dilute the error rate nor pull the p95 down.
REFUSED_STATUSES = frozenset({401, 403, 429})


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            state = self.state
            status = status_holder[0]
            # The model that served the request (set by the predict routes), so a request
            # that straddles a reload is counted against the version that answered it.
            model = scope.get("artpulse.model")
            if model is not None:
                name, version = model.name, model.version
            else:
                name, version = state.label_model, state.label_version
            if status in REFUSED_STATUSES:
                state.metrics.observe_refused(name, version, route, scope["method"], status)
            else:
                state.metrics.observe_request(
                    name, version, route, scope["method"], status, elapsed
                )
                if route in PREDICT_ROUTES:
                    state.request_stats.add(route, status, elapsed)


def _route_label(scope: Scope) -> str:
    named = scope.get("artpulse.route")
    if named is not None:
        return str(named)
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path or "/"
    return "unmatched"

"""The FastAPI application factory of the inference server.

``create_app(settings)`` is called by ``__main__.main`` (``artpulse-server``) and by the
tests. It wires the state (model store, batcher, drift monitor, shadow mirror, auth,
limits, metrics), the routers (the Open Inference Protocol's among them; its gRPC
service runs on ``GRPC_PORT`` when set, started and stopped with the app), the metrics
middleware and the error handlers that turn anything unexpected into a JSON 500 without
a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from .audit import configure_audit_logging
from .error_bodies import validation_error_response
from .http_limits import BodyReadTimeoutMiddleware
from .middleware import RequestMetricsMiddleware
from .routers import demo, health, oip, ops, pages, predict
from .settings import Settings
from .state import ModelLoader, ServerState

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, loader: ModelLoader | None = None) -> FastAPI:
    """Build the app. ``loader`` replaces the MLflow loader (unit tests of pure wiring only)."""
    configure_audit_logging()
    state = ServerState(settings, loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        grpc_server = None
        try:
            if settings.grpc_port:
                # Imported only when enabled: no gRPC runtime in a server that does not use it.
                from .oip_grpc import start_grpc_server

                grpc_server = await start_grpc_server(state)
            yield
        finally:
            if grpc_server is not None:
                from .oip_grpc import stop_grpc_server

                await stop_grpc_server(grpc_server)
            await state.stop()

    app = FastAPI(
        title="ArtPulse inference",
        version="0.1.0",
        description="Serves one MLflow model version with metrics, drift and shadow comparison.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.artpulse = state
    # The hot path first: a plain route for POST /predict matched before the FastAPI one,
    # which remains for the OpenAPI schema (see routers.predict.predict_fast_endpoint).
    app.router.routes.append(Route("/predict", predict.predict_fast_endpoint, methods=["POST"]))
    # The same for the Open Inference Protocol's infer routes (routers.oip.infer_endpoint).
    for path in oip.INFER_ROUTES:
        app.router.routes.append(Route(path, oip.infer_endpoint, methods=["POST"]))
    for module in (health, predict, oip, ops, demo, pages):
        app.include_router(module.router)
    static_dir = resources.files("artpulse_inference").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error; the server log has the details"}, status_code=500
        )

    # Bounded 422 bodies: FastAPI's default echoes every offending input in full.
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_middleware(
        BodyReadTimeoutMiddleware, timeout_seconds=settings.body_read_timeout_seconds
    )
    app.add_middleware(RequestMetricsMiddleware, state=state)
    return app

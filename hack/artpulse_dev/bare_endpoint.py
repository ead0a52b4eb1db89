"""The benchmark's ceiling: a constant JSON answer on our server's HTTP stack, nothing else.

``python -m artpulse_dev.bare_endpoint --port PORT``, started by ``artpulse_dev.peers.bare``
for ``loadtest/bench_inference.py``. FastAPI under uvicorn exactly as
``artpulse_inference.server.__main__.serve`` runs the server (uvloop, the bounded httptools
protocol, no access log), so the gap between this and ``/v2/.../infer`` is what our
validation, model call, metrics and auth cost. The body is read, like a real endpoint does,
and a small OIP-shaped answer is sent back.
"""

from __future__ import annotations

import argparse

import uvicorn
from artpulse_inference.server.http_limits import http_protocol
from fastapi import FastAPI, Request
from fastapi.responses import Response

ANSWER = (
    b'{"model_name":"bare","model_version":"1","outputs":[{"name":"label","shape":[1],'
    b'"datatype":"BYTES","data":["minimalism"]}]}'
)
MAX_HEADER_BYTES = 16 * 1024  # the server's defaults (Settings)
MAX_HEADER_COUNT = 100


def create_bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/ready")
    async def ready() -> Response:
        return Response(b'{"ready":true}', media_type="application/json")

    @app.post("/infer")
    async def infer(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(
        create_bare_app(),
        host=args.host,
        port=args.port,
        loop="auto",
        http=http_protocol(MAX_HEADER_BYTES, MAX_HEADER_COUNT),
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()

"""``artpulse-server``: run the inference server under uvicorn on ``PORT``.

The container command the operator renders (INTERFACES.md). One worker process: the
model, the micro-batcher and the metrics live in it; scale with replicas, not workers.
uvloop and httptools are used when installed (``uvicorn[standard]``).
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from .app import create_app
from .settings import SettingsError, load_settings

# How long an idle client connection stays open. A proxy in front must close its idle
# upstream connections sooner (the local Traefik: 4 s), or it may send a request on a
# connection this server is closing and answer 502.
KEEP_ALIVE_SECONDS = 5


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"artpulse-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}',
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        http="auto",
        access_log=False,  # one line per request costs more than the request itself; metrics count them
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

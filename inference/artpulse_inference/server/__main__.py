"""``artpulse-server``: run the inference server under uvicorn on ``PORT``.

The container command the operator renders (INTERFACES.md). One worker process: the
model, the micro-batcher and the metrics live in it; scale with replicas, not workers.
uvloop and httptools are used when installed (``uvicorn[standard]``).
"""

from __future__ import annotations

import json
import logging
import sys

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .http_limits import http_protocol
from .settings import Settings, SettingsError, load_settings

# How long an idle client connection stays open. A proxy in front must close its idle
# upstream connections sooner (the local Traefik: 4 s), or it may send a request on a
# connection this server is closing and answer 502.
KEEP_ALIVE_SECONDS = 5


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line (``%(message)r`` was Python repr, not JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def serve(app: FastAPI, settings: Settings) -> None:
    """Run ``app`` under uvicorn with the server's HTTP limits (tests start it this way too)."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="auto",
        # httptools with a bounded request head (MAX_HEADER_BYTES, MAX_HEADER_COUNT): 431.
        http=http_protocol(settings.max_header_bytes, settings.max_header_count),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        access_log=False,  # one line per request costs more than the request itself; metrics count them
        log_level=settings.log_level.lower(),
        proxy_headers=False,  # the client address is deps.client_address's (TRUSTED_PROXY_HOPS)
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=10,
    )


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"artpulse-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    if settings.trust_forwarded_for and settings.trusted_proxy_hops is None:
        logging.getLogger(__name__).warning(
            "TRUST_FORWARDED_FOR=true is deprecated and read as TRUSTED_PROXY_HOPS=1 (the "
            "rightmost X-Forwarded-For entry, added by the proxy in front); set "
            "TRUSTED_PROXY_HOPS to the number of proxies instead"
        )
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A tiny HTTP workload for tests of the operator on a real node (Kubernetes' agnhost, for us).

Installed as `artpulse-server` in the image `artpulse-testhost`, so the Deployments the
operator renders run it unchanged: real pods, real kubelet probes, real rolling updates,
real endpoints, without loading a model. It answers:

- `GET /health`: 200;
- `GET /ready`: 200 once `TESTHOST_READY_AFTER_SECONDS` have passed since start, 503
  before; always 503 when `MODEL_VERSION` is in `TESTHOST_NEVER_READY_VERSIONS`
  (a candidate that never loads);
- `GET /metrics`: `artpulse_model_info` with the model, version and track labels;
- `POST /predict`: `{"model_version": MODEL_VERSION, "track": ARTPULSE_TRACK}`.

Standard library only. Not part of the product: tests/integration uses it where the
subject is the operator, and the inference server's own tests run the real server.
"""

from __future__ import annotations

import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
VERSION = os.environ.get("MODEL_VERSION", "")
TRACK = os.environ.get("ARTPULSE_TRACK", "")
MODEL = os.environ.get("MODEL_NAME", "")
NEVER_READY = {v for v in os.environ.get("TESTHOST_NEVER_READY_VERSIONS", "").split(",") if v}
READY_AFTER = float(os.environ.get("TESTHOST_READY_AFTER_SECONDS", "0"))


def ready() -> bool:
    return VERSION not in NEVER_READY and time.monotonic() - STARTED >= READY_AFTER


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, '{"status": "ok"}')
        elif self.path == "/ready":
            self._send(200 if ready() else 503, json.dumps({"ready": ready(), "version": VERSION}))
        elif self.path == "/metrics":
            labels = f'model="{MODEL}",version="{VERSION}",track="{TRACK}"'
            self._send(200, f"artpulse_model_info{{{labels}}} 1\n", "text/plain; version=0.0.4")
        else:
            self._send(404, '{"detail": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(min(length, 1 << 20))
        if self.path.startswith("/predict"):
            self._send(200, json.dumps({"model_version": VERSION, "track": TRACK}))
        else:
            self._send(404, '{"detail": "not found"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()

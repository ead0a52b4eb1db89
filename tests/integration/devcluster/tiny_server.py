"""A tiny HTTP server the devcluster tests run as a "container" command.

It stands in for the inference server in the runtime/gateway tests: `/ready` and
`/health` answer 200 (`/ready` only after READY_DELAY seconds), every other path
answers JSON naming the pod, its version and its environment, so a test can count
which process served a request through nginx. SIGTERM stops accepting and lets
in-flight requests finish, like uvicorn's graceful shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
READY_DELAY = float(os.environ.get("READY_DELAY", "0"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/ready":
            ready = time.monotonic() - STARTED >= READY_DELAY
            self._send(200 if ready else 503, {"ready": ready})
        elif self.path == "/health":
            self._send(200, {"ok": True})
        else:
            self._send(
                200,
                {
                    "pod": os.environ.get("POD_NAME", ""),
                    "version": os.environ.get("VERSION", ""),
                    "namespace": os.environ.get("POD_NAMESPACE", ""),
                    "path": self.path,
                    "env": {k: v for k, v in os.environ.items() if k.startswith("T_")},
                },
            )

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = False

    def on_term(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == "__main__":
    main()

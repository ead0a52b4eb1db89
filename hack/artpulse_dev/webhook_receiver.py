"""A webhook receiver for the tests: standard library only, so it runs anywhere as a script.

It stands where a team's approval service and chat would: the operator calls it like any
receiver. The e2e tests run it as a pod (``python -c``, from the operator image), the
integration tests as a process on loopback. ``$HOST``/``$PORT`` (0.0.0.0:8080) say where.

- ``POST /confirm``: the confirmPromotion gate; 403 until ``POST /approve``, then 200.
- ``POST /notify``: rollout notifications; each one is checked against the HMAC key in
  ``$HMAC_KEY`` (X-ArtPulse-Timestamp, X-ArtPulse-Signature: sha256 over "<ts>." + body),
  computed here independently of the operator's code.
- ``GET /log``: every request seen, as JSON (path, event, signature verdict, body).
"""

import hashlib
import hmac
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ.get("HMAC_KEY", "").encode()
LOCK = threading.Lock()
SEEN: list[dict[str, object]] = []
APPROVED = threading.Event()


def signed(headers: object, body: bytes) -> bool:
    timestamp = headers.get("X-ArtPulse-Timestamp") or ""  # type: ignore[attr-defined]
    signature = headers.get("X-ArtPulse-Signature") or ""  # type: ignore[attr-defined]
    expected = hmac.new(KEY, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return bool(KEY) and hmac.compare_digest(signature, "sha256=" + expected)


class Handler(BaseHTTPRequestHandler):
    def _answer(self, code: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with LOCK:
            self._answer(200, SEEN)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/approve":
            APPROVED.set()
            self._answer(200, {"approved": True})
            return
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        entry = {
            "path": self.path,
            "event": self.headers.get("X-ArtPulse-Event"),
            "signed": signed(self.headers, body),
            "body": payload,
        }
        with LOCK:
            SEEN.append(entry)
        if self.path == "/confirm":
            self._answer(200 if APPROVED.is_set() else 403, {"approved": APPROVED.is_set()})
        else:
            self._answer(200, {"ok": True})

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    address = (os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080")))
    ThreadingHTTPServer(address, Handler).serve_forever()

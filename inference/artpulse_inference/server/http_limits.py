"""HTTP framing limits: request-head size and header count, and a body-read deadline.

``__main__.serve`` runs uvicorn with :func:`http_protocol` (httptools, the fast parser,
with the limits below; h11 with ``h11_max_incomplete_event_size`` when httptools is
missing) and ``app.create_app`` installs :class:`BodyReadTimeoutMiddleware`.

- A request head (request line plus headers) over ``MAX_HEADER_BYTES``, or with more
  than ``MAX_HEADER_COUNT`` headers, is answered ``431`` and the connection closed. The
  bytes of a head that never completes are counted as they arrive, so a client cannot
  make the server buffer megabytes of headers.
- A body that has not fully arrived ``BODY_READ_TIMEOUT_SECONDS`` after the app started
  reading it is answered ``408`` (with ``Connection: close``): a slow-loris body holds a
  connection for a bounded time, not forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_431_REASON = b"Request Header Fields Too Large"


class BodyReadTimeoutMiddleware:
    """Raise 408 from ``receive`` once the body takes longer than ``timeout_seconds``.

    The deadline starts at the first ``receive`` and ends with the last body chunk;
    later ``receive`` calls (waiting for a disconnect) are passed through untouched.
    The ``HTTPException`` surfaces where the route reads the body and becomes the
    app's usual JSON answer.
    """

    def __init__(self, app: ASGIApp, timeout_seconds: float) -> None:
        self.app = app
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        body_done = False
        timeout = self.timeout_seconds

        async def timed_receive() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None:
                deadline = loop.time() + timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    detail=f"the request body did not arrive within {timeout:g}s "
                    "(BODY_READ_TIMEOUT_SECONDS)",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)


def http_protocol(max_header_bytes: int, max_header_count: int) -> type[asyncio.Protocol] | str:
    """The uvicorn ``http`` protocol class enforcing the head limits (``"h11"`` without
    httptools; pass ``h11_max_incomplete_event_size`` to uvicorn for that case)."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a bounded request head (431 beyond it)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._reading_head = True  # from the end of one message to the next head's end
            self._head_bytes = 0  # received while the head is incomplete
            self._header_count = 0
            self._head_refusal: str | None = None

        def data_received(self, data: bytes) -> None:
            # uvicorn's own data_received, with a 431 for a head beyond the limits.
            if self._head_refusal is not None:
                return
            if self._reading_head:
                self._head_bytes += len(data)
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                if self._head_refusal is not None:
                    self._send_431(self._head_refusal)
                    return
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
                return
            if self._reading_head and self._head_bytes > max_header_bytes:
                self._send_431(f"request head exceeds {max_header_bytes} bytes (MAX_HEADER_BYTES)")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_count = 0

        def on_url(self, url: bytes) -> None:
            if len(self.url) + len(url) > max_header_bytes:
                self._head_refusal = f"request target exceeds {max_header_bytes} bytes"
                raise ValueError(self._head_refusal)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > max_header_count:
                self._head_refusal = (
                    f"more than {max_header_count} request headers (MAX_HEADER_COUNT)"
                )
                raise ValueError(self._head_refusal)
            if len(name) + len(value) > max_header_bytes:
                self._head_refusal = (
                    f"a request header exceeds {max_header_bytes} bytes (MAX_HEADER_BYTES)"
                )
                raise ValueError(self._head_refusal)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._reading_head = False
            self._head_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_head = True

        def _send_431(self, msg: str) -> None:
            self._head_refusal = msg
            log.info("refused a request head: %s", msg)
            body = msg.encode("ascii", "replace")
            self.transport.write(
                b"HTTP/1.1 431 " + _431_REASON + b"\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body
            )
            self.transport.close()

    return BoundedHttpToolsProtocol

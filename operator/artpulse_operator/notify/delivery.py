"""One signed POST to a tenant's webhook, with its outcome as a value (never an exception).

Who calls it: ``notify.webhooks`` (the :class:`~artpulse_operator.notify.webhooks.Notifier`
and ``confirm_promotion``). A tenant may name any URL, so the answer is never reflected: the
response is opened for its status line and headers, its body is never read, stored or logged,
redirects are not followed, and error messages name the error's type, not what the server
sent. One deadline covers the whole exchange (httpx's timeouts apply per read, which a server
dripping bytes would stretch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from artpulse_operator.engine.notifications import signing_headers

__all__ = ["USER_AGENT", "Attempt", "build_headers", "post_once", "url_allowed_by"]

USER_AGENT = "artpulse-operator"
_MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: a status code, or ``error`` (it got no answer)."""

    status_code: int | None = None
    error: str | None = None
    transient: bool = False  # the error is worth retrying (connect, timeout, dropped connection)
    retry_after: float | None = None  # seconds, from a 429/503 Retry-After

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return self.transient
        return self.status_code == 429 or self.status_code >= 500

    @property
    def reason(self) -> str:
        if self.status_code is None:
            return self.error or "no answer"
        if 300 <= self.status_code < 400:
            return f"HTTP {self.status_code} (redirects are not followed)"
        return f"HTTP {self.status_code}"


def build_headers(event: str, timestamp: int, body: bytes, secret: bytes | None) -> dict[str, str]:
    """The headers of every delivery; the signature only when there is a key."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-ArtPulse-Event": event,
        **signing_headers(secret, timestamp, body),
    }


def _retry_after(value: str | None) -> float | None:
    # Seconds only; an HTTP-date is ignored (the backoff applies).
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return min(seconds, _MAX_RETRY_AFTER_S) if seconds >= 0 else None


async def post_once(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> Attempt:
    """POST ``body`` to ``url`` once within ``timeout_s``; the outcome, never an exception."""
    try:
        async with (
            asyncio.timeout(timeout_s),
            client.stream(
                "POST",
                url,
                content=body,
                headers=headers,
                timeout=timeout_s,
                follow_redirects=False,
            ) as response,
        ):
            return Attempt(
                status_code=response.status_code,
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(error=f"timed out after {timeout_s:g}s", transient=True)
    except httpx.UnsupportedProtocol:
        return Attempt(error="unsupported URL scheme")
    except httpx.ConnectError as exc:
        # The OS's words ("Connection refused", "Name or service not known"), not the peer's.
        detail = str(exc)[:200] or type(exc).__name__
        return Attempt(error=f"connection failed: {detail}", transient=True)
    except (httpx.InvalidURL, httpx.LocalProtocolError, ValueError) as exc:
        # Before TransportError, which LocalProtocolError is: a request we cannot send as is.
        return Attempt(error=f"invalid request ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return Attempt(error=f"transport error ({type(exc).__name__})", transient=True)


def url_allowed_by(url_allowed: Callable[[str], bool] | None, url: str) -> bool:
    """Whether the operator's allowlist (None: none) lets ``url`` be called; an allowlist
    that raises refuses."""
    if url_allowed is None:
        return True
    try:
        return bool(url_allowed(url))
    except Exception:
        return False

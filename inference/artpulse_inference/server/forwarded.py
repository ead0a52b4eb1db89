"""The client address of a request, from the socket peer and trusted proxies' X-Forwarded-For.

``deps.client_address`` calls :func:`client_from_forwarded`; the result keys the
per-address limits and the audit line. Each proxy appends the address it received the
request from to ``X-Forwarded-For``, so of ``a, b, c`` seen behind two trusted proxies
``c`` was added by the proxy next to us and ``b`` (the second from the right) by the outer
one: ``b`` is the client. Everything left of it is whatever the client sent and is never
used; rotating it gives no fresh limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

UNKNOWN_CLIENT = "unknown"


def client_from_forwarded(peer: str | None, forwarded_for: Iterable[str], hops: int) -> str:
    """The address ``hops`` trusted proxies vouch for, else the socket ``peer``.

    With ``hops == 0``, or fewer entries than trusted hops (the request did not come
    through all the proxies, so no entry can be trusted), or an entry that is not an IP
    address, the socket peer is used.
    """
    peer_address = peer or UNKNOWN_CLIENT
    if hops <= 0:
        return peer_address
    entries = [e.strip() for value in forwarded_for for e in value.split(",")]
    entries = [e for e in entries if e]
    if len(entries) < hops:
        return peer_address
    candidate = _address_of(entries[-hops])
    return candidate if candidate is not None else peer_address


def _address_of(entry: str) -> str | None:
    """The IP address of an ``X-Forwarded-For`` entry (``1.2.3.4``, ``1.2.3.4:5``, ``[::1]:5``)."""
    text = entry[:64]
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None

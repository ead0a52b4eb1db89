"""The audit trail: one JSON line per auth decision on the ``artpulse.audit`` logger.

Called by ``deps.py`` for every allowed or refused credential check. A line says who
(a principal id: key fingerprint, token subject or email, never the secret), what (route,
method), from where (client address), whether it was allowed and why.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

AUDIT_LOGGER = "artpulse.audit"
_log = logging.getLogger(AUDIT_LOGGER)


def configure_audit_logging() -> None:
    """Send audit lines to stdout as bare JSON (one object per line), once.

    The logger does not propagate: a root handler (``logging.basicConfig`` in
    ``__main__``, or uvicorn's) would write every line a second time in its own format.
    """
    if any(getattr(h, "_artpulse_audit", False) for h in _log.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._artpulse_audit = True  # type: ignore[attr-defined]
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def audit(
    *,
    route: str,
    method: str,
    client: str,
    scheme: str,
    principal: str,
    allowed: bool,
    reason: str,
) -> None:
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": "auth",
        "route": route,
        "method": method,
        "client": client,
        "scheme": scheme,
        "principal": principal,
        "allowed": allowed,
        "reason": reason,
    }
    _log.info(json.dumps(record, separators=(",", ":")))

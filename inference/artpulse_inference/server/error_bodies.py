"""Bounded 422 bodies: a validation answer never grows with the request that caused it.

``app.create_app`` installs :func:`validation_error_response` for FastAPI's own request
validation errors, and ``routers/predict.py`` passes the schema errors of
``validation.rows_to_matrix`` through :func:`bounded_errors`. At most
``MAX_ERRORS`` errors are listed (then one "and N more" entry), every string in them is
cut to ``MAX_VALUE_CHARS`` characters, the echoed ``input`` included, and the whole list
is cut again until it serialises under ``MAX_BODY_BYTES``. Field names stay in ``loc``,
cut like any other string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

MAX_ERRORS = 20
MAX_VALUE_CHARS = 200
MAX_BODY_BYTES = 16 * 1024
_KEPT_FIELDS = ("loc", "msg", "type", "input")


def _cut(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with strings and containers cut short."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "..."
    if depth < 2 and isinstance(value, Mapping):
        items = list(value.items())[:10]
        return {_cut(str(k), depth + 1): _cut(v, depth + 1) for k, v in items}
    if depth < 2 and isinstance(value, list | tuple):
        return [_cut(v, depth + 1) for v in list(value)[:10]]
    return _cut(repr(value), depth + 1) if depth < 3 else "..."


def bounded_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """At most ``MAX_ERRORS`` errors, cut, serialising under ``MAX_BODY_BYTES``."""
    kept: list[dict[str, Any]] = []
    for error in errors[:MAX_ERRORS]:
        if isinstance(error, Mapping):
            entry = {k: _cut(error[k]) for k in _KEPT_FIELDS if k in error}
            if isinstance(error.get("loc"), list | tuple):
                entry["loc"] = [_cut(part) for part in list(error["loc"])[:8]]
        else:
            entry = {"msg": _cut(str(error))}
        kept.append(entry)
    dropped = len(errors) - len(kept)
    while kept and len(orjson.dumps(kept)) > MAX_BODY_BYTES - 200:
        kept.pop()
        dropped += 1
    if dropped > 0:
        kept.append(
            {"loc": ["body"], "msg": f"and {dropped} more errors not listed", "type": "too_many"}
        )
    return kept


async def validation_error_response(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a malformed body or parameter, bounded as above."""
    raw = exc.errors() if isinstance(exc, RequestValidationError) else []
    return Response(
        orjson.dumps({"detail": bounded_errors(list(raw))}),
        status_code=422,
        media_type="application/json",
    )

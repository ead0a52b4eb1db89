"""Validation of prediction requests against a model's feature schema (pure, no HTTP).

``routers/predict.py`` and ``routers/demo.py`` call :func:`rows_to_matrix` on the parsed
JSON body. Every problem is reported with the row index and the field, in the shape
FastAPI uses for its own 422 answers (``loc``, ``msg``, ``type``), so a client sees one
error format whatever caught the mistake.

The fast path (well-formed rows) is a key-set comparison and one list comprehension per
row, then a single vectorised finiteness check: no pandas, no per-value pydantic models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_REPORTED_ERRORS = 20
# A client-chosen key is echoed back (in ``loc`` and ``msg``) at most this long, so the
# answer to a body of huge or countless unknown keys stays small (finding 9 of issue 13).
MAX_SHOWN_KEY_CHARS = 64


def _shown_key(key: Any) -> str:
    text = str(key)
    return text if len(text) <= MAX_SHOWN_KEY_CHARS else text[:MAX_SHOWN_KEY_CHARS] + "..."


@dataclass
class RequestValidationFailure(Exception):
    """The request body does not match the schema; ``errors`` name row and field."""

    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [e["msg"] for e in self.errors[:5]]
        more = len(self.errors) - 5
        text = "; ".join(parts)
        return text + (f"; and {more} more" if more > 0 else "")


def _error(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _more(count: int, what: str) -> list[dict[str, Any]]:
    if count <= 0:
        return []
    return [_error([], f"and {count} more {what} not listed", "too_many_errors")]


def rows_to_matrix(
    body: Any, feature_names: Sequence[str], max_rows: int
) -> npt.NDArray[np.float64]:
    """Turn ``{"rows": [{name: number, ...}, ...]}`` into a float64 matrix in
    ``feature_names`` order, or raise :class:`RequestValidationFailure`."""
    if not isinstance(body, dict):
        raise RequestValidationFailure(
            [
                _error(
                    [],
                    f'body must be a JSON object {{"rows": [...]}}, got {_describe(body)}',
                    "type_error",
                )
            ]
        )
    extra_top = [k for k in body if k != "rows"]
    if extra_top:
        # Room for the "and N more" entry within MAX_REPORTED_ERRORS.
        room = (
            MAX_REPORTED_ERRORS
            if len(extra_top) <= MAX_REPORTED_ERRORS
            else MAX_REPORTED_ERRORS - 1
        )
        listed = sorted(extra_top[: MAX_REPORTED_ERRORS * 4])[:room]
        raise RequestValidationFailure(
            [
                _error(
                    [_shown_key(k)],
                    f"unknown top-level field {_shown_key(k)!r}; only 'rows' is accepted",
                    "extra_forbidden",
                )
                for k in listed
            ]
            + _more(len(extra_top) - len(listed), "unknown top-level fields")
        )
    if "rows" not in body:
        raise RequestValidationFailure([_error(["rows"], "field 'rows' is required", "missing")])
    rows = body["rows"]
    if not isinstance(rows, list):
        raise RequestValidationFailure(
            [
                _error(
                    ["rows"],
                    f"'rows' must be a list of objects, got {_describe(rows)}",
                    "list_type",
                )
            ]
        )
    if not rows:
        raise RequestValidationFailure(
            [_error(["rows"], "'rows' is empty: send at least one row", "too_short")]
        )
    if len(rows) > max_rows:
        raise RequestValidationFailure(
            [
                _error(
                    ["rows"],
                    f"'rows' has {len(rows)} rows, the limit is {max_rows} per request",
                    "too_long",
                )
            ]
        )

    names = tuple(feature_names)
    expected = set(names)
    values: list[list[Any]] = []
    errors: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(
                _error(
                    ["rows", i],
                    f"row {i}: must be an object of feature values, got {_describe(row)}",
                    "dict_type",
                )
            )
        elif row.keys() != expected:
            keys = set(row)
            for name in names:
                if name not in keys:
                    errors.append(
                        _error(["rows", i, name], f"row {i}: missing feature {name!r}", "missing")
                    )
            unknown = [k for k in row if k not in expected]
            for name in sorted(unknown[: MAX_REPORTED_ERRORS * 4], key=str):
                if len(errors) >= MAX_REPORTED_ERRORS:
                    break
                errors.append(
                    _error(
                        ["rows", i, _shown_key(name)],
                        f"row {i}: unknown feature {_shown_key(name)!r} (the model expects {len(names)} features: {', '.join(names)})",
                        "extra_forbidden",
                    )
                )
        else:
            row_values = [row[n] for n in names]
            for name, v in zip(names, row_values, strict=True):
                # bool is an int subclass but never a feature value; say so instead of using 0/1.
                if type(v) is not float and (type(v) is not int):
                    errors.append(
                        _error(
                            ["rows", i, name],
                            f"row {i}, field {name!r}: must be a number, got {_describe(v)}",
                            "float_type",
                        )
                    )
            values.append(row_values)
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise RequestValidationFailure(errors[:MAX_REPORTED_ERRORS])

    try:
        matrix = np.array(values, dtype=np.float64)
    except OverflowError:
        # An integer beyond float64: find it for the message.
        for i, row_values in enumerate(values):
            for name, v in zip(names, row_values, strict=True):
                try:
                    float(v)
                except OverflowError:
                    errors.append(
                        _error(
                            ["rows", i, name],
                            f"row {i}, field {name!r}: number is too large",
                            "finite_number",
                        )
                    )
        raise RequestValidationFailure(errors[:MAX_REPORTED_ERRORS]) from None
    finite = np.isfinite(matrix)
    if not finite.all():
        for i, j in zip(*np.nonzero(~finite), strict=True):
            value = float(matrix[i, j])
            shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            errors.append(
                _error(
                    ["rows", int(i), names[j]],
                    f"row {int(i)}, field {names[j]!r}: must be a finite number, got {shown}",
                    "finite_number",
                )
            )
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        raise RequestValidationFailure(errors)
    return matrix

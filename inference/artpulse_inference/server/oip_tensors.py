"""Open Inference Protocol input tensors to the model's float64 feature matrix (pure).

Both transports decode their inputs into :class:`InputTensor` records (``oip_codec`` from
REST JSON, ``oip_grpc`` from protobuf) and call :func:`tensors_to_matrix`. Two layouts:

- one tensor of shape ``[N, n_features]`` (any name; columns in the model's order), data
  row-major, flat or nested exactly as the shape;
- one tensor per feature column, named after it, shape ``[N]`` or ``[N, 1]``.

Numeric datatypes only (``FP16/FP32/FP64``, ``INT8..INT64``, ``UINT8..UINT64``); ``BOOL``
is refused by name, and so is ``BYTES`` except for the one case where bytes make sense
for this model: a request of one image (:func:`image_tensor`). JSON elements must be numbers of the datatype (no
booleans or strings; integers in range for an integer type); every value finite; at most
``max_rows`` rows. Every problem is an :class:`OipError` naming the input
(``inputs[0] ('features')``) and the field, with a bounded message.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from .model_store import Matrix

# Integer ranges of the integer datatypes; float types have none (finiteness is checked).
INT_RANGES: dict[str, tuple[int, int]] = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
NUMERIC_TYPES = FLOAT_TYPES | frozenset(INT_RANGES)
KNOWN_TYPES = NUMERIC_TYPES | frozenset({"BOOL", "BYTES"})
# Little-endian numpy dtypes of the raw (binary) tensor contents.
RAW_DTYPES: dict[str, str] = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}

MAX_INPUTS = 1024
MAX_DIMS = 8
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_PARAMETERS = 64
MAX_PARAMETER_CHARS = 1024
MAX_SHOWN_CHARS = 64
MAX_MESSAGE_CHARS = 1000


class OipError(Exception):
    """An inference request the protocol's error answer is for (``not_found``: 404)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(cut(message, MAX_MESSAGE_CHARS))
        self.message = str(self.args[0])
        self.not_found = not_found


def cut(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def shown(value: Any) -> str:
    """A client-chosen value for a message, quoted and bounded."""
    return repr(cut(value)) if isinstance(value, str) else cut(describe(value))


def describe(value: Any) -> str:
    """What kind of JSON value ``value`` is, for a message (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class InputTensor:
    """One input as decoded from a transport. ``data`` is the JSON ``data`` (flat or
    nested lists) for REST, or a flat numpy array for gRPC."""

    where: str  # "inputs[0] ('features')", for messages
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: Any


# ---- tensors to the feature matrix ---------------------------------------------------


def tensors_to_matrix(
    tensors: Sequence[InputTensor], feature_names: Sequence[str], max_rows: int
) -> Matrix:
    """The float64 ``[N, n_features]`` matrix in ``feature_names`` order."""
    if not tensors:
        raise OipError("'inputs' is empty: send one [N, n_features] tensor or one per feature")
    check_unique_names(tensors)
    columns = tuple(feature_names)
    for t in tensors:
        if not 1 <= len(t.shape) <= MAX_DIMS:
            raise OipError(
                f"{t.where}.shape must have 1 to {MAX_DIMS} dimensions, got {len(t.shape)}"
            )
        _check_datatype(t)
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and tensors[0].shape[1] != 1:
        return _matrix_tensor(tensors[0], columns, max_rows)
    if len(tensors) == 1 and tensors[0].name not in columns:
        return _matrix_tensor(tensors[0], columns, max_rows)
    return _column_tensors(tensors, columns, max_rows)


def check_unique_names(tensors: Sequence[InputTensor]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise OipError(f"input {shown(t.name)} appears more than once")
        seen.add(t.name)


def _check_datatype(t: InputTensor) -> None:
    if t.datatype in NUMERIC_TYPES:
        return
    if t.datatype in KNOWN_TYPES:
        raise OipError(
            f"{t.where}: datatype {t.datatype} is not accepted here: the model's features "
            "are numbers (send FP64, FP32 or an integer type); BYTES is for one image, "
            "alone in the request"
        )
    raise OipError(
        f"{t.where}: unknown datatype {shown(t.datatype)} (one of {', '.join(sorted(KNOWN_TYPES))})"
    )


def _rows(t: InputTensor, max_rows: int) -> int:
    n = t.shape[0]
    if n < 1:
        raise OipError(f"{t.where}.shape[0] is {n}: send at least one row")
    if n > max_rows:
        raise OipError(
            f"{t.where}.shape[0] is {n} rows, the limit is {max_rows} per request (MAX_BATCH_ROWS)"
        )
    return n


def _matrix_tensor(t: InputTensor, columns: tuple[str, ...], max_rows: int) -> Matrix:
    n_features = len(columns)
    if len(t.shape) != 2 or t.shape[1] != n_features:
        raise OipError(
            f"{t.where}.shape is {list(t.shape)}; one tensor holds all features as "
            f"[N, {n_features}] (columns {', '.join(columns[:4])}{', ...' if n_features > 4 else ''}), "
            "or send one tensor per feature named after it"
        )
    n = _rows(t, max_rows)
    values = _elements(t, (n, n_features), n * n_features)
    X = _as_float(values, t).reshape(n, n_features)
    _check_finite(X, lambda j: t)
    return X


def _column_tensors(
    tensors: Sequence[InputTensor], columns: tuple[str, ...], max_rows: int
) -> Matrix:
    expected = set(columns)
    unknown = [t for t in tensors if t.name not in expected]
    if unknown:
        raise OipError(
            f"{unknown[0].where}: unknown input; the model's inputs are its feature columns "
            f"({', '.join(columns)}), or one [N, {len(columns)}] tensor of all of them"
        )
    given = {t.name for t in tensors}
    missing = [c for c in columns if c not in given]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise OipError(f"missing input(s) {', '.join(map(repr, missing[:5]))}{more}")
    n = _rows(tensors[0], max_rows)
    by_name = {t.name: t for t in tensors}
    ordered = [by_name[c] for c in columns]
    values = []
    for t in ordered:
        if t.shape not in ((n,), (n, 1)):
            raise OipError(
                f"{t.where}.shape is {list(t.shape)}; a feature column is [{n}] or [{n}, 1] "
                f"({n} rows, as {tensors[0].where})"
            )
        values.append(_elements(t, t.shape, n))
    if all(isinstance(v, list) for v in values):
        # One conversion for all columns: a numpy call per column costs more than the model.
        try:
            X = np.ascontiguousarray(np.array(values, dtype=np.float64).T)
        except OverflowError:
            for t, v in zip(ordered, values, strict=True):
                _as_float(v, t)
            raise
    else:
        X = np.column_stack([_as_float(v, t) for t, v in zip(ordered, values, strict=True)])
    _check_finite(X, lambda j: ordered[j])
    return X


def _check_finite(X: Matrix, tensor_of_column: Callable[[int], InputTensor]) -> None:
    finite = np.isfinite(X)
    if not finite.all():
        i, j = (int(k[0]) for k in np.nonzero(~finite))
        raise OipError(
            f"{tensor_of_column(j).where}: values must be finite numbers, got {float(X[i, j])}"
        )


def _as_float(values: list[Any] | np.ndarray, t: InputTensor) -> npt.NDArray[np.float64]:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False).ravel()
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        raise OipError(f"{t.where}: a value is too large for a number") from None


def _elements(t: InputTensor, shape: tuple[int, ...], count: int) -> list[Any] | np.ndarray:
    """The tensor's ``count`` elements, flat, checked against its datatype (finiteness
    is checked on the whole matrix): a numpy array from gRPC, a list from JSON."""
    data = t.data
    if isinstance(data, np.ndarray):
        if data.size != count:
            raise OipError(
                f"{t.where}: shape {list(shape)} needs {count} elements, the data has {data.size}"
            )
        return data
    flat = _flatten(t, shape, count)
    kinds = set(map(type, flat))
    integer_type = t.datatype in INT_RANGES
    allowed = {int} if integer_type else {int, float}
    if not kinds <= allowed:
        bad = next(v for v in flat if type(v) not in allowed)
        need = "integers" if integer_type else "numbers"
        raise OipError(
            f"{t.where}: datatype {t.datatype} needs {need}, the data holds {shown(bad)}"
        )
    if integer_type:
        low, high = INT_RANGES[t.datatype]
        if min(flat) < low or max(flat) > high:
            raise OipError(
                f"{t.where}: a value is outside the range of {t.datatype} [{low}, {high}]"
            )
    return flat


def _flatten(t: InputTensor, shape: tuple[int, ...], count: int) -> list[Any]:
    """Row-major elements of flat or nested ``data``; nested data must match ``shape``."""
    data = t.data
    if not isinstance(data, list):
        raise OipError(f"{t.where}.data must be a list, got {describe(data)}")
    if len(data) == count and (count == 0 or type(data[0]) is not list):
        return data
    items: list[Any] = data
    expected = shape[0]
    for dim in shape[1:]:
        if len(items) != expected or not all(type(x) is list and len(x) == dim for x in items):
            break
        items = list(chain.from_iterable(items))
        expected *= dim
    if len(items) != count:
        raise OipError(
            f"{t.where}: shape {list(shape)} needs {count} elements, the data does not hold "
            "them (flat row-major, or nested exactly as the shape)"
        )
    return items


# ---- an image -----------------------------------------------------------------------


def image_tensor(tensors: Sequence[InputTensor]) -> bytes | None:
    """The image of a request made of one BYTES tensor of one element (shape ``[1]`` or
    ``[1, 1]``): raw bytes from gRPC, base64 text from JSON. ``None`` for any other
    request, whose BYTES tensors ``tensors_to_matrix`` then refuses by name."""
    if len(tensors) != 1 or tensors[0].datatype != "BYTES":
        return None
    t = tensors[0]
    if t.shape not in ((1,), (1, 1)):
        raise OipError(
            f"{t.where}: a BYTES input is one image (JPEG or PNG), shape [1], got "
            f"{list(t.shape[:MAX_DIMS])}"
        )
    data = t.data
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]  # [1, 1] nested
    if not isinstance(data, list) or len(data) != 1:
        raise OipError(f"{t.where}.data must hold exactly one image")
    element = data[0]
    if isinstance(element, bytes):
        return element
    if isinstance(element, str):
        try:
            return base64.b64decode(element, validate=True)
        except (binascii.Error, ValueError):
            raise OipError(
                f"{t.where}: an image in JSON is base64 text (RFC 4648); this is not base64"
            ) from None
    raise OipError(f"{t.where}: the image must be base64 text, got {describe(element)}")

"""What the API server would do with an object under a CRD's structural schema, without one.

Who calls it: the unit tests that hold the operator's status writes against
``crds/artpulsemodel.yaml`` (``tests/unit/operator/test_operator_crd_conventions.py``, the
rollout scenarios) and the CRD-wide checks (every array states a list type).

Why: with a structural schema the API server *prunes* every field the schema does not declare,
silently, on every write. A status field the operator writes but the CRD forgets is lost
between two reconciles, and the rollout's memory with it. :func:`problems` walks a schema and
an object together and reports, with the field path:

- pruning: a key that is neither under ``properties`` nor allowed by ``additionalProperties``
  or ``x-kubernetes-preserve-unknown-fields``;
- validation the API server would refuse the write for: the type (``integer`` is not
  ``boolean``; ``number`` takes integers), ``x-kubernetes-int-or-string``, ``enum``,
  ``required``, ``pattern``, ``format: date-time``, lengths, bounds, item counts, and the
  uniqueness of ``set`` items and ``map`` keys.

``None`` as the value of a declared property counts as absent: the operator writes ``None`` for
an unset field in a JSON merge patch, which deletes it, and the API server drops nulls of
non-nullable fields. A ``None`` anywhere else (an array item, an undeclared key) is reported.
CEL rules (``x-kubernetes-validations``) are not evaluated; the integration tests send those to
a real API server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

__all__ = ["arrays", "crd_version_schema", "problems", "walk"]

# RFC 3339 as Kubernetes' date-time format checks it (strfmt): a date, T, a time, a zone.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def crd_version_schema(crd: Mapping[str, Any], version: str | None = None) -> Mapping[str, Any]:
    """The ``openAPIV3Schema`` of one version of a CRD (the first when ``version`` is None)."""
    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if version is None or v["name"] == version)
    schema: Mapping[str, Any] = chosen["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every node of a schema with its path (``spec.strategy.canary.steps[]``)."""
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}" if path else key)
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        yield from walk(additional, f"{path}.*")
    items = schema.get("items")
    if isinstance(items, Mapping):
        yield from walk(items, f"{path}[]")


def arrays(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``type: array`` node of a schema with its path."""
    return ((p, node) for p, node in walk(schema) if node.get("type") == "array")


def problems(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Everything the API server would prune or refuse in ``value`` (empty: stored as is)."""
    found: list[str] = []
    _check(schema, value, path or "<root>", found)
    return found


def _type_ok(schema: Mapping[str, Any], value: Any) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    kind = schema.get("type")
    if kind is None:
        return True  # only under x-kubernetes-preserve-unknown-fields (a structural rule)
    checks: dict[str, Any] = {
        "object": lambda v: isinstance(v, Mapping),
        "array": lambda v: isinstance(v, list | tuple),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return bool(checks[kind](value))


def _check(schema: Mapping[str, Any], value: Any, path: str, found: list[str]) -> None:
    if value is None:
        if not schema.get("nullable"):
            found.append(f"{path}: null is not allowed here")
        return
    if not _type_ok(schema, value):
        found.append(f"{path}: {type(value).__name__} {value!r} is not of type {schema['type']}")
        return
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        _check_string(schema, value, path, found)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, path, found)
    if isinstance(value, Mapping):
        _check_object(schema, value, path, found)
    elif isinstance(value, list | tuple):
        _check_array(schema, list(value), path, found)


def _check_string(schema: Mapping[str, Any], value: str, path: str, found: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        found.append(f"{path}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        found.append(f"{path}: longer than {schema['maxLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if schema.get("format") == "date-time":
        try:
            ok = bool(_DATE_TIME.match(value)) and bool(
                datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            )
        except ValueError:
            ok = False
        if not ok:
            found.append(f"{path}: {value!r} is not an RFC 3339 date-time")


def _check_number(schema: Mapping[str, Any], value: float, path: str, found: list[str]) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if value < low or (schema.get("exclusiveMinimum") and value == low):
            found.append(f"{path}: {value} is below the minimum {low}")
    if "maximum" in schema:
        high = schema["maximum"]
        if value > high or (schema.get("exclusiveMaximum") and value == high):
            found.append(f"{path}: {value} is above the maximum {high}")


def _check_object(
    schema: Mapping[str, Any], value: Mapping[str, Any], path: str, found: list[str]
) -> None:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    present = {k for k, v in value.items() if v is not None}
    for key in schema.get("required") or ():
        if key not in present:
            found.append(f"{path}.{key}: required")
    if "maxProperties" in schema and len(present) > schema["maxProperties"]:
        found.append(f"{path}: more than {schema['maxProperties']} properties")
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in properties:
            if item is not None:  # a null property is absent (merge patch, null pruning)
                _check(properties[key], item, where, found)
        elif isinstance(additional, Mapping):
            _check(additional, item, where, found)
        elif additional is True or preserve:
            continue
        else:
            found.append(f"{where}: not declared in the schema (the API server prunes it)")


def _check_array(schema: Mapping[str, Any], value: list[Any], path: str, found: list[str]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        found.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        found.append(f"{path}: more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            _check(items, item, f"{path}[{i}]", found)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" and len({repr(v) for v in value}) != len(value):
        found.append(f"{path}: duplicate items in a set")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or ()
        seen: set[tuple[Any, ...]] = set()
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                found.append(f"{path}[{i}]: duplicate map key {dict(zip(keys, key, strict=True))}")
            seen.add(key)

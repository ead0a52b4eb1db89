"""Reading the raw ArtPulseModel spec: typed field access, durations and :class:`SpecError`.

Who calls it: ``engine.spec`` (``parse_spec``), which re-exports :class:`SpecError`,
:func:`parse_duration` and :func:`format_duration`. Every accessor names the field path in
its error (``spec.strategy.canary.steps[1].weight``), so a refused spec says where and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

__all__ = ["DURATION_PATTERN", "Reader", "SpecError", "format_duration", "parse_duration"]


class SpecError(ValueError):
    """The spec cannot be acted on. ``field`` is the path of the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- durations -------------------------------------------------------------------------------

# One or more <number><unit> groups, units h, m, s, ms. The CRD uses the same pattern.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"250ms"`` into seconds.

    >>> parse_duration("1h30m")
    5400.0
    """
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (h, m, s, ms), e.g. 30s, 5m, 1h30m"
        )
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """Render seconds as a duration both Kubernetes users and PromQL understand.

    >>> format_duration(90)
    '90s'
    >>> format_duration(0.25)
    '250ms'
    """
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


_E = TypeVar("_E", bound=StrEnum)


class Reader:
    """Typed access to one object of the raw spec, naming the field path in every error."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path, f"must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def child(self, key: str) -> Reader:
        return Reader(self.data.get(key), self.at(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def str_(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise SpecError(self.at(key), "is required")
            return default
        if not isinstance(value, str) or (required and not value):
            raise SpecError(self.at(key), "must be a non-empty string")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise SpecError(self.at(key), "must be a string")
        return value

    def int_(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.data.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(self.at(key), "must be an integer")
        self._check_range(key, value, minimum, maximum)
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(self.at(key), "must be true or false")
        return value

    def opt_float(
        self,
        key: str,
        default: float | None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(self.at(key), "must be a number")
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def duration(self, key: str, default: str, *, minimum: float = 0.0) -> float:
        value = self.data.get(key, default)
        if value is None:
            value = default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise SpecError(self.at(key), str(exc)) from None
        if seconds < minimum:
            raise SpecError(self.at(key), f"must be at least {format_duration(minimum)}")
        return seconds

    def enum(self, key: str, enum: type[_E], default: _E) -> _E:
        value = self.data.get(key, default.value)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise SpecError(self.at(key), f"must be one of {allowed}, got {value!r}") from None

    def list_(self, key: str) -> Sequence[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise SpecError(self.at(key), "must be a list")
        return value

    def _check_range(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if minimum is not None and value < minimum:
            raise SpecError(self.at(key), f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise SpecError(self.at(key), f"must be at most {maximum}")

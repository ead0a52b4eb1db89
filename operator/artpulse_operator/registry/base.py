"""The registry interface the operator codes against (one adapter per backend)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from artpulse_operator.engine.observations import ResolvedVersion


class RegistryError(Exception):
    """The registry could not answer: unreachable, timed out, or an unexpected answer."""


class ModelRegistry(Protocol):
    def resolve(self, model: str, aliases: Iterable[str]) -> dict[str, ResolvedVersion | None]:
        """Each alias -> its version (``None`` when the alias or the model is not set).

        Raises :class:`RegistryError` when the registry cannot be asked.
        """
        ...

    def move_alias(self, model: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (idempotent). Raises :class:`RegistryError`."""
        ...

    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        """Set tags on a version (idempotent). Raises :class:`RegistryError`."""
        ...

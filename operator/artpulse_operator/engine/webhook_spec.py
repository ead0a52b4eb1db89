"""The webhook fields of an ArtPulseModel: notification targets and the confirm-promotion gate.

Who calls it: ``engine.notifications`` re-exports everything here; the spec parser (or the
reconcile service) calls :func:`parse_targets` on ``spec.notifications.webhooks`` and
:func:`parse_confirm_target` on ``spec.analysis.confirmPromotion``. Errors are
:class:`~artpulse_operator.engine.spec_reader.SpecError` naming the exact field.

The shape, by example::

    notifications:
      webhooks:
        - name: team-slack                 # unique in the list
          url: https://hooks.slack.com/services/T0/B0/x
          format: Slack                    # Generic (default) or Slack
          events: [promoted, rolledBack]   # empty or absent: every event
          secretRef: {name: hooks, key: hmac-key}   # signs deliveries; key defaults to hmac-key
          timeout: 5s                      # 100ms .. 30s
    analysis:
      confirmPromotion: {url: https://approve.example.com/x, secretRef: {name: hooks}}

A tenant chooses these URLs, so only ``http``/``https`` with a host are accepted, and never a
URL with user info (credentials belong in a Secret, not in a resource anyone may read).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from artpulse_operator.engine.spec_reader import Reader, SpecError, format_duration

__all__ = [
    "DEFAULT_SECRET_KEY",
    "MAX_WEBHOOKS",
    "ConfirmTarget",
    "RolloutEventKind",
    "WebhookFormat",
    "WebhookTarget",
    "check_url",
    "parse_confirm_target",
    "parse_targets",
    "url_origin",
]

DEFAULT_SECRET_KEY = "hmac-key"
DEFAULT_TIMEOUT = "5s"
MIN_TIMEOUT_S = 0.1
MAX_TIMEOUT_S = 30.0
MAX_WEBHOOKS = 10  # bounds the fan-out one resource can ask of the operator
MAX_URL_LENGTH = 2048
_SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


class RolloutEventKind(StrEnum):
    STARTED = "started"
    STEP = "step"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolledBack"
    FAILED = "failed"


class WebhookFormat(StrEnum):
    GENERIC = "Generic"  # engine.notifications.generic_payload
    SLACK = "Slack"  # engine.notifications.slack_payload


@dataclass(frozen=True)
class WebhookTarget:
    """Where the notices of one resource go. ``url`` stays out of ``repr`` (a Slack URL is a
    credential of its own)."""

    name: str
    url: str = field(repr=False)
    format: WebhookFormat = WebhookFormat.GENERIC
    events: frozenset[RolloutEventKind] = frozenset()  # empty: every event
    secret_name: str | None = None  # a Secret of the resource's namespace holding the HMAC key
    secret_key: str = DEFAULT_SECRET_KEY
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ConfirmTarget:
    """The confirm-promotion webhook: promotion waits until it answers 2xx."""

    url: str = field(repr=False)
    secret_name: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    timeout_s: float = 5.0


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for logs and messages (paths and queries of webhook
    URLs often carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def check_url(url: object, field_path: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no user info, else SpecError."""
    if not isinstance(url, str) or not url:
        raise SpecError(field_path, "is required")
    if len(url) > MAX_URL_LENGTH:
        raise SpecError(field_path, f"must be at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise SpecError(field_path, "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise SpecError(field_path, f"is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SpecError(field_path, f"must be an http or https URL, got scheme {parts.scheme!r}")
    if "@" in parts.netloc:
        raise SpecError(field_path, "must not carry user info; put credentials in a Secret")
    if not parts.hostname:
        raise SpecError(field_path, "must name a host")
    return url


def _secret_ref(r: Reader) -> tuple[str | None, str]:
    if not r.has("secretRef"):
        return None, DEFAULT_SECRET_KEY
    ref = r.child("secretRef")
    name = ref.str_("name", required=True)
    key = ref.str_("key", DEFAULT_SECRET_KEY)
    if not _SECRET_KEY_RE.match(key):
        raise SpecError(ref.at("key"), "must be a Secret key (letters, digits, '-', '_', '.')")
    return name, key


def _timeout(r: Reader) -> float:
    seconds = r.duration("timeout", DEFAULT_TIMEOUT, minimum=MIN_TIMEOUT_S)
    if seconds > MAX_TIMEOUT_S:
        raise SpecError(r.at("timeout"), f"must be at most {format_duration(MAX_TIMEOUT_S)}")
    return seconds


def _events(r: Reader) -> frozenset[RolloutEventKind]:
    raw = r.list_("events") or ()
    kinds = set()
    for j, value in enumerate(raw):
        try:
            kinds.add(RolloutEventKind(value))
        except ValueError:
            allowed = ", ".join(k.value for k in RolloutEventKind)
            raise SpecError(
                f"{r.at('events')}[{j}]", f"must be one of {allowed}, got {value!r}"
            ) from None
    return frozenset(kinds)


def parse_targets(raw: Sequence[Mapping[str, Any]] | None, field: str) -> tuple[WebhookTarget, ...]:
    """The webhook targets of a list field (``field``: its path, e.g.
    ``spec.notifications.webhooks``); absent or empty: none."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise SpecError(field, "must be a list")
    if len(raw) > MAX_WEBHOOKS:
        raise SpecError(field, f"must list at most {MAX_WEBHOOKS} webhooks")
    targets: list[WebhookTarget] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        r = Reader(item, f"{field}[{i}]")
        if not isinstance(item, Mapping):
            raise SpecError(r.path, "must be an object")
        name = r.str_("name", required=True)
        if name in seen:
            raise SpecError(r.at("name"), f"duplicates {field}[{seen[name]}].name {name!r}")
        seen[name] = i
        secret_name, secret_key = _secret_ref(r)
        targets.append(
            WebhookTarget(
                name=name,
                url=check_url(item.get("url"), r.at("url")),
                format=r.enum("format", WebhookFormat, WebhookFormat.GENERIC),
                events=_events(r),
                secret_name=secret_name,
                secret_key=secret_key,
                timeout_s=_timeout(r),
            )
        )
    return tuple(targets)


def parse_confirm_target(raw: Mapping[str, Any] | None, field: str) -> ConfirmTarget | None:
    """The confirm-promotion webhook of an object field (e.g.
    ``spec.analysis.confirmPromotion``); absent: none."""
    if raw is None:
        return None
    r = Reader(raw, field)
    secret_name, secret_key = _secret_ref(r)
    return ConfirmTarget(
        url=check_url(r.data.get("url"), r.at("url")),
        secret_name=secret_name,
        secret_key=secret_key,
        timeout_s=_timeout(r),
    )

"""Credential checks shared by every route family: principals, scopes and API keys.

Pure functions and small classes without HTTP types, so they are unit-tested directly;
``deps.py`` turns them into FastAPI dependencies and writes the audit line. Tokens are
checked in ``tokens.py`` (HS256 and JWKS), the identity proxy's headers in
``proxy_identity.py``, cross-site POSTs in ``csrf.py``.

Every check returns a :class:`Principal` or raises :class:`AuthError` carrying the HTTP
status and a reason that is safe to show (it never contains the credential).

Scopes keep the route families apart: a credential grants ``predict`` (``/predict*``)
or ``ops`` (``/ops/*``, ``/reload-model``), never one because it has the other.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SCOPE_PREDICT = "predict"
SCOPE_OPS = "ops"


class AuthError(Exception):
    """A refused credential: 400 (malformed), 401 (no/invalid), 403 (not allowed), 503."""

    def __init__(
        self, status: int, reason: str, *, scheme: str = "none", principal: str = ""
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.scheme = scheme
        self.principal = principal


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``scheme`` (api_key, ops_key, jwt, demo, oidc, anonymous), a safe
    id, and the scopes the credential grants."""

    scheme: str
    subject: str
    scopes: frozenset[str] = frozenset()


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id for a secret (for logs and rate-limit keys)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class ApiKeyChecker:
    """Constant-time comparison against every configured key of one scope."""

    def __init__(
        self, keys: tuple[str, ...], *, scope: str = SCOPE_PREDICT, scheme: str = "api_key"
    ) -> None:
        self._keys = tuple(k.encode() for k in keys)
        self.scope = scope
        self.scheme = scheme

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def matches(self, presented: str) -> bool:
        candidate = presented.encode()
        # Compare against all keys without stopping early, so timing does not tell
        # which key (or how much of it) matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched

    def check(self, presented: str) -> Principal:
        if not self.matches(presented):
            raise AuthError(
                401,
                "invalid API key",
                scheme=self.scheme,
                principal=f"key:{fingerprint(presented)}",
            )
        return Principal(self.scheme, f"key:{fingerprint(presented)}", frozenset({self.scope}))


class ApiKeyRing:
    """``x-api-key`` against the keys of every scope at once (API_KEYS, OPS_API_KEYS).

    Every checker is consulted whatever the outcome, so the time taken does not say
    which scope (if any) a key belongs to.
    """

    def __init__(self, *checkers: ApiKeyChecker) -> None:
        self._checkers = checkers

    @property
    def enabled(self) -> bool:
        return any(c.enabled for c in self._checkers)

    def check(self, presented: str) -> Principal:
        results = [(checker, checker.matches(presented)) for checker in self._checkers]
        for checker, matched in results:
            if matched:
                return Principal(
                    checker.scheme, f"key:{fingerprint(presented)}", frozenset({checker.scope})
                )
        raise AuthError(
            401, "invalid API key", scheme="api_key", principal=f"key:{fingerprint(presented)}"
        )


SCOPE_HELP = {
    SCOPE_PREDICT: "a predict credential (an API_KEYS key, or a token with scope 'predict' "
    "or no scope claim)",
    SCOPE_OPS: "an ops credential (an OPS_API_KEYS key, a token with scope 'ops', or the "
    "identity proxy's headers)",
}


def require_scope(principal: Principal, scope: str, route: str) -> Principal:
    """``principal`` if it grants ``scope``, else a 403 saying what credential is needed."""
    if scope in principal.scopes:
        return principal
    granted = ", ".join(sorted(principal.scopes)) or "none"
    raise AuthError(
        403,
        f"{route} needs {SCOPE_HELP.get(scope, f'scope {scope!r}')}; the {principal.scheme} "
        f"credential presented grants: {granted}",
        scheme=principal.scheme,
        principal=principal.subject,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

"""Credential checks: API keys, JWT (HS256), demo tokens with rotating keys, OIDC headers.

Pure functions and small classes without HTTP types, so they are unit-tested directly;
``deps.py`` turns them into FastAPI dependencies and writes the audit line.

Every check returns a :class:`Principal` or raises :class:`AuthError` carrying the HTTP
status and a reason that is safe to show (it never contains the credential).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

# The only algorithm we sign or accept. Pinning it is what stops "alg: none" and
# key-confusion tricks: the header may not choose how its own signature is checked.
JWT_ALGORITHM = "HS256"


class AuthError(Exception):
    """A refused credential. ``status`` is 401 (no/invalid credential) or 403 (not allowed)."""

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
    """Who is calling: ``scheme`` (api_key, jwt, demo, oidc, anonymous) and a safe id."""

    scheme: str
    subject: str


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id for a secret (for logs and rate-limit keys)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class ApiKeyChecker:
    """Constant-time comparison against every configured key."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, presented: str) -> Principal:
        candidate = presented.encode()
        # Compare against all keys without stopping early, so timing does not tell
        # which key (or how much of it) matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        if not matched:
            raise AuthError(
                401, "invalid API key", scheme="api_key", principal=f"key:{fingerprint(presented)}"
            )
        return Principal("api_key", f"key:{fingerprint(presented)}")


def _decode_pinned(
    token: str,
    key: bytes | str,
    *,
    issuer: str,
    audience: str,
    leeway: float,
    scheme: str,
) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"malformed token: {exc}", scheme=scheme) from None
    alg = header.get("alg")
    if alg != JWT_ALGORITHM:
        raise AuthError(
            401, f"token algorithm {alg!r} refused, only {JWT_ALGORITHM} is accepted", scheme=scheme
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired", scheme=scheme) from None
    except jwt.InvalidAudienceError:
        raise AuthError(401, "token audience is not accepted here", scheme=scheme) from None
    except jwt.InvalidIssuerError:
        raise AuthError(401, "token issuer is not accepted here", scheme=scheme) from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(
            401, f"token lacks the required claim {exc.claim!r}", scheme=scheme
        ) from None
    except jwt.InvalidSignatureError:
        raise AuthError(401, "token signature does not verify", scheme=scheme) from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"invalid token: {exc}", scheme=scheme) from None
    return claims


class JwtVerifier:
    """HS256 tokens for the main API, with issuer, audience, expiry and subject required."""

    def __init__(self, secret: str, *, issuer: str, audience: str, leeway: float = 10.0) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    @property
    def enabled(self) -> bool:
        return bool(self._secret)

    def verify(self, token: str) -> Principal:
        claims = _decode_pinned(
            token,
            self._secret,
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            scheme="jwt",
        )
        return Principal("jwt", f"jwt:{claims['sub']}")


class DemoTokenAuthority:
    """Mints and verifies the public demo tokens.

    Keys rotate by ``kid``: new tokens are signed with the current kid; tokens signed with
    any kid still listed keep verifying until that key is removed from the set. A token
    whose kid is unknown is refused before any signature work.
    """

    def __init__(
        self,
        keys: dict[str, bytes],
        current_kid: str,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        leeway: float = 5.0,
    ) -> None:
        self._keys = dict(keys)
        self.current_kid = current_kid
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.leeway = leeway

    @property
    def enabled(self) -> bool:
        return bool(self._keys) and self.current_kid in self._keys

    def mint(self, *, now: float | None = None) -> tuple[str, dict[str, Any]]:
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"demo-{secrets.token_hex(8)}",
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_seconds,
            "scope": "demo",
        }
        token = jwt.encode(
            claims,
            self._keys[self.current_kid],
            algorithm=JWT_ALGORITHM,
            headers={"kid": self.current_kid},
        )
        return token, claims

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError(401, f"malformed token: {exc}", scheme="demo") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise AuthError(401, "demo token key id is unknown or retired", scheme="demo")
        claims = _decode_pinned(
            token,
            self._keys[kid],
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            scheme="demo",
        )
        if claims.get("scope") != "demo":
            raise AuthError(403, "token is not a demo token", scheme="demo")
        return Principal("demo", f"demo:{claims['sub']}")


class OidcHeaderTrust:
    """Identity asserted by an authenticating proxy in front of us (oauth2-proxy style).

    The header is believed only when the operator said the proxy strips it from client
    requests (``OPS_OIDC_TRUST_HEADERS=true``); otherwise anyone could send it.
    """

    def __init__(self, trusted: bool, allowed_domains: tuple[str, ...], header: str) -> None:
        self.trusted = trusted
        self.allowed_domains = allowed_domains
        self.header = header.lower()

    def check(self, email: str) -> Principal:
        email = email.strip().lower()
        local, sep, domain = email.rpartition("@")
        if not sep or not local or not domain:
            raise AuthError(401, "identity header does not hold an email address", scheme="oidc")
        if not self.allowed_domains:
            raise AuthError(
                403,
                "no email domain is allowed for ops access",
                scheme="oidc",
                principal=f"oidc:{email}",
            )
        if domain not in self.allowed_domains:
            raise AuthError(
                403,
                f"email domain {domain!r} is not allowed for ops access",
                scheme="oidc",
                principal=f"oidc:{email}",
            )
        return Principal("oidc", f"oidc:{email}")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

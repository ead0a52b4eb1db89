"""JWT checks: main-API tokens (HS256 shared secret, or RS256/ES256 from a JWKS) and the
public demo tokens with rotating keys.

``state.ServerState`` builds one :class:`JwtVerifier` and one :class:`DemoTokenAuthority`;
``deps`` calls them. Pure of HTTP types, like ``security``.

What every token must satisfy, whoever signed it:

- the algorithm is on the allowlist (``JWT_ALGORITHMS``) *and* pinned to the key that
  verifies it: HS256 only with ``JWT_SECRET``, RS256/ES256 only with a JWKS key of the
  matching type (``jwks.pinned_algorithm``); ``alg: none`` never;
- ``iss``, ``aud``, ``sub``, ``exp`` and ``iat`` present; ``exp``, ``iat`` and ``nbf``
  JSON numbers (pyjwt would take ``"exp": "9999999999"``; we do not);
- not issued in the future (beyond the leeway), and ``exp - iat`` within the lifetime
  cap (``JWT_MAX_LIFETIME_SECONDS``; for demo tokens their own TTL), so a leaked
  long-lived token is not a credential;
- the ``scope`` (or ``scp``) claim decides the route family: a main-API token without
  one is predict-only, and only a token that lists ``ops`` reaches the ops routes.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import jwt

from .jwks import ASYMMETRIC_ALGORITHMS, JwksKeys
from .security import SCOPE_PREDICT, AuthError, Principal

# The shared-secret algorithm, the only one demo tokens use.
JWT_ALGORITHM = "HS256"
SUPPORTED_ALGORITHMS = frozenset({JWT_ALGORITHM}) | ASYMMETRIC_ALGORITHMS
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
NUMERIC_CLAIMS = ("exp", "iat", "nbf")


def check_claim_types_and_lifetime(
    claims: dict[str, Any], *, max_lifetime_seconds: float, scheme: str
) -> None:
    """Numeric dates are JSON numbers, and the token lives no longer than the cap."""
    for name in NUMERIC_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AuthError(
                401,
                f"token claim {name!r} must be a JSON number (seconds since the epoch), "
                f"not {type(value).__name__}",
                scheme=scheme,
            )
        if not math.isfinite(value):
            raise AuthError(401, f"token claim {name!r} is not a finite number", scheme=scheme)
    lifetime = claims["exp"] - claims["iat"]
    if lifetime <= 0:
        raise AuthError(401, "token expires before it was issued (exp <= iat)", scheme=scheme)
    if lifetime > max_lifetime_seconds:
        raise AuthError(
            401,
            f"token lifetime {lifetime:g} s (exp - iat) exceeds the cap of "
            f"{max_lifetime_seconds:g} s; ask for a shorter-lived token",
            scheme=scheme,
        )


def token_scopes(claims: dict[str, Any], *, default: frozenset[str], scheme: str) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated string or list) or ``scp``; else ``default``."""
    name = "scope" if "scope" in claims else "scp" if "scp" in claims else None
    if name is None:
        return default
    value = claims[name]
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise AuthError(
        401,
        f"token claim {name!r} must be a space-separated string or a list of strings",
        scheme=scheme,
    )


def decode_verified(
    token: str,
    key: Any,
    *,
    algorithm: str,
    issuer: str,
    audience: str,
    leeway: float,
    max_lifetime_seconds: float,
    scheme: str,
) -> dict[str, Any]:
    """Signature, registered claims, types and lifetime, or AuthError (always 401)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired", scheme=scheme) from None
    except jwt.ImmatureSignatureError:
        raise AuthError(
            401, "token is not valid yet: 'iat' or 'nbf' is in the future", scheme=scheme
        ) from None
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
    check_claim_types_and_lifetime(claims, max_lifetime_seconds=max_lifetime_seconds, scheme=scheme)
    return claims


def unverified_header(token: str, scheme: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"malformed token: {exc}", scheme=scheme) from None


class JwtVerifier:
    """Main-API tokens: HS256 with ``JWT_SECRET`` and/or RS256/ES256 from ``JWT_JWKS_URL``.

    ``issuer``/``audience`` apply to HS256 tokens, ``jwks_issuer``/``jwks_audience`` (the
    OIDC provider's, defaulting to the former) to JWKS-verified ones.
    """

    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        audience: str,
        leeway: float = 10.0,
        max_lifetime_seconds: float = 3600.0,
        algorithms: tuple[str, ...] = (JWT_ALGORITHM,),
        jwks: JwksKeys | None = None,
        jwks_issuer: str = "",
        jwks_audience: str = "",
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_lifetime_seconds = max_lifetime_seconds
        self.algorithms = tuple(a for a in algorithms if a in SUPPORTED_ALGORITHMS)
        self.jwks = jwks
        self.jwks_issuer = jwks_issuer or issuer
        self.jwks_audience = jwks_audience or audience

    @property
    def enabled(self) -> bool:
        return bool(self._secret) or self.jwks is not None

    def accepted_algorithms(self) -> tuple[str, ...]:
        """The allowlist, narrowed to the algorithms a configured key can verify."""
        return tuple(
            a
            for a in self.algorithms
            if (a == JWT_ALGORITHM and self._secret)
            or (a in ASYMMETRIC_ALGORITHMS and self.jwks is not None)
        )

    def may_fetch(self, token: str) -> bool:
        """True when verifying ``token`` may block on the JWKS endpoint (run it in a thread)."""
        if self.jwks is None:
            return False
        try:
            return jwt.get_unverified_header(token).get("alg") in ASYMMETRIC_ALGORITHMS
        except jwt.InvalidTokenError:
            return False

    def verify(self, token: str) -> Principal:
        header = unverified_header(token, "jwt")
        alg = header.get("alg")
        accepted = self.accepted_algorithms()
        if alg not in accepted:
            raise AuthError(
                401,
                f"token algorithm {alg!r} refused, accepted here: {', '.join(accepted)}",
                scheme="jwt",
            )
        if alg == JWT_ALGORITHM:
            key: Any = self._secret
            issuer, audience = self.issuer, self.audience
        else:
            assert self.jwks is not None  # accepted_algorithms() says so
            key = self.jwks.key_for(header.get("kid"), str(alg))
            issuer, audience = self.jwks_issuer, self.jwks_audience
        claims = decode_verified(
            token,
            key,
            algorithm=str(alg),
            issuer=issuer,
            audience=audience,
            leeway=self.leeway,
            max_lifetime_seconds=self.max_lifetime_seconds,
            scheme="jwt",
        )
        scopes = token_scopes(claims, default=frozenset({SCOPE_PREDICT}), scheme="jwt")
        return Principal("jwt", f"jwt:{claims['sub']}", scopes)


class DemoTokenAuthority:
    """Mints and verifies the public demo tokens.

    Keys rotate by ``kid``: new tokens are signed with the current kid; tokens signed with
    any kid still listed keep verifying until that key is removed from the set. A token
    whose kid is unknown is refused before any signature work. A demo token grants only
    the ``demo`` scope and lives at most ``ttl_seconds``.
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
        header = unverified_header(token, "demo")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise AuthError(401, "demo token key id is unknown or retired", scheme="demo")
        if header.get("alg") != JWT_ALGORITHM:
            raise AuthError(
                401,
                f"token algorithm {header.get('alg')!r} refused, only {JWT_ALGORITHM} is accepted",
                scheme="demo",
            )
        claims = decode_verified(
            token,
            self._keys[kid],
            algorithm=JWT_ALGORITHM,
            issuer=self.issuer,
            audience=self.audience,
            leeway=self.leeway,
            max_lifetime_seconds=self.ttl_seconds,
            scheme="demo",
        )
        if claims.get("scope") != "demo":
            raise AuthError(403, "token is not a demo token", scheme="demo")
        return Principal("demo", f"demo:{claims['sub']}", frozenset({"demo"}))

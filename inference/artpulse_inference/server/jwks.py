"""Signing keys of an OIDC provider, fetched from its JWKS URL (``JWT_JWKS_URL``).

Used by ``tokens.JwtVerifier`` for RS256/ES256 tokens. pyjwt's ``PyJWKClient`` does the
fetch (no redirects, a timeout) and caches the set for ``JWT_JWKS_CACHE_SECONDS``; on
top of it this module:

- pins the algorithm to the key type: an RSA key verifies RS256 only, a P-256 EC key
  ES256 only, and a symmetric (``oct``) key in a JWKS verifies nothing, so a token cannot
  choose how its own signature is checked (no HS256-with-the-RSA-public-key confusion);
- refetches for an unknown ``kid`` at most once per cooldown, so a flood of tokens with
  made-up kids does not become a flood of requests to the provider;
- keeps verifying with the last good key set while the provider is unreachable, and
  answers 503 (never 500) when it has no keys at all.

``key_for`` blocks while it fetches: ``deps`` calls it from a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWTError

from .security import AuthError

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})


def pinned_algorithm(jwk: PyJWK) -> str | None:
    """The one algorithm a key may verify, from its type (and curve), or None.

    An explicit ``alg`` in the JWK must agree (pyjwt's ``algorithm_name`` is the declared
    one, else the default of the key type), and the key must be a public key.
    """
    key = jwk.key
    if isinstance(key, RSAPublicKey):
        pinned = "RS256"
    elif isinstance(key, EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        pinned = "ES256"
    else:
        return None
    return pinned if jwk.algorithm_name == pinned else None


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        timeout_seconds: float = 3.0,
        refresh_cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = PyJWKClient(
            url,
            cache_jwk_set=True,
            lifespan=cache_seconds,
            timeout=timeout_seconds,
            cooldown_duration=refresh_cooldown_seconds,
        )
        self._cooldown = refresh_cooldown_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_good: dict[str, PyJWK] | None = None
        self._last_refresh = float("-inf")
        self._failed_until = float("-inf")

    def key_for(self, kid: object, alg: str) -> Any:
        """The verification key for a token's ``kid`` and ``alg``, or AuthError."""
        if not isinstance(kid, str) or not kid:
            raise AuthError(401, "token has no 'kid' header naming a key of the JWKS", scheme="jwt")
        with self._lock:
            jwk = self._keys(refresh=False).get(kid)
            if jwk is None and self._clock() - self._last_refresh >= self._cooldown:
                jwk = self._keys(refresh=True).get(kid)
        if jwk is None:
            raise AuthError(
                401, "token key id is not in the provider's key set (JWT_JWKS_URL)", scheme="jwt"
            )
        pinned = pinned_algorithm(jwk)
        if pinned is None:
            raise AuthError(
                401,
                f"the JWKS key for this token ({jwk.key_type}) is not an RSA or P-256 EC "
                "signing key; refused",
                scheme="jwt",
            )
        if alg != pinned:
            raise AuthError(
                401,
                f"token algorithm {alg!r} does not match its key: {jwk.key_type} keys verify "
                f"{pinned} only",
                scheme="jwt",
            )
        return jwk.key

    def _keys(self, *, refresh: bool) -> dict[str, PyJWK]:
        now = self._clock()
        if now < self._failed_until:
            return self._stale_or_unavailable("the last fetch failed moments ago")
        try:
            jwk_set = self._client.get_jwk_set(refresh=refresh)
        except PyJWKClientConnectionError as exc:
            self._failed_until = now + self._cooldown
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)
            return self._stale_or_unavailable("it did not answer")
        except (PyJWKClientError, PyJWTError, ValueError) as exc:
            self._failed_until = now + self._cooldown
            log.warning("JWKS from %s is not a usable key set: %s", self.url, exc)
            return self._stale_or_unavailable("it did not return a usable key set")
        if refresh:
            self._last_refresh = now
        keys = {
            jwk.key_id: jwk
            for jwk in jwk_set.keys
            if jwk.key_id and jwk.public_key_use in ("sig", None)
        }
        self._last_good = keys
        return keys

    def _stale_or_unavailable(self, why: str) -> dict[str, PyJWK]:
        if self._last_good is not None:
            return self._last_good
        raise AuthError(
            503,
            f"token keys are unavailable: the provider's JWKS (JWT_JWKS_URL) could not be "
            f"read ({why}); try again shortly",
            scheme="jwt",
        )

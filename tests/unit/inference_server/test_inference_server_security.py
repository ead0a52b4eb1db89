"""API keys and scopes, JWT (pinned HS256), demo tokens with rotating kids, proxy identity."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from artpulse_inference.server.proxy_identity import ProxyIdentity
from artpulse_inference.server.security import (
    SCOPE_OPS,
    SCOPE_PREDICT,
    ApiKeyChecker,
    ApiKeyRing,
    AuthError,
    bearer_token,
)
from artpulse_inference.server.tokens import DemoTokenAuthority, JwtVerifier

SECRET = "s" * 40
OTHER = "o" * 40


def token(
    claims: dict[str, Any],
    key: str = SECRET,
    alg: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def good_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "artpulse",
        "aud": "artpulse-inference",
        "sub": "ci",
        "exp": now + 60,
        "iat": now,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def unsigned(claims: dict[str, Any]) -> str:
    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


VERIFIER = JwtVerifier(SECRET, issuer="artpulse", audience="artpulse-inference", leeway=0)


def test_api_key_accepts_any_configured_key_and_names_it_by_fingerprint() -> None:
    checker = ApiKeyChecker(("a" * 20, "b" * 20))
    principal = checker.check("b" * 20)
    assert principal.scheme == "api_key"
    assert "b" * 20 not in principal.subject
    assert principal.scopes == {SCOPE_PREDICT}
    with pytest.raises(AuthError) as info:
        checker.check("c" * 20)
    assert info.value.status == 401
    assert "c" * 20 not in info.value.reason


def test_key_ring_grants_each_key_its_own_scope_only() -> None:
    ring = ApiKeyRing(
        ApiKeyChecker(("p" * 20,)), ApiKeyChecker(("o" * 20,), scope=SCOPE_OPS, scheme="ops_key")
    )
    assert ring.check("p" * 20).scopes == {SCOPE_PREDICT}
    ops = ring.check("o" * 20)
    assert (ops.scheme, ops.scopes) == ("ops_key", {SCOPE_OPS})
    with pytest.raises(AuthError, match="invalid API key"):
        ring.check("x" * 20)


def test_valid_jwt_is_accepted_and_is_predict_only_without_a_scope() -> None:
    principal = VERIFIER.verify(token(good_claims()))
    assert principal.subject == "jwt:ci"
    assert principal.scopes == {SCOPE_PREDICT}
    assert VERIFIER.verify(token(good_claims(scope="predict ops"))).scopes == {"predict", "ops"}
    assert VERIFIER.verify(token(good_claims(scp=["ops"]))).scopes == {"ops"}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(good_claims(), key=OTHER), "signature does not verify"),
        (lambda: token(good_claims(exp=int(time.time()) - 5)), "expired"),
        (lambda: token(good_claims(aud="someone-else")), "audience"),
        (lambda: token(good_claims(iss="evil")), "issuer"),
        (lambda: token(good_claims(exp=None)), "'exp'"),
        (lambda: token(good_claims(aud=None)), "'aud'"),
        (lambda: token(good_claims(iss=None)), "'iss'"),
        (lambda: token(good_claims(sub=None)), "'sub'"),
        (lambda: token(good_claims(iat=None)), "'iat'"),
        (lambda: token(good_claims(exp=int(time.time()) + 7200)), "exceeds the cap of 3600"),
        (lambda: token(good_claims(exp=str(int(time.time()) + 60))), "must be a JSON number"),
        (lambda: token(good_claims(iat=int(time.time()) + 600)), "not valid yet"),
        (lambda: token(good_claims(scope=7)), "'scope' must be"),
        (lambda: unsigned(good_claims()), "algorithm 'none' refused"),
        (lambda: token(good_claims(), alg="HS512"), "algorithm 'HS512' refused"),
        (lambda: "not.a.jwt", "malformed"),
        (lambda: "garbage", "malformed"),
    ],
    ids=[
        "wrong-secret",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "no-exp",
        "no-aud",
        "no-iss",
        "no-sub",
        "no-iat",
        "lifetime-over-cap",
        "exp-as-string",
        "iat-in-the-future",
        "scope-not-a-string",
        "alg-none",
        "alg-hs512",
        "three-junk-parts",
        "one-part",
    ],
)
def test_bad_jwts_are_refused(make: Any, reason: str) -> None:
    with pytest.raises(AuthError) as info:
        VERIFIER.verify(make())
    assert info.value.status == 401
    assert reason in info.value.reason


def demo_authority(keys: dict[str, bytes], kid: str, ttl: int = 60) -> DemoTokenAuthority:
    return DemoTokenAuthority(
        keys, kid, issuer="artpulse-demo", audience="artpulse-demo", ttl_seconds=ttl, leeway=0
    )


K1, K2 = b"1" * 32, b"2" * 32


def test_demo_token_round_trip_carries_the_kid() -> None:
    authority = demo_authority({"k1": K1}, "k1")
    minted, claims = authority.mint()
    assert jwt.get_unverified_header(minted)["kid"] == "k1"
    assert claims["exp"] - claims["iat"] == 60
    assert authority.verify(minted).scheme == "demo"


def test_rotation_keeps_old_tokens_until_the_key_is_removed() -> None:
    old_token, _ = demo_authority({"k1": K1}, "k1").mint()
    rotated = demo_authority({"k1": K1, "k2": K2}, "k2")
    new_token, _ = rotated.mint()
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert rotated.verify(old_token).scheme == "demo"
    retired = demo_authority({"k2": K2}, "k2")
    assert retired.verify(new_token).scheme == "demo"
    with pytest.raises(AuthError, match="unknown or retired"):
        retired.verify(old_token)


def test_demo_refuses_expired_foreign_and_main_api_tokens() -> None:
    authority = demo_authority({"k1": K1}, "k1")
    expired, _ = authority.mint(now=time.time() - 3600)
    with pytest.raises(AuthError, match="expired"):
        authority.verify(expired)
    # A main-API token (no kid) is never a demo token.
    with pytest.raises(AuthError, match="unknown or retired"):
        authority.verify(token(good_claims()))
    # Right kid, wrong key: forged.
    forged = token(
        {**good_claims(iss="artpulse-demo", aud="artpulse-demo"), "scope": "demo"},
        key="x" * 32,
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthError, match="signature"):
        authority.verify(forged)
    # Right key but not minted as a demo token.
    no_scope = token(
        good_claims(iss="artpulse-demo", aud="artpulse-demo"),
        key=K1.decode(),
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthError, match="not a demo token") as info:
        authority.verify(no_scope)
    assert info.value.status == 403
    alg_none = unsigned({**good_claims(iss="artpulse-demo", aud="artpulse-demo"), "scope": "demo"})
    with pytest.raises(AuthError):
        authority.verify(alg_none)


def test_main_api_refuses_demo_tokens() -> None:
    demo_token, _ = demo_authority({"k1": SECRET.encode()}, "k1").mint()
    # Even signed with the same secret, the audience and issuer differ.
    with pytest.raises(AuthError):
        VERIFIER.verify(demo_token)


@pytest.mark.parametrize(
    ("email", "status", "reason"),
    [
        ("alice@example.com", 0, ""),
        ("Bob@Example.COM", 0, ""),
        ("mallory@evil.com", 403, "not allowed"),
        ("alice@example.com.evil.com", 403, "not allowed"),
        ("not-an-email", 401, "email"),
        ("@example.com", 401, "email"),
    ],
)
def test_oidc_domains(email: str, status: int, reason: str) -> None:
    trust = ProxyIdentity(trusted=True, allowed_domains=("example.com",), secret="p" * 20)
    if status == 0:
        principal = trust.principal_for(email)
        assert principal.subject == f"oidc:{email.lower()}"
        assert principal.scopes == {SCOPE_OPS}
    else:
        with pytest.raises(AuthError) as info:
            trust.principal_for(email)
        assert info.value.status == status
        assert reason in info.value.reason


def test_oidc_without_allowed_domains_allows_nobody() -> None:
    with pytest.raises(AuthError) as info:
        ProxyIdentity(trusted=True, allowed_domains=()).principal_for("a@example.com")
    assert info.value.status == 403


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected

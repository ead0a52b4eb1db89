"""Finding 3 (spoofable identity), the credential side of 1 (ops scope) and 7 (JWT and
start-up policy), attacked over real HTTP against the real app (TestClient), JWKS from a
real HTTP server on loopback.

Each test sends what an attacker would: an identity header straight to the pod, the
same header twice, a predict key on the ops routes, a cross-site form POST, tokens with
no ``iat``, a year-long lifetime, ``exp`` as a string, HS256 signed with the provider's
RSA public key; and each asserts the refusal and that nothing happened (no reload).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
from artpulse_inference.server.app import create_app
from artpulse_inference.server.jwks import JwksKeys
from artpulse_inference.server.model_store import LoadedModel, Prediction
from artpulse_inference.server.security import AuthError
from artpulse_inference.server.settings import Settings, SettingsError, load_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PREDICT_KEY = "pK7vQ2xL9mN4cR8tW1zY6bH3"
OPS_KEY = "oS5jD8fG2hK7lP0qW3eR6tY9"
PROXY_SECRET = "Xy4Tq9Lm2Vb7Nc1Rz8Ks5Hw0"
JWT_SECRET = "Jq3sP0vX7nLc2Rk9Tw5Ym8Bd1Hf6Gz4A"
CSRF = {"x-artpulse-csrf": "1"}
FROM_PROXY = {"x-artpulse-proxy-secret": PROXY_SECRET}
ALICE = {"x-auth-request-email": "alice@example.com"}
IDP = "https://idp.example"


class CountingLoader:
    """Loads a stand-in model for any URI and counts the loads (a reload is a load)."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def load(self, uri: str) -> LoadedModel:
        self.loads.append(uri)

        def predict(X: np.ndarray) -> Prediction:
            return Prediction(["a"] * len(X), np.full((len(X), 2), 0.5))

        return LoadedModel(
            uri=uri, name="art", version="1", alias="", run_id="r", flavor="test",
            feature_names=("f1", "f2"), classes=("a", "b"), predict=predict,
            loaded_at=time.time(), load_seconds=0.0,
        )  # fmt: skip


def make_settings(tmp: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "model_uri": "models:/art/1",
        "model_name": "art",
        "api_keys": PREDICT_KEY,
        "ops_api_keys": OPS_KEY,
        "jwt_secret": JWT_SECRET,
        "ops_oidc_trust_headers": True,
        "ops_oidc_allowed_email_domains": "example.com",
        "ops_proxy_secret": PROXY_SECRET,
        "drift_history_path": str(tmp / "drift.jsonl"),
        # This file attacks identity, not the limiter: keep the failures from throttling.
        "auth_failure_limit_per_minute": 0,
        "ops_rate_limit_per_minute": 0,
    }
    return Settings(**(values | over))


@contextmanager
def running(settings: Settings) -> Iterator[tuple[TestClient, CountingLoader]]:
    loader = CountingLoader()
    with TestClient(create_app(settings, loader=loader), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the stand-in model never loaded"
        yield client, loader


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, CountingLoader]]:
    with running(make_settings(tmp_path)) as pair:
        yield pair


def main_jwt(key: Any = JWT_SECRET, alg: str = "HS256", headers: Any = None, **over: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "artpulse",
        "aud": "artpulse-inference",
        "sub": "ci-bot",
        "iat": now,
        "exp": now + 60,
    } | over
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- finding 3: identity headers only from the proxy ------------------------------------


def test_a_spoofed_identity_header_sent_straight_to_the_pod_is_ignored(
    app: tuple[TestClient, CountingLoader],
) -> None:
    client, loader = app
    loads = len(loader.loads)
    summary = client.get("/ops/summary", headers=ALICE)
    assert summary.status_code == 401
    assert "x-auth-request-email header is ignored" in summary.json()["detail"]
    assert "x-artpulse-proxy-secret" in summary.json()["detail"]
    reload = client.post("/reload-model", headers=ALICE | CSRF)
    assert reload.status_code == 401
    wrong = client.post(
        "/reload-model",
        headers=ALICE | CSRF | {"x-artpulse-proxy-secret": "guessed-" + PROXY_SECRET[8:]},
    )
    assert wrong.status_code == 401
    assert "does not match OPS_PROXY_SECRET" in wrong.json()["detail"]
    assert len(loader.loads) == loads, "a refused reload loaded a model"


def test_the_identity_header_with_the_proxy_secret_is_believed(
    app: tuple[TestClient, CountingLoader],
) -> None:
    client, loader = app
    summary = client.get("/ops/summary", headers=ALICE | FROM_PROXY)
    assert summary.status_code == 200
    assert summary.json()["caller"] == "oidc:alice@example.com"
    loads = len(loader.loads)
    reload = client.post("/reload-model", headers=ALICE | FROM_PROXY | CSRF)
    assert reload.status_code == 200, reload.text
    assert len(loader.loads) == loads + 1
    other = client.get(
        "/ops/summary", headers={"x-auth-request-email": "eve@evil.example"} | FROM_PROXY
    )
    assert other.status_code == 403
    assert "not allowed" in other.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        [("x-auth-request-email", "alice@example.com"), ("x-auth-request-email", "eve@x.io")],
        [("x-auth-request-email", "alice@example.com"), ("x-auth-request-email", "alice@example.com")],
        [("x-auth-request-email", "alice@example.com"), ("x-forwarded-email", "eve@example.com")],
        [("x-auth-request-email", "alice@example.com"), ("x-forwarded-user", "a"), ("x-forwarded-user", "b")],
        [("x-auth-request-email", "alice@example.com"), ("x-artpulse-proxy-secret", "other")],
        [("x-api-key", PREDICT_KEY), ("x-api-key", OPS_KEY)],
    ],
    ids=["email-twice", "email-twice-same", "email-headers-disagree", "user-twice",
         "proxy-secret-twice", "api-key-twice"],
)  # fmt: skip
def test_duplicate_or_disagreeing_identity_headers_are_400(
    app: tuple[TestClient, CountingLoader], headers: list[tuple[str, str]]
) -> None:
    client, loader = app
    loads = len(loader.loads)
    sent = [("x-artpulse-proxy-secret", PROXY_SECRET), *headers, ("x-artpulse-csrf", "1")]
    for response in (
        client.get("/ops/summary", headers=sent),
        client.post("/reload-model", headers=sent),
    ):
        assert response.status_code == 400, response.text
        assert "appears" in response.json()["detail"] or "disagree" in response.json()["detail"]
    assert len(loader.loads) == loads


def test_agreeing_email_headers_from_the_proxy_are_accepted(
    app: tuple[TestClient, CountingLoader],
) -> None:
    client, _ = app
    headers = ALICE | FROM_PROXY | {"x-forwarded-email": "Alice@Example.com"}
    assert client.get("/ops/summary", headers=headers).status_code == 200


# ---- finding 1 (credential side): predict credentials never reach ops routes ------------


def test_a_predict_key_or_token_on_the_ops_routes_is_403(
    app: tuple[TestClient, CountingLoader],
) -> None:
    client, loader = app
    loads = len(loader.loads)
    for headers in (
        {"x-api-key": PREDICT_KEY},
        bearer(main_jwt()),
        bearer(main_jwt(scope="predict")),
    ):
        summary = client.get("/ops/summary", headers=headers)
        assert summary.status_code == 403, summary.text
        assert "needs an ops credential" in summary.json()["detail"]
        reload = client.post("/reload-model", headers=headers | CSRF)
        assert reload.status_code == 403
        assert "needs an ops credential" in reload.json()["detail"]
    assert len(loader.loads) == loads


def test_the_ops_key_and_ops_tokens_work_and_only_on_ops_routes(
    app: tuple[TestClient, CountingLoader],
) -> None:
    client, loader = app
    ops = {"x-api-key": OPS_KEY}
    summary = client.get("/ops/summary", headers=ops)
    assert summary.status_code == 200
    assert summary.json()["caller"].startswith("key:")
    loads = len(loader.loads)
    assert client.post("/reload-model", headers=ops | CSRF).status_code == 200
    assert len(loader.loads) == loads + 1
    assert client.get("/ops/summary", headers=bearer(main_jwt(scope="ops"))).status_code == 200
    rows = {"rows": [{"f1": 0.1, "f2": 0.2}]}
    refused = client.post("/predict", json=rows, headers=ops)
    assert refused.status_code == 403
    assert "needs a predict credential" in refused.json()["detail"]
    assert client.post("/predict", json=rows, headers={"x-api-key": PREDICT_KEY}).status_code == 200


# ---- finding 3: cross-site POSTs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "x-artpulse-csrf"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "x-artpulse-csrf"),
        (CSRF | {"Origin": "https://evil.example"}, "cross-site"),
        (CSRF | {"Origin": "null"}, "cross-site"),
        (CSRF | {"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Origin": "http://testserver"}, "x-artpulse-csrf"),
    ],
    ids=["no-header", "form-post", "foreign-origin", "null-origin", "fetch-site", "same-origin-no-header"],
)  # fmt: skip
def test_cross_site_posts_are_refused_before_anything_happens(
    app: tuple[TestClient, CountingLoader], headers: dict[str, str], reason: str
) -> None:
    client, loader = app
    loads = len(loader.loads)
    # The ambient credential a browser would attach: the proxy's session becomes these.
    for credential in (ALICE | FROM_PROXY, {"x-api-key": OPS_KEY}):
        response = client.post("/reload-model", headers=credential | headers, content=b"")
        assert response.status_code == 403, response.text
        assert reason in response.json()["detail"]
    assert len(loader.loads) == loads


def test_same_origin_and_trusted_origin_posts_with_the_header_pass(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, csrf_trusted_origins="https://ops.example.com")
    with running(settings) as (client, loader):
        for origin in ("http://testserver", "https://ops.example.com"):
            response = client.post(
                "/reload-model", headers=ALICE | FROM_PROXY | CSRF | {"Origin": origin}
            )
            assert response.status_code == 200, response.text
        assert len(loader.loads) == 3  # the initial load and two reloads


# ---- finding 7: JWT policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: main_jwt(iat=None), "lacks the required claim 'iat'"),
        (lambda: main_jwt(exp=int(time.time()) + 365 * 86_400), "exceeds the cap of 3600"),
        (lambda: main_jwt(exp=str(int(time.time()) + 60)), "'exp' must be a JSON number"),
        (lambda: main_jwt(iat=str(int(time.time()))), "'iat' must be a JSON number"),
        (lambda: main_jwt(nbf=str(int(time.time()))), "'nbf' must be a JSON number"),
        (lambda: main_jwt(iat=int(time.time()) + 3000, exp=int(time.time()) + 3500), "not valid yet"),
        (lambda: main_jwt(exp=int(time.time()), iat=int(time.time())), "expires before"),
    ],
    ids=["no-iat", "year-long", "exp-string", "iat-string", "nbf-string", "iat-future", "exp-eq-iat"],
)  # fmt: skip
def test_tokens_without_iat_too_long_lived_or_with_string_dates_are_401(
    app: tuple[TestClient, CountingLoader], make: Any, reason: str
) -> None:
    client, _ = app
    response = client.post(
        "/predict", json={"rows": [{"f1": 0.1, "f2": 0.2}]}, headers=bearer(make())
    )
    assert response.status_code == 401, response.text
    assert reason in response.json()["detail"]


def test_the_lifetime_cap_is_a_setting(tmp_path: Path) -> None:
    week = 7 * 86_400
    with running(make_settings(tmp_path, jwt_max_lifetime_seconds=week)) as (client, _):
        rows = {"rows": [{"f1": 0.1, "f2": 0.2}]}
        ok = main_jwt(exp=int(time.time()) + week - 60)
        assert client.post("/predict", json=rows, headers=bearer(ok)).status_code == 200


# ---- finding 7: RS256/ES256 with a JWKS on a real loopback server ------------------------


class Jwks:
    """A JWK set generated here (RSA 2048 and P-256), served on 127.0.0.1 over HTTP."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        self.document = {
            "keys": [
                rsa_jwk | {"kid": "rsa-1", "use": "sig"},
                ec_jwk | {"kid": "ec-1", "use": "sig"},
            ]
        }
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.hits += 1
                body = json.dumps(jwks.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture
def jwks_server() -> Iterator[Jwks]:
    server = Jwks()
    try:
        yield server
    finally:
        server.stop()


def oidc_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": IDP, "aud": "artpulse-ops", "sub": "alice", "iat": now, "exp": now + 300}
    return claims | {"scope": "openid ops"} | over


def jwks_settings(tmp: Path, url: str, **over: Any) -> Settings:
    return make_settings(
        tmp, jwt_jwks_url=url, jwt_jwks_issuer=IDP, jwt_jwks_audience="artpulse-ops", **over
    )


def hs256_signed_with(key: bytes, claims: dict[str, Any], kid: str) -> str:
    """The key-confusion forgery: HS256 with the provider's *public* key as the secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def test_rs256_and_es256_tokens_from_the_jwks_are_accepted(
    tmp_path: Path, jwks_server: Jwks
) -> None:
    rs = jwt.encode(oidc_claims(), jwks_server.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(
        oidc_claims(sub="bob"), jwks_server.ec, algorithm="ES256", headers={"kid": "ec-1"}
    )
    with running(jwks_settings(tmp_path, jwks_server.url)) as (client, _):
        assert client.get("/ops/summary", headers=bearer(rs)).json()["caller"] == "jwt:alice"
        assert client.get("/ops/summary", headers=bearer(es)).json()["caller"] == "jwt:bob"
        # Predict scope from the same provider reaches /predict, not the ops routes.
        predict = jwt.encode(
            oidc_claims(scope="predict"), jwks_server.ec, algorithm="ES256", headers={"kid": "ec-1"}
        )
        rows = {"rows": [{"f1": 0.1, "f2": 0.2}]}
        assert client.post("/predict", json=rows, headers=bearer(predict)).status_code == 200
        assert client.get("/ops/summary", headers=bearer(predict)).status_code == 403
    assert jwks_server.hits == 1, "the key set is cached, not fetched per token"


@pytest.mark.parametrize("with_secret", [False, True], ids=["jwks-only", "jwks-and-secret"])
def test_key_confusion_hs256_signed_with_the_rsa_public_key_is_refused(
    tmp_path: Path, jwks_server: Jwks, with_secret: bool
) -> None:
    forged = hs256_signed_with(jwks_server.rsa_public_pem(), oidc_claims(), "rsa-1")
    settings = jwks_settings(
        tmp_path, jwks_server.url, **({} if with_secret else {"jwt_secret": ""})
    )
    with running(settings) as (client, loader):
        loads = len(loader.loads)
        for response in (
            client.get("/ops/summary", headers=bearer(forged)),
            client.post("/reload-model", headers=bearer(forged) | CSRF),
        ):
            assert response.status_code == 401, response.text
            detail = response.json()["detail"]
            assert "signature does not verify" in detail or "'HS256' refused" in detail
        assert len(loader.loads) == loads


def test_an_algorithm_not_pinned_to_the_key_type_is_refused(
    tmp_path: Path, jwks_server: Jwks
) -> None:
    # An ES256 signature that names the RSA key: the key, not the header, picks the alg.
    mismatched = jwt.encode(
        oidc_claims(), jwks_server.ec, algorithm="ES256", headers={"kid": "rsa-1"}
    )
    rs512 = jwt.encode(oidc_claims(), jwks_server.rsa, algorithm="RS512", headers={"kid": "rsa-1"})
    with running(jwks_settings(tmp_path, jwks_server.url)) as (client, _):
        response = client.get("/ops/summary", headers=bearer(mismatched))
        assert response.status_code == 401
        assert "RSA keys verify RS256 only" in response.json()["detail"]
        response = client.get("/ops/summary", headers=bearer(rs512))
        assert response.status_code == 401
        assert "'RS512' refused" in response.json()["detail"]


def test_unknown_kids_do_not_become_a_flood_of_jwks_fetches(
    tmp_path: Path, jwks_server: Jwks
) -> None:
    with running(jwks_settings(tmp_path, jwks_server.url)) as (client, _):
        for i in range(20):
            token = jwt.encode(
                oidc_claims(), jwks_server.rsa, algorithm="RS256", headers={"kid": f"made-up-{i}"}
            )
            response = client.get("/ops/summary", headers=bearer(token))
            assert response.status_code == 401
            assert "not in the provider's key set" in response.json()["detail"]
    # The first look fetches, one forced refresh for an unknown kid, then the cooldown.
    assert jwks_server.hits <= 2


def test_a_jwks_outage_is_a_503_with_a_reason_not_a_500(tmp_path: Path) -> None:
    dead = Jwks()
    dead.stop()  # nothing listens on its port any more
    token = jwt.encode(oidc_claims(), dead.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    with running(jwks_settings(tmp_path, dead.url)) as (client, _):
        response = client.get("/ops/summary", headers=bearer(token))
        assert response.status_code == 503
        assert "token keys are unavailable" in response.json()["detail"]
        # HS256 tokens do not depend on the provider.
        ops = main_jwt(scope="ops")
        assert client.get("/ops/summary", headers=bearer(ops)).status_code == 200


def test_during_an_outage_the_last_good_key_set_keeps_verifying(jwks_server: Jwks) -> None:
    # A cache that expires at once: every look goes to the provider.
    keys = JwksKeys(jwks_server.url, cache_seconds=1e-6, refresh_cooldown_seconds=0)
    assert keys.key_for("rsa-1", "RS256") is not None
    assert jwks_server.hits == 1
    jwks_server.stop()
    # The fetch fails; the last good set still verifies, and an unknown kid stays unknown.
    assert keys.key_for("ec-1", "ES256") is not None
    with pytest.raises(AuthError, match="not in the provider's key set"):
        keys.key_for("rotated-in", "RS256")


# ---- finding 7: start-up policy ----------------------------------------------------------


def refused(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


def test_production_without_any_predict_credential_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refused({"ENVIRONMENT": "production"}, monkeypatch)
    assert "no predict credential is configured" in message
    assert "ALLOW_ANONYMOUS_PREDICT=true" in message
    message = refused({"API_KEYS": PREDICT_KEY, "PREDICT_REQUIRE_AUTH": "false"}, monkeypatch)
    assert "PREDICT_REQUIRE_AUTH=false" in message
    monkeypatch.setenv("ALLOW_ANONYMOUS_PREDICT", "true")
    assert not load_settings().predict_auth_required
    monkeypatch.delenv("ALLOW_ANONYMOUS_PREDICT")
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert not load_settings().predict_auth_required


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"API_KEY": PREDICT_KEY, "OPS_API_KEY": PREDICT_KEY}, ("OPS_API_KEYS key #1", "API_KEYS key #1")),
        ({"API_KEYS": f"{PREDICT_KEY},{OPS_KEY}", "OPS_API_KEYS": OPS_KEY}, ("OPS_API_KEYS key #1", "API_KEYS key #2")),
        ({"API_KEY": JWT_SECRET, "JWT_SECRET": JWT_SECRET}, ("JWT_SECRET", "API_KEYS key #1")),
        (
            {"JWT_SECRET": JWT_SECRET, "DEMO_JWK_CURRENT_KID": "k1", "DEMO_JWK_KEYS_JSON": json.dumps({"k1": JWT_SECRET})},
            ("DEMO_JWK_KEYS_JSON key 'k1'", "JWT_SECRET"),
        ),
        ({"API_KEY": PREDICT_KEY, "OPS_API_KEY": OPS_KEY, "OPS_PROXY_SECRET": OPS_KEY}, ("OPS_PROXY_SECRET", "OPS_API_KEYS key #1")),
    ],
    ids=["api-key-is-ops-key", "one-of-several", "api-key-is-jwt-secret", "jwt-secret-is-demo-key", "proxy-secret-is-ops-key"],
)  # fmt: skip
def test_the_same_secret_across_scopes_refuses_to_start(
    env: dict[str, str], names: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refused(env, monkeypatch)
    assert f"{names[0]} is the same secret as {names[1]}" in message
    for secret in (PREDICT_KEY, OPS_KEY, JWT_SECRET):
        assert secret not in message


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"API_KEY": "a" * 40}, "API_KEYS key #1"),
        ({"API_KEY": "1234567890123456"}, "API_KEYS key #1"),
        ({"API_KEY": PREDICT_KEY, "OPS_API_KEY": "abcabcabcabcabcabcabc"}, "OPS_API_KEYS key #1"),
        ({"JWT_SECRET": "ab" * 20}, "JWT_SECRET"),
        ({"JWT_SECRET": "abcdefghijklmnopqrstuvwxyz012345"}, "JWT_SECRET"),
        ({"API_KEY": PREDICT_KEY, "DEMO_JWK_CURRENT_KID": "k", "DEMO_JWK_KEYS_JSON": '{"k": "' + "z" * 32 + '"}'}, "DEMO_JWK_KEYS_JSON key 'k'"),
    ],
    ids=["one-char", "digit-run", "repeated-pattern", "two-chars", "alphabet", "demo-key"],
)  # fmt: skip
def test_low_entropy_secrets_refuse_to_start(
    env: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refused(env, monkeypatch)
    assert f"{name} is too predictable" in message
    monkeypatch.setenv("ENVIRONMENT", "development")
    load_settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPS_OIDC_TRUST_HEADERS": "true"}, "OPS_OIDC_TRUST_HEADERS=true needs OPS_PROXY_SECRET"),
        ({"JWT_JWKS_URL": "http://idp.example/jwks.json"}, "JWT_JWKS_URL must be https"),
        ({"JWT_JWKS_URL": "file:///etc/passwd"}, "JWT_JWKS_URL must be an http(s) URL"),
        ({"JWT_ALGORITHMS": "HS256,none"}, "JWT_ALGORITHMS: NONE not supported"),
        ({"JWT_ALGORITHMS": "RS256"}, "JWT_SECRET is set but HS256 is not in JWT_ALGORITHMS"),
    ],
    ids=["trust-without-proof", "jwks-over-http", "jwks-file-url", "alg-none", "secret-without-hs256"],
)  # fmt: skip
def test_identity_settings_that_cannot_be_safe_refuse_to_start(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", PREDICT_KEY)
    monkeypatch.setenv("JWT_SECRET", JWT_SECRET)
    assert message in refused(env, monkeypatch)


def test_strong_distinct_secrets_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "API_KEYS": PREDICT_KEY,
        "OPS_API_KEYS": OPS_KEY,
        "JWT_SECRET": JWT_SECRET,
        "OPS_PROXY_SECRET": PROXY_SECRET,
        "OPS_OIDC_TRUST_HEADERS": "true",
        "JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json",
    }.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.ops_api_key_list == (OPS_KEY,)
    assert settings.predict_auth_required

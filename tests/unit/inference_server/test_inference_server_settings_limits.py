"""Settings from the environment (placeholder secrets refused outside development) and rate limits."""

from __future__ import annotations

import base64
import json

import pytest
from artpulse_inference.server.ratelimit import RateLimiter
from artpulse_inference.server.settings import Settings, SettingsError, load_settings

# Random-looking values: a repeated character is refused as predictable (secret_policy).
STRONG = "vQ8r2LxN0cTz5WmKp7YhBs4fGj9Ud3Ea"
OTHER_KEY = "Hn6tRw1ZqXe8LcVb"


def test_defaults_are_production_and_refuse_to_serve_predict_anonymously() -> None:
    with pytest.raises(ValueError, match="ALLOW_ANONYMOUS_PREDICT=true"):
        Settings()
    s = Settings(allow_anonymous_predict=True)
    assert s.environment == "production"
    assert not s.predict_auth_required
    assert s.latency_buckets[0] == 0.0005
    # Dense around 1-300 ms.
    assert sum(1 for b in s.latency_buckets if 0.001 <= b <= 0.3) >= 15


@pytest.mark.parametrize(
    "env",
    [
        {"API_KEY": "changeme"},
        {"API_KEYS": f"{STRONG},short"},
        {"API_KEY": "k" * 40},
        {"JWT_SECRET": "secret"},
        {"JWT_SECRET": "x" * 31},
        {"JWT_SECRET": "please-change-me-before-deploying-this"},
        {"DEMO_JWK_CURRENT_KID": "a", "DEMO_JWK_KEYS_JSON": '{"a": "changeme"}'},
    ],
)
def test_placeholder_secrets_refused_outside_development(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=r"placeholder|shorter than|too predictable"):
        load_settings()
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert load_settings().environment == "development"


def test_strong_secrets_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    jwt_secret = "Jq3sP0vX7nLc2Rk9Tw5Ym8Bd1Hf6Gz4A"
    monkeypatch.setenv("API_KEYS", f"{STRONG}, {OTHER_KEY}")
    monkeypatch.setenv("JWT_SECRET", jwt_secret)
    monkeypatch.setenv("DEMO_JWK_CURRENT_KID", "2026-11")
    monkeypatch.setenv(
        "DEMO_JWK_KEYS_JSON",
        json.dumps(
            {
                "2026-10": "d3M0pQ7xR2kV9nB4tY6wZ1cF8hJ5gL0s",
                "2026-11": "E7uN2qW9rT4yU6iO1pA3sD5fG8hJ0kLz",
            }
        ),
    )
    s = load_settings()
    assert s.api_key_list == (STRONG, OTHER_KEY)
    assert s.predict_auth_required
    assert set(s.demo_keys) == {"2026-10", "2026-11"}
    assert s.demo_active


def test_jwk_set_format() -> None:
    k = base64.urlsafe_b64encode(b"z" * 32).rstrip(b"=").decode()
    s = Settings(
        environment="development",
        demo_jwk_current_kid="a",
        demo_jwk_keys_json=json.dumps({"keys": [{"kty": "oct", "kid": "a", "k": k}]}),
    )
    assert s.demo_keys == {"a": b"z" * 32}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEMO_JWK_KEYS_JSON": "{not json"}, "not valid JSON"),
        ({"DEMO_JWK_KEYS_JSON": "[1]"}, "expected"),
        (
            {"DEMO_JWK_KEYS_JSON": '{"a": "' + "x" * 32 + '"}', "DEMO_JWK_CURRENT_KID": "b"},
            "is not one of the kids",
        ),
        ({"HTTP_LATENCY_BUCKETS_SECONDS": "0.1,abc"}, "'abc' is not a number"),
        ({"HTTP_LATENCY_BUCKETS_SECONDS": "0.2,0.1"}, "strictly increasing"),
        ({"HTTP_LATENCY_BUCKETS_SECONDS": "-1"}, "positive"),
        ({"PORT": "99999"}, "PORT"),
        ({"ENVIRONMENT": "prod"}, "ENVIRONMENT"),
        ({"SHADOW_PERCENT": "150"}, "SHADOW_PERCENT"),
    ],
)
def test_bad_environment_is_one_readable_error(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "development")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


def test_predict_auth_follows_credentials_unless_forced() -> None:
    assert Settings(environment="development", api_key="x").predict_auth_required
    assert not Settings(
        environment="development", api_key="x", predict_require_auth=False
    ).predict_auth_required
    assert Settings(predict_require_auth=True).predict_auth_required


def test_oidc_domains_are_normalised() -> None:
    s = Settings(
        environment="development", ops_oidc_allowed_email_domains=" Example.com, @corp.example ,"
    )
    assert s.oidc_allowed_domains == ("example.com", "corp.example")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.hit("a").allowed for _ in range(3)] == [True, True, True]
    refused = limiter.hit("a")
    assert not refused.allowed
    assert refused.retry_after_seconds == 1
    # Other clients have their own bucket.
    assert limiter.hit("b").allowed
    clock.now += 1.0
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed


def test_retry_after_rounds_up_for_slow_rates() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=2, burst=1, clock=clock)
    assert limiter.hit("a").allowed
    decision = limiter.hit("a")
    assert not decision.allowed
    assert decision.retry_after_seconds == 30
    clock.now += 29.5
    assert limiter.hit("a").retry_after_seconds == 1


def test_disabled_limiter_allows_everything_and_idle_clients_are_evicted() -> None:
    assert all(RateLimiter(0, 1).hit("a").allowed for _ in range(100))
    limiter = RateLimiter(60, 1, max_clients=10, clock=FakeClock())
    for i in range(50):
        limiter.hit(f"c{i}")
    assert len(limiter._buckets) == 10

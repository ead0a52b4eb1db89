"""Settings of one inference-server process, read once from the environment.

``artpulse-server`` (``__main__.main``) calls :func:`load_settings`; tests build
:class:`Settings` directly. The operator sets the model environment (``MODEL_URI``,
``MODEL_NAME``, ``MODEL_VERSION``, ``MODEL_ALIAS``, ``ARTPULSE_TRACK``,
``MLFLOW_TRACKING_URI``, ``SHADOW_MODEL_URI``, ``PORT``); secrets come from the
Secret named in ``spec.serving.secretRef``.

Outside ``ENVIRONMENT=development`` a placeholder or short secret is refused at start-up,
so a copy-pasted example value can never guard a real deployment.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Dense around 1-300 ms, where the latency gate (p95LatencyMs) usually sits, so a
# histogram_quantile over them is accurate to a few percent.
DEFAULT_LATENCY_BUCKETS = (
    "0.0005,0.001,0.002,0.003,0.004,0.005,0.0075,0.01,0.0125,0.015,0.02,0.025,0.03,0.04,"
    "0.05,0.06,0.075,0.09,0.1,0.125,0.15,0.2,0.25,0.3,0.4,0.5,0.75,1,2.5,5,10"
)

PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "placeholder",
        "example",
        "default",
        "test",
        "dev",
        "development",
        "replace-me",
        "todo",
        "xxx",
    }
)
MIN_API_KEY_LENGTH = 16
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_HMAC_SECRET_BYTES = 32


class SettingsError(ValueError):
    """The environment does not describe a server we are willing to start."""


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in PLACEHOLDER_SECRETS:
        return True
    return any(marker in lowered for marker in ("changeme", "change-me", "change_me", "replace"))


class Settings(BaseSettings):
    """All knobs of the server. Field ``foo_bar`` is read from env ``FOO_BAR``."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    environment: Literal["development", "staging", "production"] = "production"

    # The model, as the operator renders it.
    model_uri: str = ""
    model_name: str = ""
    model_version: str = ""
    model_alias: str = ""
    artpulse_track: str = "stable"
    mlflow_tracking_uri: str = ""
    shadow_model_uri: str = ""
    shadow_percent: float = Field(default=100.0, ge=0.0, le=100.0)
    shadow_queue_size: int = Field(default=1024, ge=1)
    model_load_retry_seconds: float = Field(default=5.0, gt=0)

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)

    # Credentials for the main API. API_KEYS is comma-separated (API_KEY is one more).
    api_key: str = ""
    api_keys: str = ""
    jwt_secret: str = ""
    jwt_issuer: str = "artpulse"
    jwt_audience: str = "artpulse-inference"
    jwt_leeway_seconds: float = Field(default=10.0, ge=0)
    # None: /predict* need a credential exactly when one is configured.
    predict_require_auth: bool | None = None

    # Public demo tokens for the landing page.
    demo_enabled: bool = True
    demo_jwk_current_kid: str = ""
    demo_jwk_keys_json: str = ""
    demo_token_issuer: str = "artpulse-demo"
    demo_token_audience: str = "artpulse-demo"
    demo_token_ttl_seconds: int = Field(default=300, ge=10, le=86_400)
    demo_rate_limit_per_minute: float = Field(default=30.0, ge=0)
    demo_rate_limit_burst: int = Field(default=10, ge=1)
    demo_token_rate_limit_per_minute: float = Field(default=6.0, ge=0)
    demo_token_rate_limit_burst: int = Field(default=3, ge=1)
    # Main API, per client (principal, else address). 0 disables.
    api_rate_limit_per_minute: float = Field(default=0.0, ge=0)
    api_rate_limit_burst: int = Field(default=100, ge=1)
    # Use the first X-Forwarded-For address as the client (only behind a trusted proxy).
    trust_forwarded_for: bool = False

    # Ops access through an identity-aware proxy (oauth2-proxy style headers).
    ops_oidc_trust_headers: bool = False
    ops_oidc_allowed_email_domains: str = ""
    ops_oidc_email_header: str = "x-auth-request-email"

    # Input limits.
    max_batch_rows: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)

    http_latency_buckets_seconds: str = DEFAULT_LATENCY_BUCKETS

    # Drift monitor.
    drift_window_size: int = Field(default=1000, ge=10)
    drift_min_samples: int = Field(default=100, ge=1)
    drift_interval_seconds: float = Field(default=10.0, gt=0)
    drift_history_path: str = "/tmp/artpulse-drift-history.jsonl"
    drift_trend_points: int = Field(default=30, ge=2)

    # Micro-batching of concurrent predictions (rows per model call).
    microbatch_max_rows: int = Field(default=256, ge=1)

    artpulse_allow_fault_injection: bool = False
    log_level: str = "info"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        problems: list[str] = []
        try:
            buckets = self.latency_buckets
            if not buckets:
                problems.append("HTTP_LATENCY_BUCKETS_SECONDS: no buckets given")
        except ValueError as exc:
            problems.append(f"HTTP_LATENCY_BUCKETS_SECONDS: {exc}")
        try:
            keys = self.demo_keys
        except ValueError as exc:
            problems.append(f"DEMO_JWK_KEYS_JSON: {exc}")
            keys = {}
        if self.demo_enabled and keys and self.demo_jwk_current_kid not in keys:
            problems.append(
                f"DEMO_JWK_CURRENT_KID: {self.demo_jwk_current_kid!r} is not one of the "
                f"kids in DEMO_JWK_KEYS_JSON ({', '.join(sorted(keys))})"
            )
        if self.environment != "development":
            problems.extend(self._secret_problems(keys))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _secret_problems(self, demo_keys: dict[str, bytes]) -> list[str]:
        problems = []
        for index, key in enumerate(self.api_key_list):
            if _is_placeholder(key) or len(key) < MIN_API_KEY_LENGTH:
                problems.append(
                    f"API key #{index + 1} is a placeholder or shorter than "
                    f"{MIN_API_KEY_LENGTH} characters (allowed only with ENVIRONMENT=development)"
                )
        if self.jwt_secret and (
            _is_placeholder(self.jwt_secret)
            or len(self.jwt_secret.encode()) < MIN_HMAC_SECRET_BYTES
        ):
            problems.append(
                f"JWT_SECRET is a placeholder or shorter than {MIN_HMAC_SECRET_BYTES} bytes "
                "(allowed only with ENVIRONMENT=development)"
            )
        for kid, secret in demo_keys.items():
            if (
                _is_placeholder(secret.decode(errors="replace"))
                or len(secret) < MIN_HMAC_SECRET_BYTES
            ):
                problems.append(
                    f"demo key {kid!r} is a placeholder or shorter than {MIN_HMAC_SECRET_BYTES} "
                    "bytes (allowed only with ENVIRONMENT=development)"
                )
        return problems

    @cached_property
    def api_key_list(self) -> tuple[str, ...]:
        keys = [k.strip() for k in self.api_keys.split(",") if k.strip()]
        if self.api_key.strip():
            keys.append(self.api_key.strip())
        return tuple(dict.fromkeys(keys))

    @cached_property
    def demo_keys(self) -> dict[str, bytes]:
        """kid -> HMAC secret. ``DEMO_JWK_KEYS_JSON`` is ``{"kid": "secret", ...}`` or a
        JWK set ``{"keys": [{"kid": ..., "k": <base64url>}, ...]}``."""
        if not self.demo_jwk_keys_json.strip():
            return {}
        try:
            data = json.loads(self.demo_jwk_keys_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos})") from exc
        if isinstance(data, dict) and isinstance(data.get("keys"), list):
            import base64

            out: dict[str, bytes] = {}
            for i, jwk in enumerate(data["keys"]):
                if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                    raise ValueError(f"keys[{i}] needs a string 'kid'")
                k = jwk.get("k")
                if not isinstance(k, str) or not k:
                    raise ValueError(f"keys[{i}] needs a base64url 'k'")
                out[jwk["kid"]] = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
            return out
        if isinstance(data, dict) and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
        ):
            return {k: v.encode() for k, v in data.items()}
        raise ValueError('expected {"kid": "secret", ...} or {"keys": [{"kid", "k"}, ...]}')

    @cached_property
    def latency_buckets(self) -> tuple[float, ...]:
        values: list[float] = []
        for part in self.http_latency_buckets_seconds.split(","):
            if not part.strip():
                continue
            try:
                value = float(part)
            except ValueError as exc:
                raise ValueError(f"{part.strip()!r} is not a number") from exc
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{part.strip()!r} must be a positive finite number of seconds")
            values.append(value)
        if values != sorted(set(values)):
            raise ValueError("buckets must be strictly increasing")
        return tuple(values)

    @cached_property
    def oidc_allowed_domains(self) -> tuple[str, ...]:
        return tuple(
            d.strip().lower().lstrip("@")
            for d in self.ops_oidc_allowed_email_domains.split(",")
            if d.strip()
        )

    @property
    def predict_auth_required(self) -> bool:
        if self.predict_require_auth is not None:
            return self.predict_require_auth
        return bool(self.api_key_list or self.jwt_secret)

    @property
    def demo_active(self) -> bool:
        return self.demo_enabled and bool(self.demo_keys)


def load_settings() -> Settings:
    """Settings from the environment; a bad environment becomes one readable SettingsError."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]).upper() or "settings"
            lines.append(f"{where}: {error['msg']}")
        raise SettingsError("invalid server settings: " + "; ".join(lines)) from None

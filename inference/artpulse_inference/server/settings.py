"""Settings of one inference-server process, read once from the environment.

``artpulse-server`` (``__main__.main``) calls :func:`load_settings`; tests build
:class:`Settings` directly. The operator sets the model environment (``MODEL_URI``,
``MODEL_NAME``, ``MODEL_VERSION``, ``MODEL_ALIAS``, ``ARTPULSE_TRACK``,
``MLFLOW_TRACKING_URI``, ``SHADOW_MODEL_URI``, ``PORT``); secrets come from the
Secret named in ``spec.serving.secretRef``.

Outside ``ENVIRONMENT=development`` a placeholder, short or predictable secret, or one
secret used for two scopes, is refused at start-up (``secret_policy``), so a copy-pasted
example value can never guard a real deployment; so is a server that would answer
/predict anonymously, unless ``ALLOW_ANONYMOUS_PREDICT=true`` says that is the point.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .secret_policy import secret_weakness, shared_secrets

# Dense around 1-300 ms, where the latency gate (p95LatencyMs) usually sits, so a
# histogram_quantile over them is accurate to a few percent.
DEFAULT_LATENCY_BUCKETS = (
    "0.0005,0.001,0.002,0.003,0.004,0.005,0.0075,0.01,0.0125,0.015,0.02,0.025,0.03,0.04,"
    "0.05,0.06,0.075,0.09,0.1,0.125,0.15,0.2,0.25,0.3,0.4,0.5,0.75,1,2.5,5,10"
)

MIN_API_KEY_LENGTH = 16
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_HMAC_SECRET_BYTES = 32


class SettingsError(ValueError):
    """The environment does not describe a server we are willing to start."""


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
SUPPORTED_JWT_ALGORITHMS = frozenset({"HS256", "RS256", "ES256"})


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
    # The Open Inference Protocol over gRPC (oip_grpc.py): off unless a port is given.
    grpc_port: int = Field(default=0, ge=0, le=65535)
    grpc_host: str = ""  # default HOST

    # Credentials for the main API. API_KEYS is comma-separated (API_KEY is one more).
    api_key: str = ""
    api_keys: str = ""
    jwt_secret: str = ""
    jwt_issuer: str = "artpulse"
    jwt_audience: str = "artpulse-inference"
    jwt_leeway_seconds: float = Field(default=10.0, ge=0)
    # exp - iat of any main-API token; a longer-lived token is refused.
    jwt_max_lifetime_seconds: int = Field(default=3600, ge=60, le=30 * 86_400)
    # Allowlist; each is also pinned to its key: HS256 to JWT_SECRET, RS256/ES256 to JWKS.
    jwt_algorithms: str = "HS256,RS256,ES256"
    # OIDC provider keys (RS256/ES256), e.g. https://idp.example/.well-known/jwks.json.
    jwt_jwks_url: str = ""
    jwt_jwks_issuer: str = ""  # default JWT_ISSUER
    jwt_jwks_audience: str = ""  # default JWT_AUDIENCE
    jwt_jwks_cache_seconds: float = Field(default=300.0, ge=10, le=86_400)
    jwt_jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    # None: /predict* need a credential exactly when one is configured.
    predict_require_auth: bool | None = None
    # Outside development, /predict is never served anonymously unless this is true.
    allow_anonymous_predict: bool = False
    # Ops credentials (/ops/*, /reload-model), distinct from the predict ones.
    ops_api_key: str = ""
    ops_api_keys: str = ""

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
    # The client address is the X-Forwarded-For entry added by the outermost of this many
    # trusted proxies (counted from the right); 0 uses the socket peer. Unset: 1 when the
    # deprecated TRUST_FORWARDED_FOR=true, else 0 (see ``proxy_hops``).
    trusted_proxy_hops: int | None = Field(default=None, ge=0, le=10)
    trust_forwarded_for: bool = False
    # Per client address, checked before any credential (0 disables one limit).
    auth_failure_limit_per_minute: float = Field(default=10.0, ge=0)
    ops_rate_limit_per_minute: float = Field(default=60.0, ge=0)
    ops_rate_limit_burst: int = Field(default=20, ge=1)
    predict_address_rate_limit_per_minute: float = Field(default=0.0, ge=0)
    predict_address_rate_limit_burst: int = Field(default=200, ge=1)
    # Rows per public demo request (the main API has MAX_BATCH_ROWS).
    demo_max_rows: int = Field(default=20, ge=1, le=1000)
    # Out-of-range features (see feature_bounds.py): refuse (422), clamp, or off.
    feature_bounds: Literal["refuse", "clamp", "off"] = "refuse"
    feature_bounds_margin: float = Field(default=1.0, ge=0, le=1000)
    # HTTP framing limits (the uvicorn protocol and the body-read middleware).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_header_count: int = Field(default=100, ge=8, le=1000)
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Ops access through an identity-aware proxy (oauth2-proxy style headers).
    ops_oidc_trust_headers: bool = False
    ops_oidc_allowed_email_domains: str = ""
    ops_oidc_email_header: str = "x-auth-request-email"
    # The proof that a request came through the proxy: it sends this secret header.
    ops_proxy_secret: str = ""
    ops_proxy_secret_header: str = "x-artpulse-proxy-secret"
    # Origins besides this server's own allowed to POST /reload-model (comma-separated).
    csrf_trusted_origins: str = ""

    # Input limits.
    max_batch_rows: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # Bytes one image may allocate while decoding, from its header (docs/security.md).
    max_image_decoded_bytes: int = Field(default=48 * 1024 * 1024, ge=256 * 1024)
    # Images decoded at once; waiting uploads hold only their bytes.
    image_decode_concurrency: int = Field(default=2, ge=1, le=64)

    http_latency_buckets_seconds: str = DEFAULT_LATENCY_BUCKETS

    # Drift monitor.
    drift_window_size: int = Field(default=1000, ge=10)
    drift_min_samples: int = Field(default=100, ge=1)
    drift_interval_seconds: float = Field(default=10.0, gt=0)
    drift_history_path: str = "/tmp/artpulse-drift-history.jsonl"
    drift_trend_points: int = Field(default=30, ge=2)
    # At most this share of the window comes from one request (rows sampled beyond it).
    drift_max_request_share: float = Field(default=0.01, gt=0, le=1)

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
        if self.grpc_port and self.grpc_port == self.port:
            problems.append(f"GRPC_PORT: {self.grpc_port} is also PORT; give gRPC its own port")
        problems.extend(self._identity_problems())
        if self.environment != "development":
            problems.extend(self._secret_problems(keys))
            problems.extend(self._production_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _named_secrets(self, demo_keys: dict[str, bytes]) -> list[tuple[str, str, bytes, int]]:
        """(scope, setting, secret, minimum length in bytes) of every configured secret."""
        named = [
            ("predict", f"API_KEYS key #{i + 1}", k.encode(), MIN_API_KEY_LENGTH)
            for i, k in enumerate(self.api_key_list)
        ]
        named += [
            ("ops", f"OPS_API_KEYS key #{i + 1}", k.encode(), MIN_API_KEY_LENGTH)
            for i, k in enumerate(self.ops_api_key_list)
        ]
        if self.jwt_secret:
            named.append(("jwt", "JWT_SECRET", self.jwt_secret.encode(), MIN_HMAC_SECRET_BYTES))
        named += [
            ("demo", f"DEMO_JWK_KEYS_JSON key {kid!r}", secret, MIN_HMAC_SECRET_BYTES)
            for kid, secret in demo_keys.items()
        ]
        if self.ops_proxy_secret:
            named.append(
                ("proxy", "OPS_PROXY_SECRET", self.ops_proxy_secret.encode(), MIN_API_KEY_LENGTH)
            )
        return named

    def _secret_problems(self, demo_keys: dict[str, bytes]) -> list[str]:
        named = self._named_secrets(demo_keys)
        problems = []
        for _, label, secret, min_bytes in named:
            # latin-1: one character per byte, so a binary JWK key is judged byte by byte.
            weakness = secret_weakness(secret.decode("latin-1"), min_length=min_bytes)
            if weakness is not None:
                problems.append(f"{label} {weakness} (allowed only with ENVIRONMENT=development)")
        problems.extend(shared_secrets((scope, label, secret) for scope, label, secret, _ in named))
        return problems

    def _identity_problems(self) -> list[str]:
        """Configurations that are wrong in every environment."""
        problems = []
        if self.ops_oidc_trust_headers and not self.ops_proxy_secret:
            problems.append(
                "OPS_OIDC_TRUST_HEADERS=true needs OPS_PROXY_SECRET (the header the identity "
                "proxy adds): without it anyone who reaches the pod could send the identity "
                "header"
            )
        algorithms = self.jwt_algorithm_list
        unknown = [a for a in algorithms if a not in SUPPORTED_JWT_ALGORITHMS]
        if unknown or not algorithms:
            problems.append(
                f"JWT_ALGORITHMS: {', '.join(unknown) or 'empty'} not supported; choose from "
                f"{', '.join(sorted(SUPPORTED_JWT_ALGORITHMS))}"
            )
        if self.jwt_secret and "HS256" not in algorithms:
            problems.append("JWT_SECRET is set but HS256 is not in JWT_ALGORITHMS")
        if self.jwt_jwks_url:
            if not {"RS256", "ES256"} & set(algorithms):
                problems.append(
                    "JWT_JWKS_URL is set but neither RS256 nor ES256 is in JWT_ALGORITHMS"
                )
            parts = urlsplit(self.jwt_jwks_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append("JWT_JWKS_URL must be an http(s) URL")
            elif (
                parts.scheme == "http"
                and parts.hostname not in LOOPBACK_HOSTS
                and self.environment != "development"
            ):
                problems.append(
                    "JWT_JWKS_URL must be https outside development (or on loopback): whoever "
                    "can alter the key set can sign any token"
                )
        return problems

    def _production_problems(self) -> list[str]:
        if self.predict_auth_required or self.allow_anonymous_predict:
            return []
        why = (
            "PREDICT_REQUIRE_AUTH=false"
            if self.predict_require_auth is False
            else "no predict credential is configured (API_KEYS/API_KEY, JWT_SECRET or "
            "JWT_JWKS_URL)"
        )
        return [
            f"{why}, so /predict would be served to anyone: configure a credential, or set "
            "ALLOW_ANONYMOUS_PREDICT=true if an anonymous endpoint is the point "
            f"(ENVIRONMENT={self.environment})"
        ]

    @cached_property
    def ops_api_key_list(self) -> tuple[str, ...]:
        keys = [k.strip() for k in self.ops_api_keys.split(",") if k.strip()]
        if self.ops_api_key.strip():
            keys.append(self.ops_api_key.strip())
        return tuple(dict.fromkeys(keys))

    @cached_property
    def jwt_algorithm_list(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(a.strip().upper() for a in self.jwt_algorithms.split(",") if a.strip())
        )

    @cached_property
    def csrf_trusted_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.csrf_trusted_origins.split(",") if o.strip())

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
        return bool(self.api_key_list or self.jwt_secret or self.jwt_jwks_url)

    @property
    def proxy_hops(self) -> int:
        """Trusted proxy hops; the deprecated TRUST_FORWARDED_FOR=true means one hop."""
        if self.trusted_proxy_hops is not None:
            return self.trusted_proxy_hops
        return 1 if self.trust_forwarded_for else 0

    @property
    def drift_max_request_rows(self) -> int:
        return max(1, int(self.drift_window_size * self.drift_max_request_share))

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

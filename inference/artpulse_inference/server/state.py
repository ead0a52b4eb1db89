"""Process state of the inference server: the served model, its helpers and the stats.

One :class:`ServerState` is created by ``app.create_app`` and reached from routes through
the ``deps.State`` dependency. It owns the model lifecycle: the first load (retried in
the background until MLflow answers, so /health works and /ready says why not), reloads
serialised by a lock, and the swap that keeps serving during a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .batching import MicroBatcher
from .csrf import CsrfGuard
from .drift_monitor import DriftMonitor
from .feature_bounds import FeatureBoundsPolicy
from .image_decoding import ImageDecoder
from .jwks import JwksKeys
from .metrics import ServerMetrics
from .model_store import (
    LoadedModel,
    MlflowModelLoader,
    ModelLoadError,
    Prediction,
    parse_models_uri,
)
from .proxy_identity import ProxyIdentity
from .ratelimit import RateLimiter
from .security import SCOPE_OPS, ApiKeyChecker, ApiKeyRing
from .settings import Settings
from .shadow import ShadowMirror
from .tokens import DemoTokenAuthority, JwtVerifier

log = logging.getLogger(__name__)

# Route labels of prediction requests (/ops/summary's stats): the Open Inference Protocol's
# templates and its gRPC method count like /predict.
PREDICT_ROUTES = frozenset(
    {
        "/predict",
        "/predict-image",
        "/demo/predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/inference.GRPCInferenceService/ModelInfer",
    }
)
STATS_WINDOW_SECONDS = 300.0
# One-row model calls cheaper than this run inline (a thread hand-off costs ~50-100 us).
INLINE_CALL_SECONDS = 0.0002


class ModelLoader(Protocol):
    def load(self, uri: str) -> LoadedModel: ...


@dataclass
class ReloadRecord:
    at: float
    uri: str
    ok: bool
    version: str | None
    message: str
    seconds: float


class RequestStats:
    """Recent prediction requests for /ops/summary: (time, route, status, seconds)."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self._items: deque[tuple[float, str, int, float]] = deque(maxlen=maxlen)
        self.total = 0
        self.errors = 0

    def add(self, route: str, status: int, seconds: float) -> None:
        self._items.append((time.time(), route, status, seconds))
        self.total += 1
        if status >= 500:
            self.errors += 1

    def summary(self, window: float = STATS_WINDOW_SECONDS) -> dict[str, Any]:
        cutoff = time.time() - window
        recent = [item for item in self._items if item[0] >= cutoff]
        n = len(recent)
        errors = sum(1 for item in recent if item[2] >= 500)
        durations = np.array([item[3] for item in recent], dtype=np.float64)
        return {
            "window_seconds": window,
            "requests": n,
            "errors": errors,
            "error_rate": (errors / n) if n else None,
            "p50_latency_ms": float(np.percentile(durations, 50) * 1000) if n else None,
            "p95_latency_ms": float(np.percentile(durations, 95) * 1000) if n else None,
            "requests_total": self.total,
            "errors_total": self.errors,
        }


class ServerState:
    def __init__(self, settings: Settings, loader: ModelLoader | None = None) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.loader: ModelLoader = loader or MlflowModelLoader(
            settings.mlflow_tracking_uri,
            allow_fault_injection=settings.artpulse_allow_fault_injection,
        )
        self.metrics = ServerMetrics(settings.latency_buckets, settings.artpulse_track)
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        self.shadow_load_error: str | None = None
        self.last_reload: ReloadRecord | None = None
        self.reload_lock = asyncio.Lock()
        self.request_stats = RequestStats()
        self.inference_times: deque[float] = deque(maxlen=5000)
        self.batcher = MicroBatcher(settings.microbatch_max_rows, observe=self._observe_inference)
        self.drift = DriftMonitor(
            self.metrics,
            window_size=settings.drift_window_size,
            min_samples=settings.drift_min_samples,
            history_path=settings.drift_history_path,
            trend_points=settings.drift_trend_points,
            max_request_rows=settings.drift_max_request_rows,
        )
        self.shadow = ShadowMirror(
            self.metrics, percent=settings.shadow_percent, queue_size=settings.shadow_queue_size
        )
        # x-api-key: predict keys and ops keys, each granting its own scope only.
        self.api_keys = ApiKeyRing(
            ApiKeyChecker(settings.api_key_list),
            ApiKeyChecker(settings.ops_api_key_list, scope=SCOPE_OPS, scheme="ops_key"),
        )
        self.jwt = JwtVerifier(
            settings.jwt_secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway_seconds,
            max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
            algorithms=settings.jwt_algorithm_list,
            jwks=JwksKeys(
                settings.jwt_jwks_url,
                cache_seconds=settings.jwt_jwks_cache_seconds,
                timeout_seconds=settings.jwt_jwks_timeout_seconds,
            )
            if settings.jwt_jwks_url
            else None,
            jwks_issuer=settings.jwt_jwks_issuer,
            jwks_audience=settings.jwt_jwks_audience,
        )
        self.demo = DemoTokenAuthority(
            settings.demo_keys if settings.demo_enabled else {},
            settings.demo_jwk_current_kid,
            issuer=settings.demo_token_issuer,
            audience=settings.demo_token_audience,
            ttl_seconds=settings.demo_token_ttl_seconds,
        )
        self.proxy_identity = ProxyIdentity(
            trusted=settings.ops_oidc_trust_headers,
            allowed_domains=settings.oidc_allowed_domains,
            email_header=settings.ops_oidc_email_header,
            secret=settings.ops_proxy_secret,
            secret_header=settings.ops_proxy_secret_header,
        )
        self.csrf = CsrfGuard(settings.csrf_trusted_origin_list)
        self.api_limiter = RateLimiter(
            settings.api_rate_limit_per_minute, settings.api_rate_limit_burst
        )
        self.demo_limiter = RateLimiter(
            settings.demo_rate_limit_per_minute, settings.demo_rate_limit_burst
        )
        self.demo_token_limiter = RateLimiter(
            settings.demo_token_rate_limit_per_minute, settings.demo_token_rate_limit_burst
        )
        # Per address, before any credential check (deps.guard_address).
        self.auth_failure_limiter = RateLimiter(
            settings.auth_failure_limit_per_minute,
            max(1, int(settings.auth_failure_limit_per_minute)),
        )
        self.ops_limiter = RateLimiter(
            settings.ops_rate_limit_per_minute, settings.ops_rate_limit_burst
        )
        self.predict_address_limiter = RateLimiter(
            settings.predict_address_rate_limit_per_minute,
            settings.predict_address_rate_limit_burst,
        )
        self.feature_bounds = FeatureBoundsPolicy(
            settings.feature_bounds, settings.feature_bounds_margin
        )
        self.image_decoder = ImageDecoder(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            max_decoded_bytes=settings.max_image_decoded_bytes,
            concurrency=settings.image_decode_concurrency,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Model-name label before a model is loaded (e.g. for /health requests).
        self.default_model_name = settings.model_name or _name_of(settings.model_uri)

    # ---- labels and readiness -------------------------------------------------------
    @property
    def label_model(self) -> str:
        return self.model.name if self.model else self.default_model_name

    @property
    def label_version(self) -> str:
        return self.model.version if self.model else (self.settings.model_version or "none")

    def readiness(self) -> tuple[bool, str]:
        if self.model is None:
            if not self.settings.model_uri:
                return False, "MODEL_URI is not set"
            return False, f"model not loaded yet: {self.load_error or 'loading'}"
        expected = self.settings.model_version
        if expected and self.model.version != expected:
            return False, f"serving version {self.model.version}, expected {expected}"
        # A shadow model that does not load never makes the pod unready: the stable track
        # mirrors to the candidate, and a broken candidate must not take stable down. Its
        # absence shows as no agreement data (the gate's "no data", never a pass).
        return True, f"serving {self.model.uri}"

    # ---- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.batcher.start()
        self.shadow.start()
        loop = asyncio.get_running_loop()
        if self.settings.model_uri:
            self._tasks.append(loop.create_task(self._initial_load(), name="artpulse-initial-load"))
        self._tasks.append(loop.create_task(self._drift_loop(), name="artpulse-drift"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.batcher.stop()
        await self.shadow.stop()

    async def _initial_load(self) -> None:
        delay = self.settings.model_load_retry_seconds
        while self.model is None:
            async with self.reload_lock:
                if self.model is not None:
                    break
                try:
                    model = await asyncio.to_thread(self.loader.load, self.settings.model_uri)
                except ModelLoadError as exc:
                    self.load_error = str(exc)
                except Exception as exc:
                    self.load_error = f"unexpected error: {exc}"
                    log.exception("initial model load failed")
                else:
                    self._install(model)
                    self.load_error = None
                    self.last_reload = ReloadRecord(
                        time.time(),
                        model.uri,
                        True,
                        model.version,
                        "initial load",
                        model.load_seconds,
                    )
                    break
            log.warning(
                "model %s not loaded (%s); retrying in %.0fs",
                self.settings.model_uri,
                self.load_error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        if self.settings.shadow_model_uri:
            await self._load_shadow(self.settings.shadow_model_uri)

    async def _load_shadow(self, uri: str) -> None:
        delay = self.settings.model_load_retry_seconds
        while True:
            try:
                shadow = await asyncio.to_thread(self.loader.load, uri)
            except Exception as exc:
                self.shadow_load_error = str(exc)
                log.warning("shadow model %s not loaded (%s); retrying in %.0fs", uri, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            self.shadow.set_model(shadow)
            self.shadow_load_error = None
            self.metrics.set_model_info(
                "shadow", shadow.name, shadow.version, shadow.alias, shadow.run_id, shadow.uri
            )
            return

    def _install(self, model: LoadedModel) -> None:
        self.model = model  # the swap: one reference assignment
        self.drift.set_model(model)
        # The alias the operator deployed this version for (MODEL_ALIAS), else the URI's.
        self.metrics.set_model_info(
            "primary",
            model.name,
            model.version,
            self.settings.model_alias or model.alias,
            model.run_id,
            model.uri,
        )
        log.info(
            "serving %s (run %s, %d features, loaded in %.2fs)",
            model.uri,
            model.run_id,
            len(model.feature_names),
            model.load_seconds,
        )

    async def reload(self, uri: str | None = None) -> ReloadRecord:
        """Load ``uri`` (default MODEL_URI) and swap it in; on failure keep serving the old one."""
        target = uri or self.settings.model_uri
        started = time.perf_counter()
        if not target:
            record = ReloadRecord(
                time.time(), "", False, None, "no model URI given and MODEL_URI is not set", 0.0
            )
            self.last_reload = record
            return record
        async with self.reload_lock:
            try:
                model = await asyncio.to_thread(self.loader.load, target)
            except Exception as exc:
                message = (
                    str(exc) if isinstance(exc, ModelLoadError) else f"unexpected error: {exc}"
                )
                old = self.model.uri if self.model else "nothing"
                record = ReloadRecord(
                    time.time(),
                    target,
                    False,
                    None,
                    f"{message} (still serving {old})",
                    time.perf_counter() - started,
                )
            else:
                self._install(model)
                self.load_error = None
                record = ReloadRecord(
                    time.time(),
                    model.uri,
                    True,
                    model.version,
                    "reloaded",
                    time.perf_counter() - started,
                )
            self.last_reload = record
            return record

    async def _drift_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.drift_interval_seconds)
            try:
                self.drift.evaluate()
            except Exception:
                log.exception("drift evaluation failed")

    # ---- prediction -----------------------------------------------------------------
    async def predict(
        self, model: LoadedModel, X: np.ndarray, *, production: bool = True
    ) -> Prediction:
        """Predict ``X``. Only ``production`` traffic (authenticated /predict*, not the
        public demo) feeds the label mix, the drift window and the shadow comparison the
        gates read."""
        if model.call_cost <= INLINE_CALL_SECONDS:
            # Cheaper than a thread hand-off: answer on the event loop directly.
            started = time.perf_counter()
            result = model.predict(X)
            self._observe_inference(model, time.perf_counter() - started, result)
        else:
            result = await self.batcher.predict(model, X)
        if production:
            self._count_labels(model, result)
            self.drift.record(model, X)
            if self.shadow.model is not None:
                self.shadow.offer(model, X, result.labels)
        return result

    def _observe_inference(self, model: LoadedModel, seconds: float, result: Prediction) -> None:
        track = self.metrics.track
        self.metrics.inference_duration.labels(model.name, model.version, track).observe(seconds)
        self.inference_times.append(seconds)

    def _count_labels(self, model: LoadedModel, result: Prediction) -> None:
        """The predicted-label mix the judge compares: production traffic only, so anonymous
        demo requests cannot move it."""
        counts: dict[str, int] = {}
        for label in result.labels:
            counts[label] = counts.get(label, 0) + 1
        track = self.metrics.track
        for label, n in counts.items():
            self.metrics.predictions_total.labels(model.name, model.version, track, label).inc(n)

    def inference_p95_ms(self) -> float | None:
        if not self.inference_times:
            return None
        return float(np.percentile(np.fromiter(self.inference_times, dtype=np.float64), 95) * 1000)


def _name_of(uri: str) -> str:
    if not uri:
        return "none"
    try:
        return parse_models_uri(uri)[0]
    except ModelLoadError:
        return "unknown"

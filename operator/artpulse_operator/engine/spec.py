"""The ArtPulseModel ``.spec`` as typed, frozen dataclasses.

Who calls it: the Kopf handlers parse the raw resource with :func:`parse_spec` once per
reconcile and hand the result to the pure engine (``desired``, ``rollout``, ``gates``).

The API server already applies the CRD's defaults and validation (``crds/artpulsemodel.yaml``);
this module applies the *same* defaults again and re-checks the rules that matter for safety,
because a resource may have been stored under an older CRD, and because unit tests build specs
from plain dicts. The defaults here and in the CRD must stay equal (a unit test compares them).

A spec the engine cannot act on raises :class:`SpecError`, whose ``field`` names the offending
path (``spec.strategy.canary.steps[1].weight``); the handlers turn it into a ``Failed`` phase
with a condition instead of retrying forever.

Durations are seconds (``float``); :func:`parse_duration` understands ``"30s"``, ``"5m"``,
``"1h30m"``, ``"1.5h"`` and ``"250ms"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "DEFAULTS",
    "AnalysisSpec",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStep",
    "Color",
    "GatesSpec",
    "GatewayAPISpec",
    "ModelRef",
    "ModelSpec",
    "NginxSpec",
    "OnInconclusive",
    "ParentRef",
    "PrometheusSpec",
    "Provider",
    "RollbackSpec",
    "ServingSpec",
    "ShadowSpec",
    "SpecError",
    "StrategySpec",
    "StrategyType",
    "TrafficRoutingSpec",
    "format_duration",
    "parse_duration",
    "parse_spec",
]


class SpecError(ValueError):
    """The spec cannot be acted on. ``field`` is the path of the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class StrategyType(StrEnum):
    SINGLE = "Single"
    CANARY = "Canary"
    BLUE_GREEN = "BlueGreen"


class Provider(StrEnum):
    REPLICAS = "Replicas"
    GATEWAY_API = "GatewayAPI"
    NGINX = "Nginx"


class OnInconclusive(StrEnum):
    HOLD = "Hold"
    FAIL = "Fail"
    PASS = "Pass"


class Color(StrEnum):
    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


# --- durations -------------------------------------------------------------------------------

# One or more <number><unit> groups, units h, m, s, ms. The CRD uses the same pattern.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"250ms"`` into seconds.

    >>> parse_duration("1h30m")
    5400.0
    """
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit (h, m, s, ms), e.g. 30s, 5m, 1h30m"
        )
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """Render seconds as a duration both Kubernetes users and PromQL understand.

    >>> format_duration(90)
    '90s'
    >>> format_duration(0.25)
    '250ms'
    """
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


# --- the spec --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelRef:
    """``spec.model``: which MLflow registered model and which aliases to follow."""

    name: str
    tracking_uri: str | None = None  # None: the operator's default (settings)
    stable_alias: str = "champion"
    candidate_alias: str = "challenger"
    poll_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class ServingSpec:
    """``spec.serving``: how each track's inference pods run."""

    image: str
    replicas: int = 2
    port: int = 8000
    resources: Mapping[str, Any] = field(default_factory=dict)  # core ResourceRequirements
    env: tuple[Mapping[str, Any], ...] = ()  # core EnvVar objects, appended after ours
    secret_ref: str | None = None  # name of a Secret exposed as env (envFrom)


@dataclass(frozen=True, slots=True)
class CanaryStep:
    """One canary step: hold ``weight`` percent for at least one analysis interval and ``pause``.

    ``manual_promote`` is set for ``pause: ""`` (an empty pause): the step waits for a manual
    ``promote`` action.
    """

    weight: int
    pause: float = 0.0
    manual_promote: bool = False


DEFAULT_CANARY_STEPS: tuple[CanaryStep, ...] = (
    CanaryStep(weight=10, pause=60.0),
    CanaryStep(weight=50),
    CanaryStep(weight=100),
)


@dataclass(frozen=True, slots=True)
class CanarySpec:
    steps: tuple[CanaryStep, ...] = DEFAULT_CANARY_STEPS


@dataclass(frozen=True, slots=True)
class BlueGreenSpec:
    active_color: Color = Color.BLUE  # the colour serving first, before any rollout
    preview_percent: int = 0  # traffic to the idle colour while it is analysed
    auto_promote: bool = True
    scale_down_delay: float = 300.0


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    enabled: bool = False
    percent: int = 100  # share of stable requests mirrored to the candidate
    duration: float = 300.0


@dataclass(frozen=True, slots=True)
class StrategySpec:
    type: StrategyType = StrategyType.CANARY
    canary: CanarySpec = field(default_factory=CanarySpec)
    blue_green: BlueGreenSpec = field(default_factory=BlueGreenSpec)
    shadow: ShadowSpec = field(default_factory=ShadowSpec)


@dataclass(frozen=True, slots=True)
class ParentRef:
    """A Gateway API parentRef (the Gateway the HTTPRoute attaches to)."""

    name: str
    namespace: str | None = None
    section_name: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayAPISpec:
    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...] = ()
    path: str = "/"


@dataclass(frozen=True, slots=True)
class NginxSpec:
    ingress_class_name: str = "nginx"
    host: str | None = None
    tls_secret_name: str | None = None
    path: str = "/"


@dataclass(frozen=True, slots=True)
class TrafficRoutingSpec:
    provider: Provider = Provider.REPLICAS
    gateway_api: GatewayAPISpec | None = None  # required when provider is GatewayAPI
    nginx: NginxSpec | None = None  # required when provider is Nginx


@dataclass(frozen=True, slots=True)
class PrometheusSpec:
    address: str | None = None  # None: the operator's default (settings)


@dataclass(frozen=True, slots=True)
class GatesSpec:
    """Gate thresholds; ``None`` means the gate is not checked."""

    p95_latency_ms: float | None = None
    max_error_rate: float | None = 0.01
    max_drift_score: float | None = None
    max_p95_ratio_to_stable: float | None = None
    min_shadow_agreement: float | None = 0.9


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    interval: float = 30.0
    window: float = 60.0  # PromQL range in seconds; format_duration() renders it for PromQL
    failure_limit: int = 2
    min_requests: int = 50
    on_inconclusive: OnInconclusive = OnInconclusive.HOLD
    inconclusive_limit: int = 10
    prometheus: PrometheusSpec = field(default_factory=PrometheusSpec)
    gates: GatesSpec = field(default_factory=GatesSpec)


@dataclass(frozen=True, slots=True)
class RollbackSpec:
    automatic: bool = True
    tag_failed_version: bool = True


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The whole ``.spec`` of an ArtPulseModel, defaults applied."""

    model: ModelRef
    serving: ServingSpec
    strategy: StrategySpec = field(default_factory=StrategySpec)
    traffic_routing: TrafficRoutingSpec = field(default_factory=TrafficRoutingSpec)
    analysis: AnalysisSpec = field(default_factory=AnalysisSpec)
    rollback: RollbackSpec = field(default_factory=RollbackSpec)
    paused: bool = False


# Minimums shared with the CRD's CEL rules.
MIN_POLL_INTERVAL_S = 5.0
MIN_ANALYSIS_INTERVAL_S = 5.0
MIN_WINDOW_S = 10.0

# The CRD's defaults in CRD shape (camelCase), for the test that keeps both in step.
DEFAULTS: Mapping[str, Any] = {
    "model": {"stableAlias": "champion", "candidateAlias": "challenger", "pollInterval": "30s"},
    "serving": {"replicas": 2, "port": 8000},
    "strategy": {
        "type": "Canary",
        "canary": {"steps": [{"weight": 10, "pause": "60s"}, {"weight": 50}, {"weight": 100}]},
        "blueGreen": {
            "activeColor": "blue",
            "previewPercent": 0,
            "autoPromote": True,
            "scaleDownDelay": "300s",
        },
        "shadow": {"enabled": False, "percent": 100, "duration": "5m"},
    },
    "trafficRouting": {
        "provider": "Replicas",
        "gatewayAPI": {"path": "/"},
        "nginx": {"ingressClassName": "nginx", "path": "/"},
    },
    "analysis": {
        "interval": "30s",
        "window": "1m",
        "failureLimit": 2,
        "minRequests": 50,
        "onInconclusive": "Hold",
        "inconclusiveLimit": 10,
        "gates": {"maxErrorRate": 0.01, "minShadowAgreement": 0.9},
    },
    "rollback": {"automatic": True, "tagFailedVersion": True},
    "paused": False,
}


# --- parsing ---------------------------------------------------------------------------------


_E = TypeVar("_E", bound=StrEnum)


class _Reader:
    """Typed access to one object of the raw spec, naming the field path in every error."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path, f"must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def child(self, key: str) -> _Reader:
        return _Reader(self.data.get(key), self.at(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def str_(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise SpecError(self.at(key), "is required")
            return default
        if not isinstance(value, str) or (required and not value):
            raise SpecError(self.at(key), "must be a non-empty string")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise SpecError(self.at(key), "must be a string")
        return value

    def int_(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.data.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(self.at(key), "must be an integer")
        self._check_range(key, value, minimum, maximum)
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(self.at(key), "must be true or false")
        return value

    def opt_float(
        self,
        key: str,
        default: float | None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(self.at(key), "must be a number")
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def duration(self, key: str, default: str, *, minimum: float = 0.0) -> float:
        value = self.data.get(key, default)
        if value is None:
            value = default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise SpecError(self.at(key), str(exc)) from None
        if seconds < minimum:
            raise SpecError(self.at(key), f"must be at least {format_duration(minimum)}")
        return seconds

    def enum(self, key: str, enum: type[_E], default: _E) -> _E:
        value = self.data.get(key, default.value)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise SpecError(self.at(key), f"must be one of {allowed}, got {value!r}") from None

    def list_(self, key: str) -> Sequence[Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise SpecError(self.at(key), "must be a list")
        return value

    def _check_range(
        self, key: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if minimum is not None and value < minimum:
            raise SpecError(self.at(key), f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise SpecError(self.at(key), f"must be at most {maximum}")


def _parse_model(r: _Reader) -> ModelRef:
    return ModelRef(
        name=r.str_("name", required=True),
        tracking_uri=r.opt_str("trackingUri"),
        stable_alias=r.str_("stableAlias", "champion"),
        candidate_alias=r.str_("candidateAlias", "challenger"),
        poll_interval=r.duration("pollInterval", "30s", minimum=MIN_POLL_INTERVAL_S),
    )


def _parse_serving(r: _Reader) -> ServingSpec:
    env = r.list_("env") or ()
    for i, item in enumerate(env):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise SpecError(f"{r.at('env')}[{i}]", "must be an EnvVar object with a name")
    resources = r.data.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise SpecError(r.at("resources"), "must be a ResourceRequirements object")
    secret_ref = r.child("secretRef").opt_str("name") if r.has("secretRef") else None
    return ServingSpec(
        image=r.str_("image", required=True),
        replicas=r.int_("replicas", 2, minimum=0, maximum=100),
        port=r.int_("port", 8000, minimum=1, maximum=65535),
        resources=dict(resources),
        env=tuple(dict(e) for e in env),
        secret_ref=secret_ref,
    )


def _parse_steps(r: _Reader) -> tuple[CanaryStep, ...]:
    raw = r.list_("steps")
    if raw is None:
        return DEFAULT_CANARY_STEPS
    if not raw:
        raise SpecError(r.at("steps"), "must list at least one step")
    steps: list[CanaryStep] = []
    previous = 0
    for i, item in enumerate(raw):
        s = _Reader(item, f"{r.at('steps')}[{i}]")
        weight = s.int_("weight", 0, minimum=1, maximum=100)
        if weight <= previous:
            raise SpecError(s.at("weight"), f"weights must ascend: {weight} after {previous}")
        previous = weight
        pause_raw = s.data.get("pause")
        if pause_raw == "":
            steps.append(CanaryStep(weight=weight, manual_promote=True))
        else:
            steps.append(CanaryStep(weight=weight, pause=s.duration("pause", "0s")))
    if steps[-1].weight != 100:
        raise SpecError(f"{r.at('steps')}[{len(steps) - 1}].weight", "the last step must be 100")
    return tuple(steps)


def _parse_strategy(r: _Reader) -> StrategySpec:
    strategy_type = r.enum("type", StrategyType, StrategyType.CANARY)
    if r.has("blueGreen") and strategy_type is not StrategyType.BLUE_GREEN:
        raise SpecError(r.at("blueGreen"), "is only allowed with type BlueGreen")
    bg = r.child("blueGreen")
    sh = r.child("shadow")
    return StrategySpec(
        type=strategy_type,
        canary=CanarySpec(steps=_parse_steps(r.child("canary"))),
        blue_green=BlueGreenSpec(
            active_color=bg.enum("activeColor", Color, Color.BLUE),
            preview_percent=bg.int_("previewPercent", 0, minimum=0, maximum=100),
            auto_promote=bg.bool_("autoPromote", True),
            scale_down_delay=bg.duration("scaleDownDelay", "300s"),
        ),
        shadow=ShadowSpec(
            enabled=sh.bool_("enabled", False),
            percent=sh.int_("percent", 100, minimum=1, maximum=100),
            duration=sh.duration("duration", "5m", minimum=1.0),
        ),
    )


def _parse_routing(r: _Reader) -> TrafficRoutingSpec:
    provider = r.enum("provider", Provider, Provider.REPLICAS)
    gateway_api: GatewayAPISpec | None = None
    nginx: NginxSpec | None = None
    if r.has("gatewayAPI"):
        g = r.child("gatewayAPI")
        refs: list[ParentRef] = []
        for i, item in enumerate(g.list_("parentRefs") or ()):
            p = _Reader(item, f"{g.at('parentRefs')}[{i}]")
            refs.append(
                ParentRef(
                    name=p.str_("name", required=True),
                    namespace=p.opt_str("namespace"),
                    section_name=p.opt_str("sectionName"),
                )
            )
        if not refs:
            raise SpecError(g.at("parentRefs"), "must name at least one Gateway")
        hostnames = g.list_("hostnames") or ()
        gateway_api = GatewayAPISpec(
            parent_refs=tuple(refs),
            hostnames=tuple(str(h) for h in hostnames),
            path=g.str_("path", "/"),
        )
    elif provider is Provider.GATEWAY_API:
        raise SpecError(r.at("gatewayAPI"), "is required when provider is GatewayAPI")
    if r.has("nginx"):
        n = r.child("nginx")
        nginx = NginxSpec(
            ingress_class_name=n.str_("ingressClassName", "nginx"),
            host=n.opt_str("host"),
            tls_secret_name=n.opt_str("tlsSecretName"),
            path=n.str_("path", "/"),
        )
    elif provider is Provider.NGINX:
        raise SpecError(r.at("nginx"), "is required when provider is Nginx")
    return TrafficRoutingSpec(provider=provider, gateway_api=gateway_api, nginx=nginx)


def _parse_analysis(r: _Reader) -> AnalysisSpec:
    g = r.child("gates")
    return AnalysisSpec(
        interval=r.duration("interval", "30s", minimum=MIN_ANALYSIS_INTERVAL_S),
        window=r.duration("window", "1m", minimum=MIN_WINDOW_S),
        failure_limit=r.int_("failureLimit", 2, minimum=1),
        min_requests=r.int_("minRequests", 50, minimum=0),
        on_inconclusive=r.enum("onInconclusive", OnInconclusive, OnInconclusive.HOLD),
        inconclusive_limit=r.int_("inconclusiveLimit", 10, minimum=1),
        prometheus=PrometheusSpec(address=r.child("prometheus").opt_str("address")),
        gates=GatesSpec(
            p95_latency_ms=g.opt_float("p95LatencyMs", None, minimum=0),
            max_error_rate=g.opt_float("maxErrorRate", 0.01, minimum=0, maximum=1),
            max_drift_score=g.opt_float("maxDriftScore", None, minimum=0),
            max_p95_ratio_to_stable=g.opt_float("maxP95RatioToStable", None, minimum=0),
            min_shadow_agreement=g.opt_float("minShadowAgreement", 0.9, minimum=0, maximum=1),
        ),
    )


def parse_spec(d: Mapping[str, Any]) -> ModelSpec:
    """Parse a raw ArtPulseModel ``.spec`` (camelCase, as stored) into a :class:`ModelSpec`.

    Missing fields get the CRD's defaults. Raises :class:`SpecError` naming the field when the
    spec breaks a rule the engine relies on.
    """
    r = _Reader(d, "spec")
    rollback = r.child("rollback")
    return ModelSpec(
        model=_parse_model(r.child("model")),
        serving=_parse_serving(r.child("serving")),
        strategy=_parse_strategy(r.child("strategy")),
        traffic_routing=_parse_routing(r.child("trafficRouting")),
        analysis=_parse_analysis(r.child("analysis")),
        rollback=RollbackSpec(
            automatic=rollback.bool_("automatic", True),
            tag_failed_version=rollback.bool_("tagFailedVersion", True),
        ),
        paused=r.bool_("paused", False),
    )

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from artpulse_operator.engine import pod_spec
from artpulse_operator.engine.core_types import check_resources
from artpulse_operator.engine.custom_metrics import MetricSpec, parse_metrics
from artpulse_operator.engine.pod_spec import (
    AutoscalingSpec,
    DisruptionBudgetSpec,
    ProbesSpec,
    ProbeTimings,
)
from artpulse_operator.engine.spec_reader import Reader as _Reader
from artpulse_operator.engine.spec_reader import (
    SpecError,
    format_duration,
    parse_duration,
)
from artpulse_operator.engine.webhook_spec import (
    ConfirmTarget,
    WebhookTarget,
    parse_confirm_target,
    parse_targets,
)

__all__ = [
    "DEFAULTS",
    "AnalysisSpec",
    "AutoscalingSpec",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStep",
    "Color",
    "Deprecation",
    "DisruptionBudgetSpec",
    "GatesSpec",
    "GatewayAPISpec",
    "HeaderMatch",
    "HeaderRoute",
    "JudgeSpec",
    "JudgeTestName",
    "ModelRef",
    "ModelSpec",
    "NetworkPolicySpec",
    "NginxSpec",
    "OnInconclusive",
    "ParentRef",
    "ProbeTimings",
    "ProbesSpec",
    "PrometheusSpec",
    "Promotion",
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


class Promotion(StrEnum):
    """``steps[].promotion``: how a canary step ends."""

    AUTOMATIC = "Automatic"  # after its pause and a passed check
    MANUAL = "Manual"  # on a promote action only


class Color(StrEnum):
    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


# --- the spec --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelRef:
    """``spec.model``: which MLflow registered model and which aliases to follow."""

    name: str
    tracking_uri: str | None = None  # None: the operator's default (settings)
    credentials_secret: str | None = None  # Secret of the resource's namespace for MLflow auth
    stable_alias: str = "champion"
    candidate_alias: str = "challenger"
    poll_interval: float = 30.0


@dataclass(frozen=True, slots=True)
class NetworkPolicySpec:
    """``spec.serving.networkPolicy``: the NetworkPolicy confining the inference pods.

    ``enabled`` ``None`` follows the operator's setting; ``ingress_from`` (NetworkPolicyPeer
    objects) replaces the operator's default sources when given; ``egress``
    (NetworkPolicyEgressRule objects) is added to the DNS and MLflow rules.
    """

    enabled: bool | None = None
    ingress_from: tuple[Mapping[str, Any], ...] | None = None
    egress: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ServingSpec:
    """``spec.serving``: how each track's inference pods run.

    The pod-shaping fields (from ``image_pull_secrets`` on) are read and checked by
    ``engine.pod_spec`` and rendered by ``engine.pod_template`` and ``engine.autoscaling``.
    """

    image: str
    replicas: int = 2  # per track; ignored for a track the HPA scales (autoscaling)
    port: int = 8000
    resources: Mapping[str, Any] = field(default_factory=dict)  # core ResourceRequirements
    env: tuple[Mapping[str, Any], ...] = ()  # core EnvVar objects, appended after ours
    secret_ref: str | None = None  # name of a Secret exposed as env (envFrom)
    network_policy: NetworkPolicySpec = field(default_factory=NetworkPolicySpec)
    image_pull_secrets: tuple[str, ...] = ()  # Secret names of the namespace
    service_account_name: str | None = None  # None: the namespace's default
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()  # core Toleration objects
    affinity: Mapping[str, Any] | None = None  # core Affinity
    topology_spread_constraints: tuple[Mapping[str, Any], ...] = ()
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)  # a checked subset
    probes: ProbesSpec = field(default_factory=ProbesSpec)
    disruption_budget: DisruptionBudgetSpec = field(default_factory=DisruptionBudgetSpec)
    autoscaling: AutoscalingSpec | None = None  # None: fixed replicas, no HPA


@dataclass(frozen=True, slots=True)
class CanaryStep:
    """One canary step: hold ``weight`` percent for at least one analysis interval and ``pause``.

    ``manual_promote`` is set for ``promotion: Manual`` and for its deprecated spelling
    ``pause: ""`` (an empty pause): the step waits for a ``promote`` action.
    """

    weight: int
    pause: float = 0.0
    manual_promote: bool = False


DEFAULT_CANARY_STEPS: tuple[CanaryStep, ...] = (
    CanaryStep(weight=10, pause=60.0),
    CanaryStep(weight=50),
    CanaryStep(weight=100),
)


class HeaderMatch(StrEnum):
    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


@dataclass(frozen=True, slots=True)
class HeaderRoute:
    """``strategy.canary.headerRoute``: requests carrying this header reach the candidate.

    Rendered as an extra HTTPRoute rule (GatewayAPI provider only) for as long as the
    candidate's pods run, whatever its weight: testers reach it before and during the canary.
    """

    name: str
    value: str
    match: HeaderMatch = HeaderMatch.EXACT


@dataclass(frozen=True, slots=True)
class CanarySpec:
    steps: tuple[CanaryStep, ...] = DEFAULT_CANARY_STEPS
    header_route: HeaderRoute | None = None


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
    credentials_secret: str | None = None  # Secret of the resource's namespace (auth, TLS)
    org_id: str | None = None  # X-Scope-OrgID, with the resource's Secret or anonymous only
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class GatesSpec:
    """Gate thresholds; ``None`` means the gate is not checked."""

    p95_latency_ms: float | None = None
    max_error_rate: float | None = 0.01
    max_drift_score: float | None = None
    max_p95_ratio_to_stable: float | None = None
    min_shadow_agreement: float | None = 0.9


class JudgeTestName(StrEnum):
    ERRORS = "errors"
    LATENCY = "latency"
    LABELS = "labels"


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """``analysis.judge``: the sequential canary-vs-stable judge (``engine.judge``).

    ``alpha`` is the false-alarm rate of the whole judgement (split over its tests), valid
    however often it is checked; ``min_candidate_requests`` the candidate requests a step must
    accumulate before the judge lets it pass.
    """

    enabled: bool = False
    alpha: float = 0.01
    min_candidate_requests: int = 100
    tests: tuple[JudgeTestName, ...] = tuple(JudgeTestName)


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
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    metrics: tuple[MetricSpec, ...] = ()  # custom metrics (engine.custom_metrics)
    # The confirmPromotion webhook: promotion waits until it answers 2xx (None: no gate).
    confirm_promotion: ConfirmTarget | None = None


@dataclass(frozen=True, slots=True)
class RollbackSpec:
    automatic: bool = True
    tag_failed_version: bool = True


@dataclass(frozen=True, slots=True)
class Deprecation:
    """A deprecated spelling the spec still uses; the engine reports it (condition
    ``DeprecatedFields`` and a Warning Event) and acts on it as on its replacement.

    ``reason`` is a CamelCase word for the condition, ``field`` the path, ``message`` what to
    write instead.
    """

    reason: str
    field: str
    message: str


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
    notifications: tuple[WebhookTarget, ...] = ()  # spec.notifications.webhooks
    deprecations: tuple[Deprecation, ...] = ()  # deprecated spellings in use (see Deprecation)


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
        "judge": {
            "enabled": False,
            "alpha": 0.01,
            "minCandidateRequests": 100,
            "tests": ["errors", "latency", "labels"],
        },
    },
    "rollback": {"automatic": True, "tagFailedVersion": True},
    "paused": False,
}


# --- parsing ---------------------------------------------------------------------------------


def _parse_model(r: _Reader) -> ModelRef:
    return ModelRef(
        name=r.str_("name", required=True),
        tracking_uri=r.opt_str("trackingUri"),
        credentials_secret=_secret_name(r, "credentialsSecretRef"),
        stable_alias=r.str_("stableAlias", "champion"),
        candidate_alias=r.str_("candidateAlias", "challenger"),
        poll_interval=r.duration("pollInterval", "30s", minimum=MIN_POLL_INTERVAL_S),
    )


def _secret_name(r: _Reader, key: str) -> str | None:
    if not r.has(key):
        return None
    return r.child(key).str_("name", required=True)


def _objects(r: _Reader, key: str, what: str) -> tuple[Mapping[str, Any], ...] | None:
    items = r.list_(key)
    if items is None:
        return None
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SpecError(f"{r.at(key)}[{i}]", f"must be a {what} object")
    return tuple(dict(item) for item in items)


def _parse_network_policy(r: _Reader) -> NetworkPolicySpec:
    enabled = r.bool_("enabled", True) if r.has("enabled") else None
    return NetworkPolicySpec(
        enabled=enabled,
        ingress_from=_objects(r, "ingressFrom", "NetworkPolicyPeer"),
        egress=_objects(r, "egress", "NetworkPolicyEgressRule") or (),
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
        resources=check_resources(resources, r.at("resources")),
        env=tuple(dict(e) for e in env),
        secret_ref=secret_ref,
        network_policy=_parse_network_policy(r.child("networkPolicy")),
        image_pull_secrets=pod_spec.parse_image_pull_secrets(r),
        service_account_name=pod_spec.parse_service_account_name(r),
        node_selector=pod_spec.parse_node_selector(r),
        tolerations=pod_spec.parse_tolerations(r),
        affinity=pod_spec.parse_affinity(r),
        topology_spread_constraints=pod_spec.parse_topology_spread(r),
        pod_labels=pod_spec.parse_pod_labels(r),
        pod_annotations=pod_spec.parse_pod_annotations(r),
        pod_security_context=pod_spec.parse_pod_security_context(r),
        probes=pod_spec.parse_probes(r),
        disruption_budget=pod_spec.parse_disruption_budget(r),
        autoscaling=pod_spec.parse_autoscaling(r),
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
        steps.append(_parse_step(s, weight))
    if steps[-1].weight != 100:
        raise SpecError(f"{r.at('steps')}[{len(steps) - 1}].weight", "the last step must be 100")
    return tuple(steps)


# The CRD's CEL rules on a step say the same (crds/artpulsemodel.yaml, steps.items).
PAUSE_WITH_MANUAL = (
    "must be omitted when promotion is Manual: the step waits for a promote action, not for a "
    "duration"
)
EMPTY_PAUSE_WITH_PROMOTION = (
    'pause: "" is the deprecated spelling of promotion: Manual; set promotion alone'
)
EMPTY_PAUSE_DEPRECATED = 'pause: "" is deprecated: write promotion: Manual (same meaning)'


def _parse_step(s: _Reader, weight: int) -> CanaryStep:
    """One step. ``pause: ""`` still means ``promotion: Manual`` (reported by ``_deprecations``)."""
    promotion = s.enum("promotion", Promotion, Promotion.AUTOMATIC) if s.has("promotion") else None
    if s.data.get("pause") == "":
        if promotion is not None:
            raise SpecError(s.at("pause"), EMPTY_PAUSE_WITH_PROMOTION)
        return CanaryStep(weight=weight, manual_promote=True)
    if promotion is Promotion.MANUAL:
        if s.has("pause"):
            raise SpecError(s.at("pause"), PAUSE_WITH_MANUAL)
        return CanaryStep(weight=weight, manual_promote=True)
    return CanaryStep(weight=weight, pause=s.duration("pause", "0s"))


def _deprecations(spec: _Reader) -> tuple[Deprecation, ...]:
    """The deprecated spellings in a spec that parsed (DESIGN.md section 2, "Deprecated")."""
    canary = spec.child("strategy").child("canary")
    steps = canary.list_("steps") or ()
    return tuple(
        Deprecation("EmptyPause", f"{canary.at('steps')}[{i}].pause", EMPTY_PAUSE_DEPRECATED)
        for i, step in enumerate(steps)
        if isinstance(step, Mapping) and step.get("pause") == ""
    )


# An HTTP header name is an RFC 9110 token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


def _parse_header_route(r: _Reader) -> HeaderRoute | None:
    if not r.has("headerRoute"):
        return None
    h = r.child("headerRoute")
    name = h.str_("name", required=True)
    if not _HEADER_NAME.match(name):
        raise SpecError(h.at("name"), "must be an HTTP header name (letters, digits, -, _ ...)")
    value = h.str_("value", required=True)
    if not value or len(value) > 4096 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise SpecError(h.at("value"), "must be 1..4096 printable characters")
    match = h.enum("match", HeaderMatch, HeaderMatch.EXACT)
    if match is HeaderMatch.REGULAR_EXPRESSION:
        try:
            re.compile(value)
        except re.error as exc:
            raise SpecError(h.at("value"), f"is not a regular expression: {exc}") from exc
    return HeaderRoute(name=name, value=value, match=match)


def _parse_strategy(r: _Reader) -> StrategySpec:
    strategy_type = r.enum("type", StrategyType, StrategyType.CANARY)
    if r.has("blueGreen") and strategy_type is not StrategyType.BLUE_GREEN:
        raise SpecError(r.at("blueGreen"), "is only allowed with type BlueGreen")
    bg = r.child("blueGreen")
    sh = r.child("shadow")
    return StrategySpec(
        type=strategy_type,
        canary=CanarySpec(
            steps=_parse_steps(r.child("canary")),
            header_route=_parse_header_route(r.child("canary")),
        ),
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


def _parse_prometheus(r: _Reader) -> PrometheusSpec:
    return PrometheusSpec(
        address=r.opt_str("address"),
        credentials_secret=_secret_name(r, "credentialsSecretRef"),
        org_id=r.opt_str("orgId"),
        insecure_skip_verify=r.bool_("insecureSkipVerify", False),
    )


def _parse_analysis(r: _Reader) -> AnalysisSpec:
    g = r.child("gates")
    j = r.child("judge")
    tests = j.list_("tests")
    judge_tests = tuple(JudgeTestName)
    if tests is not None:
        if not tests:
            raise SpecError(j.at("tests"), "must name at least one test")
        try:
            judge_tests = tuple(dict.fromkeys(JudgeTestName(str(t)) for t in tests))
        except ValueError as exc:
            raise SpecError(
                j.at("tests"), "must be among " + ", ".join(t.value for t in JudgeTestName)
            ) from exc
    return AnalysisSpec(
        interval=r.duration("interval", "30s", minimum=MIN_ANALYSIS_INTERVAL_S),
        window=r.duration("window", "1m", minimum=MIN_WINDOW_S),
        failure_limit=r.int_("failureLimit", 2, minimum=1),
        min_requests=r.int_("minRequests", 50, minimum=0),
        on_inconclusive=r.enum("onInconclusive", OnInconclusive, OnInconclusive.HOLD),
        inconclusive_limit=r.int_("inconclusiveLimit", 10, minimum=1),
        prometheus=_parse_prometheus(r.child("prometheus")),
        gates=GatesSpec(
            p95_latency_ms=g.opt_float("p95LatencyMs", None, minimum=0),
            max_error_rate=g.opt_float("maxErrorRate", 0.01, minimum=0, maximum=1),
            max_drift_score=g.opt_float("maxDriftScore", None, minimum=0),
            max_p95_ratio_to_stable=g.opt_float("maxP95RatioToStable", None, minimum=0),
            min_shadow_agreement=g.opt_float("minShadowAgreement", 0.9, minimum=0, maximum=1),
        ),
        metrics=parse_metrics(r.list_("metrics"), r.at("metrics")),
        confirm_promotion=_confirm(r),
        judge=JudgeSpec(
            enabled=j.bool_("enabled", False),
            alpha=_alpha(j),
            min_candidate_requests=j.int_("minCandidateRequests", 100, minimum=1),
            tests=judge_tests,
        ),
    )


def _confirm(r: _Reader) -> ConfirmTarget | None:
    raw = r.data.get("confirmPromotion")
    if raw is not None and not isinstance(raw, Mapping):
        raise SpecError(r.at("confirmPromotion"), "must be an object")
    return parse_confirm_target(raw, r.at("confirmPromotion"))


def _alpha(j: _Reader) -> float:
    alpha = j.opt_float("alpha", 0.01, minimum=0, maximum=0.2)
    if alpha is None or alpha <= 0:
        raise SpecError(j.at("alpha"), "must be greater than 0 (and at most 0.2)")
    return alpha


def parse_spec(d: Mapping[str, Any]) -> ModelSpec:
    """Parse a raw ArtPulseModel ``.spec`` (camelCase, as stored) into a :class:`ModelSpec`.

    Missing fields get the CRD's defaults. Raises :class:`SpecError` naming the field when the
    spec breaks a rule the engine relies on.
    """
    r = _Reader(d, "spec")
    rollback = r.child("rollback")
    strategy = _parse_strategy(r.child("strategy"))
    routing = _parse_routing(r.child("trafficRouting"))
    if strategy.canary.header_route is not None and routing.provider is Provider.REPLICAS:
        raise SpecError(
            "spec.strategy.canary.headerRoute",
            "needs trafficRouting.provider GatewayAPI or Nginx (the Replicas provider cannot "
            "route by header)",
        )
    model = _parse_model(r.child("model"))
    serving = _parse_serving(r.child("serving"))
    if (
        serving.autoscaling is not None
        and routing.provider is Provider.REPLICAS
        and strategy.type is not StrategyType.SINGLE
    ):
        raise SpecError(
            "spec.serving.autoscaling",
            "needs trafficRouting.provider GatewayAPI or Nginx (or strategy Single): with the "
            "Replicas provider the tracks' pod counts are the traffic split",
        )
    return ModelSpec(
        model=model,
        serving=serving,
        strategy=strategy,
        traffic_routing=routing,
        analysis=_parse_analysis(r.child("analysis")),
        rollback=RollbackSpec(
            automatic=rollback.bool_("automatic", True),
            tag_failed_version=rollback.bool_("tagFailedVersion", True),
        ),
        paused=r.bool_("paused", False),
        notifications=parse_targets(
            r.child("notifications").list_("webhooks"), "spec.notifications.webhooks"
        ),
        deprecations=_deprecations(r),
    )

"""The pod-shaping fields of ``spec.serving``: their typed records and how they are read. Pure.

Who calls it: ``engine.spec`` (``_parse_serving``) builds these into ``ServingSpec``;
``engine.pod_template`` and ``engine.autoscaling`` render them into every track's Deployment,
PodDisruptionBudget and HorizontalPodAutoscaler.

The fields (DESIGN.md section 2, "Shaping the inference pods"): ``imagePullSecrets``,
``serviceAccountName``, ``nodeSelector``, ``tolerations``, ``affinity``,
``topologySpreadConstraints``, ``podLabels``, ``podAnnotations``, ``podSecurityContext``,
``probes``, ``disruptionBudget`` and ``autoscaling``. A tenant writes them and the operator's
identity writes the pods, so each is checked here (``engine.core_types``) as well as by the
CRD, and what would break the operator's contract is refused naming the field:

- ``podLabels`` may not set the labels the operator selects pods by (``artpulse.io/*``, the
  ``app.kubernetes.io`` name/instance/managed-by labels) nor ``pod-template-hash``;
- ``podAnnotations`` may not set ``artpulse.io/*``, the ``prometheus.io`` scrape annotations the
  gates depend on, nor the legacy AppArmor/seccomp annotations that would loosen the hardening;
- ``podSecurityContext`` chooses identities and profiles only; non-root, no privilege escalation,
  a read-only root filesystem and no capabilities stay (``engine.pod_template``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artpulse_operator.engine import core_types as core
from artpulse_operator.engine.spec_reader import Reader, SpecError

__all__ = [
    "CONTAINER_NAME",
    "DEFAULT_TARGET_CPU_UTILIZATION",
    "AutoscalingSpec",
    "DisruptionBudgetSpec",
    "ProbeTimings",
    "ProbesSpec",
    "parse_affinity",
    "parse_autoscaling",
    "parse_disruption_budget",
    "parse_image_pull_secrets",
    "parse_node_selector",
    "parse_pod_annotations",
    "parse_pod_labels",
    "parse_pod_security_context",
    "parse_probes",
    "parse_service_account_name",
    "parse_tolerations",
    "parse_topology_spread",
    "reserved_annotation",
    "reserved_label",
]

# The inference container's name in every track's pod template.
CONTAINER_NAME = "inference"
DEFAULT_TARGET_CPU_UTILIZATION = 80

# Labels the operator selects by (Services, Deployments, the NetworkPolicy, PDBs) and the
# Deployment controller's own; the CRD's CEL rule on podLabels says the same.
_RESERVED_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "pod-template-hash",
    }
)
_OPERATOR_PREFIX = "artpulse.io/"
# The scrape annotations the gates depend on, and the annotations that used to set AppArmor and
# seccomp profiles (honoured by some kubelets still: they would loosen the hardening).
_RESERVED_ANNOTATIONS = frozenset(
    {"prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"}
)
_RESERVED_ANNOTATION_PREFIXES = (
    _OPERATOR_PREFIX,
    "container.apparmor.security.beta.kubernetes.io/",
    "seccomp.security.alpha.kubernetes.io/",
)


def reserved_label(key: str) -> str | None:
    """Why ``key`` may not be a pod label a tenant sets, or None."""
    if key.startswith(_OPERATOR_PREFIX) or key in _RESERVED_LABELS:
        return "is set by the operator (it selects the track's pods); choose another key"
    return None


def reserved_annotation(key: str) -> str | None:
    """Why ``key`` may not be a pod annotation a tenant sets, or None."""
    if key in _RESERVED_ANNOTATIONS or key.startswith(_OPERATOR_PREFIX):
        return "is set by the operator; choose another key"
    if key.startswith(_RESERVED_ANNOTATION_PREFIXES):
        return "would change the pods' security profile (use podSecurityContext)"
    return None


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeTimings:
    """The timings of one probe; ``None`` keeps the operator's default (or Kubernetes')."""

    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    failure_threshold: int | None = None


@dataclass(frozen=True, slots=True)
class ProbesSpec:
    """``spec.serving.probes``: readiness (``/ready``) and liveness (``/health``) timings.

    The operator owns the handlers (paths and port); only the timings are the user's.
    """

    readiness: ProbeTimings = field(default_factory=ProbeTimings)
    liveness: ProbeTimings = field(default_factory=ProbeTimings)


@dataclass(frozen=True, slots=True)
class DisruptionBudgetSpec:
    """``spec.serving.disruptionBudget``: the PodDisruptionBudget of every running track.

    At most one of ``max_unavailable`` and ``min_available`` (an int or a percentage string);
    neither: ``maxUnavailable: 1`` on tracks that can run more than one pod.
    """

    enabled: bool = True
    max_unavailable: int | str | None = None
    min_available: int | str | None = None

    @property
    def explicit(self) -> bool:
        return self.max_unavailable is not None or self.min_available is not None


@dataclass(frozen=True, slots=True)
class AutoscalingSpec:
    """``spec.serving.autoscaling``: a HorizontalPodAutoscaler per running track.

    ``metrics`` are autoscaling/v2 MetricSpec objects; with neither them nor
    ``target_cpu_utilization``, CPU at 80% of the request is the target.
    """

    max_replicas: int
    min_replicas: int = 1
    target_cpu_utilization: int | None = None
    metrics: tuple[Mapping[str, Any], ...] = ()

    def hpa_metrics(self) -> list[dict[str, Any]]:
        """The HPA's ``spec.metrics``: the CPU target first, then the listed metrics."""
        out: list[dict[str, Any]] = []
        cpu = self.target_cpu_utilization
        if cpu is None and not self.metrics:
            cpu = DEFAULT_TARGET_CPU_UTILIZATION
        if cpu is not None:
            out.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu},
                    },
                }
            )
        out.extend(dict(m) for m in self.metrics)
        return out


# --- parsing -------------------------------------------------------------------------------


def parse_image_pull_secrets(r: Reader) -> tuple[str, ...]:
    items = r.list_("imagePullSecrets") or ()
    path = r.at("imagePullSecrets")
    if len(items) > 16:
        raise SpecError(path, "must have at most 16 items")
    names: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise SpecError(f"{path}[{i}]", "must be an object with a name")
        name = core.check_dns_subdomain(item.get("name"), f"{path}[{i}].name")
        if name in names:
            raise SpecError(f"{path}[{i}].name", f"{name!r} is listed twice")
        names.append(name)
    return tuple(names)


def parse_service_account_name(r: Reader) -> str | None:
    raw = r.data.get("serviceAccountName")
    if raw is None or raw == "":
        return None
    return core.check_dns_subdomain(raw, r.at("serviceAccountName"))


def parse_node_selector(r: Reader) -> dict[str, str]:
    raw = r.data.get("nodeSelector")
    if raw is None:
        return {}
    return core.check_labels(raw, r.at("nodeSelector"))


def parse_tolerations(r: Reader) -> tuple[dict[str, Any], ...]:
    items = r.list_("tolerations") or ()
    path = r.at("tolerations")
    if len(items) > 32:
        raise SpecError(path, "must have at most 32 items")
    return tuple(core.check_toleration(t, f"{path}[{i}]") for i, t in enumerate(items))


def parse_affinity(r: Reader) -> dict[str, Any] | None:
    raw = r.data.get("affinity")
    if raw is None:
        return None
    return core.check_affinity(raw, r.at("affinity")) or None


def parse_topology_spread(r: Reader) -> tuple[dict[str, Any], ...]:
    items = r.list_("topologySpreadConstraints") or ()
    path = r.at("topologySpreadConstraints")
    if len(items) > 8:
        raise SpecError(path, "must have at most 8 items")
    return tuple(core.check_topology_spread(t, f"{path}[{i}]") for i, t in enumerate(items))


def parse_pod_labels(r: Reader) -> dict[str, str]:
    raw = r.data.get("podLabels")
    if raw is None:
        return {}
    return core.check_labels(raw, r.at("podLabels"), reserved=reserved_label)


def parse_pod_annotations(r: Reader) -> dict[str, str]:
    raw = r.data.get("podAnnotations")
    if raw is None:
        return {}
    return core.check_annotations(raw, r.at("podAnnotations"), reserved=reserved_annotation)


_PROFILE_TYPES = ("RuntimeDefault", "Localhost")
_SECURITY_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "fsGroupChangePolicy",
    "supplementalGroups",
    "seccompProfile",
    "appArmorProfile",
)


def _profile(raw: object, path: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be an object")
    unknown = sorted(str(k) for k in raw if k not in ("type", "localhostProfile"))
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}", "is not a field here (allowed: type, localhostProfile)"
        )
    kind = raw.get("type")
    if kind not in _PROFILE_TYPES:
        raise SpecError(
            f"{path}.type", f"must be RuntimeDefault or Localhost (never Unconfined), got {kind!r}"
        )
    local = raw.get("localhostProfile")
    if kind == "Localhost":
        if not isinstance(local, str) or not local or len(local) > 4096:
            raise SpecError(f"{path}.localhostProfile", "is required with type Localhost")
        return {"type": kind, "localhostProfile": local}
    if local not in (None, ""):
        raise SpecError(f"{path}.localhostProfile", "is only used with type Localhost")
    return {"type": kind}


def parse_pod_security_context(r: Reader) -> dict[str, Any]:
    """``spec.serving.podSecurityContext``: identities and profiles, nothing that loosens."""
    raw = r.data.get("podSecurityContext")
    if raw is None:
        return {}
    path = r.at("podSecurityContext")
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be an object")
    for key in raw:
        if key not in _SECURITY_FIELDS:
            raise SpecError(
                f"{path}.{key}",
                "cannot be set: the pods always run as non-root without privilege escalation "
                f"(allowed: {', '.join(_SECURITY_FIELDS)})",
            )
    out: dict[str, Any] = {}
    if raw.get("runAsUser") is not None:
        out["runAsUser"] = core.check_int(
            raw["runAsUser"], f"{path}.runAsUser", minimum=1, maximum=2**31 - 1
        )
    for key in ("runAsGroup", "fsGroup"):
        if raw.get(key) is not None:
            out[key] = core.check_int(raw[key], f"{path}.{key}", minimum=0, maximum=2**31 - 1)
    if raw.get("fsGroupChangePolicy") is not None:
        policy = raw["fsGroupChangePolicy"]
        if policy not in ("OnRootMismatch", "Always"):
            raise SpecError(f"{path}.fsGroupChangePolicy", "must be OnRootMismatch or Always")
        out["fsGroupChangePolicy"] = policy
    if raw.get("supplementalGroups") is not None:
        groups = raw["supplementalGroups"]
        if not isinstance(groups, list | tuple) or len(groups) > 32:
            raise SpecError(f"{path}.supplementalGroups", "must be a list of at most 32 group ids")
        out["supplementalGroups"] = [
            core.check_int(g, f"{path}.supplementalGroups[{i}]", minimum=0, maximum=2**31 - 1)
            for i, g in enumerate(groups)
        ]
    for key in ("seccompProfile", "appArmorProfile"):
        if raw.get(key) is not None:
            out[key] = _profile(raw[key], f"{path}.{key}")
    return out


def _timings(r: Reader) -> ProbeTimings:
    def opt(key: str, minimum: int, maximum: int) -> int | None:
        if not r.has(key):
            return None
        return r.int_(key, 0, minimum=minimum, maximum=maximum)

    return ProbeTimings(
        initial_delay_seconds=opt("initialDelaySeconds", 0, 3600),
        period_seconds=opt("periodSeconds", 1, 3600),
        timeout_seconds=opt("timeoutSeconds", 1, 3600),
        failure_threshold=opt("failureThreshold", 1, 1000),
    )


def parse_probes(r: Reader) -> ProbesSpec:
    p = r.child("probes")
    for key in p.data:
        if key not in ("readiness", "liveness"):
            raise SpecError(
                p.at(str(key)), "is not a probe the operator renders (readiness, liveness)"
            )
    for name in ("readiness", "liveness"):
        for key in p.child(name).data:
            if key not in (
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            ):
                raise SpecError(
                    p.child(name).at(str(key)),
                    "is not a probe timing (the operator owns the handler)",
                )
    return ProbesSpec(
        readiness=_timings(p.child("readiness")), liveness=_timings(p.child("liveness"))
    )


def _int_or_percent(r: Reader, key: str, *, minimum: int, forbidden: str) -> int | str | None:
    """An int (at least ``minimum``) or ``"<0..100>%"`` other than ``forbidden``."""
    value = r.data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        digits = value[:-1]
        if (
            not value.endswith("%")
            or not digits.isdigit()
            or int(digits) > 100
            or (len(digits) > 1 and digits.startswith("0"))
        ):
            raise SpecError(
                r.at(key), f"must be an integer or a percentage like 25%, got {value!r}"
            )
        if value == forbidden:
            raise SpecError(r.at(key), f"must not be {forbidden}: it would block every eviction")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(r.at(key), "must be an integer or a percentage like 25%")
    if value < minimum:
        raise SpecError(r.at(key), f"must be at least {minimum}: 0 would block every eviction")
    return value


def parse_disruption_budget(r: Reader) -> DisruptionBudgetSpec:
    b = r.child("disruptionBudget")
    for key in b.data:
        if key not in ("enabled", "maxUnavailable", "minAvailable"):
            raise SpecError(
                b.at(str(key)), "is not a field here (enabled, maxUnavailable, minAvailable)"
            )
    max_unavailable = _int_or_percent(b, "maxUnavailable", minimum=1, forbidden="0%")
    min_available = _int_or_percent(b, "minAvailable", minimum=1, forbidden="100%")
    if max_unavailable is not None and min_available is not None:
        raise SpecError(b.path, "set maxUnavailable or minAvailable, not both")
    return DisruptionBudgetSpec(
        enabled=b.bool_("enabled", True),
        max_unavailable=max_unavailable,
        min_available=min_available,
    )


MAX_AUTOSCALING_REPLICAS = 100


def parse_autoscaling(r: Reader) -> AutoscalingSpec | None:
    if not r.has("autoscaling"):
        return None
    a = r.child("autoscaling")
    allowed = ("minReplicas", "maxReplicas", "targetCPUUtilizationPercentage", "metrics")
    for key in a.data:
        if key not in allowed:
            raise SpecError(a.at(str(key)), f"is not a field here ({', '.join(allowed)})")
    if not a.has("maxReplicas"):
        raise SpecError(a.at("maxReplicas"), "is required")
    max_replicas = a.int_("maxReplicas", 1, minimum=1, maximum=MAX_AUTOSCALING_REPLICAS)
    min_replicas = a.int_("minReplicas", 1, minimum=1, maximum=MAX_AUTOSCALING_REPLICAS)
    if min_replicas > max_replicas:
        raise SpecError(
            a.at("minReplicas"), f"must not exceed maxReplicas ({min_replicas} > {max_replicas})"
        )
    cpu: int | None = None
    if a.has("targetCPUUtilizationPercentage"):
        cpu = a.int_("targetCPUUtilizationPercentage", 0, minimum=1, maximum=1000)
    raw_metrics = a.list_("metrics") or ()
    if len(raw_metrics) > 8:
        raise SpecError(a.at("metrics"), "must have at most 8 items")
    metrics = tuple(
        core.check_hpa_metric(m, f"{a.at('metrics')}[{i}]", CONTAINER_NAME)
        for i, m in enumerate(raw_metrics)
    )
    return AutoscalingSpec(
        max_replicas=max_replicas,
        min_replicas=min_replicas,
        target_cpu_utilization=cpu,
        metrics=metrics,
    )

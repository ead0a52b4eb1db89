"""Checks of the Kubernetes core shapes a tenant may write into ``spec.serving``. Pure.

Who calls it: ``engine.pod_spec`` while ``engine.spec.parse_spec`` reads ``spec.serving``
(labels, annotations, tolerations, affinity, topology spread constraints, resources, the
HorizontalPodAutoscaler's metrics). The CRD validates what a schema can say; this module checks
the same again (a resource stored under an older CRD, unit tests) and everything the CRD keeps
as ``x-kubernetes-preserve-unknown-fields`` (``affinity``, ``autoscaling.metrics``), because the
spec is written by a tenant and ends up in a pod template the operator's identity writes.

Every check returns a plain copy of what it accepted and raises :class:`SpecError` naming the
field (``spec.serving.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
.nodeSelectorTerms[0].matchExpressions[1].operator``) and why. Unknown keys are refused, never
dropped: a typo must not silently lose a scheduling rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from artpulse_operator.engine.spec_reader import SpecError

__all__ = [
    "DNS1123_SUBDOMAIN",
    "LABEL_VALUE",
    "QUANTITY",
    "check_affinity",
    "check_annotations",
    "check_dns_subdomain",
    "check_hpa_metric",
    "check_int",
    "check_label_key",
    "check_label_selector",
    "check_labels",
    "check_resources",
    "check_toleration",
    "check_topology_spread",
]

# The patterns of k8s.io/apimachinery/pkg/util/validation. The CRD's patterns say the same
# (tests/unit/operator/test_operator_pod_template.py holds them to these checks).
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAME_PART = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A resource.Quantity, never negative (requests, limits and metric targets).
QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)"
    r"|(\.[0-9]+))))?$"
)

_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN)
_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL)
_NAME_PART_RE = re.compile(f"^{_NAME_PART}$")
_LABEL_VALUE_RE = re.compile(LABEL_VALUE)
_QUANTITY_RE = re.compile(QUANTITY)
_INT_RE = re.compile(r"^-?[0-9]+$")

# Bounds that keep a hostile spec from growing a pod template without limit.
MAX_TERMS = 32
MAX_EXPRESSIONS = 32
MAX_VALUES = 64
MAX_ANNOTATION_BYTES = 256 * 1024  # the API server's limit for all annotations of an object

_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_NODE_OPERATORS = (*_SELECTOR_OPERATORS, "Gt", "Lt")


# --- small readers -------------------------------------------------------------------------


def _object(raw: object, path: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be an object")
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}", f"is not a field here (allowed: {', '.join(allowed)})"
        )
    return raw


def _list(raw: object, path: str, max_items: int, *, min_items: int = 0) -> Sequence[Any]:
    if not isinstance(raw, list | tuple):
        raise SpecError(path, "must be a list")
    if len(raw) < min_items:
        raise SpecError(path, f"must have at least {min_items} item(s)")
    if len(raw) > max_items:
        raise SpecError(path, f"must have at most {max_items} items")
    return raw


def _str(raw: object, path: str, *, max_length: int = 1024, allow_empty: bool = False) -> str:
    if not isinstance(raw, str) or (not raw and not allow_empty):
        raise SpecError(path, "must be a non-empty string")
    if len(raw) > max_length:
        raise SpecError(path, f"must be at most {max_length} characters")
    return raw


def check_int(
    raw: object, path: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SpecError(path, "must be an integer")
    if minimum is not None and raw < minimum:
        raise SpecError(path, f"must be at least {minimum}")
    if maximum is not None and raw > maximum:
        raise SpecError(path, f"must be at most {maximum}")
    return raw


def _enum(raw: object, path: str, allowed: Sequence[str]) -> str:
    if raw not in allowed:
        raise SpecError(path, f"must be one of {', '.join(repr(a) for a in allowed)}, got {raw!r}")
    return str(raw)


def _strings(
    raw: object, path: str, check: Callable[[object, str], str], max_items: int
) -> list[str]:
    return [check(v, f"{path}[{i}]") for i, v in enumerate(_list(raw, path, max_items))]


# --- names, labels, annotations ------------------------------------------------------------


def check_dns_subdomain(raw: object, path: str) -> str:
    """A DNS-1123 subdomain (names of ServiceAccounts, Secrets): lower case, at most 253."""
    value = _str(raw, path, max_length=253)
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        raise SpecError(
            path, "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
        )
    return value


def _dns_label(raw: object, path: str) -> str:
    value = _str(raw, path, max_length=63)
    if not _DNS1123_LABEL_RE.match(value):
        raise SpecError(path, "must be a DNS-1123 label (lower-case letters, digits and '-')")
    return value


def check_label_key(raw: object, path: str) -> str:
    """A qualified name: an optional DNS subdomain prefix and ``/``, then at most 63 of
    letters, digits, ``-``, ``_``, ``.`` (starting and ending alphanumeric)."""
    key = _str(raw, path, max_length=317)
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        raise SpecError(path, f"{key!r}: the prefix must be a DNS-1123 subdomain")
    if len(name) > 63 or not _NAME_PART_RE.match(name):
        raise SpecError(
            path,
            f"{key!r}: the name must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )
    return key


def check_label_value(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        raise SpecError(path, "must be a string")
    if len(raw) > 63 or not _LABEL_VALUE_RE.match(raw):
        raise SpecError(
            path,
            "must be empty or at most 63 letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit",
        )
    return raw


def check_labels(
    raw: object,
    path: str,
    *,
    max_items: int = 32,
    reserved: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """A label map. ``reserved(key)`` returns why a key may not be used, or None."""
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be a map of label keys to values")
    if len(raw) > max_items:
        raise SpecError(path, f"must have at most {max_items} entries")
    out: dict[str, str] = {}
    for key, value in raw.items():
        check_label_key(key, path)
        why = reserved(key) if reserved is not None else None
        if why is not None:
            raise SpecError(path, f"{key!r} {why}")
        out[key] = check_label_value(value, f"{path}[{key}]")
    return out


def check_annotations(
    raw: object,
    path: str,
    *,
    max_items: int = 64,
    reserved: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """An annotation map: qualified-name keys, string values, 256 KiB in all."""
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be a map of annotation keys to values")
    if len(raw) > max_items:
        raise SpecError(path, f"must have at most {max_items} entries")
    out: dict[str, str] = {}
    size = 0
    for key, value in raw.items():
        check_label_key(key, path)
        why = reserved(key) if reserved is not None else None
        if why is not None:
            raise SpecError(path, f"{key!r} {why}")
        if not isinstance(value, str):
            raise SpecError(f"{path}[{key}]", "must be a string")
        size += len(key.encode()) + len(value.encode())
        out[key] = value
    if size > MAX_ANNOTATION_BYTES:
        raise SpecError(path, f"must total at most {MAX_ANNOTATION_BYTES} bytes")
    return out


# --- quantities and resources --------------------------------------------------------------


def _quantity(raw: object, path: str) -> int | str:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise SpecError(path, "must be a quantity (e.g. 500m, 1, 256Mi)")
    if isinstance(raw, int):
        if raw < 0:
            raise SpecError(path, "must not be negative")
        return raw
    if len(raw) > 64 or not _QUANTITY_RE.match(raw):
        raise SpecError(path, f"{raw!r} is not a quantity (e.g. 500m, 1, 256Mi)")
    return raw


def check_resources(raw: object, path: str) -> dict[str, Any]:
    """A core ResourceRequirements (limits, requests): resource names to quantities."""
    if raw is None:
        return {}
    obj = _object(raw, path, ("limits", "requests"))
    out: dict[str, Any] = {}
    for part in ("limits", "requests"):
        values = obj.get(part)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise SpecError(f"{path}.{part}", "must be a map of resource names to quantities")
        if len(values) > 16:
            raise SpecError(f"{path}.{part}", "must have at most 16 entries")
        checked: dict[str, int | str] = {}
        for name, quantity in values.items():
            check_label_key(name, f"{path}.{part}")
            checked[name] = _quantity(quantity, f"{path}.{part}[{name}]")
        out[part] = checked
    return out


# --- selectors -----------------------------------------------------------------------------


def _requirement(
    raw: object, path: str, operators: Sequence[str], *, field: bool
) -> dict[str, Any]:
    obj = _object(raw, path, ("key", "operator", "values"))
    if field:
        key = _enum(obj.get("key"), f"{path}.key", ("metadata.name",))
    else:
        key = check_label_key(obj.get("key"), f"{path}.key")
    operator = _enum(obj.get("operator"), f"{path}.operator", operators)
    values = _strings(
        obj.get("values", []),
        f"{path}.values",
        lambda v, p: _str(v, p, max_length=63, allow_empty=True),
        MAX_VALUES,
    )
    if operator in ("In", "NotIn") and not values:
        raise SpecError(f"{path}.values", f"must not be empty with operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SpecError(f"{path}.values", f"must be empty with operator {operator}")
    if operator in ("Gt", "Lt") and (len(values) != 1 or not _INT_RE.match(values[0])):
        raise SpecError(f"{path}.values", f"must be one integer with operator {operator}")
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = values
    return out


def check_label_selector(raw: object, path: str) -> dict[str, Any]:
    """A metav1.LabelSelector (matchLabels, matchExpressions)."""
    obj = _object(raw, path, ("matchLabels", "matchExpressions"))
    out: dict[str, Any] = {}
    if obj.get("matchLabels") is not None:
        out["matchLabels"] = check_labels(obj["matchLabels"], f"{path}.matchLabels")
    if obj.get("matchExpressions") is not None:
        exprs = _list(obj["matchExpressions"], f"{path}.matchExpressions", MAX_EXPRESSIONS)
        out["matchExpressions"] = [
            _requirement(e, f"{path}.matchExpressions[{i}]", _SELECTOR_OPERATORS, field=False)
            for i, e in enumerate(exprs)
        ]
    return out


def _node_selector_term(raw: object, path: str) -> dict[str, Any]:
    obj = _object(raw, path, ("matchExpressions", "matchFields"))
    out: dict[str, Any] = {}
    for part, is_field in (("matchExpressions", False), ("matchFields", True)):
        if obj.get(part) is None:
            continue
        items = _list(obj[part], f"{path}.{part}", MAX_EXPRESSIONS)
        out[part] = [
            _requirement(e, f"{path}.{part}[{i}]", _NODE_OPERATORS, field=is_field)
            for i, e in enumerate(items)
        ]
    if not out:
        raise SpecError(path, "must have matchExpressions or matchFields")
    return out


# --- affinity ------------------------------------------------------------------------------

_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def _node_affinity(raw: object, path: str) -> dict[str, Any]:
    obj = _object(raw, path, (_REQUIRED, _PREFERRED))
    out: dict[str, Any] = {}
    if obj.get(_REQUIRED) is not None:
        req_path = f"{path}.{_REQUIRED}"
        selector = _object(obj[_REQUIRED], req_path, ("nodeSelectorTerms",))
        terms = _list(
            selector.get("nodeSelectorTerms"),
            f"{req_path}.nodeSelectorTerms",
            MAX_TERMS,
            min_items=1,
        )
        out[_REQUIRED] = {
            "nodeSelectorTerms": [
                _node_selector_term(t, f"{req_path}.nodeSelectorTerms[{i}]")
                for i, t in enumerate(terms)
            ]
        }
    if obj.get(_PREFERRED) is not None:
        preferred = []
        for i, item in enumerate(_list(obj[_PREFERRED], f"{path}.{_PREFERRED}", MAX_TERMS)):
            p = f"{path}.{_PREFERRED}[{i}]"
            term = _object(item, p, ("weight", "preference"))
            preferred.append(
                {
                    "weight": check_int(term.get("weight"), f"{p}.weight", minimum=1, maximum=100),
                    "preference": _node_selector_term(term.get("preference"), f"{p}.preference"),
                }
            )
        out[_PREFERRED] = preferred
    return out


def _pod_affinity_term(raw: object, path: str) -> dict[str, Any]:
    obj = _object(
        raw,
        path,
        (
            "labelSelector",
            "namespaceSelector",
            "namespaces",
            "topologyKey",
            "matchLabelKeys",
            "mismatchLabelKeys",
        ),
    )
    out: dict[str, Any] = {
        "topologyKey": check_label_key(obj.get("topologyKey"), f"{path}.topologyKey")
    }
    for part in ("labelSelector", "namespaceSelector"):
        if obj.get(part) is not None:
            out[part] = check_label_selector(obj[part], f"{path}.{part}")
    if obj.get("namespaces") is not None:
        out["namespaces"] = _strings(
            obj["namespaces"], f"{path}.namespaces", _dns_label, MAX_VALUES
        )
    for part in ("matchLabelKeys", "mismatchLabelKeys"):
        if obj.get(part) is not None:
            out[part] = _strings(obj[part], f"{path}.{part}", check_label_key, MAX_EXPRESSIONS)
    return out


def _pod_affinity(raw: object, path: str) -> dict[str, Any]:
    obj = _object(raw, path, (_REQUIRED, _PREFERRED))
    out: dict[str, Any] = {}
    if obj.get(_REQUIRED) is not None:
        items = _list(obj[_REQUIRED], f"{path}.{_REQUIRED}", MAX_TERMS)
        out[_REQUIRED] = [
            _pod_affinity_term(t, f"{path}.{_REQUIRED}[{i}]") for i, t in enumerate(items)
        ]
    if obj.get(_PREFERRED) is not None:
        preferred = []
        for i, item in enumerate(_list(obj[_PREFERRED], f"{path}.{_PREFERRED}", MAX_TERMS)):
            p = f"{path}.{_PREFERRED}[{i}]"
            term = _object(item, p, ("weight", "podAffinityTerm"))
            preferred.append(
                {
                    "weight": check_int(term.get("weight"), f"{p}.weight", minimum=1, maximum=100),
                    "podAffinityTerm": _pod_affinity_term(
                        term.get("podAffinityTerm"), f"{p}.podAffinityTerm"
                    ),
                }
            )
        out[_PREFERRED] = preferred
    return out


def check_affinity(raw: object, path: str) -> dict[str, Any]:
    """A core Affinity: nodeAffinity, podAffinity, podAntiAffinity, every level checked."""
    obj = _object(raw, path, ("nodeAffinity", "podAffinity", "podAntiAffinity"))
    out: dict[str, Any] = {}
    if obj.get("nodeAffinity") is not None:
        out["nodeAffinity"] = _node_affinity(obj["nodeAffinity"], f"{path}.nodeAffinity")
    for part in ("podAffinity", "podAntiAffinity"):
        if obj.get(part) is not None:
            out[part] = _pod_affinity(obj[part], f"{path}.{part}")
    return out


# --- tolerations and topology spread -------------------------------------------------------

# Taints a tenant's pods may not tolerate: the control plane's nodes are not for inference.
CONTROL_PLANE_TAINTS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)


def check_toleration(raw: object, path: str) -> dict[str, Any]:
    """A core Toleration. An empty key (tolerate every taint) and the control plane's taints
    are refused: a tenant's pods do not get to run wherever they like."""
    obj = _object(raw, path, ("key", "operator", "value", "effect", "tolerationSeconds"))
    if obj.get("key") in (None, ""):
        raise SpecError(f"{path}.key", "is required (an empty key would tolerate every taint)")
    key = check_label_key(obj["key"], f"{path}.key")
    if key in CONTROL_PLANE_TAINTS:
        raise SpecError(f"{path}.key", f"{key!r}: inference pods do not run on control-plane nodes")
    out: dict[str, Any] = {"key": key}
    operator = _enum(obj.get("operator", "Equal"), f"{path}.operator", ("Equal", "Exists"))
    out["operator"] = operator
    value = obj.get("value")
    if value not in (None, ""):
        if operator == "Exists":
            raise SpecError(f"{path}.value", "must be empty when operator is Exists")
        out["value"] = check_label_value(value, f"{path}.value")
    effect = obj.get("effect")
    if effect not in (None, ""):
        out["effect"] = _enum(
            effect, f"{path}.effect", ("NoSchedule", "PreferNoSchedule", "NoExecute")
        )
    if obj.get("tolerationSeconds") is not None:
        if out.get("effect") != "NoExecute":
            raise SpecError(f"{path}.tolerationSeconds", "needs effect NoExecute")
        out["tolerationSeconds"] = check_int(
            obj["tolerationSeconds"], f"{path}.tolerationSeconds", minimum=0
        )
    return out


def check_topology_spread(raw: object, path: str) -> dict[str, Any]:
    """A core TopologySpreadConstraint (the labelSelector may be left out: the operator then
    spreads the track's own pods)."""
    obj = _object(
        raw,
        path,
        (
            "maxSkew",
            "topologyKey",
            "whenUnsatisfiable",
            "labelSelector",
            "minDomains",
            "nodeAffinityPolicy",
            "nodeTaintsPolicy",
            "matchLabelKeys",
        ),
    )
    out: dict[str, Any] = {
        "maxSkew": check_int(obj.get("maxSkew"), f"{path}.maxSkew", minimum=1),
        "topologyKey": check_label_key(obj.get("topologyKey"), f"{path}.topologyKey"),
        "whenUnsatisfiable": _enum(
            obj.get("whenUnsatisfiable"),
            f"{path}.whenUnsatisfiable",
            ("DoNotSchedule", "ScheduleAnyway"),
        ),
    }
    if obj.get("labelSelector") is not None:
        out["labelSelector"] = check_label_selector(obj["labelSelector"], f"{path}.labelSelector")
    if obj.get("minDomains") is not None:
        if out["whenUnsatisfiable"] != "DoNotSchedule":
            raise SpecError(f"{path}.minDomains", "needs whenUnsatisfiable DoNotSchedule")
        out["minDomains"] = check_int(obj["minDomains"], f"{path}.minDomains", minimum=1)
    for part in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
        if obj.get(part) is not None:
            out[part] = _enum(obj[part], f"{path}.{part}", ("Honor", "Ignore"))
    if obj.get("matchLabelKeys") is not None:
        out["matchLabelKeys"] = _strings(
            obj["matchLabelKeys"], f"{path}.matchLabelKeys", check_label_key, MAX_EXPRESSIONS
        )
    return out


# --- HorizontalPodAutoscaler metrics (autoscaling/v2 MetricSpec) ----------------------------

_METRIC_MEMBERS = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}
# Target types each source allows (the API server's HPA validation).
_TARGET_TYPES = {
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "Pods": ("AverageValue",),
    "Object": ("Value", "AverageValue"),
    "External": ("Value", "AverageValue"),
}
_TARGET_FIELDS = {
    "Utilization": "averageUtilization",
    "Value": "value",
    "AverageValue": "averageValue",
}


def _metric_target(raw: object, path: str, allowed: Sequence[str]) -> dict[str, Any]:
    obj = _object(raw, path, ("type", "averageUtilization", "value", "averageValue"))
    kind = _enum(obj.get("type"), f"{path}.type", allowed)
    wanted = _TARGET_FIELDS[kind]
    for other in _TARGET_FIELDS.values():
        if other != wanted and obj.get(other) is not None:
            raise SpecError(f"{path}.{other}", f"is not used with type {kind} (set {wanted})")
    if kind == "Utilization":
        value: int | str = check_int(obj.get(wanted), f"{path}.{wanted}", minimum=1)
    else:
        value = _quantity(obj.get(wanted), f"{path}.{wanted}")
    return {"type": kind, wanted: value}


def _metric_identifier(raw: object, path: str) -> dict[str, Any]:
    obj = _object(raw, path, ("name", "selector"))
    out: dict[str, Any] = {"name": _str(obj.get("name"), f"{path}.name", max_length=253)}
    if obj.get("selector") is not None:
        out["selector"] = check_label_selector(obj["selector"], f"{path}.selector")
    return out


def check_hpa_metric(raw: object, path: str, container: str) -> dict[str, Any]:
    """An autoscaling/v2 MetricSpec. ``container`` is the only container a ContainerResource
    metric may name (the inference container)."""
    if not isinstance(raw, Mapping):
        raise SpecError(path, "must be an object")
    kind = _enum(raw.get("type"), f"{path}.type", tuple(_METRIC_MEMBERS))
    member = _METRIC_MEMBERS[kind]
    _object(raw, path, ("type", member))
    source_path = f"{path}.{member}"
    targets = _TARGET_TYPES[kind]
    source: dict[str, Any]
    if kind in ("Resource", "ContainerResource"):
        fields = ("name", "target") if kind == "Resource" else ("name", "container", "target")
        obj = _object(raw.get(member), source_path, fields)
        source = {"name": check_label_key(obj.get("name"), f"{source_path}.name")}
        if kind == "ContainerResource":
            source["container"] = _enum(
                obj.get("container"), f"{source_path}.container", (container,)
            )
    elif kind == "Object":
        obj = _object(raw.get(member), source_path, ("describedObject", "metric", "target"))
        described = _object(
            obj.get("describedObject"),
            f"{source_path}.describedObject",
            ("apiVersion", "kind", "name"),
        )
        ref = {
            "kind": _str(
                described.get("kind"), f"{source_path}.describedObject.kind", max_length=63
            ),
            "name": check_dns_subdomain(
                described.get("name"), f"{source_path}.describedObject.name"
            ),
        }
        if described.get("apiVersion") is not None:
            ref["apiVersion"] = _str(
                described["apiVersion"], f"{source_path}.describedObject.apiVersion", max_length=253
            )
        source = {
            "describedObject": ref,
            "metric": _metric_identifier(obj.get("metric"), f"{source_path}.metric"),
        }
    else:  # Pods, External
        obj = _object(raw.get(member), source_path, ("metric", "target"))
        source = {"metric": _metric_identifier(obj.get("metric"), f"{source_path}.metric")}
    source["target"] = _metric_target(obj.get("target"), f"{source_path}.target", targets)
    return {"type": kind, member: source}

"""The ArtPulseModel CRD by the Kubernetes API conventions, checked without an API server.

- The status schema declares every field the operator writes (a structural schema prunes the
  others silently) and nothing it does not: a maximal status, built by the engine's own code
  and written with ``RolloutStatus.to_dict``, is held against ``status`` with
  ``artpulse_dev.crd_schema``. The rollout scenarios check every status they write as well.
- Conditions are a list-map of metav1.Condition, as the engine writes them.
- Every array states its list type; the printer columns name declared fields.
- The minimum Kubernetes version stated in the CRDs, the operator and the README is the one
  the features used need (a table of features and the version that serves them).

The API server's own view of the same is tests/integration/operator/test_operator_crd_conventions_live.py.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.crd_schema import arrays, crd_version_schema, problems, walk
from artpulse_dev.status_fixtures import maximal_status
from artpulse_operator.engine.observations import Verdict
from artpulse_operator.engine.spec import Color, Promotion, StrategyType
from artpulse_operator.engine.status import (
    CONDITION_REASON_PATTERN,
    HISTORY_LIMIT,
    ConditionType,
    Phase,
    RolloutResult,
)
from artpulse_operator.k8s.version import MIN_KUBERNETES_VERSION

REPO = Path(__file__).resolve().parents[3]
CRD = yaml.safe_load((REPO / "crds" / "artpulsemodel.yaml").read_text())
SCHEMA = crd_version_schema(CRD)
STATUS = SCHEMA["properties"]["status"]


# --- the status schema ---------------------------------------------------------------------


def _declared_leaves(schema: Mapping[str, Any], path: str) -> set[str]:
    """Schema paths of the scalar fields (``status.tracks.stable.weight``, ``...metrics.*.value``)."""
    return {
        p
        for p, node in walk(schema, path)
        if node.get("type") not in ("object", "array") and p != path
    }


def _written_leaves(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    """Schema paths of the scalars ``value`` sets (not None), following the schema's maps."""
    if value is None:
        return
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        for key, item in value.items():
            if key in props:
                yield from _written_leaves(props[key], item, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), Mapping):
                yield from _written_leaves(schema["additionalProperties"], item, f"{path}.*")
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _written_leaves(schema.get("items") or {}, item, f"{path}[]")
    else:
        yield path


def test_the_maximal_status_is_stored_whole() -> None:
    """Nothing the operator writes is pruned or refused: every field is declared, every
    value has the declared type (a field missing from the CRD is lost between reconciles)."""
    written = maximal_status().to_dict()
    assert problems(STATUS, written, "status") == []


def test_the_maximal_status_sets_every_declared_field() -> None:
    """The fixture really is maximal, and the schema declares nothing the operator never
    writes: the declared scalar fields are exactly the ones the maximal status sets."""
    written = set(_written_leaves(STATUS, maximal_status().to_dict(), "status"))
    declared = _declared_leaves(STATUS, "status")
    assert declared - written == set(), "declared but never written (stale, or fixture short)"
    assert written - declared == set()


def _without(schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A copy of the status schema with the field at ``path`` (``status.a.*.b``) undeclared."""
    out = copy.deepcopy(dict(schema))
    node: dict[str, Any] = out
    parts = path.split(".")[1:]
    for part in parts[:-1]:
        while part.endswith("[]"):
            part = part[:-2]
            node = node["properties"][part]["items"] if part else node["items"]
            part = ""
        if part == "*":
            node = node["additionalProperties"]
        elif part:
            node = node["properties"][part]
    last = parts[-1].removesuffix("[]")
    del node["properties"][last]
    return out


def test_an_undeclared_field_fails_the_check() -> None:
    """The check above is not vacuous: take any one written field out of the schema and the
    maximal status is reported as pruned at that path."""
    written = maximal_status().to_dict()
    leaves = sorted(set(_written_leaves(STATUS, written, "status")))
    assert len(leaves) > 100
    for leaf in leaves:
        found = problems(_without(STATUS, leaf), written, "status")
        # A list of scalars is reported as the list; an index stands for each item, a key of
        # a map (the metric names) for each entry.
        concrete = (
            re.escape(leaf.removesuffix("[]")).replace(r"\[\]", r"\[\d+\]").replace(r"\*", r"[^.]+")
        )
        assert any(re.match(rf"^{concrete}: not declared", p) for p in found), (
            f"{leaf}: {found[:3]}"
        )


def test_the_checker_catches_types_enums_and_duplicates() -> None:
    good = maximal_status().to_dict()
    bad = copy.deepcopy(good)
    bad["canaryWeight"] = "50"
    bad["phase"] = "Rolling"
    bad["conditions"].append(dict(bad["conditions"][0]))
    bad["analysis"]["judge"]["tests"]["errors"]["samples"] = [None, 1.0]
    bad["stepStartedAt"] = "yesterday"
    found = problems(STATUS, bad, "status")
    assert any(p.startswith("status.canaryWeight: str") for p in found)
    assert any(p.startswith("status.phase: 'Rolling' is not one of") for p in found)
    assert any("duplicate map key {'type': 'Ready'}" in p for p in found)
    assert any(p.startswith("status.analysis.judge.tests.errors.samples[0]: null") for p in found)
    assert any(p.startswith("status.stepStartedAt: 'yesterday'") for p in found)


def test_status_bounds_are_the_engines() -> None:
    """A bound the engine can exceed would get the whole status write refused."""
    assert STATUS["properties"]["history"]["maxItems"] == HISTORY_LIMIT
    assert STATUS["properties"]["conditions"]["maxItems"] >= len(ConditionType)


def test_the_status_keeps_nothing_open() -> None:
    """Every status field is declared: nothing is kept without a schema (no
    x-kubernetes-preserve-unknown-fields), so kubectl explain teaches all of it."""
    open_nodes = [
        p for p, node in walk(STATUS, "status") if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert open_nodes == []
    undocumented = [
        p
        for p, node in walk(STATUS, "status")
        if not node.get("description") and not (p.endswith("[]") and node["type"] != "object")
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    ("path", "values"),
    [
        ("phase", [str(p) for p in Phase]),
        ("pausedFrom", [str(p) for p in Phase]),
        ("activeColor", [str(c) for c in Color]),
        ("analysis.verdict", [str(v) for v in Verdict]),
        ("analysis.metrics.*.verdict", [str(v) for v in Verdict]),
        ("lastRollout.result", [str(r) for r in RolloutResult]),
        ("lastRollout.strategy", [str(s) for s in StrategyType]),
    ],
)
def test_status_enums_are_the_engines(path: str, values: list[str]) -> None:
    nodes = dict(walk(STATUS, "status"))
    assert nodes[f"status.{path}"]["enum"] == values


# --- conditions -------------------------------------------------------------------------------


def test_conditions_are_a_list_map_of_metav1_conditions() -> None:
    conditions = STATUS["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert sorted(item["required"]) == sorted(
        ["type", "status", "lastTransitionTime", "reason", "message"]
    )
    props = item["properties"]
    assert set(props) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert props["status"]["enum"] == ["True", "False", "Unknown"]
    assert props["lastTransitionTime"]["format"] == "date-time"
    assert props["reason"]["pattern"] == CONDITION_REASON_PATTERN
    assert props["observedGeneration"]["format"] == "int64"
    # Every condition type the engine sets is explained.
    for ctype in ConditionType:
        assert str(ctype) in conditions["description"], ctype


# --- list types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "crd_file", sorted((REPO / "crds").glob("artpulse*.yaml")), ids=lambda p: p.name
)
def test_every_array_states_its_list_type(crd_file: Path) -> None:
    """atomic, set or map, so server-side apply merges lists as meant (API conventions)."""
    schema = crd_version_schema(yaml.safe_load(crd_file.read_text()))
    missing = [
        p
        for p, node in arrays(schema)
        if node.get("x-kubernetes-list-type") not in ("atomic", "set", "map")
    ]
    assert missing == []
    for p, node in arrays(schema):
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            item = node["items"]
            # A map key must be required (or defaulted), else two items without it collide.
            assert set(keys) <= set(item.get("required") or ()), p


def test_list_types_where_the_api_conventions_say() -> None:
    nodes = dict(walk(SCHEMA))
    env = nodes["spec.serving.env"]
    assert (env["x-kubernetes-list-type"], env["x-kubernetes-list-map-keys"]) == ("map", ["name"])
    # As the Gateway API's HTTPRoute, where they are copied.
    assert nodes["spec.trafficRouting.gatewayAPI.parentRefs"]["x-kubernetes-list-type"] == "atomic"
    assert nodes["spec.trafficRouting.gatewayAPI.hostnames"]["x-kubernetes-list-type"] == "atomic"
    assert nodes["spec.strategy.canary.steps"]["x-kubernetes-list-type"] == "atomic"


# --- the manual step ----------------------------------------------------------------------------


def test_the_step_schema_has_the_explicit_manual_field() -> None:
    step = dict(walk(SCHEMA))["spec.strategy.canary.steps[]"]
    assert step["properties"]["promotion"]["enum"] == [str(p) for p in Promotion]
    rules = step["x-kubernetes-validations"]
    assert {r["fieldPath"] for r in rules} == {".pause"}
    assert "Deprecated" in step["properties"]["pause"]["description"]
    assert "promotion Manual" in step["properties"]["pause"]["description"]


# --- printer columns ----------------------------------------------------------------------------

COLUMNS = CRD["spec"]["versions"][0]["additionalPrinterColumns"]


def _schema_path(json_path: str) -> str:
    """``.status.conditions[?(@.type=="Ready")].status`` -> ``status.conditions[].status``."""
    return re.sub(r"\[\?\(.*?\)\]", "[]", json_path).lstrip(".")


def test_printer_columns_are_concise_by_default_and_detailed_wide() -> None:
    default = [c["name"] for c in COLUMNS if c.get("priority", 0) == 0]
    wide = [c["name"] for c in COLUMNS if c.get("priority", 0) == 1]
    assert default == ["Model", "Ready", "Phase", "Stable", "Candidate", "Weight", "Age"]
    assert wide == ["Strategy", "Routing", "Message"]
    ready = next(c for c in COLUMNS if c["name"] == "Ready")
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: c["name"])
def test_printer_columns_name_declared_fields(column: Mapping[str, Any]) -> None:
    path = _schema_path(column["jsonPath"])
    if path == "metadata.creationTimestamp":
        return
    assert path in dict(walk(SCHEMA)), path


# --- the minimum Kubernetes version -------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """A CRD feature, how to find it in a CRD, and the first Kubernetes that serves it on
    every cluster (GA, or beta and on by default with no way it was switched off)."""

    name: str
    used: Callable[[Mapping[str, Any]], bool]
    since: tuple[int, int]


def _nodes(crd: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for version in crd["spec"]["versions"]:
        for _, node in walk(version["schema"]["openAPIV3Schema"]):
            yield node


def _has_key(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda crd: any(key in node for node in _nodes(crd))


def _rules(crd: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for node in _nodes(crd):
        yield from node.get("x-kubernetes-validations") or ()


def _rule_key(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda crd: any(key in rule for rule in _rules(crd))


def _rule_text(pattern: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda crd: any(re.search(pattern, _code(rule["rule"])) for rule in _rules(crd))


def _columns_with(key: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda crd: any(
        key in column
        for version in crd["spec"]["versions"]
        for column in version.get("additionalPrinterColumns") or ()
    )


FEATURES = [
    Feature(
        "apiextensions.k8s.io/v1",
        lambda crd: crd["apiVersion"] == "apiextensions.k8s.io/v1",
        (1, 16),
    ),
    Feature(
        "status subresource",
        lambda crd: any("status" in (v.get("subresources") or {}) for v in crd["spec"]["versions"]),
        (1, 16),
    ),
    Feature("printer column priority", _columns_with("priority"), (1, 16)),
    Feature("x-kubernetes-list-type", _has_key("x-kubernetes-list-type"), (1, 16)),
    Feature("x-kubernetes-list-map-keys", _has_key("x-kubernetes-list-map-keys"), (1, 16)),
    Feature("x-kubernetes-int-or-string", _has_key("x-kubernetes-int-or-string"), (1, 16)),
    Feature(
        "x-kubernetes-preserve-unknown-fields",
        _has_key("x-kubernetes-preserve-unknown-fields"),
        (1, 16),
    ),
    Feature("structural defaults", _has_key("default"), (1, 17)),
    # CRD validation rules (KEP-2876): beta and on by default from 1.25, GA in 1.29. Before
    # 1.29 an API server with the gate off drops the rules silently.
    Feature("x-kubernetes-validations", _has_key("x-kubernetes-validations"), (1, 29)),
    Feature("rule messageExpression", _rule_key("messageExpression"), (1, 29)),
    Feature("rule reason", _rule_key("reason"), (1, 29)),  # added in 1.28 (beta)
    Feature("rule fieldPath", _rule_key("fieldPath"), (1, 29)),  # added in 1.28 (beta)
    Feature("transition rules (oldSelf)", _rule_text(r"\boldSelf\b"), (1, 29)),
    # CRD validation ratcheting (KEP-4008): beta and on by default from 1.30.
    Feature("rule optionalOldSelf", _rule_key("optionalOldSelf"), (1, 30)),
    Feature(
        "selectableFields",
        lambda crd: any("selectableFields" in v for v in crd["spec"]["versions"]),
        (1, 32),
    ),
]

# CEL functions and macros the rules may call, with the first Kubernetes serving them on every
# cluster. A function not listed fails the test: look up its version and add it.
# The language, its macros and standard functions, the Kubernetes list and regex libraries.
CEL_CORE = (1, 29)
CEL_STANDARD = [
    *("has", "all", "exists", "exists_one", "map", "filter", "size", "matches", "duration"),
    *("startsWith", "endsWith", "contains", "timestamp", "int", "uint", "double", "string"),
    *("bool", "type"),
]
CEL_FUNCTIONS: Mapping[str, tuple[int, int]] = {
    **dict.fromkeys(CEL_STANDARD, CEL_CORE),
    **dict.fromkeys(["isSorted", "sum", "min", "max", "indexOf", "lastIndexOf"], CEL_CORE),
    **dict.fromkeys(["find", "findAll"], CEL_CORE),
    **dict.fromkeys(["ip", "isIP", "cidr", "isCIDR"], (1, 31)),
}


def _code(rule: str) -> str:
    """A CEL rule without its string literals (a regex in a literal is not a call)."""
    return re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", rule)


def _crds() -> list[tuple[str, Mapping[str, Any]]]:
    return [
        (p.name, yaml.safe_load(p.read_text()))
        for p in sorted((REPO / "crds").glob("artpulse*.yaml"))
    ]


def _parse(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@pytest.mark.parametrize(("name", "crd"), _crds(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_stated_minimum_serves_every_feature_used(name: str, crd: Mapping[str, Any]) -> None:
    stated = _parse(crd["metadata"]["annotations"]["artpulse.io/min-kubernetes-version"])
    assert stated == MIN_KUBERNETES_VERSION, "the CRD and k8s.version.MIN_KUBERNETES_VERSION differ"
    used = {f.name: f.since for f in FEATURES if f.used(crd)}
    for rule in _rules(crd):
        for func in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", _code(rule["rule"])):
            assert func in CEL_FUNCTIONS, (
                f"CEL function {func}() is not in CEL_FUNCTIONS: add its version"
            )
            used[f"CEL {func}()"] = CEL_FUNCTIONS[func]
    too_new = {f: v for f, v in used.items() if v > stated}
    assert too_new == {}, f"{name} uses features newer than its stated minimum {stated}"


def test_the_minimum_is_what_the_features_need() -> None:
    """Not higher than needed either: the newest feature used sets it."""
    newest = max(f.since for _, crd in _crds() for f in FEATURES if f.used(crd))
    assert newest == MIN_KUBERNETES_VERSION


def test_the_minimum_is_stated_in_the_docs() -> None:
    text = f"Kubernetes {MIN_KUBERNETES_VERSION[0]}.{MIN_KUBERNETES_VERSION[1]}"
    for doc in ("README.md", "docs/DESIGN.md", "operator/README.md"):
        assert text in (REPO / doc).read_text(), doc

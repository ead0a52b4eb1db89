"""Table tests of parse_spec / parse_duration, and that the engine's defaults equal the CRD's."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.spec import (
    DEFAULTS,
    ModelSpec,
    SpecError,
    format_duration,
    parse_duration,
    parse_spec,
)

REPO = Path(__file__).parents[3]
CASES = yaml.safe_load((REPO / "tests" / "data" / "operator" / "spec_cases.yaml").read_text())


def _plain(value: Any) -> Any:
    """Dataclasses/enums/tuples to plain YAML-comparable values (a CanaryStep becomes a list)."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if type(value).__name__ == "CanaryStep":
            return [value.weight, value.pause, value.manual_promote]  # type: ignore[attr-defined]
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _get(spec: ModelSpec, dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        value = getattr(value, part)
    return _plain(value)


@pytest.mark.parametrize("case", CASES["valid"], ids=lambda c: c["name"])
def test_parse_valid(case: dict[str, Any]) -> None:
    spec = parse_spec(case["spec"])
    for path, expected in case["expect"].items():
        assert _get(spec, path) == expected, path


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["name"])
def test_parse_invalid_names_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(case["spec"])
    assert info.value.field == case["field"]
    assert case["reason"] in info.value.reason


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "-5s", "5 m", "1d", "1h 30m", "PT5M"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(90, "90s"), (0.25, "250ms"), (60.0, "60s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def _crd_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the `default:` values of a CRD schema into a nested dict (objects recursed)."""
    out: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        if "default" in prop and prop["default"] != {}:
            out[key] = prop["default"]
        elif prop.get("type") == "object":
            nested = _crd_defaults(prop)
            if nested:
                out[key] = nested
    return out


def test_engine_defaults_equal_crd_defaults() -> None:
    crd = yaml.safe_load((REPO / "crds" / "artpulsemodel.yaml").read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _crd_defaults(spec_schema) == DEFAULTS


def test_defaults_dict_parses_to_the_dataclass_defaults() -> None:
    """DEFAULTS written out in full gives the same ModelSpec as leaving everything out."""
    base = {"model": {"name": "m"}, "serving": {"image": "x"}}
    full = {k: v for k, v in DEFAULTS.items()}
    full["model"] = {**DEFAULTS["model"], "name": "m"}
    full["serving"] = {**DEFAULTS["serving"], "image": "x"}
    # blueGreen is refused with Canary, and gatewayAPI/nginx only default their inner fields.
    full["strategy"] = {k: v for k, v in DEFAULTS["strategy"].items() if k != "blueGreen"}
    full["trafficRouting"] = {"provider": DEFAULTS["trafficRouting"]["provider"]}
    assert parse_spec(full) == parse_spec(base)


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "manifests" / "examples").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_examples_parse(path: Path) -> None:
    """Every example is a spec the engine acts on (the API server's view: test_operator_examples)."""
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") == "ArtPulseModel":
        parse_spec(doc["spec"])

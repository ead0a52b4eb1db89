"""Table tests of custom metrics: conditions, query templates, verdicts, the template CRD.

Condition and evaluation tables in tests/data/operator/custom_metrics_cases.yaml.
"""

from __future__ import annotations

import builtins
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine import custom_metrics as cm
from artpulse_operator.engine.custom_metrics import (
    MetricResult,
    MetricSpec,
    OnNoData,
    TemplateSpec,
    combine,
    escape_label_value,
    evaluate_metric,
    parse_condition,
    parse_metrics,
    parse_template,
    render_query,
    validate_template,
)
from artpulse_operator.engine.observations import Verdict
from artpulse_operator.engine.spec import MIN_WINDOW_S
from artpulse_operator.engine.spec_reader import SpecError

REPO = Path(__file__).parents[3]
CASES: dict[str, list[dict[str, Any]]] = yaml.safe_load(
    (REPO / "tests" / "data" / "operator" / "custom_metrics_cases.yaml").read_text()
)
FIELD = "spec.analysis.metrics[0].successCondition"


# --- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["conditions"], ids=lambda c: c["text"])
def test_condition_parses_renders_and_holds(case: dict[str, Any]) -> None:
    condition = parse_condition(case["text"], FIELD)
    assert str(condition) == case["canonical"]
    assert parse_condition(str(condition), FIELD) == condition  # the rendering round-trips
    assert [condition.holds(float(v)) for v in case["holds"]] == [True] * len(case["holds"])
    assert [condition.holds(float(v)) for v in case["fails"]] == [False] * len(case["fails"])


@pytest.mark.parametrize("case", CASES["hostile_conditions"], ids=lambda c: repr(c["text"]))
def test_condition_refused_naming_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as err:
        parse_condition(case["text"], FIELD)
    assert err.value.field == FIELD
    assert str(err.value).startswith(f"{FIELD}: ")
    assert case["error"] in err.value.reason


@pytest.mark.parametrize("value", [None, 0.5, ["result > 1"], {"result": 1}, True])
def test_condition_must_be_a_string(value: object) -> None:
    with pytest.raises(SpecError, match="non-empty condition") as err:
        parse_condition(value, FIELD)
    assert err.value.field == FIELD


def test_condition_length_and_size_limits() -> None:
    with pytest.raises(SpecError, match="at most 512 characters"):
        parse_condition("result > 1 && " * 100 + "result > 1", FIELD)
    with pytest.raises(SpecError, match="at most 512 characters"):
        parse_condition("result > " + "9" * 600, FIELD)
    assert str(parse_condition(" && ".join(["result>1"] * 16), FIELD)).count("&&") == 15
    with pytest.raises(SpecError, match="at most 16 comparisons"):
        parse_condition(" && ".join(["result>1"] * 17), FIELD)
    assert str(parse_condition("((((result > 1))))", FIELD)) == "result > 1"


def test_conditions_never_reach_eval_or_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("eval/exec/compile called")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    condition = parse_condition("result >= 0.9 && (result < 2 || result == 5)", FIELD)
    assert condition.holds(1.0)
    with pytest.raises(SpecError):
        parse_condition("__import__('os').system('true')", FIELD)


# --- evaluation ------------------------------------------------------------------------------

_NAMED = {"s": "result < 0.01", "f": "result > 0.05"}


def _value(raw: object) -> float | None:
    return None if raw is None else float(raw)  # type: ignore[arg-type]  # "nan", "inf" too


def _metric(success: str | None, failure: str | None, **kw: Any) -> MetricSpec:
    return MetricSpec(
        name="m",
        query="vector(1)",
        success_condition=parse_condition(_NAMED.get(success, success), "s") if success else None,
        failure_condition=parse_condition(_NAMED.get(failure, failure), "f") if failure else None,
        **kw,
    )


@pytest.mark.parametrize("case", CASES["evaluate"], ids=str)
def test_evaluate_metric(case: dict[str, Any]) -> None:
    spec = _metric(
        case["success"],
        case["failure"],
        on_no_data=OnNoData(case.get("on_no_data", "Inconclusive")),
    )
    value = _value(case["value"])
    result = evaluate_metric(spec, value, case.get("error"))
    assert result.verdict is Verdict(case["verdict"])
    assert result.name == "m"
    assert result.message
    # the value is reported only when it was measured and is a number
    shown = value if value is not None and math.isfinite(value) and not case.get("error") else None
    assert result.value == shown


def test_evaluate_messages_name_the_deciding_condition() -> None:
    spec = _metric("s", "f")
    assert evaluate_metric(spec, 0.06, None).message == "0.06 meets failureCondition result > 0.05"
    assert (
        evaluate_metric(spec, 0.001, None).message == "0.001 meets successCondition result < 0.01"
    )
    assert evaluate_metric(spec, 0.02, None).message == "0.02 meets neither condition"
    assert evaluate_metric(spec, None, "HTTP 503").message == "query failed: HTTP 503"
    assert evaluate_metric(spec, None, None).message == "no data (onNoData Inconclusive)"


def test_metric_spec_needs_one_query_and_a_condition() -> None:
    condition = parse_condition("result > 1", "f")
    with pytest.raises(ValueError, match="exactly one of query and template_ref"):
        MetricSpec(name="m", success_condition=condition)
    with pytest.raises(ValueError, match="exactly one of query and template_ref"):
        MetricSpec(name="m", query="x", template_ref="t", success_condition=condition)
    with pytest.raises(ValueError, match="needs a success or failure condition"):
        MetricSpec(name="m", query="x")


# --- combine ---------------------------------------------------------------------------------


def _r(name: str, verdict: str, dry_run: bool = False) -> MetricResult:
    return MetricResult(name, 1.0, Verdict(verdict), dry_run, f"{name} said {verdict}")


@pytest.mark.parametrize(
    ("results", "verdict", "failed"),
    [
        ([], None, ()),
        ([_r("a", "Pass")], Verdict.PASS, ()),
        ([_r("a", "Pass"), _r("b", "Inconclusive")], Verdict.INCONCLUSIVE, ()),
        ([_r("a", "Inconclusive"), _r("b", "Error")], Verdict.ERROR, ()),
        ([_r("a", "Error"), _r("b", "Fail"), _r("c", "Pass")], Verdict.FAIL, ("b",)),
        ([_r("a", "Fail"), _r("b", "Fail")], Verdict.FAIL, ("a", "b")),
        # dry runs never decide, whatever they say
        ([_r("a", "Pass"), _r("d", "Fail", dry_run=True)], Verdict.PASS, ()),
        ([_r("a", "Inconclusive"), _r("d", "Error", dry_run=True)], Verdict.INCONCLUSIVE, ()),
        ([_r("d", "Fail", dry_run=True)], None, ()),
        ([_r("d", "Pass", dry_run=True), _r("e", "Fail", dry_run=True)], None, ()),
    ],
)
def test_combine(
    results: list[MetricResult], verdict: Verdict | None, failed: tuple[str, ...]
) -> None:
    got_verdict, message, got_failed = combine(results)
    assert got_verdict is verdict
    assert got_failed == failed
    assert message
    for r in results:  # every metric that did not pass is explained, dry runs included
        if r.verdict is not Verdict.PASS:
            assert r.name in message


def test_combine_messages() -> None:
    assert combine([_r("a", "Pass"), _r("b", "Pass")])[1] == "all 2 custom metrics passed"
    assert combine([_r("a", "Pass"), _r("d", "Fail", dry_run=True)])[1] == (
        "all 1 custom metrics passed; d (dry run): Fail"
    )
    assert combine([_r("a", "Fail")])[1] == "a: a said Fail"
    assert combine([])[1] == "no custom metrics"


def test_result_to_status() -> None:
    result = evaluate_metric(_metric("s", None, dry_run=True), 0.5, None)
    assert result.to_status() == {
        "value": 0.5,
        "verdict": "Fail",
        "dryRun": True,
        "message": "0.5 does not meet successCondition result < 0.01",
    }
    assert evaluate_metric(_metric("s", None), None, None).to_status()["value"] is None


# --- query templates -------------------------------------------------------------------------

_LEXEMES = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _unquote(s: str) -> str:
    """A PromQL double-quoted string's value (the escapes escape_label_value writes)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), s[1:-1])


HOSTILE_VALUES = [
    'v1"}) or vector(1) #',
    "v1\\",
    'a\\"} or up{x="',
    "line\nbreak",
    '\\\\"\\"',
    "{{namespace}}",
]


@pytest.mark.parametrize("version", HOSTILE_VALUES, ids=repr)
def test_render_query_values_cannot_leave_the_label_string(version: str) -> None:
    template = (
        'sum(rate(http_requests_total{namespace="{{namespace}}",model="{{ name }}",'
        'track="{{track}}",version="{{version}}"}[{{window}}]))'
    )
    rendered = render_query(
        template, namespace="ml", name="m", track="canary", version=version, window=90
    )
    strings = _LEXEMES.findall(rendered)
    # exactly the template's four strings, the last one decoding to the value itself
    assert [_unquote(s) for s in strings] == ["ml", "m", "canary", version]
    outside = _LEXEMES.sub('""', rendered)
    assert (
        outside == 'sum(rate(http_requests_total{namespace="",model="",track="",version=""}[90s]))'
    )
    assert "\n" not in rendered


def test_escape_label_value() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


@pytest.mark.parametrize(
    ("window", "rendered"), [(60, "60s"), (90, "90s"), (0.25, "250ms"), (3600, "3600s")]
)
def test_render_query_window(window: float, rendered: str) -> None:
    got = render_query(
        "x[{{window}}] offset {{  window  }}",
        namespace="n",
        name="m",
        track="t",
        version="1",
        window=window,
    )
    assert got == f"x[{rendered}] offset {rendered}"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('up{v="{{ Version }}"}', "unknown placeholder '{{ Version }}'"),
        ('up{v="{{env}}"}', "unknown placeholder '{{env}}'"),
        ('up{v="{{ secret_token }}"}', "unknown placeholder"),
        ('up{v="{{ version.x }}"}', "malformed placeholder"),
        ('up{v="{{version}"}', "malformed placeholder"),
        ("up{v={{version}}}", "{{version}} must be inside a double-quoted string"),
        ("up{v='{{version}}'}", "must be inside a double-quoted string"),
        ("up{v=`{{version}}`}", "must be inside a double-quoted string"),
        ('up{a="x"} # "{{version}}"', "must be inside a double-quoted string"),
        ('up{a="x",b="\\"",c={{name}}}', "{{name}} must be inside a double-quoted string"),
        ("", "must be a non-empty PromQL query"),
        ("  \n", "must be a non-empty PromQL query"),
        ("x" * 4097, "must be at most 4096 characters"),
    ],
)
def test_validate_template_refuses_naming_the_field(template: str, error: str) -> None:
    field = "spec.analysis.metrics[2].query"
    with pytest.raises(SpecError) as err:
        validate_template(template, field)
    assert err.value.field == field
    assert error in err.value.reason


def test_validate_template_accepts() -> None:
    for template in (
        "vector(1)",
        'up{version=~"{{version}}|{{ version }}-.*",track!="{{track}}"}',
        "x" * 4096,
        'rate(x{a="{{name}}"}[{{window}}]) > bool 0 # trailing comment, {{window}} too',
    ):
        assert validate_template(template, "f") == template
    with pytest.raises(SpecError):
        validate_template(7, "f")


def test_render_query_refuses_an_unvalidated_template() -> None:
    with pytest.raises(SpecError, match="unknown placeholder"):
        render_query("{{x}}", namespace="n", name="m", track="t", version="1", window=60)


# --- parse_metrics ---------------------------------------------------------------------------


def test_parse_metrics_full_and_defaults() -> None:
    raw: list[dict[str, Any]] = [
        {
            "name": "error-budget",
            "query": 'sum(x{version="{{version}}"})',
            "successCondition": "result < 0.01",
            "failureCondition": "result > 0.05",
            "dryRun": True,
            "onNoData": "Fail",
            "window": "5m",
        },
        {"name": "p99", "templateRef": {"name": "latency.p99"}, "failureCondition": "result>1"},
    ]
    full, ref = parse_metrics(raw)
    assert full == MetricSpec(
        name="error-budget",
        query='sum(x{version="{{version}}"})',
        success_condition=parse_condition("result < 0.01", "s"),
        failure_condition=parse_condition("result > 0.05", "f"),
        dry_run=True,
        on_no_data=OnNoData.FAIL,
        window=300.0,
    )
    assert ref.template_ref == "latency.p99"
    assert ref.query is None
    assert ref.success_condition is None
    assert str(ref.failure_condition) == "result > 1"
    assert (ref.dry_run, ref.on_no_data, ref.window) == (False, OnNoData.INCONCLUSIVE, None)
    assert parse_metrics(None) == ()
    assert parse_metrics([]) == ()


def _item(**kw: Any) -> dict[str, Any]:
    return {"name": "m", "query": "vector(1)", "successCondition": "result > 0", **kw}


@pytest.mark.parametrize(
    ("raw", "field", "error"),
    [
        ("nope", "spec.analysis.metrics", "must be a list"),
        ([_item(name=f"m{i}") for i in range(21)], "spec.analysis.metrics", "at most 20"),
        (["x"], "spec.analysis.metrics[0]", "must be an object"),
        ([{"query": "x"}], "spec.analysis.metrics[0].name", "is required"),
        ([_item(name="Error_Rate")], "spec.analysis.metrics[0].name", "DNS label"),
        ([_item(name="a" * 64)], "spec.analysis.metrics[0].name", "DNS label"),
        ([_item(name="-a")], "spec.analysis.metrics[0].name", "DNS label"),
        ([_item(), _item(name="b"), _item()], "spec.analysis.metrics[2].name", "duplicate"),
        ([_item(), _item(name="b", query=None)], "spec.analysis.metrics[1]", "exactly one"),
        (
            [_item(templateRef={"name": "t"})],
            "spec.analysis.metrics[0]",
            "exactly one of query and templateRef",
        ),
        ([_item(query="")], "spec.analysis.metrics[0].query", "non-empty"),
        ([_item(query='x{v="{{ver}}"}')], "spec.analysis.metrics[0].query", "unknown placeholder"),
        (
            [_item(query=None, templateRef={})],
            "spec.analysis.metrics[0].templateRef.name",
            "required",
        ),
        ([_item(query=None, templateRef="t")], "spec.analysis.metrics[0].templateRef", "object"),
        (
            [_item(query=None, templateRef={"name": "../secrets"})],
            "spec.analysis.metrics[0].templateRef.name",
            "DNS subdomain",
        ),
        (
            [_item(), _item(name="b", successCondition="result > 1 ||")],
            "spec.analysis.metrics[1].successCondition",
            "got the end",
        ),
        (
            [_item(failureCondition="os.system('x')")],
            "spec.analysis.metrics[0].failureCondition",
            "unexpected",
        ),
        ([_item(successCondition=None)], "spec.analysis.metrics[0]", "successCondition or a"),
        ([_item(dryRun="yes")], "spec.analysis.metrics[0].dryRun", "true or false"),
        ([_item(onNoData="Error")], "spec.analysis.metrics[0].onNoData", "Inconclusive, Pass"),
        ([_item(window="5")], "spec.analysis.metrics[0].window", "invalid duration"),
        ([_item(window="5s")], "spec.analysis.metrics[0].window", "at least 10s"),
    ],
)
def test_parse_metrics_refuses_naming_the_field(raw: Any, field: str, error: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_metrics(raw)
    assert err.value.field == field
    assert error in err.value.reason


def test_parse_metrics_field_prefix() -> None:
    with pytest.raises(SpecError) as err:
        parse_metrics([_item(name="X")], field="spec.analysis.metricsV2")
    assert err.value.field == "spec.analysis.metricsV2[0].name"


def test_minimum_window_equals_the_analysis_window_minimum() -> None:
    assert cm.MIN_METRIC_WINDOW_S == MIN_WINDOW_S


# --- parse_template --------------------------------------------------------------------------


def _template(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseMetricTemplate",
        "metadata": {"name": "error-rate", "namespace": "ml"},
        "spec": spec,
    }


def test_parse_template() -> None:
    query = 'sum(rate(x{version="{{version}}"}[{{window}}]))'
    assert parse_template(_template({"query": query})) == TemplateSpec("error-rate", query)
    with_address = _template({"query": query, "prometheus": {"address": "https://mimir.example"}})
    assert parse_template(with_address).prometheus_address == "https://mimir.example"
    assert parse_template(_template({"query": query, "prometheus": {}})).prometheus_address is None


@pytest.mark.parametrize(
    ("spec", "field", "error"),
    [
        (None, "spec.query", "is required"),
        ({}, "spec.query", "is required"),
        ("query", "spec", "must be an object"),
        ({"query": 3}, "spec.query", "non-empty PromQL"),
        ({"query": "{{password}}"}, "spec.query", "unknown placeholder"),
        ({"query": "x{v={{version}}}"}, "spec.query", "double-quoted"),
        (
            {"query": "x", "prometheus": {"address": "file:///etc/passwd"}},
            "spec.prometheus.address",
            "http or https",
        ),
        ({"query": "x", "prometheus": {"address": 5}}, "spec.prometheus.address", "string"),
        ({"query": "x", "prometheus": "http://p"}, "spec.prometheus", "must be an object"),
    ],
)
def test_parse_template_refuses_naming_the_field(spec: Any, field: str, error: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_template(_template(spec))
    assert err.value.field == field
    assert error in err.value.reason


# --- the CRDs --------------------------------------------------------------------------------

TEMPLATE_CRD = REPO / "crds" / "artpulsemetrictemplate.yaml"


def _undescribed(schema: dict[str, Any], path: str) -> list[str]:
    """Properties without a description (what `kubectl explain` would show empty)."""
    missing: list[str] = []
    for key, prop in schema.get("properties", {}).items():
        if key != "metadata" and not prop.get("description"):
            missing.append(f"{path}.{key}")
        missing += _undescribed(prop, f"{path}.{key}")
    return missing


def test_template_crd_matches_the_engine() -> None:
    crd = yaml.safe_load(TEMPLATE_CRD.read_text())
    assert crd["metadata"]["name"] == "artpulsemetrictemplates.artpulse.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "ArtPulseMetricTemplate"
    assert crd["spec"]["names"]["shortNames"] == ["apmt"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Query",
        "Prometheus",
        "Age",
    ]
    root = version["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    assert spec["required"] == ["query"]
    assert spec["properties"]["query"]["maxLength"] == cm.MAX_QUERY_LENGTH
    assert _undescribed(root, "") == []


def test_every_crd_is_in_the_kustomization() -> None:
    crds = REPO / "crds"
    listed = yaml.safe_load((crds / "kustomization.yaml").read_text())["resources"]
    on_disk = sorted(p.name for p in crds.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert "artpulsemetrictemplate.yaml" in on_disk

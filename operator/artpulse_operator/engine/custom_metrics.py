"""Custom metrics: ``spec.analysis.metrics[]`` and the ``ArtPulseMetricTemplate`` query. Pure.

Who calls it: ``engine.spec`` parses ``spec.analysis.metrics`` with :func:`parse_metrics`; the
handlers parse a fetched ArtPulseMetricTemplate with :func:`parse_template`, render each query
with :func:`render_query`, ask Prometheus, and hand every value (or error) to
:func:`evaluate_metric`; :func:`combine` gives the verdict of all metrics of one check.

Conditions (``result < 0.01 && result >= 0``) are a tiny grammar parsed once into a frozen
tree, never ``eval``-ed: ``engine.metric_conditions``, re-exported here.

A query is PromQL with the placeholders ``{{namespace}} {{name}} {{track}} {{version}}``
(values escaped for, and only allowed inside, a double-quoted PromQL string) and
``{{window}}`` (a duration such as ``1m``, for range selectors).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from artpulse_operator.engine.metric_conditions import (
    MAX_CONDITION_LENGTH,
    Comparison,
    Condition,
    Junction,
    parse_condition,
)
from artpulse_operator.engine.observations import Verdict
from artpulse_operator.engine.spec_reader import Reader, SpecError, format_duration

__all__ = [
    "MAX_CONDITION_LENGTH",
    "MAX_METRICS",
    "MAX_QUERY_LENGTH",
    "Comparison",
    "Condition",
    "Junction",
    "MetricResult",
    "MetricSpec",
    "OnNoData",
    "TemplateSpec",
    "combine",
    "escape_label_value",
    "evaluate_metric",
    "parse_condition",
    "parse_metrics",
    "parse_template",
    "render_query",
    "validate_template",
]

MAX_METRICS = 20
MAX_QUERY_LENGTH = 4096
MIN_METRIC_WINDOW_S = 10.0  # equals engine.spec.MIN_WINDOW_S (spec imports this module)
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # a DNS label: status key, label value
_OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a DNS subdomain


# --- query templates -------------------------------------------------------------------------

_STRING_VALUES = ("namespace", "name", "track", "version")
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# PromQL strings (three quotings) and comments, scanned left to right to find which
# placeholders sit inside a double-quoted string.
_LEXEME_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`|#[^\n]*')


def escape_label_value(value: str) -> str:
    """Escape ``value`` for the inside of a double-quoted PromQL string.

    Regular-expression characters are not escaped: in ``=~"{{version}}.*"`` a ``.`` of the
    value still matches any character (the value cannot leave the string, though).
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def validate_template(template: object, field: str) -> str:
    """Check a query template (module doc); :class:`SpecError` naming ``field`` if refused."""
    if not isinstance(template, str) or not template.strip():
        raise SpecError(field, "must be a non-empty PromQL query")
    if len(template) > MAX_QUERY_LENGTH:
        raise SpecError(field, f"must be at most {MAX_QUERY_LENGTH} characters")
    quoted = [m.span() for m in _LEXEME_RE.finditer(template) if m.group().startswith('"')]
    for m in _PLACEHOLDER_RE.finditer(template):
        key = m.group(1)
        if key not in (*_STRING_VALUES, "window"):
            known = ", ".join(f"{{{{{k}}}}}" for k in (*_STRING_VALUES, "window"))
            raise SpecError(field, f"unknown placeholder {m.group()!r}; known: {known}")
        if key != "window" and not any(a < m.start() and m.end() < b for a, b in quoted):
            raise SpecError(field, f"{m.group()} must be inside a double-quoted string")
    rest = _PLACEHOLDER_RE.sub("", template)
    if "{{" in rest:
        at = rest.index("{{")
        raise SpecError(field, f"malformed placeholder near {rest[at : at + 20]!r}")
    return template


def render_query(
    template: str, *, namespace: str, name: str, track: str, version: str, window: float
) -> str:
    """Substitute the placeholders of a template that :func:`validate_template` accepted.

    >>> render_query('up{version="{{ version }}"}[{{window}}]', namespace="ml",
    ...     name="m", track="canary", version='7"}', window=60)
    'up{version="7\\\\"}"}[60s]'
    """
    validate_template(template, "query")
    values = {"namespace": namespace, "name": name, "track": track, "version": version}
    escaped = {k: escape_label_value(v) for k, v in values.items()}
    escaped["window"] = format_duration(window)
    return _PLACEHOLDER_RE.sub(lambda m: escaped[m.group(1)], template)


# --- the spec --------------------------------------------------------------------------------


class OnNoData(StrEnum):
    """The verdict of a metric whose query returned no data (empty vector, NaN, infinity)."""

    INCONCLUSIVE = "Inconclusive"
    PASS = "Pass"
    FAIL = "Fail"


@dataclass(frozen=True)
class MetricSpec:
    """One ``spec.analysis.metrics[]`` item; exactly one of ``query`` and ``template_ref``.

    ``window`` (seconds) overrides the analysis window; the analysis interval applies.
    """

    name: str
    query: str | None = None
    template_ref: str | None = None  # an ArtPulseMetricTemplate in the resource's namespace
    success_condition: Condition | None = None
    failure_condition: Condition | None = None
    dry_run: bool = False
    on_no_data: OnNoData = OnNoData.INCONCLUSIVE
    window: float | None = None

    def __post_init__(self) -> None:
        if (self.query is None) == (self.template_ref is None):
            raise ValueError(f"metric {self.name}: exactly one of query and template_ref")
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError(f"metric {self.name}: needs a success or failure condition")


def parse_metrics(
    raw: Sequence[Mapping[str, Any]] | None, field: str = "spec.analysis.metrics"
) -> tuple[MetricSpec, ...]:
    """Parse ``spec.analysis.metrics``; :class:`SpecError` names the field (``...[1].query``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise SpecError(field, "must be a list")
    if len(raw) > MAX_METRICS:
        raise SpecError(field, f"must list at most {MAX_METRICS} metrics")
    metrics: list[MetricSpec] = []
    for i, item in enumerate(raw):
        r = Reader(item, f"{field}[{i}]")
        name = r.str_("name", required=True)
        if len(name) > 63 or not _NAME_RE.match(name):
            raise SpecError(r.at("name"), "must be a DNS label (a-z, 0-9, '-', at most 63)")
        if any(m.name == name for m in metrics):
            raise SpecError(r.at("name"), f"duplicate metric name {name!r}")
        query = validate_template(r.data["query"], r.at("query")) if r.has("query") else None
        ref = r.child("templateRef").str_("name", required=True) if r.has("templateRef") else None
        if ref is not None and (len(ref) > 253 or not _OBJECT_NAME_RE.match(ref)):
            raise SpecError(r.at("templateRef.name"), "must be an object name (a DNS subdomain)")
        if (query is None) == (ref is None):
            raise SpecError(r.path, "needs exactly one of query and templateRef")
        success, failure = (
            parse_condition(r.data[k], r.at(k)) if r.has(k) else None
            for k in ("successCondition", "failureCondition")
        )
        if success is None and failure is None:
            raise SpecError(r.path, "needs a successCondition or a failureCondition")
        window = (
            r.duration("window", "0s", minimum=MIN_METRIC_WINDOW_S) if r.has("window") else None
        )
        metrics.append(
            MetricSpec(
                name=name,
                query=query,
                template_ref=ref,
                success_condition=success,
                failure_condition=failure,
                dry_run=r.bool_("dryRun", False),
                on_no_data=r.enum("onNoData", OnNoData, OnNoData.INCONCLUSIVE),
                window=window,
            )
        )
    return tuple(metrics)


@dataclass(frozen=True)
class TemplateSpec:
    """An ArtPulseMetricTemplate: a reusable query, optionally against its own Prometheus.

    ``prometheus_address`` is only parsed here; whose credentials go to it is decided by the
    operator's credentials allowlist, as for ``spec.analysis.prometheus.address``.
    """

    name: str
    query: str
    prometheus_address: str | None = None


def parse_template(body: Mapping[str, Any]) -> TemplateSpec:
    """Parse a whole ArtPulseMetricTemplate object (``metadata`` and ``spec``)."""
    metadata = Reader(body.get("metadata"), "metadata")
    spec = Reader(body.get("spec"), "spec")
    if not spec.has("query"):
        raise SpecError(spec.at("query"), "is required")
    prometheus = spec.child("prometheus")
    address = prometheus.opt_str("address")
    if address is not None and (len(address) > 2048 or not re.match(r"^https?://", address)):
        raise SpecError(prometheus.at("address"), "must be an http or https URL")
    return TemplateSpec(
        name=metadata.opt_str("name") or "",
        query=validate_template(spec.data["query"], spec.at("query")),
        prometheus_address=address,
    )


# --- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float | None
    verdict: Verdict
    dry_run: bool = False
    message: str = ""

    def to_status(self) -> dict[str, Any]:
        """The ``status.analysis.metrics[<name>]`` entry (``value`` None: no data)."""
        return {
            "value": self.value,
            "verdict": str(self.verdict),
            "dryRun": self.dry_run,
            "message": self.message,
        }


def evaluate_metric(spec: MetricSpec, value: float | None, error: str | None) -> MetricResult:
    """Judge one metric value. A failure condition that holds always wins; then, like Argo:

    ======================  ======================  =============
    successCondition        failureCondition        verdict
    ======================  ======================  =============
    holds                   (none)                  Pass
    does not hold           (none)                  Fail
    (none)                  holds                   Fail
    (none)                  does not hold           Pass
    any                     holds                   Fail
    holds                   does not hold           Pass
    does not hold           does not hold           Inconclusive
    ======================  ======================  =============

    ``error`` set (the query could not be run): Error. No data (``None``, NaN, infinity):
    ``onNoData`` (Inconclusive by default), whatever the conditions.
    """

    def result(verdict: Verdict, message: str, v: float | None = None) -> MetricResult:
        return MetricResult(spec.name, v, verdict, spec.dry_run, message)

    if error is not None:
        return result(Verdict.ERROR, f"query failed: {error}")
    if value is None or not math.isfinite(value):
        return result(Verdict(str(spec.on_no_data)), f"no data (onNoData {spec.on_no_data})")
    v, shown = float(value), f"{float(value):.6g}"
    success, failure = spec.success_condition, spec.failure_condition
    if failure is not None and failure.holds(v):
        return result(Verdict.FAIL, f"{shown} meets failureCondition {failure}", v)
    if success is None:
        return result(Verdict.PASS, f"{shown} does not meet failureCondition {failure}", v)
    if success.holds(v):
        return result(Verdict.PASS, f"{shown} meets successCondition {success}", v)
    if failure is None:
        return result(Verdict.FAIL, f"{shown} does not meet successCondition {success}", v)
    return result(Verdict.INCONCLUSIVE, f"{shown} meets neither condition", v)


_PRECEDENCE = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS)


def combine(results: Sequence[MetricResult]) -> tuple[Verdict | None, str, tuple[str, ...]]:
    """The verdict of the metrics that are not dry runs, a message, the failed metric names.

    The worst verdict decides (Fail > Error > Inconclusive > Pass); ``None`` when no metric
    decides. Dry-run results only appear in the message.
    """
    deciding = [r for r in results if not r.dry_run]
    failed = tuple(r.name for r in deciding if r.verdict is Verdict.FAIL)
    notes = [f"{r.name}: {r.message}" for r in deciding if r.verdict is not Verdict.PASS]
    notes += [f"{r.name} (dry run): {r.verdict}" for r in results if r.dry_run]
    if not deciding:
        return None, "; ".join(notes) or "no custom metrics", failed
    verdict = next(v for v in _PRECEDENCE if any(r.verdict is v for r in deciding))
    if verdict is Verdict.PASS:
        notes.insert(0, f"all {len(deciding)} custom metrics passed")
    return verdict, "; ".join(notes), failed

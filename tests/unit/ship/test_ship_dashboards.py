"""The shipped Grafana dashboards and Prometheus rules against the metrics the code exports.

What the code exports is read from the code at test time, never from a list kept here:

- the inference server: the registry of ``ServerMetrics`` (the only one its ``/metrics`` serves);
- the operator: what ``handlers.http.HealthServer`` serves, the ``Telemetry`` registry (shared by
  ``build_runtime`` with the webhook ``Notifier`` and by ``_webhook_routes`` with the MLflow
  webhook route) plus the default registry (the module-level metrics of ``metrics.operator`` and
  prometheus_client's process, platform and GC collectors);
- a scan of the sources for every prometheus_client metric constructor, so that a metric added
  in a registry this test does not build fails here instead of going unseen.

Registries are collected in process (no server, no scrape): a family yields its series names
from its type (a counter ``_total``, a histogram ``_bucket``/``_sum``/``_count``; the
``_created`` series are left out on purpose, nothing should graph them). Recording rules add
the names they record.

Checked: every PromQL expression of every panel, variable and rule names only such series
(a small PromQL tokenizer finds the selectors; ``promtool check rules`` parses every panel
query); every exported metric has a panel, but for a short commented list; the gate panels
select on ``$namespace``, ``$name`` and ``$version`` and the operator's own routes; the JSON is
a Grafana dashboard (uids, panel ids, gridPos without overlaps, ``${datasource}``); and
``observability/Kustomization`` ships every dashboard as a ConfigMap the Grafana sidecar loads.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import artpulse_operator.metrics.operator as operator_metrics
import pytest
import yaml
from artpulse_inference.server.metrics import MODEL_LABELS, ServerMetrics
from artpulse_operator.handlers.mlflow_webhook import mlflow_webhook_route
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.metrics.operator import ModelSeries
from artpulse_operator.metrics.prometheus import PREDICT_ROUTES
from artpulse_operator.notify.webhooks import Notifier
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

REPO = Path(__file__).resolve().parents[3]
OBSERVABILITY = REPO / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "grafana/dashboards").glob("*.json"))
RULE_FILES = sorted((OBSERVABILITY / "prometheus/rules").glob("*.yml"))
PROMETHEUS_RULE = REPO / "manifests/components/monitoring/prometheusrule.yaml"
SCRAPE_CONFIG = REPO / "manifests/components/prometheus/prometheus.yml"
KUSTOMIZATION = OBSERVABILITY / "Kustomization"
SOURCES = {
    "server": REPO / "inference/artpulse_inference",
    "operator": REPO / "operator/artpulse_operator",
}

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARDS_CONFIGMAP = "artpulse-grafana-dashboards"
# What the Grafana sidecar (kiwigrid/k8s-sidecar) of the grafana and kube-prometheus-stack charts
# selects ConfigMaps by, and the folder annotations it may be configured with.
SIDECAR_LABEL = {"grafana_dashboard": "1"}
FOLDER_ANNOTATIONS = {"k8s-sidecar-target-directory", "grafana_folder"}
# Client-side `kubectl apply` keeps the whole object in one annotation, and annotations are
# limited to 256 KiB in total.
LAST_APPLIED_LIMIT = 256 * 1024

# Series that Prometheus makes itself: not exported by any code of ours.
PROMETHEUS_SERIES = {
    "up": "one per scrape target (ArtPulseOperatorDown, the replicas-up panel)",
    "ALERTS": "the state of every alerting rule (the firing-alerts table)",
}

# Exported metrics that no panel graphs, each for a reason. Everything else needs a panel.
NOT_GRAPHED = {
    # prometheus_client's platform collector: the interpreter's version, a constant 1.
    "python_info": "build information, nothing moves",
    # The GC collector: interpreter internals with nothing on-call can act on (memory is
    # graphed as RSS).
    "python_gc_objects_collected": "interpreter internals",
    "python_gc_objects_uncollectable": "interpreter internals",
    "python_gc_collections": "interpreter internals",
    # Address space, not memory in use: RSS (process_resident_memory_bytes) is graphed instead.
    "process_virtual_memory_bytes": "address space, not memory pressure",
}

# Grafana's built-in variables that may appear in a query.
GRAFANA_BUILTINS = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
}
# Names of the gate panels' rows start with this.
GATES_ROW = "Gates"


# --- what the code exports -------------------------------------------------------------------


def series_names(family_name: str, family_type: str) -> frozenset[str]:
    """The series a metric family is scraped as (``_created`` left out, see the docstring).

    >>> sorted(series_names("artpulse_http_requests", "counter"))
    ['artpulse_http_requests_total']
    >>> sorted(series_names("artpulse_inference_duration_seconds", "histogram"))
    ['artpulse_inference_duration_seconds_bucket', 'artpulse_inference_duration_seconds_count', 'artpulse_inference_duration_seconds_sum']
    """
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gaugehistogram": ("_gbucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
        "stateset": ("",),
        "unknown": ("",),
    }
    return frozenset(family_name + suffix for suffix in suffixes[family_type])


def families(collectors: Iterable[Collector]) -> dict[str, frozenset[str]]:
    """Family name -> its series names, for everything the collectors yield."""
    found: dict[str, frozenset[str]] = {}
    for collector in collectors:
        for family in collector.collect():
            found[family.name] = series_names(family.name, family.type)
    return found


class _NoSecrets:
    async def get(self, namespace: str, name: str, key: str) -> bytes | None:
        return None


async def _wake(event: object) -> int:
    return 0


@dataclass(frozen=True)
class Exported:
    server: dict[str, frozenset[str]]  # family -> series
    operator: dict[str, frozenset[str]]
    runtime: dict[str, frozenset[str]]  # prometheus_client's default collectors (operator)
    per_model: frozenset[str]  # operator series labelled namespace/name of an ArtPulseModel

    @property
    def all_families(self) -> dict[str, frozenset[str]]:
        return {**self.server, **self.operator, **self.runtime}

    @property
    def series(self) -> frozenset[str]:
        return series_of(self.all_families)


def series_of(families_: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset(s for names in families_.values() for s in names)


@functools.cache
def exported() -> Exported:
    server = ServerMetrics([0.1], "stable").registry

    telemetry = Telemetry()
    notifier = Notifier(None, _NoSecrets(), registry=telemetry.registry)
    asyncio.run(notifier.close())  # it only built an HTTP client; nothing was started
    mlflow_webhook_route(secrets.token_bytes(32), _wake, registry=telemetry.registry)
    module_metrics = [
        m for m in vars(operator_metrics).values() if isinstance(m, MetricWrapperBase)
    ]

    return Exported(
        server=families([server]),
        operator=families([telemetry.registry, *module_metrics]),
        runtime=families([PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR]),
        per_model=series_of(families([ModelSeries()])),
    )


# prometheus_client's metric classes and families: their first argument is the metric's name.
METRIC_CONSTRUCTORS = {
    "Counter",
    "Gauge",
    "Histogram",
    "Summary",
    "Info",
    "Enum",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "SummaryMetricFamily",
    "InfoMetricFamily",
    "StateSetMetricFamily",
    "GaugeHistogramMetricFamily",
    "UnknownMetricFamily",
}


def declared_metric_names(package: Path) -> dict[str, str]:
    """Family name -> where, for every prometheus_client metric constructed in ``package``.

    A constructor is a name imported from prometheus_client (so ``collections.Counter`` is not
    one); its name argument must be a string literal or a module-level string constant.
    """
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("prometheus_client")
            for alias in node.names
            if alias.name in METRIC_CONSTRUCTORS
        }
        if not imported:
            continue
        constants = {
            node.targets[0].id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in imported:
                continue
            where = f"{path.relative_to(package.parent)}:{node.lineno}"
            arg = (
                node.args[0]
                if node.args
                else next((k.value for k in node.keywords if k.arg == "name"), None)
            )
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                name = constants[arg.id]
            else:
                raise AssertionError(f"{where}: a metric name this test cannot read")
            if "Counter" in node.func.id:
                name = name.removesuffix("_total")
            found[name] = where
    return found


# --- PromQL ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])                       # [5m], [$__rate_interval], [1h:5m]
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<variable>\$\{[^}]+\}|\$\w+)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}@])
    """,
    re.VERBOSE,
)
AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "double_exponential_smoothing", "end", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc",
    "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}  # fmt: skip
# Followed by a parenthesised list of label names.
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]

    def matches(self, label: str) -> list[Matcher]:
        return [m for m in self.matchers if m.label == label]


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _closing(tokens: list[tuple[str, str]], i: int, open_: str, close: str) -> int:
    """The index of the token that closes the bracket at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j][1] == open_:
            depth += 1
        elif tokens[j][1] == close:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_}")


def _matchers(tokens: list[tuple[str, str]], start: int, end: int) -> list[Matcher]:
    """The label matchers between ``{`` at ``start`` and ``}`` at ``end``."""
    found: list[Matcher] = []
    i = start + 1
    while i < end:
        if tokens[i][1] == ",":
            i += 1
            continue
        kind, text = tokens[i]
        if kind == "string" and tokens[i + 1][1] in (",", "}"):  # {"metric.name"} (UTF-8 names)
            found.append(Matcher("__name__", "=", _unquote(text)))
            i += 1
            continue
        label = _unquote(text) if kind == "string" else text
        op, value = tokens[i + 1], tokens[i + 2]
        if op[1] not in ("=", "!=", "=~", "!~") or value[0] != "string":
            raise ValueError(f"bad label matcher near {text!r}")
        found.append(Matcher(label, op[1], _unquote(value[1])))
        i += 3
    return found


def selectors(expr: str) -> list[Selector]:
    """Every series selector of a PromQL expression, with its label matchers.

    Function and aggregation names, keywords, label lists (``by (...)``, ``on (...)`` ...),
    strings, numbers, durations and ranges are not metrics; an unknown function is an error.
    """
    tokens = _tokens(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident":
            word = text.lower()
            if word in GROUPING:
                i = _closing(tokens, i + 1, "(", ")") + 1 if following == "(" else i + 1
                continue
            if word in KEYWORDS:
                i += 1
                continue
            if following == "(":
                if text not in FUNCTIONS and word not in AGGREGATORS:
                    raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
                i += 1
                continue
            if word in AGGREGATORS and following.lower() in ("by", "without"):
                i += 1
                continue
            matchers: list[Matcher] = []
            i += 1
            if following == "{":
                end = _closing(tokens, i, "{", "}")
                matchers = _matchers(tokens, i, end)
                i = end + 1
            found.append(Selector(text, tuple(matchers)))
            continue
        if text == "{":
            end = _closing(tokens, i, "{", "}")
            matchers = _matchers(tokens, i, end)
            names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
            if len(names) != 1:
                raise ValueError(f"a selector without one metric name in {expr!r}")
            rest = tuple(m for m in matchers if m.label != "__name__")
            found.append(Selector(names[0], rest))
            i = end + 1
            continue
        i += 1
    return found


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr)}


_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")


def grafana_variables(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(expr)}


def variable_query_selectors(definition: str) -> list[Selector]:
    """The selectors of a Grafana Prometheus variable query (``label_values``, ``query_result``)."""
    label_values = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", definition, re.DOTALL)
    if label_values:
        return selectors(label_values.group(1))
    if re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", definition):
        return []
    query_result = re.fullmatch(r"\s*query_result\((.*)\)\s*", definition, re.DOTALL)
    if query_result:
        return selectors(query_result.group(1))
    raise ValueError(f"a variable query this test cannot read: {definition!r}")


# --- what the dashboards and rules hold -------------------------------------------------------


@dataclass(frozen=True)
class Query:
    source: str  # file and panel, variable or rule
    expr: str


def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def graph_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (p for p in all_panels(dashboard) if p.get("type") != "row")


def row_of(dashboard: dict[str, Any]) -> dict[int, str]:
    """Panel id -> the title of the row it sits under (rows are full-width panels of type row;
    a panel belongs to the last row above it, or to a collapsed row's own list)."""
    rows = sorted(
        (p for p in dashboard["panels"] if p.get("type") == "row"), key=lambda p: p["gridPos"]["y"]
    )
    result: dict[int, str] = {}
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            for inner in panel.get("panels", []):
                result[inner["id"]] = panel["title"]
            continue
        above = [row for row in rows if row["gridPos"]["y"] <= panel["gridPos"]["y"]]
        result[panel["id"]] = above[-1]["title"] if above else ""
    return result


def panel_queries() -> list[Query]:
    return [
        Query(f"{path.name}: {panel['title']} ({target.get('refId')})", target["expr"])
        for path in DASHBOARDS
        for panel in graph_panels(load_dashboard(path))
        for target in panel.get("targets", [])
    ]


def variable_queries() -> list[Query]:
    found = []
    for path in DASHBOARDS:
        for variable in load_dashboard(path)["templating"]["list"]:
            if variable.get("type") == "query":
                query = variable["query"]
                text = query["query"] if isinstance(query, dict) else query
                found.append(Query(f"{path.name}: variable {variable['name']}", text))
    return found


def rule_documents() -> list[tuple[str, list[dict[str, Any]]]]:
    """(source, groups) of the rule files and of the PrometheusRule made from them."""
    documents = [
        (str(path.relative_to(REPO)), yaml.safe_load(path.read_text())["groups"])
        for path in RULE_FILES
    ]
    for doc in yaml.safe_load_all(PROMETHEUS_RULE.read_text()):
        if doc and doc.get("kind") == "PrometheusRule":
            documents.append((str(PROMETHEUS_RULE.relative_to(REPO)), doc["spec"]["groups"]))
    return documents


def rules() -> list[dict[str, Any]]:
    return [rule for _, groups in rule_documents() for g in groups for rule in g["rules"]]


def rule_queries() -> list[Query]:
    return [
        Query(f"{source}: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for source, groups in rule_documents()
        for group in groups
        for rule in group["rules"]
    ]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def known_series() -> frozenset[str]:
    return exported().series | recorded() | PROMETHEUS_SERIES.keys()


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - known_series()


# The labels the scrape gives every inference series (manifests/components/prometheus/prometheus.yml), read from
# its relabeling: the ArtPulseModel's name comes from the pod label app.kubernetes.io/instance.
def scrape_contract() -> tuple[str, str]:
    """(label holding the ArtPulseModel's name on inference series, the operator's job)."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    relabel = jobs["artpulse-inference"]["relabel_configs"]
    (model_label,) = [
        r["target_label"]
        for r in relabel
        if r.get("source_labels") == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]
    ]
    (operator_job,) = [
        name
        for name, job in jobs.items()
        for sd in job.get("kubernetes_sd_configs", [])
        for selector in sd.get("selectors", [])
        if selector.get("label") == "app.kubernetes.io/name=artpulse-operator"
    ]
    return model_label, operator_job


MODEL_LABEL, OPERATOR_JOB = scrape_contract()
VERSION_LABEL = "version"


# --- (a) every query names exported series only ------------------------------------------------


def test_the_code_exports_what_the_dashboards_are_about() -> None:
    found = exported()
    assert "artpulse_http_requests" in found.server
    assert "artpulse_feature_drift_psi" in found.server
    assert "artpulse_operator_reconcile_duration_seconds" in found.operator
    assert "artpulse_operator_gate_verdicts" in found.operator  # the default registry's
    assert "artpulse_operator_notifications" in found.operator  # the notifier's
    assert "artpulse_operator_mlflow_events" in found.operator  # the webhook route's
    assert found.per_model == {
        "artpulse_operator_phase",
        "artpulse_operator_canary_weight",
        "artpulse_operator_rollouts_total",
    }
    assert not found.server.keys() & found.operator.keys()


@pytest.mark.parametrize("side", sorted(SOURCES))
def test_every_metric_in_the_code_is_in_the_registries_read_here(side: str) -> None:
    """Guards the derivation: a metric in a registry this test does not build fails here."""
    found = exported()
    registries = found.server if side == "server" else {**found.operator, **found.runtime}
    declared = declared_metric_names(SOURCES[side])
    assert declared, f"no metric constructors found under {SOURCES[side]}"
    missing = {name: where for name, where in declared.items() if name not in registries}
    assert not missing, f"metrics the test does not collect (add their registry): {missing}"


@pytest.mark.parametrize("query", panel_queries() + variable_queries(), ids=lambda q: q.source)
def test_every_dashboard_query_reads_exported_series(query: Query) -> None:
    if ": variable " in query.source:
        names = {s.metric for s in variable_query_selectors(query.expr)}
    else:
        names = metric_names(query.expr)
    assert names, f"{query.source}: no metric in {query.expr!r}"
    unknown = names - known_series()
    assert not unknown, f"{query.source}: {sorted(unknown)} is exported by nothing"


@pytest.mark.parametrize("query", rule_queries(), ids=lambda q: q.source)
def test_every_rule_reads_exported_series(query: Query) -> None:
    unknown = unknown_metrics(query.expr)
    assert not unknown, f"{query.source}: {sorted(unknown)} is exported by nothing"


def test_a_made_up_metric_is_caught() -> None:
    dashboard = load_dashboard(OBSERVABILITY / "grafana/dashboards/artpulse-inference.json")
    panel = next(graph_panels(dashboard))
    real = panel["targets"][0]["expr"]
    assert not unknown_metrics(real)
    typo = real.replace("artpulse_http_requests_total", "artpulse_http_request_total")
    assert typo != real
    assert unknown_metrics(typo) == {"artpulse_http_request_total"}
    assert unknown_metrics('sum(rate(artpulse_made_up_total{namespace="x"}[5m]))') == {
        "artpulse_made_up_total"
    }
    # _created is exported by prometheus_client but deliberately not known here.
    assert unknown_metrics("artpulse_operator_rollouts_created") == {
        "artpulse_operator_rollouts_created"
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum by (namespace, model) (rate(artpulse_http_requests_total{route=~"/p.*", status=~"5.."}[5m]))',
            ["artpulse_http_requests_total"],
        ),
        (
            'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="$namespace"}[$__rate_interval])))',
            ["a_bucket"],
        ),
        ("a:rate5m > 0.25 and on (namespace, model) b > 0.1", ["a:rate5m", "b"]),
        ("sum(x) by (job) / ignoring (label) group_left sum(y)", ["x", "y"]),
        ("x / on (a) group_right (b, c) y", ["x", "y"]),
        ('absent(up{job="artpulse-operator"} == 1)', ["up"]),
        ('x{r="RolledBack"} > 0 unless x{r="RolledBack"} offset 15m', ["x", "x"]),
        ("z @ end() - z @ 1700000000", ["z", "z"]),
        ('{__name__="foo", a="1"}', ["foo"]),
        ('count_values("v", z)', ["z"]),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', ["m"]),
        ("max without (a) (b) == bool 1", ["b"]),
        ("max_over_time(rate(c[5m])[1h:1m])", ["c"]),
        ("topk(10, d) * NaN + Inf", ["d"]),
        ('sum by (le) (rate(e_bucket{route=~"/v2/models/[^/]+/infer"}[1m]))', ["e_bucket"]),
        ("0 * sum by (a) (f) or vector(0)", ["f"]),
    ],
)
def test_selectors_are_found_in_promql(expr: str, expected: list[str]) -> None:
    assert [s.metric for s in selectors(expr)] == expected


def test_promql_the_tokenizer_cannot_read_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown PromQL function"):
        selectors("histogram_quantil(0.9, x)")
    with pytest.raises(ValueError, match="without one metric name"):
        selectors('{job="x"}')
    with pytest.raises(ValueError, match="cannot read"):
        selectors("x ? y")


def test_matchers_are_read() -> None:
    (selector,) = selectors('m{a="1", b=~"x|y", c!="\\"q\\"", d!~`raw`}')
    assert selector.matchers == (
        Matcher("a", "=", "1"),
        Matcher("b", "=~", "x|y"),
        Matcher("c", "!=", '"q"'),
        Matcher("d", "!~", "raw"),
    )


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Grafana sends it with every variable at "All"."""
    for name in ("namespace", "name", "version"):
        expr = re.sub(rf"\$\{{?{name}\}}?(?!\w)", ".*", expr)
    return expr.replace("$__rate_interval", "1m").replace("$__range", "1h")


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make lint needs it too)")
    queries = panel_queries()
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboards",
                        "rules": [
                            {"record": f"dashboard:query:{i}", "expr": grafana_to_promql(q.expr)}
                            for i, q in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    check = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(queries)} rules found" in check.stdout


# --- (b) every exported metric has a panel -------------------------------------------------


def graphed_series() -> set[str]:
    return {name for query in panel_queries() for name in metric_names(query.expr)}


def test_every_exported_metric_has_a_panel() -> None:
    graphed = graphed_series()
    missing = {
        family: sorted(names)
        for family, names in exported().all_families.items()
        if family not in NOT_GRAPHED and not names & graphed
    }
    assert not missing, f"exported metrics without a panel: {missing}"


def test_the_not_graphed_list_is_exact() -> None:
    all_families = exported().all_families
    stale = NOT_GRAPHED.keys() - all_families.keys()
    assert not stale, f"not exported any more, drop them from NOT_GRAPHED: {sorted(stale)}"
    graphed = graphed_series()
    drawn = {family for family in NOT_GRAPHED if all_families[family] & graphed}
    assert not drawn, f"graphed after all, drop them from NOT_GRAPHED: {sorted(drawn)}"


# --- (c) the gate panels select one model and version -------------------------------------------


def gate_panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        rows = row_of(dashboard)
        found += [
            (path.name, p) for p in graph_panels(dashboard) if rows[p["id"]].startswith(GATES_ROW)
        ]
    return found


def gate_kind(panel: dict[str, Any]) -> str:
    """Which gate a panel draws: p95 latency, error rate or drift."""
    exprs = [t["expr"] for t in panel["targets"]]
    found = [s for e in exprs for s in selectors(e)]
    if any(m.label == "status" and m.value == "5.." for s in found for m in s.matchers):
        return "error_rate"
    if any("histogram_quantile(0.95" in e.replace(" ", "") for e in exprs) and any(
        s.metric == "artpulse_http_request_duration_seconds_bucket" for s in found
    ):
        return "p95_latency"
    if any(s.metric == "artpulse_drift_score" for s in found):
        return "drift"
    return "other"


def test_every_dashboard_with_gates_draws_the_three_gates() -> None:
    by_dashboard: dict[str, set[str]] = {}
    for dashboard, panel in gate_panels():
        by_dashboard.setdefault(dashboard, set()).add(gate_kind(panel))
    assert set(by_dashboard) == {p.name for p in DASHBOARDS}, "every dashboard has a Gates row"
    for dashboard, kinds in by_dashboard.items():
        assert {"p95_latency", "error_rate", "drift"} <= kinds, (dashboard, kinds)


@pytest.mark.parametrize(
    ("dashboard", "panel"),
    [(d, p) for d, p in gate_panels() if gate_kind(p) != "other"],
    ids=lambda v: v if isinstance(v, str) else v["title"],
)
def test_gate_panels_select_namespace_name_and_version(
    dashboard: str, panel: dict[str, Any]
) -> None:
    assert VERSION_LABEL in MODEL_LABELS
    server_series = series_of(exported().server)
    wanted = {"namespace": "$namespace", MODEL_LABEL: "$name", VERSION_LABEL: "$version"}
    for target in panel["targets"]:
        found = [s for s in selectors(target["expr"]) if s.metric in server_series]
        assert found, f"{dashboard}: {panel['title']} reads no inference series"
        for selector in found:
            for label, variable in wanted.items():
                assert [(m.op, m.value) for m in selector.matches(label)] == [("=~", variable)], (
                    f"{dashboard}: {panel['title']}: {selector.metric} must match "
                    f'{label}=~"{variable}"'
                )
            if selector.metric.startswith("artpulse_http_"):
                # The operator's gate routes exactly, so the panel shows what the gate judges.
                assert [(m.op, m.value) for m in selector.matches("route")] == [
                    ("=~", PREDICT_ROUTES)
                ], f"{dashboard}: {panel['title']}: route matcher differs from the gates'"


def test_every_per_model_series_is_scoped_by_the_variables() -> None:
    """Panels answer for the selected namespace and ArtPulseModel: every selector of an
    inference series filters on $namespace and $name, every per-model operator series too, and
    the process metrics name the operator's job (Prometheus exports the same names itself)."""
    found = exported()
    server_series = series_of(found.server)
    runtime_series = series_of(found.runtime)
    problems = []
    for query in panel_queries():
        for s in selectors(query.expr):
            if s.metric in server_series:
                wanted = {"namespace": "$namespace", MODEL_LABEL: "$name"}
            elif s.metric in found.per_model:
                wanted = {"namespace": "$namespace", "name": "$name"}
            elif s.metric in runtime_series:
                if [(m.op, m.value) for m in s.matches("job")] != [("=", OPERATOR_JOB)]:
                    problems.append(f'{query.source}: {s.metric} without job="{OPERATOR_JOB}"')
                continue
            else:
                continue
            for label, variable in wanted.items():
                if [(m.op, m.value) for m in s.matches(label)] != [("=~", variable)]:
                    problems.append(f'{query.source}: {s.metric} without {label}=~"{variable}"')
    assert not problems, "\n".join(problems)


# --- (d) valid Grafana dashboards -------------------------------------------------------------


def test_the_dashboards_are_the_shipped_two() -> None:
    assert {p.name for p in DASHBOARDS} == {"artpulse-inference.json", "artpulse-rollouts.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_json(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert isinstance(dashboard["uid"], str)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"].startswith("ArtPulse / ")
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert "artpulse" in dashboard["tags"]
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, panel["title"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in grid), panel["title"]
        assert grid["w"] >= 1
        assert grid["h"] >= 1
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    for panel in graph_panels(dashboard):
        assert panel["title"], f"panel {panel['id']} has no title"
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables(path: Path) -> None:
    dashboard = load_dashboard(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert dashboard["templating"]["list"][0]["name"] == "datasource"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "name", "version"):
        variable = variables[name]
        assert variable["type"] == "query", name
        assert variable["datasource"] == DATASOURCE, name
        assert variable["definition"].startswith("label_values("), name
        assert variable["query"]["query"] == variable["definition"], name
        assert variable["includeAll"] is True, name
        assert variable["allValue"] == ".*", name
    # Every variable a query uses is defined (or one of Grafana's own).
    defined = set(variables) | GRAFANA_BUILTINS
    for panel in graph_panels(dashboard):
        for target in panel["targets"]:
            undefined = grafana_variables(target["expr"]) - defined
            assert not undefined, f"{panel['title']}: undefined {sorted(undefined)}"
    for variable in variables.values():
        if variable["type"] == "query":
            undefined = grafana_variables(variable["definition"]) - defined
            assert not undefined, f"variable {variable['name']}: undefined {sorted(undefined)}"


# --- (e) shipped as ConfigMaps the Grafana sidecar loads -----------------------------------------


def dashboards_generator() -> dict[str, Any]:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    (generator,) = [
        g for g in kustomization["configMapGenerator"] if g["name"] == DASHBOARDS_CONFIGMAP
    ]
    return dict(generator)


def generator_files(generator: dict[str, Any]) -> dict[str, Path]:
    """Data key -> file, for ``files:`` entries ``path`` and ``key=path``."""
    files = {}
    for entry in generator["files"]:
        key, _, path = entry.rpartition("=")
        files[key or Path(path).name] = KUSTOMIZATION.parent / path
    return files


def test_the_dashboards_configmap_is_labelled_for_the_grafana_sidecar() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    generator = dashboards_generator()
    options = generator["options"]
    assert options["labels"].items() >= SIDECAR_LABEL.items()
    assert options["disableNameSuffixHash"] is True
    assert {options["annotations"][a] for a in FOLDER_ANNOTATIONS} == {"ArtPulse"}
    # Next to the rules, in the namespace of the base.
    (rules_generator,) = [
        g for g in kustomization["configMapGenerator"] if g["name"] == "artpulse-prometheus-rules"
    ]
    assert generator["namespace"] == rules_generator["namespace"] == "artpulse-system"
    # Options per generator only: the rules keep their hashed name (the Deployment rolls).
    assert "generatorOptions" not in kustomization


def test_the_configmap_ships_every_dashboard_and_fits_an_apply() -> None:
    generator = dashboards_generator()
    files = generator_files(generator)
    assert sorted(files.values()) == DASHBOARDS
    assert all(key.endswith(".json") for key in files)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": generator["name"],
            "namespace": generator["namespace"],
            "labels": generator["options"]["labels"],
            "annotations": generator["options"]["annotations"],
        },
        "data": {key: path.read_text() for key, path in files.items()},
    }
    size = len(json.dumps(configmap))
    assert size < LAST_APPLIED_LIMIT, f"{size} bytes: too big for a client-side kubectl apply"


def test_the_observability_kustomization_is_deployed_by_a_manifest() -> None:
    """Some kustomization under manifests/ pulls observability/ in (components/prometheus)."""
    users = []
    for path in (REPO / "manifests").rglob("kustomization.yaml"):
        doc = yaml.safe_load(path.read_text()) or {}
        for entry in [*doc.get("resources", []), *doc.get("components", [])]:
            if (path.parent / entry).resolve() == OBSERVABILITY.resolve():
                users.append(path)
    assert users, "no kustomization under manifests/ includes observability/"

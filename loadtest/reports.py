"""The reports of `make loadtest-report` and `make business-impact-report`, from measured data.

Pure: every function takes what a source answered (wrk's or k6's summary, a Prometheus
query's JSON, MLflow's REST answers, an ArtPulseModel's status) and returns records or
markdown; nothing here reads a file, a clock or the network. The collectors are in
`hack/artpulse_dev/sources.py` and `gateway_load.py`; `loadtest/cluster_reports.py` ties
them together; `tests/unit/loadtest/` holds these functions to the real sources' shapes.

The rule of both reports: a figure is printed with the source it was read from, or as
"not measured" with the reason. No figure is estimated, defaulted or carried over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NOT_MEASURED = "not measured"

# The manual process the original system describes, as issue 14 (item 10) quotes it: this
# repository never quoted those numbers itself (no README, doc or commit has them).
MANUAL_P95_LATENCY_MS = (180.0, 250.0)
MANUAL_ROLLBACK_MINUTES = (15.0, 30.0)
MANUAL_BASELINE_SOURCE = (
    "the original system's figures for its manual process, as quoted by issue 14 (item 10); "
    "not found elsewhere in this repository"
)

# What the training pipeline logs on a model version's run
# (inference/artpulse_inference/training/pipeline.py, `evaluate`).
ACCURACY_METRIC = "accuracy"
F1_MACRO_METRIC = "f1_macro"

# The prediction routes, as in observability/prometheus/rules/artpulse-recording.rules.yml.
PREDICT_ROUTES = "/predict.*|/v2/models/.+/infer|/inference.GRPCInferenceService/ModelInfer"


def finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number (or a numeric string), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (`2024-05-01T12:00:00Z`) as an aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the loadtest's raw results ---------------------------------------------------------------


def wrk_result(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The measured part of a raw result from `bench_inference_post.lua`'s done() JSON.

    >>> r = wrk_result({"requests": 200, "duration_us": 2_000_000, "latency_us": {"p95": 4500},
    ...                 "errors": {"status": 2}, "versions": {"3": 198}})
    >>> r["rps"], r["latencyMs"]["p95"], r["errors"]["total"]
    (100.0, 4.5, 2)
    """
    requests = _int(summary.get("requests"))
    duration_s = _div(finite(summary.get("duration_us")), 1e6)
    latency = summary.get("latency_us")
    latency_ms = {
        key: _round(_div(finite(latency.get(key)), 1000.0), 3)
        for key in ("p50", "p90", "p95", "p99", "mean", "max")
    } if isinstance(latency, Mapping) else {}  # fmt: skip
    errors = _mapping(summary.get("errors"))
    counted = {k: _int(errors.get(k)) for k in ("connect", "read", "write", "timeout", "status")}
    return {
        "requests": requests,
        "durationS": _round(duration_s, 3),
        "rps": _round(_div(float(requests), duration_s) if requests is not None else None, 1),
        "latencyMs": latency_ms,
        "errors": {**counted, "total": _sum(counted.values())},
        "versions": _versions(summary.get("versions")),
    }


def k6_result(export: Mapping[str, Any]) -> dict[str, Any]:
    """The same from k6's `--summary-export` JSON (trend stats p(50), p(90), p(95), p(99)).

    k6 counts a failed request as a *pass* of its `http_req_failed` rate. It reports no
    versions: the probe request before the run says which version answered.
    """
    metrics = _mapping(export.get("metrics"))
    reqs = _mapping(metrics.get("http_reqs"))
    duration = _mapping(metrics.get("http_req_duration"))
    requests = _int(reqs.get("count"))
    rps = finite(reqs.get("rate"))
    latency_ms = {
        key: _round(finite(duration.get(stat)), 3)
        for key, stat in (("p50", "p(50)"), ("p90", "p(90)"), ("p95", "p(95)"),
                          ("p99", "p(99)"), ("mean", "avg"), ("max", "max"))
    }  # fmt: skip
    failures = _int(_mapping(metrics.get("http_req_failed")).get("passes"))
    return {
        "requests": requests,
        "durationS": _round(_div(float(requests), rps) if requests is not None else None, 3),
        "rps": _round(rps, 1),
        "latencyMs": latency_ms,
        "errors": {"total": failures},
        "versions": {},
    }


def raw_result(run: Mapping[str, Any]) -> dict[str, Any]:
    """What `artpulse_dev.gateway_load.run_load` returned, as one artifacts/loadtest/*.json:
    the context (tool, route, settings, probe, window) and the measured figures, with the
    tool's own summary kept under `raw`."""
    summary = _mapping(run.get("summary"))
    if "wrk" in summary:
        measured = wrk_result(_mapping(summary["wrk"]))
    elif "k6" in summary:
        measured = k6_result(_mapping(summary["k6"]))
    else:
        measured = {}
    started, finished = finite(run.get("startedTs")), finite(run.get("finishedTs"))
    return {
        "tool": run.get("tool"),
        "toolVersion": run.get("toolVersion"),
        "started": iso(started) if started is not None else None,
        "finished": iso(finished) if finished is not None else None,
        "startedTs": started,
        "finishedTs": finished,
        "target": dict(_mapping(run.get("target"))),
        "settings": dict(_mapping(run.get("settings"))),
        "probe": dict(_mapping(run.get("probe"))),
        **measured,
        "raw": dict(summary),
    }


def _versions(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): n for k, v in value.items() if (n := _int(v)) is not None}


def _int(value: Any) -> int | None:
    number = finite(value)
    return int(number) if number is not None and number >= 0 else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _round(value: float | None, digits: int) -> float | None:
    return round(value, digits) if value is not None else None


def _sum(values: Any) -> int | None:
    items = list(values)
    return None if any(v is None for v in items) else sum(items)


# --- the loadtest report ----------------------------------------------------------------------


def _cell(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_MEASURED
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    else:
        text = str(value)
    return f"{text}{unit}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def loadtest_report(results: Sequence[Mapping[str, Any]], machine: Mapping[str, str]) -> str:
    """artifacts/loadtest_report.md: one row per raw result (oldest first), as measured."""
    lines = [
        "# Load test through the Gateway",
        "",
        "Measured by `make loadtest` (raw results in `artifacts/loadtest/*.json`); this page by",
        "`make loadtest-report`. Every request went through the local cluster's Gateway",
        "(Traefik), routed by the HTTPRoute's hostname, with the model's API key. Latency is",
        "the client's (wrk or k6), request sent to answer read.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
    ]
    if not results:
        lines.append(
            f"No raw results in `artifacts/loadtest/`: {NOT_MEASURED}. Run `make loadtest`."
        )
        return "\n".join(lines) + "\n"
    lines += [
        "| started (UTC) | tool | route | versions that answered | conns | s | requests | req/s "
        "| p50 ms | p95 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def started(r: Mapping[str, Any]) -> str:
        return str(r.get("started") or "")

    for r in sorted(results, key=started):
        target = _mapping(r.get("target"))
        route = f"`{target.get('hostname', '?')}{target.get('path', '')}/predict`"
        model = target.get("model")
        if model:
            route += f" ({target.get('namespace', '?')}/{target.get('name', '?')}, model {model})"
        versions = _versions(r.get("versions"))
        if versions:
            answered = ", ".join(f"v{v}: {n}" for v, n in sorted(versions.items()))
        elif (probe := _get(r, "probe", "version")) is not None:
            answered = f"v{probe} (probe request; per-request versions {NOT_MEASURED})"
        else:
            answered = NOT_MEASURED
        tool = f"{r.get('tool', '?')} {r.get('toolVersion', '')}".strip()
        latency = _mapping(r.get("latencyMs"))
        lines.append(
            "| " + " | ".join([
                started(r) or NOT_MEASURED, tool, route, answered,
                _cell(_get(r, "settings", "connections")), _cell(finite(r.get("durationS"))),
                _cell(_int(r.get("requests"))), _cell(finite(r.get("rps"))),
                _cell(finite(_get(latency, "p50"))), _cell(finite(_get(latency, "p95"))),
                _cell(finite(_get(latency, "p99"))), _cell(_int(_get(r, "errors", "total"))),
            ]) + " |"
        )  # fmt: skip
    lines += [
        "",
        "Errors: socket errors (connect, read, write, timeout) plus answers other than 2xx/3xx.",
        f'"{NOT_MEASURED}": the raw result has no such figure (a k6 run reports no versions).',
    ]
    return "\n".join(lines) + "\n"


# --- the business-impact one-pager -----------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One number of the one-pager: its value and where it was read, or why there is none."""

    name: str
    value: float | None
    unit: str
    source: str
    reason: str = ""  # why it is not measured (value None)

    @property
    def measured(self) -> bool:
        return self.value is not None

    def shown(self) -> str:
        if self.value is None:
            return f"{NOT_MEASURED} ({self.reason})"
        return f"{self.value:.4g} {self.unit}".strip()


def p95_query(namespace: str, model: str, window_s: int) -> str:
    """PromQL: p95 (ms) of the model's prediction requests, every track, over `window_s`."""
    selector = f'namespace="{namespace}",model="{model}",route=~"{PREDICT_ROUTES}"'
    return (
        "1000 * histogram_quantile(0.95, sum by (le) (rate("
        f"artpulse_http_request_duration_seconds_bucket{{{selector}}}[{max(window_s, 1)}s])))"
    )


def p95_figure(measured: Mapping[str, Any]) -> Figure:
    """From `{"url", "query", "time", "response"| "error"}`: an instant query's JSON answer."""
    name = "p95 latency of predictions"
    source = (
        f"Prometheus {measured.get('url', '?')}, `{measured.get('query', '?')}` "
        f"at {measured.get('time', '?')}"
    )
    if measured.get("error"):
        return Figure(name, None, "ms", source, f"Prometheus: {measured['error']}")
    response = measured.get("response")
    if not isinstance(response, Mapping) or response.get("status") != "success":
        error = _get(response, "error") or "no answer"
        return Figure(name, None, "ms", source, f"Prometheus: {error}")
    result = _get(response, "data", "result")
    if not isinstance(result, list) or not result:
        return Figure(name, None, "ms", source, "no prediction requests in the window")
    value = result[0].get("value") if isinstance(result[0], Mapping) else None
    number = finite(value[1]) if isinstance(value, list) and len(value) == 2 else None
    if number is None:
        return Figure(name, None, "ms", source, f"Prometheus answered {value!r} (no requests?)")
    return Figure(name, round(number, 1), "ms", source)


def quality_figures(measured: Mapping[str, Any]) -> list[Figure]:
    """Accuracy and macro F1 logged on the version's run, from
    `{"url", "model", "version", "versionResponse", "runResponse"| "error"}` (MLflow REST)."""
    url, model, version = (
        measured.get("url", "?"),
        measured.get("model", "?"),
        measured.get("version"),
    )
    run_id = _get(measured.get("versionResponse"), "model_version", "run_id")
    figures = []
    for name, key in (
        ("accuracy (held-out)", ACCURACY_METRIC),
        ("macro F1 (held-out)", F1_MACRO_METRIC),
    ):
        source = f"MLflow {url}, metric `{key}` of run {run_id or '?'} (model {model} version {version or '?'})"
        if measured.get("error"):
            figures.append(Figure(name, None, "", source, f"MLflow: {measured['error']}"))
            continue
        if not run_id:
            figures.append(Figure(name, None, "", source, "the model version has no training run"))
            continue
        metrics = _get(measured.get("runResponse"), "run", "data", "metrics")
        values = [
            m.get("value") for m in metrics or [] if isinstance(m, Mapping) and m.get("key") == key
        ] if isinstance(metrics, list) else []  # fmt: skip
        number = finite(values[-1]) if values else None
        if number is None:
            why = f"the run logged no `{key}`" if not values else f"`{key}` is {values[-1]!r}"
            figures.append(Figure(name, None, "", source, why))
        else:
            figures.append(Figure(name, round(number, 4), "", source))
    return figures


def _records(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """status.history (oldest first) and lastRollout when it is not already its last entry."""
    history = [h for h in status.get("history") or [] if isinstance(h, Mapping)]
    last = status.get("lastRollout")
    if isinstance(last, Mapping) and last and (not history or dict(history[-1]) != dict(last)):
        history.append(last)
    return history


def rollout_figure(status: Mapping[str, Any], result: str, name: str, where: str) -> Figure:
    """The newest finished `result` record's finishedAt - startedAt, in seconds.

    startedAt is when the operator saw the challenger alias (within spec.model.pollInterval
    of the move, at once with the MLflow webhook); finishedAt is the promotion, or the
    rollback that gave all traffic back to stable.
    """
    source = f"`status.history[]`/`status.lastRollout` of {where}: newest `result: {result}`, finishedAt - startedAt"
    if not isinstance(status, Mapping):
        return Figure(name, None, "s", source, "the resource has no status")
    records = [r for r in _records(status) if r.get("result") == result]
    if not records:
        return Figure(name, None, "s", source, f"no rollout ended {result} in the status history")
    record = records[-1]
    start, end = parse_time(record.get("startedAt")), parse_time(record.get("finishedAt"))
    if start is None or end is None or end < start:
        return Figure(
            name, None, "s", source,
            f"version {record.get('version')}'s record has startedAt {record.get('startedAt')!r}, "
            f"finishedAt {record.get('finishedAt')!r}",
        )  # fmt: skip
    seconds = (end - start).total_seconds()
    return Figure(
        name, round(seconds, 1), "s",
        f"{source} (version {record.get('version')}, {record.get('startedAt')} -> {record.get('finishedAt')})",
    )  # fmt: skip


def business_figures(measured: Mapping[str, Any]) -> list[Figure]:
    """The one-pager's figures from `{"resource", "prometheus", "mlflow"}` (see the collectors)."""
    resource = _mapping(measured.get("resource"))
    meta = _mapping(resource.get("metadata"))
    where = f"ArtPulseModel {meta.get('namespace', '?')}/{meta.get('name', '?')}"
    status = _mapping(resource.get("status"))
    figures = [p95_figure(_mapping(measured.get("prometheus")))]
    figures += quality_figures(_mapping(measured.get("mlflow")))
    if measured.get("resourceError"):
        why = f"kubectl: {measured['resourceError']}"
        figures += [
            Figure("deploy lead time", None, "s", where, why),
            Figure("rollback time", None, "s", where, why),
        ]
    else:
        figures += [
            rollout_figure(status, "Promoted", "deploy lead time", where),
            rollout_figure(status, "RolledBack", "rollback time", where),
        ]
    return figures


def _against(figure: Figure, low: float, high: float, unit: str, scale: float) -> str:
    """The figure next to the manual range, `scale` converting the figure's unit to `unit`."""
    manual = f"manual: {low:g}-{high:g} {unit}"
    if figure.value is None:
        return f"{manual}; no comparison ({NOT_MEASURED})"
    ours = figure.value * scale
    if ours <= 0:
        return manual
    return f"{manual}; measured {ours:.3g} {unit} (manual / measured: {low / ours:.3g}-{high / ours:.3g})"


def business_impact_report(
    measured: Mapping[str, Any], figures: Sequence[Figure], machine: Mapping[str, str]
) -> str:
    """artifacts/business_impact_onepager.md: each figure, its source, the manual baseline."""
    target = _mapping(measured.get("target"))
    window = _mapping(measured.get("window"))
    by_name = {f.name: f for f in figures}
    lines = [
        "# ArtPulse: business impact, measured",
        "",
        f"Model {target.get('model', '?')} served by ArtPulseModel "
        f"{target.get('namespace', '?')}/{target.get('name', '?')}; latency window "
        f"{window.get('start', '?')} -> {window.get('end', '?')} ({window.get('why', '')}).",
        f'Written by `make business-impact-report`. Every figure names its source; "{NOT_MEASURED}"',
        "means the source had no data, and why.",
        "",
        "| figure | value | source |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {f.name} | {f.shown()} | {f.source} |" for f in figures]
    lines += ["", "## Against the manual process", ""]
    p95 = by_name.get("p95 latency of predictions")
    rollback = by_name.get("rollback time")
    if p95 is not None:
        lines.append(f"- p95 latency: {_against(p95, *MANUAL_P95_LATENCY_MS, 'ms', 1.0)}")
    if rollback is not None:
        lines.append(f"- rollback: {_against(rollback, *MANUAL_ROLLBACK_MINUTES, 'min', 1 / 60)}")
    lead = by_name.get("deploy lead time")
    if lead is not None:
        lines.append(
            f"- deploy lead time: {lead.shown()}; the original system quotes no manual figure"
        )
    lines += [
        "",
        f"Manual figures: {MANUAL_BASELINE_SOURCE}. They were not measured here.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
    ]
    return "\n".join(lines) + "\n"

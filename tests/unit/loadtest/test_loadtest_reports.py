"""The measured reports (loadtest/reports.py) on data shaped like their real sources.

wrk's done() JSON as loadtest/bench_inference_post.lua writes it, k6's --summary-export,
Prometheus's /api/v1/query answer, MLflow's model-versions/get and runs/get answers, and
an ArtPulseModel with `status.history`; then the "not measured" paths and odd inputs
(missing fields, NaN, errors, empty history): a figure is never made up.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtest"))

import reports
from artpulse_dev.gateway_load import gateway_target

MACHINE = {"cpus": "2", "python": "3.11.7"}

WRK = {  # bench_inference_post.lua's done() output
    "requests": 4512, "duration_us": 30_004_233, "bytes": 1_203_114,
    "errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 0},
    "latency_us": {"min": 2101, "max": 91234, "mean": 10512.4, "stdev": 3100.2,
                   "p50": 9800, "p90": 14200, "p95": 17350, "p99": 30100},
    "versions": {"2": 4508},
}  # fmt: skip

K6 = {  # k6 run --summary-export, --summary-trend-stats avg,min,med,max,p(50),p(90),p(95),p(99)
    "root_group": {"name": "", "checks": {}},
    "metrics": {
        "http_reqs": {"count": 3000, "rate": 99.8},
        "http_req_duration": {"avg": 9.1, "min": 2.0, "med": 8.5, "max": 80.2, "p(50)": 8.5,
                              "p(90)": 12.0, "p(95)": 15.25, "p(99)": 29.0},
        "http_req_failed": {"passes": 4, "fails": 2996, "value": 0.00133},
    },
}  # fmt: skip

RUN = {
    "tool": "wrk",
    "toolVersion": "4.1.0",
    "startedTs": 1714564800.0,
    "finishedTs": 1714564830.0,
    "target": {"namespace": "ml", "name": "art-classifier", "model": "artpulse-classifier",
               "hostname": "art-classifier.ml.artpulse.local", "path": "", "version": "2"},
    "settings": {"connections": 16, "threads": 2, "durationS": 30},
    "probe": {"status": 200, "version": "2"},
    "summary": {"wrk": WRK},
}  # fmt: skip


def prom(value: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1714564830, value]}]},
    }


MLFLOW = {
    "url": "http://10.0.0.50:5000",
    "model": "artpulse-classifier",
    "version": "2",
    "versionResponse": {
        "model_version": {"name": "artpulse-classifier", "version": "2", "run_id": "abc123",
                          "status": "READY", "aliases": ["champion"]}
    },
    "runResponse": {
        "run": {
            "info": {"run_id": "abc123", "status": "FINISHED"},
            "data": {"metrics": [
                {"key": "accuracy", "value": 0.9412, "timestamp": 1714560000000, "step": 0},
                {"key": "f1_macro", "value": 0.9275, "timestamp": 1714560000000, "step": 0},
                {"key": "fit_seconds", "value": 0.4, "timestamp": 1714560000000, "step": 0},
            ], "params": [], "tags": []},
        }
    },
}  # fmt: skip

RESOURCE = {
    "apiVersion": "artpulse.io/v1alpha1",
    "kind": "ArtPulseModel",
    "metadata": {"name": "art-classifier", "namespace": "ml"},
    "spec": {"model": {"name": "artpulse-classifier"},
             "serving": {"secretRef": {"name": "artpulse-auth"}},
             "trafficRouting": {"provider": "GatewayAPI",
                                "gatewayAPI": {"hostnames": ["art-classifier.ml.artpulse.local"]}}},
    "status": {
        "phase": "RolledBack",
        "stable": {"version": "2"},
        "history": [
            {"version": "2", "result": "Promoted", "startedAt": "2024-05-01T12:00:00Z",
             "finishedAt": "2024-05-01T12:01:05Z", "reason": "all steps passed", "strategy": "Canary"},
            {"version": "3", "result": "RolledBack", "startedAt": "2024-05-01T12:02:00Z",
             "finishedAt": "2024-05-01T12:02:14.5Z", "reason": "p95 612 ms > 250", "strategy": "Canary"},
        ],
        "lastRollout": {"version": "3", "result": "RolledBack", "startedAt": "2024-05-01T12:02:00Z",
                        "finishedAt": "2024-05-01T12:02:14.5Z", "reason": "p95 612 ms > 250",
                        "strategy": "Canary"},
    },
}  # fmt: skip


def business(**overrides: Any) -> dict[str, Any]:
    measured = {
        "target": {"namespace": "ml", "name": "art-classifier", "model": "artpulse-classifier"},
        "window": {"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:05:00Z", "why": "test"},
        "resource": RESOURCE,
        "prometheus": {"url": "http://10.0.0.51:9090", "query": "q", "time": 1714565100.0,
                       "response": prom("23.71")},
        "mlflow": MLFLOW,
    }  # fmt: skip
    measured.update(overrides)
    return measured


def by_name(measured: dict[str, Any]) -> dict[str, reports.Figure]:
    return {f.name: f for f in reports.business_figures(measured)}


# --- the loadtest's raw results and report ----------------------------------------------------


def test_a_wrk_summary_becomes_rps_milliseconds_errors_and_versions() -> None:
    result = reports.raw_result(RUN)
    assert result["requests"] == 4512
    assert result["rps"] == pytest.approx(4512 / 30.004233, abs=0.1)
    assert result["latencyMs"]["p95"] == 17.35
    assert result["errors"] == {"connect": 0, "read": 1, "write": 0, "timeout": 0, "status": 3,
                                "total": 4}  # fmt: skip
    assert result["versions"] == {"2": 4508}
    assert result["started"] == "2024-05-01T12:00:00Z"
    assert result["raw"] == {"wrk": WRK}  # the tool's own numbers are kept


def test_a_k6_summary_export_counts_failed_requests_as_its_passes() -> None:
    result = reports.raw_result({**RUN, "tool": "k6", "summary": {"k6": K6}})
    assert result["requests"] == 3000
    assert result["rps"] == 99.8
    assert result["latencyMs"]["p95"] == 15.25
    assert result["errors"] == {"total": 4}
    assert result["versions"] == {}


def test_a_wrk_run_without_requests_has_no_latency_and_no_rate() -> None:
    summary = {"requests": 0, "duration_us": 0, "errors": {}, "latency_us": None, "versions": {}}
    result = reports.wrk_result(summary)
    assert result["rps"] is None
    assert result["latencyMs"] == {}
    assert result["errors"]["total"] is None  # no error counters: not "0 errors"


def test_the_loadtest_report_shows_each_run_as_measured() -> None:
    text = reports.loadtest_report([reports.raw_result(RUN)], MACHINE)
    row = next(line for line in text.splitlines() if "art-classifier.ml.artpulse.local" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "2024-05-01T12:00:00Z"
    assert cells[1] == "wrk 4.1.0"
    assert cells[2].startswith("`art-classifier.ml.artpulse.local/predict`")
    assert cells[3] == "v2: 4508"
    assert cells[4:] == ["16", "30.00", "4512", "150.4", "9.80", "17.35", "30.10", "4"]
    assert "Machine: cpus 2, python 3.11.7" in text


def test_the_loadtest_report_says_not_measured_for_what_a_run_lacks() -> None:
    k6 = reports.raw_result({**RUN, "tool": "k6", "summary": {"k6": {"metrics": {}}}})
    odd = {"tool": "wrk", "latencyMs": {"p95": math.nan}, "target": "not a mapping"}
    text = reports.loadtest_report([k6, odd], MACHINE)
    assert "v2 (probe request; per-request versions not measured)" in text
    odd_row = next(line for line in text.splitlines() if "`?/predict`" in line)
    assert odd_row.count("not measured") >= 8
    assert "nan" not in text.lower().replace("not measured", "")


def test_no_raw_results_is_said_not_invented() -> None:
    text = reports.loadtest_report([], MACHINE)
    assert "not measured" in text
    assert "| --- |" not in text


# --- the business-impact one-pager ------------------------------------------------------------


def test_every_figure_is_read_from_its_source() -> None:
    figures = by_name(business())
    assert figures["p95 latency of predictions"].value == 23.7
    assert figures["accuracy (held-out)"].value == 0.9412
    assert figures["macro F1 (held-out)"].value == 0.9275
    assert figures["deploy lead time"].value == 65.0
    assert figures["rollback time"].value == 14.5
    assert "Prometheus http://10.0.0.51:9090" in figures["p95 latency of predictions"].source
    assert "`f1_macro` of run abc123" in figures["macro F1 (held-out)"].source
    assert "version 3" in figures["rollback time"].source
    assert all(f.measured and f.source for f in figures.values())


def test_the_one_pager_sets_the_figures_against_the_manual_process() -> None:
    measured = business()
    text = reports.business_impact_report(measured, reports.business_figures(measured), MACHINE)
    assert "| p95 latency of predictions | 23.7 ms | Prometheus" in text
    assert "manual: 180-250 ms; measured 23.7 ms (manual / measured: 7.59-10.5)" in text
    # 14.5 s = 0.242 min against 15-30 min.
    assert "manual: 15-30 min; measured 0.242 min (manual / measured: 62.1-124)" in text
    assert "issue 14 (item 10)" in text
    assert "not measured" not in text.split("## Against")[0].split("| --- |")[1]


@pytest.mark.parametrize(
    ("prometheus", "reason"),
    [
        ({"response": {"status": "success", "data": {"resultType": "vector", "result": []}}},
         "no prediction requests in the window"),
        ({"response": prom("NaN")}, "Prometheus answered"),
        ({"response": prom("+Inf")}, "Prometheus answered"),
        ({"response": {"status": "error", "errorType": "bad_data", "error": "parse error"}},
         "parse error"),
        ({"error": "ConnectError: connection refused"}, "connection refused"),
        ({}, "no answer"),
    ],
)  # fmt: skip
def test_p95_without_data_is_not_measured(prometheus: dict[str, Any], reason: str) -> None:
    figure = reports.p95_figure({"url": "u", "query": "q", "time": 1.0, **prometheus})
    assert figure.value is None
    assert reason in figure.reason
    assert figure.shown().startswith("not measured (")


@pytest.mark.parametrize(
    ("mlflow", "reason"),
    [
        ({"error": "model-versions/get: 404 RESOURCE_DOES_NOT_EXIST"}, "404"),
        ({"versionResponse": {"model_version": {"version": "2", "run_id": ""}}}, "no training run"),
        ({"runResponse": {"run": {"data": {"metrics": []}}}}, "logged no `"),
        ({"runResponse": {"run": {"data": {}}}}, "logged no `"),
        ({"runResponse": {"run": {"data": {"metrics": [{"key": "accuracy", "value": "NaN"},
                                                       {"key": "f1_macro", "value": None}]}}}},
         "is "),
    ],
)  # fmt: skip
def test_quality_without_a_logged_metric_is_not_measured(
    mlflow: dict[str, Any], reason: str
) -> None:
    figures = reports.quality_figures({**MLFLOW, **mlflow})
    assert [f.value for f in figures] == [None, None]
    assert all(reason in f.reason for f in figures), [f.reason for f in figures]


def test_the_newest_record_of_each_result_is_used_and_last_rollout_counts_once() -> None:
    status = {
        "history": [
            {"version": "2", "result": "Promoted", "startedAt": "2024-05-01T12:00:00Z",
             "finishedAt": "2024-05-01T12:10:00Z"},
            {"version": "4", "result": "Promoted", "startedAt": "2024-05-01T13:00:00Z",
             "finishedAt": "2024-05-01T13:00:42Z"},
        ],
        # Running (no result yet): not a finished rollout of either kind.
        "lastRollout": {"version": "5", "startedAt": "2024-05-01T14:00:00Z"},
    }  # fmt: skip
    lead = reports.rollout_figure(status, "Promoted", "deploy lead time", "x")
    assert lead.value == 42.0
    assert "version 4" in lead.source
    rollback = reports.rollout_figure(status, "RolledBack", "rollback time", "x")
    assert rollback.value is None
    assert "no rollout ended RolledBack" in rollback.reason


def test_a_rollback_only_in_last_rollout_is_found() -> None:
    status = {"lastRollout": {"version": "3", "result": "RolledBack",
                              "startedAt": "2024-05-01T12:00:00Z",
                              "finishedAt": "2024-05-01T12:00:09Z"}}  # fmt: skip
    assert reports.rollout_figure(status, "RolledBack", "rollback time", "x").value == 9.0


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"history": []},
        {"history": None, "lastRollout": None},
        {"history": ["not a record", {"result": "Promoted"}]},
        {"history": [{"version": "2", "result": "Promoted", "startedAt": "yesterday",
                      "finishedAt": "2024-05-01T12:00:00Z"}]},
        {"history": [{"version": "2", "result": "Promoted", "startedAt": "2024-05-01T12:00:00Z",
                      "finishedAt": "2024-05-01T11:00:00Z"}]},  # ends before it starts
    ],
)  # fmt: skip
def test_lead_time_without_a_usable_record_is_not_measured(status: dict[str, Any]) -> None:
    figure = reports.rollout_figure(status, "Promoted", "deploy lead time", "x")
    assert figure.value is None
    assert figure.reason


def test_a_resource_that_cannot_be_read_leaves_its_figures_not_measured() -> None:
    measured = business(resource=None, resourceError="NotFound: artpulsemodels x")
    figures = by_name(measured)
    assert figures["deploy lead time"].value is None
    assert "NotFound" in figures["rollback time"].reason
    text = reports.business_impact_report(measured, list(figures.values()), MACHINE)
    assert "rollback: manual: 15-30 min; no comparison (not measured)" in text


def test_nothing_measured_gives_a_page_of_reasons() -> None:
    measured: dict[str, Any] = {"prometheus": {}, "mlflow": {"error": "down"}, "resource": {}}
    figures = reports.business_figures(measured)
    assert [f.value for f in figures] == [None] * 5
    text = reports.business_impact_report(measured, figures, MACHINE)
    assert text.split("## Against")[0].count("not measured (") == 5
    assert "nan" not in text.lower()


def test_the_p95_query_reads_prediction_routes_of_one_model_over_the_window() -> None:
    query = reports.p95_query("ml", "artpulse-classifier", 95)
    assert query.startswith("1000 * histogram_quantile(0.95, sum by (le) (rate(")
    assert 'namespace="ml",model="artpulse-classifier"' in query
    assert f'route=~"{reports.PREDICT_ROUTES}"' in query
    assert query.endswith("[95s])))")


def test_the_prediction_routes_are_the_recording_rules_routes() -> None:
    rules = Path(__file__).resolve().parents[3] / "observability/prometheus/rules"
    text = (rules / "artpulse-recording.rules.yml").read_text()
    assert f'route=~"{reports.PREDICT_ROUTES}"' in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), ("2.5", 2.5), ("NaN", None), (math.inf, None), (None, None), (True, None),
     ("x", None), ([1], None)],
)  # fmt: skip
def test_finite(value: Any, expected: float | None) -> None:
    assert reports.finite(value) == expected


# --- which models the loadtest may load -------------------------------------------------------


def test_a_rolled_back_model_serves_its_stable_version_and_is_a_target() -> None:
    assert gateway_target(RESOURCE) is not None  # phase RolledBack


def test_a_stable_model_routed_by_a_gateway_hostname_is_a_target() -> None:
    target = gateway_target({**RESOURCE, "status": {"phase": "Stable", "stable": {"version": "2"}}})
    assert target is not None
    assert (target.namespace, target.name, target.model) == ("ml", "art-classifier",
                                                             "artpulse-classifier")  # fmt: skip
    assert target.hostname == "art-classifier.ml.artpulse.local"
    assert target.predict_path == "/predict"
    assert (target.secret, target.version) == ("artpulse-auth", "2")


@pytest.mark.parametrize(
    "change",
    [
        {"status": {"phase": "Progressing"}},
        {"status": {"phase": "Pending"}},
        {"status": None},
        {"spec": {**RESOURCE["spec"], "trafficRouting": {"provider": "Replicas"}}},
        {"spec": {**RESOURCE["spec"], "trafficRouting": {"provider": "GatewayAPI",
                                                         "gatewayAPI": {"hostnames": []}}}},
        {"spec": {**RESOURCE["spec"], "model": {}}},
    ],
)  # fmt: skip
def test_other_models_are_not_targets(change: dict[str, Any]) -> None:
    resource = {**RESOURCE, "status": {"phase": "Stable"}, **change}
    assert gateway_target(resource) is None

"""The shipped Prometheus configuration, rules and dashboards against a real Prometheus.

One Prometheus runs manifests/components/prometheus/prometheus.yml as shipped, with three changes a test needs:
pods come from file_sd instead of the Kubernetes API (each target carries the same
__meta_kubernetes_* labels kubernetes_sd would give it, so the shipped relabeling runs
unchanged), intervals are 1s, and the rule files are the shipped ones with `for:` removed (the
`for:` durations are pinned by the promtool unit tests in observability/prometheus/tests).
It scrapes real HTTP exporters (ship_exporter.py) that play an inference pod per track and an
operator replica. Each test waits on a condition with a deadline.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.prometheus import Prometheus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXPORTER = Path(__file__).with_name("ship_exporter.py")
RULES_DIR = REPO / "observability/prometheus/rules"
DASHBOARDS = sorted((REPO / "observability/grafana/dashboards").glob("*.json"))
NS = "shop"
DEADLINE_S = 60


def wait_for(what: str, probe: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last answer: {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Exporter:
    port: int
    state_file: Path
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def start_exporter(tmp: Path, name: str, state: dict[str, Any]) -> Exporter:
    port = free_port()
    exporter = Exporter(port, tmp / f"{name}.json", None)  # type: ignore[arg-type]
    exporter.set(state)
    exporter.proc = subprocess.Popen(
        [sys.executable, str(EXPORTER), str(port), str(exporter.state_file)]
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            assert exporter.proc.poll() is None, f"exporter {name} exited"
            return False

    wait_for(f"exporter {name}", answers)
    return exporter


def pod_target(
    address: str,
    pod: str,
    labels: dict[str, str],
    port_name: str,
    namespace: str = NS,
    phase: str = "Running",
) -> dict[str, Any]:
    """A file_sd entry with the meta labels kubernetes_sd (role: pod) gives a container port."""
    meta = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_ready": "true",
    }
    for key, value in labels.items():
        meta["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    return {"targets": [address], "labels": meta}


def inference_labels(model: str, track: str, version: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "artpulse-inference",
        "app.kubernetes.io/instance": model,
        "app.kubernetes.io/managed-by": "artpulse-operator",
        "artpulse.io/track": track,
        "artpulse.io/model-version": version,
    }


class ShippedConfigPrometheus(Prometheus):
    """The harness's Prometheus, started with the shipped configuration (see module docstring)."""

    sd_dir: Path

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = yaml.safe_load(
            (REPO / "manifests/components/prometheus/prometheus.yml").read_text()
        )
        cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        cfg["rule_files"] = [str(p) for p in self.rule_files]
        jobs = []
        for job in cfg["scrape_configs"]:
            if "kubernetes_sd_configs" not in job:
                continue  # the self-scrape of localhost:9090 means nothing here
            del job["kubernetes_sd_configs"]
            job["file_sd_configs"] = [
                {"files": [str(self.sd_dir / f"{job['job_name']}.json")], "refresh_interval": "1s"}
            ]
            jobs.append(job)
        cfg["scrape_configs"] = jobs
        return cfg


def rules_without_for(tmp: Path) -> list[Path]:
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("for", None)
        copy = tmp / path.name
        copy.write_text(yaml.safe_dump(doc))
        out.append(copy)
    return out


@dataclass
class Stack:
    prometheus: ShippedConfigPrometheus
    sd_dir: Path
    inference: Exporter
    operator: Exporter

    def targets(self, job: str, entries: list[dict[str, Any]]) -> None:
        tmp = self.sd_dir / f"{job}.json.tmp"
        tmp.write_text(json.dumps(entries))
        tmp.replace(self.sd_dir / f"{job}.json")

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr)

    def firing(self, alertname: str) -> list[dict[str, str]]:
        return [
            r["metric"]
            for r in self.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
        ]


HEALTHY_STABLE = {
    "model": "clf",
    "version": "3",
    "track": "stable",
    "route": "/predict",
    "rps": 40,
    "latency_s": 0.02,
    "error_ratio": 0.0,
}
BAD_CANARY = {
    "model": "clf",
    "version": "4",
    "track": "canary",
    "route": "/predict",
    "rps": 40,
    "latency_s": 0.4,
    "error_ratio": 0.2,
}
HEALTH_CHECKS = {
    "model": "clf",
    "version": "3",
    "track": "stable",
    "route": "/health",
    "rps": 20,
    "latency_s": 2.0,
    "error_ratio": 0.5,
}


STABLE_LABELS = {"model": "clf", "version": "3", "track": "stable"}
# The server's other series (per-feature PSI, model info, shadow, predictions, refusals, model
# time), for the panels of the Inference dashboard; no alert reads them.
INFERENCE_SIGNALS: dict[str, list[dict[str, Any]]] = {
    "gauges": [
        {
            "name": "artpulse_feature_drift_psi",
            "labels": {**STABLE_LABELS, "feature": "hue"},
            "value": 0.04,
        },
        {
            "name": "artpulse_model_info",
            "labels": {
                **STABLE_LABELS,
                "alias": "champion",
                "run_id": "r1",
                "uri": "models:/clf/3",
                "role": "served",
            },
            "value": 1,
        },
        {
            "name": "artpulse_shadow_agreement_ratio",
            "labels": {**STABLE_LABELS, "shadow_version": "4"},
            "value": 0.97,
        },
    ],
    "counters": [
        {"name": "artpulse_predictions", "labels": {**STABLE_LABELS, "label": "cat"}, "value": 10},
        {
            "name": "artpulse_shadow_comparisons",
            "labels": {**STABLE_LABELS, "shadow_version": "4", "outcome": "agree"},
            "value": 9,
        },
        {
            "name": "artpulse_shadow_errors",
            "labels": {**STABLE_LABELS, "shadow_version": "4", "exception": "RuntimeError"},
            "value": 1,
        },
        {
            "name": "artpulse_http_refused_requests",
            "labels": {**STABLE_LABELS, "route": "/predict", "method": "POST", "status": "401"},
            "value": 1,
        },
        {
            "name": "artpulse_auth_failures",
            "labels": {"family": "predict", "scheme": "bearer", "reason": "invalid_credential"},
            "value": 1,
        },
    ],
    "histograms": [
        {
            "name": "artpulse_inference_duration_seconds",
            "labels": STABLE_LABELS,
            "value": 0.004,
            "per_s": 20,
        }
    ],
}


def operator_series(rolled_back: int) -> dict[str, Any]:
    def phases(name: str, current: str) -> list[dict[str, Any]]:
        return [
            {
                "name": "artpulse_operator_phase",
                "labels": {"namespace": NS, "name": name, "phase": p},
                "value": int(p == current),
            }
            for p in [
                "Pending",
                "Stable",
                "Shadowing",
                "Progressing",
                "Paused",
                "Promoting",
                "RolledBack",
                "Degraded",
                "Failed",
            ]
        ]

    series: dict[str, Any] = {
        "gauges": [
            *phases("clf", "Progressing"),
            *phases("steady", "Stable"),
            {
                "name": "artpulse_operator_canary_weight",
                "labels": {"namespace": NS, "name": "clf"},
                "value": 10,
            },
            {
                "name": "artpulse_operator_canary_weight",
                "labels": {"namespace": NS, "name": "steady"},
                "value": 0,
            },
        ],
        "counters": [
            {
                "name": "artpulse_operator_rollouts",
                "labels": {"namespace": NS, "name": "clf", "result": "RolledBack"},
                "value": rolled_back,
            },
            {
                "name": "artpulse_operator_rollouts",
                "labels": {"namespace": NS, "name": "clf", "result": "Promoted"},
                "value": 1,
            },
            {
                "name": "artpulse_operator_rollouts",
                "labels": {"namespace": NS, "name": "clf", "result": "Aborted"},
                "value": 0,
            },
            {
                "name": "artpulse_operator_rollouts",
                "labels": {"namespace": NS, "name": "steady", "result": "RolledBack"},
                "value": 0,
            },
            {"name": "artpulse_operator_gate_verdicts", "labels": {"verdict": "Fail"}, "value": 2},
            {"name": "artpulse_operator_gate_verdicts", "labels": {"verdict": "Pass"}, "value": 5},
            {
                "name": "artpulse_operator_gate_failures",
                "labels": {"gate": "p95LatencyMs"},
                "value": 2,
            },
        ],
        "histograms": [
            {"name": "artpulse_operator_rollback_seconds", "value": 0.7, "per_s": 2},
            {"name": "artpulse_operator_reconcile_duration_seconds", "value": 0.05, "per_s": 5},
        ],
    }
    # The rest of what the operator's /metrics carries (Telemetry, the notifier, the MLflow
    # webhook route, prometheus_client's process collector), for the Operator row.
    series["gauges"] += [
        {"name": "artpulse_operator_managed_resources", "value": 2},
        {"name": "process_resident_memory_bytes", "value": 120e6},
        {"name": "process_start_time_seconds", "value": 1.7e9},
        {"name": "process_open_fds", "value": 20},
        {"name": "process_max_fds", "value": 1024},
    ]
    series["counters"] += [
        {
            "name": "artpulse_operator_reconcile_errors",
            "labels": {"reason": "ApiError"},
            "value": 1,
        },
        {"name": "artpulse_operator_objects_applied", "value": 12},
        {"name": "artpulse_operator_objects_deleted", "value": 1},
        {"name": "artpulse_operator_drift_repairs", "labels": {"kind": "Deployment"}, "value": 1},
        {"name": "artpulse_operator_notifications", "labels": {"result": "sent"}, "value": 3},
        {"name": "artpulse_operator_mlflow_events", "labels": {"result": "accepted"}, "value": 2},
        {"name": "process_cpu_seconds", "value": 4.2},
    ]
    return series


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("observability")
    sd_dir = tmp / "sd"
    sd_dir.mkdir()
    inference = start_exporter(
        tmp,
        "inference",
        {
            "traffic": [HEALTHY_STABLE, BAD_CANARY, HEALTH_CHECKS],
            "gauges": [
                {
                    "name": "artpulse_drift_score",
                    "labels": {"model": "clf", "version": "3", "track": "stable"},
                    "value": 0.05,
                },
                {
                    "name": "artpulse_drift_score",
                    "labels": {"model": "clf", "version": "4", "track": "canary"},
                    "value": 0.6,
                },
                *INFERENCE_SIGNALS["gauges"],
            ],
            "counters": INFERENCE_SIGNALS["counters"],
            "histograms": INFERENCE_SIGNALS["histograms"],
        },
    )
    operator = start_exporter(tmp, "operator", operator_series(rolled_back=0))
    prometheus = ShippedConfigPrometheus(tmp / "prometheus", rule_files=rules_without_for(tmp))
    prometheus.sd_dir = sd_dir
    stack = Stack(prometheus, sd_dir, inference, operator)
    # Two pods per exporter would double every series; one pod per target, plus pods that the
    # shipped relabeling must drop: one not Running, one whose port is not the one named http.
    stack.targets(
        "artpulse-inference",
        [
            pod_target(
                inference.address, "clf-stable-7d9f", inference_labels("clf", "stable", "3"), "http"
            ),
            pod_target(
                inference.address,
                "clf-canary-pending",
                inference_labels("clf", "canary", "4"),
                "http",
                phase="Pending",
            ),
            pod_target(
                operator.address,
                "clf-stable-debug",
                inference_labels("clf", "stable", "3"),
                "debug",
            ),
        ],
    )
    stack.targets(
        "artpulse-operator",
        [
            pod_target(
                operator.address,
                "artpulse-operator-5c8d-a",
                {"app.kubernetes.io/name": "artpulse-operator"},
                "metrics",
                namespace="artpulse-system",
            ),
        ],
    )
    prometheus.start()
    try:
        yield stack
    finally:
        prometheus.stop()
        inference.stop()
        operator.stop()


def test_shipped_relabeling_keeps_pod_labels_and_adds_namespace(stack: Stack) -> None:
    up = wait_for("inference target up", lambda: stack.query('up{job="artpulse-inference"} == 1'))
    assert len(up) == 1, f"the Pending pod and the non-http port must be dropped: {up}"
    labels = up[0]["metric"]
    assert labels["namespace"] == NS
    assert labels["pod"] == "clf-stable-7d9f"
    assert labels["artpulse_model"] == "clf"
    assert labels["artpulse_track"] == "stable"
    assert labels["artpulse_model_version"] == "3"
    # The server's own labels stay as they are: no exported_* renames.
    series = wait_for(
        "request series",
        lambda: stack.query(
            f'artpulse_http_requests_total{{namespace="{NS}", track="canary", version="4"}}'
        ),
    )
    assert not any(k.startswith("exported_") for s in series for k in s["metric"])


def test_operator_metrics_keep_the_model_namespace(stack: Stack) -> None:
    up = wait_for("operator target up", lambda: stack.query('up{job="artpulse-operator"} == 1'))
    assert up[0]["metric"]["pod"] == "artpulse-operator-5c8d-a"
    assert "namespace" not in up[0]["metric"]
    phase = wait_for(
        "phase series",
        lambda: stack.query(
            f'artpulse_operator_phase{{namespace="{NS}", name="clf", phase="Progressing"}} == 1'
        ),
    )
    assert "exported_namespace" not in phase[0]["metric"]


def test_the_gate_query_of_the_design_runs_on_the_shipped_labels(stack: Stack) -> None:
    """DESIGN.md section 3's p95 gate query, as the operator sends it, finds the canary."""
    expr = (
        "1000 * histogram_quantile(0.95, sum by (le) (rate(artpulse_http_request_duration_seconds_bucket"
        f'{{namespace="{NS}",model="clf",track="canary",version="4",route=~"/predict.*"}}[1m])))'
    )
    result = wait_for("p95 of the canary", lambda: stack.query(expr))
    assert 250 < float(result[0]["value"][1]) <= 500


@pytest.mark.parametrize(
    ("alertname", "expected"),
    [
        (
            "ArtPulseHighP95Latency",
            {"namespace": NS, "model": "clf", "track": "canary", "version": "4"},
        ),
        (
            "ArtPulseHighErrorRate",
            {"namespace": NS, "model": "clf", "track": "canary", "version": "4"},
        ),
        (
            "ArtPulseModelDrift",
            {"namespace": NS, "model": "clf", "track": "canary", "version": "4"},
        ),
        ("ArtPulseRolloutStuck", {"namespace": NS, "name": "clf", "phase": "Progressing"}),
    ],
)
def test_alert_fires_for_the_bad_slice_only(
    stack: Stack, alertname: str, expected: dict[str, str]
) -> None:
    alerts = wait_for(f"{alertname} firing", lambda: stack.firing(alertname))
    # The healthy stable track (and the slow, failing /health route) and the Stable model are
    # evaluated by the same rule in the same round: only the bad slice may fire.
    assert len(alerts) == 1, alerts
    for key, value in expected.items():
        assert alerts[0][key] == value, alerts


def test_rollback_alert_fires_when_the_counter_moves(stack: Stack) -> None:
    # Scraped at 0 first, so the increase branch sees the step from 0 to 1.
    wait_for(
        "rollouts counter at 0",
        lambda: stack.query(
            f'artpulse_operator_rollouts_total{{namespace="{NS}", name="clf", result="RolledBack"}} == 0'
        ),
    )
    assert stack.firing("ArtPulseRollbackHappened") == []
    stack.operator.set(operator_series(rolled_back=1))
    alerts = wait_for(
        "ArtPulseRollbackHappened firing", lambda: stack.firing("ArtPulseRollbackHappened")
    )
    assert [(a["namespace"], a["name"]) for a in alerts] == [(NS, "clf")]


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables as a dashboard with every variable at "All" would send them."""
    for var in ("$namespace", "$name", "$version"):
        expr = expr.replace(var, ".*")
    return expr.replace("$__rate_interval", "1m").replace("$__range", "5m")


def dashboard_queries() -> list[tuple[str, str, str]]:
    queries = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):  # rows have none
                queries.append((path.name, panel["title"], target["expr"]))
    return queries


def test_dashboards_are_grafana_json_with_a_datasource_variable() -> None:
    assert {p.name for p in DASHBOARDS} == {"artpulse-inference.json", "artpulse-rollouts.json"}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        assert dashboard["title"].startswith("ArtPulse")
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names[0] == "datasource"
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"


@pytest.mark.parametrize(
    ("dashboard", "title", "expr"),
    dashboard_queries(),
    ids=[f"{d}:{t}" for d, t, _ in dashboard_queries()],
)
def test_every_dashboard_query_returns_data(
    stack: Stack, dashboard: str, title: str, expr: str
) -> None:
    promql = grafana_to_promql(expr)
    result = wait_for(f"{dashboard} / {title}: {promql}", lambda: stack.query(promql))
    assert result


def test_operator_down_fires_when_no_replica_is_up(tmp_path: Path) -> None:
    operator = start_exporter(tmp_path, "operator", operator_series(rolled_back=0))
    sd_dir = tmp_path / "sd"
    sd_dir.mkdir()
    prometheus = ShippedConfigPrometheus(
        tmp_path / "prometheus", rule_files=rules_without_for(tmp_path)
    )
    prometheus.sd_dir = sd_dir
    (sd_dir / "artpulse-operator.json").write_text(
        json.dumps(
            [
                pod_target(
                    operator.address,
                    "artpulse-operator-a",
                    {"app.kubernetes.io/name": "artpulse-operator"},
                    "metrics",
                    namespace="artpulse-system",
                ),
            ]
        )
    )
    expr = next(
        r["expr"]
        for g in yaml.safe_load((RULES_DIR / "artpulse-alerts.rules.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "ArtPulseOperatorDown"
    )
    prometheus.start()
    try:
        wait_for("operator up", lambda: prometheus.query('up{job="artpulse-operator"} == 1'))
        assert prometheus.query(expr) == [], (
            "the alert expression must be empty while a replica is up"
        )
        operator.stop()
        alerts = wait_for(
            "ArtPulseOperatorDown firing",
            lambda: prometheus.query(
                'ALERTS{alertname="ArtPulseOperatorDown", alertstate="firing"}'
            ),
        )
        assert alerts[0]["metric"]["severity"] == "critical"
    finally:
        prometheus.stop()
        operator.stop()


def test_promtool_checks_and_unit_tests_pass() -> None:
    rules = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    check = subprocess.run(["promtool", "check", "rules", *rules], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = sorted((REPO / "observability/prometheus/tests").glob("*.yml"))
    assert tests
    run = subprocess.run(
        ["promtool", "test", "rules", *map(str, tests)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_local_monitoring_stack_mounts_what_exists() -> None:
    """observability/compose.yaml cannot run here (no Docker): check what it mounts and loads."""
    base = REPO / "observability"
    compose = yaml.safe_load((base / "compose.yaml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (base / source).exists(), f"compose mounts a missing {source}"
    check = subprocess.run(
        ["promtool", "check", "config", str(base / "prometheus/prometheus-local.yml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    grafana = compose["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (base / "grafana/dashboards" / Path(home).name).is_file()
    provider = yaml.safe_load((base / "grafana/provisioning/dashboards/artpulse.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(Path(home).parent)

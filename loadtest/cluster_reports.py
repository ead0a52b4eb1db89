"""`make loadtest`, `make loadtest-report`, `make business-impact-report`: measured, on the local cluster.

    .venv/bin/python loadtest/cluster_reports.py loadtest [--duration 30] [--connections 16]
        [--namespace NS --name NAME] [--kubeconfig PATH] [--tool wrk|k6] [--no-setup]
    .venv/bin/python loadtest/cluster_reports.py loadtest-report
    .venv/bin/python loadtest/cluster_reports.py business-impact [--namespace NS --name NAME]
        [--since SECONDS] [--prometheus URL] [--mlflow URL] [--kubeconfig PATH]

- `loadtest`: k6 or wrk through the Gateway at one served model (how the target is found,
  or set up, is in `hack/artpulse_dev/gateway_load.py`); one raw result per run in
  `artifacts/loadtest/<started>-<namespace>-<name>.json`.
- `loadtest-report`: `artifacts/loadtest_report.md` from those files and the machine line.
- `business-impact`: `artifacts/business_impact_onepager.md` (and the measured inputs with
  the figures in `artifacts/business_impact.json`) for one ArtPulseModel: p95 from
  Prometheus over the newest loadtest's window of that model (else the last `--since`
  seconds), accuracy and macro F1 of the stable version's run from MLflow, deploy lead time
  and rollback time from the resource's status history, next to the manual figures.

The builders are pure (`reports.py`); the readers are `artpulse_dev.sources`. The cluster
must be running (`make cluster-up`, or `--kubeconfig`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from artpulse_dev import gateway_load, sources  # noqa: E402
from artpulse_dev.localcluster import MLFLOW_HOST_URL, PROMETHEUS_HOST_URL  # noqa: E402
from report import machine_facts  # noqa: E402
from reports import (  # noqa: E402
    business_figures,
    business_impact_report,
    iso,
    loadtest_report,
    p95_query,
    raw_result,
)

ARTIFACTS = REPO / "artifacts"
RAW_DIR = ARTIFACTS / "loadtest"


def read_raw_results(raw_dir: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(raw_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            print(f"skipping {path}: not JSON ({exc})", file=sys.stderr)
            continue
        if isinstance(data, dict):
            results.append(data)
    return results


def cmd_loadtest(args: argparse.Namespace) -> int:
    kubectl = gateway_load.running_cluster(args.kubeconfig, args.kubectl)
    run = gateway_load.run_load(
        kubectl, namespace=args.namespace, name=args.name, duration_s=args.duration,
        connections=args.connections, threads=args.threads, tool=args.tool,
        set_up=not args.no_setup, mlflow_url=args.mlflow,
    )  # fmt: skip
    result = raw_result(run)
    target = result["target"]
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    stamp = (result["started"] or "unknown").replace(":", "")
    path = RAW_DIR / f"{stamp}-{target['namespace']}-{target['name']}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    latency = result.get("latencyMs") or {}
    print(
        f"{result.get('requests')} requests, {result.get('rps')} req/s, p95 {latency.get('p95')} ms, "
        f"{(result.get('errors') or {}).get('total')} errors, versions {result.get('versions')}"
    )
    print(f"raw result: {path.relative_to(REPO)}; `make loadtest-report` writes the report")
    return 0


def _tool_versions(results: list[dict[str, Any]]) -> dict[str, str]:
    return {str(r.get("tool")): str(r.get("toolVersion")) for r in results if r.get("tool")}


def cmd_loadtest_report(args: argparse.Namespace) -> int:
    results = read_raw_results(RAW_DIR)
    text = loadtest_report(results, machine_facts(_tool_versions(results)))
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "loadtest_report.md"
    out.write_text(text)
    print(f"{out.relative_to(REPO)}: {len(results)} run(s) from {RAW_DIR.relative_to(REPO)}/")
    return 0


def choose_model(
    kubectl: sources.Kubectl, namespace: str | None, name: str | None, runs: list[dict[str, Any]]
) -> tuple[str, str]:
    """The named model; else the newest loadtest's; else the first with a rollout history."""
    if namespace and name:
        return namespace, name
    for run in sorted(runs, key=lambda r: str(r.get("started") or ""), reverse=True):
        target = run.get("target") or {}
        if target.get("namespace") and target.get("name"):
            return str(target["namespace"]), str(target["name"])
    for resource in sources.artpulse_models(kubectl):
        if (resource.get("status") or {}).get("history"):
            meta = resource["metadata"]
            return str(meta["namespace"]), str(meta["name"])
    raise SystemExit("no ArtPulseModel to report on: pass --namespace and --name")


def collect_business(
    kubectl: sources.Kubectl,
    namespace: str,
    name: str,
    window: tuple[float, float, str],
    prometheus_url: str,
    mlflow_url: str,
) -> dict[str, Any]:
    """Everything the one-pager reads, as the sources answered it."""
    measured: dict[str, Any] = sources.resource(kubectl, namespace, name)
    resource = measured.get("resource") or {}
    model = str((resource.get("spec") or {}).get("model", {}).get("name") or "")
    stable = ((resource.get("status") or {}).get("stable") or {}).get("version")
    start, end, why = window
    measured["target"] = {"namespace": namespace, "name": name, "model": model or "?"}
    measured["window"] = {"start": iso(start), "end": iso(end), "why": why}
    query = p95_query(namespace, model, round(end - start))
    measured["prometheus"] = (
        sources.prometheus_instant(prometheus_url, query, end)
        if model
        else {"url": prometheus_url, "query": query, "time": end, "error": "model unknown"}
    )
    measured["mlflow"] = (
        sources.mlflow_version(mlflow_url, model, str(stable) if stable else None, "champion")
        if model
        else {"url": mlflow_url, "error": "the resource names no model"}
    )
    return measured


def loadtest_window(
    runs: list[dict[str, Any]], namespace: str, name: str, since_s: float, now: float
) -> tuple[float, float, str]:
    """The newest loadtest of this model's [start, end]; else the last `since_s` seconds."""
    mine = [
        r for r in runs
        if (r.get("target") or {}).get("namespace") == namespace
        and (r.get("target") or {}).get("name") == name
        and isinstance(r.get("startedTs"), int | float) and isinstance(r.get("finishedTs"), int | float)
    ]  # fmt: skip
    if mine:
        newest = max(mine, key=lambda r: float(r["startedTs"]))
        return float(newest["startedTs"]), float(newest["finishedTs"]), "the newest loadtest run"
    return now - since_s, now, f"the last {since_s:g} s: no loadtest run of this model"


def write_business(measured: Mapping[str, Any], artifacts: Path) -> Path:
    figures = business_figures(measured)
    text = business_impact_report(measured, figures, machine_facts({}))
    artifacts.mkdir(parents=True, exist_ok=True)
    out = artifacts / "business_impact_onepager.md"
    out.write_text(text)
    (artifacts / "business_impact.json").write_text(
        json.dumps(
            {"measured": measured, "figures": [f.__dict__ for f in figures]}, indent=1, default=str
        )
        + "\n"
    )
    return out


def cmd_business(args: argparse.Namespace) -> int:
    kubectl = gateway_load.running_cluster(args.kubeconfig, args.kubectl)
    runs = read_raw_results(RAW_DIR)
    namespace, name = choose_model(kubectl, args.namespace, args.name, runs)
    window = loadtest_window(runs, namespace, name, args.since, time.time())
    measured = collect_business(kubectl, namespace, name, window, args.prometheus, args.mlflow)
    out = write_business(measured, ARTIFACTS)
    for figure in business_figures(measured):
        print(f"  {figure.name}: {figure.shown()}")
    print(f"{out.relative_to(REPO)} ({namespace}/{name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("loadtest", help="load one model through the Gateway")
    business = sub.add_parser("business-impact", help="the one-pager from measured sources")
    sub.add_parser("loadtest-report", help="artifacts/loadtest_report.md from the raw results")
    for p in (load, business):
        p.add_argument("--namespace")
        p.add_argument("--name")
        p.add_argument(
            "--kubeconfig", type=Path, help="default: the cluster `make cluster-up` started"
        )
        p.add_argument("--kubectl", help="default: the one `make cluster-up` used, else kubectl")
        p.add_argument("--mlflow", default=MLFLOW_HOST_URL)
    load.add_argument("--duration", type=int, default=30, help="seconds")
    load.add_argument("--connections", type=int, default=16)
    load.add_argument("--threads", type=int, default=2, help="wrk threads")
    load.add_argument("--tool", choices=["wrk", "k6"], help="default: k6 when on PATH, else wrk")
    load.add_argument("--no-setup", action="store_true", help="fail rather than set up a model")
    business.add_argument("--prometheus", default=PROMETHEUS_HOST_URL)
    business.add_argument("--since", type=float, default=3600.0,
                          help="p95 window when no loadtest of the model exists (seconds)")  # fmt: skip
    args = parser.parse_args(argv)
    commands = {
        "loadtest": cmd_loadtest,
        "loadtest-report": cmd_loadtest_report,
        "business-impact": cmd_business,
    }
    try:
        return commands[args.command](args)
    except gateway_load.NoCluster as exc:
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

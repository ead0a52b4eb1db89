"""Thin readers of the measured sources behind the reports: Prometheus, MLflow, the resource.

Development tooling. Each function asks one source over its public interface and hands
back what it answered, unchanged (Prometheus's query JSON, MLflow's REST JSON, the
resource's `kubectl get -o json`), or the error as text: the pure builders in
`loadtest/reports.py` turn those into figures, "not measured" included. Used by
`loadtest/cluster_reports.py` (`make business-impact-report`) and `tests/e2e`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Kubectl:
    """kubectl against one cluster: its binary and kubeconfig."""

    kubeconfig: Path
    binary: str = "kubectl"

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def json(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.run(*args, "-o", "json").stdout))


def _error(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return (exc.stderr or str(exc)).strip()[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def prometheus_instant(url: str, query: str, at: float) -> dict[str, Any]:
    """`{"url", "query", "time", "response"}` of GET /api/v1/query, or with `"error"`."""
    measured: dict[str, Any] = {"url": url, "query": query, "time": at}
    try:
        response = httpx.get(
            f"{url}/api/v1/query", params={"query": query, "time": f"{at:.3f}"}, timeout=TIMEOUT_S
        )
        # A bad query is a 400 with a JSON body that says why: keep it for the report.
        measured["response"] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        measured["error"] = _error(exc)
    return measured


def _mlflow_get(url: str, path: str, params: Mapping[str, str]) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/2.0/mlflow/{path}", params=params, timeout=TIMEOUT_S)
    if response.status_code != 200:
        raise httpx.HTTPStatusError(
            f"{path} {dict(params)}: {response.status_code} {response.text[:300]}",
            request=response.request,
            response=response,
        )
    return dict(response.json())


def mlflow_version(url: str, model: str, version: str | None, alias: str) -> dict[str, Any]:
    """`{"url", "model", "version", "versionResponse", "runResponse"}` from MLflow's REST API:
    the version (`alias`'s when `version` is None), then the run that trained it."""
    measured: dict[str, Any] = {"url": url, "model": model, "version": version}
    try:
        if version is None:
            answer = _mlflow_get(url, "registered-models/alias", {"name": model, "alias": alias})
            measured["version"] = str((answer.get("model_version") or {}).get("version") or "")
        else:
            answer = _mlflow_get(url, "model-versions/get", {"name": model, "version": version})
        measured["versionResponse"] = answer
        run_id = (answer.get("model_version") or {}).get("run_id")
        if run_id:
            measured["runResponse"] = _mlflow_get(url, "runs/get", {"run_id": str(run_id)})
    except (httpx.HTTPError, ValueError) as exc:
        measured["error"] = _error(exc)
    return measured


def resource(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    """`{"resource"}`: the ArtPulseModel as `kubectl get -o json` shows it, or `{"resourceError"}`."""
    try:
        return {"resource": kubectl.json("get", "artpulsemodel", name, "-n", namespace)}
    except (subprocess.SubprocessError, ValueError, OSError) as exc:
        return {"resourceError": _error(exc)}


def artpulse_models(kubectl: Kubectl) -> Sequence[dict[str, Any]]:
    """Every ArtPulseModel in the cluster."""
    return list(kubectl.json("get", "artpulsemodels", "-A").get("items") or [])

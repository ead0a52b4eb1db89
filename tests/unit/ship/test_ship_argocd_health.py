"""The Argo CD health check for ArtPulseModel, run in a real Lua 5.1 interpreter (lupa).

Argo CD evaluates health scripts with gopher-lua (Lua 5.1), handing the live object as the global
`obj`; the cases in tests/data/ship/argocd_health_cases.yaml are statuses the operator writes.
The script's own Argo CD tests (health_test.yaml next to it) run in gopher-lua itself, in
`make argocd-lua-test` (hack/argocd-lua).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.status import Condition, Phase, RolloutStatus, VersionRef
from lupa import lua51

REPO = Path(__file__).resolve().parents[3]
ARGOCD = REPO / "manifests" / "argocd"
SCRIPT = ARGOCD / "resource_customizations" / "artpulse.io" / "ArtPulseModel" / "health.lua"
CASES = yaml.safe_load((REPO / "tests/data/ship/argocd_health_cases.yaml").read_text())["cases"]
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def to_lua(runtime: Any, value: Any) -> Any:
    """Nested dicts and lists as Lua tables (lists 1-based, as Argo CD's JSON decoding gives them)."""
    if isinstance(value, dict):
        # JSON nulls reach the script as nil: a key that is simply absent.
        return runtime.table_from(
            {k: to_lua(runtime, v) for k, v in value.items() if v is not None}
        )
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def assess(resource: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, resource)
    result = runtime.execute(SCRIPT.read_text())
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_health_of_sample_statuses(case: dict[str, Any]) -> None:
    health = assess(case["resource"])
    assert health["status"] == case["expect"]["status"], health
    assert case["expect"]["message"] in health["message"], health


def test_every_phase_of_the_operator_is_covered_by_a_case() -> None:
    phases = {str(p) for p in Phase}
    covered = {c["resource"].get("status", {}).get("phase") for c in CASES}
    assert phases <= covered, f"phases without a health case: {sorted(phases - covered)}"


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (Phase.STABLE, "Healthy"),
        (Phase.PENDING, "Progressing"),
        (Phase.SHADOWING, "Progressing"),
        (Phase.PROGRESSING, "Progressing"),
        (Phase.PROMOTING, "Progressing"),
        (Phase.PAUSED, "Suspended"),
        (Phase.ROLLED_BACK, "Degraded"),
        (Phase.DEGRADED, "Degraded"),
        (Phase.FAILED, "Degraded"),
    ],
)
def test_the_status_the_operator_writes(phase: Phase, expected: str) -> None:
    """The operator writes every status key, unset ones as null: the script must cope."""
    status = RolloutStatus(
        phase=phase,
        observed_generation=7,
        stable=VersionRef(version="3", alias="champion", uri="models:/clf/3"),
        conditions=(Condition(type="Ready", status="True"),),
    ).to_dict()
    health = assess({"metadata": {"name": "m", "generation": 7}, "status": status})
    assert health["status"] == expected, health
    assert "stable v3" in health["message"], health


def test_answers_are_argo_cd_health_statuses() -> None:
    assert {c["expect"]["status"] for c in CASES} <= ARGO_STATUSES


def test_the_configmap_key_is_the_one_argo_cd_reads() -> None:
    kustomization = yaml.safe_load((ARGOCD / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "argocd-cm"
    assert generator["namespace"] == "argocd"
    assert generator["options"]["disableNameSuffixHash"] is True
    assert generator["files"] == [
        "resource.customizations.health.artpulse.io_ArtPulseModel="
        "resource_customizations/artpulse.io/ArtPulseModel/health.lua",
        "resource.customizations.actions.artpulse.io_ArtPulseModel=artpulsemodel-actions.yaml",
    ]


def test_the_old_path_still_reads_the_health_check() -> None:
    """artpulsemodel-health.lua was the script's path before the resource_customizations layout."""
    old = ARGOCD / "artpulsemodel-health.lua"
    assert old.resolve() == SCRIPT.resolve()
    assert old.read_text() == SCRIPT.read_text()

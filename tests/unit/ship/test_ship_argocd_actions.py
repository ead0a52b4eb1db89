"""The Argo CD resource customizations of ArtPulseModel, checked as files (nothing runs Lua here).

manifests/argocd/resource_customizations/artpulse.io/ArtPulseModel/ is laid out as Argo CD's own
resource_customizations/: health.lua with health_test.yaml, actions/discovery.lua with one
actions/<name>/action.lua per action and actions/action_test.yaml. `make argocd-lua-test` (in
`make lint`) runs those tests in gopher-lua; this makes a missing script, test case or testdata
file, or a stale argocd-cm bundle, fail the Python tests as well.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.rollout import ACTION_ANNOTATION, ACTIONS

REPO = Path(__file__).resolve().parents[3]
ARGOCD = REPO / "manifests" / "argocd"
MODEL = ARGOCD / "resource_customizations" / "artpulse.io" / "ArtPulseModel"
ACTIONS_DIR = MODEL / "actions"
BUNDLE = ARGOCD / "artpulsemodel-actions.yaml"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def discovered() -> list[str]:
    """The action names discovery.lua assigns, in the order it lists them."""
    text = (ACTIONS_DIR / "discovery.lua").read_text()
    return re.findall(r'^actions\["([\w-]+)"\]\s*=', text, flags=re.MULTILINE)


def action_dirs() -> set[str]:
    return {p.parent.name for p in ACTIONS_DIR.glob("*/action.lua")}


def action_tests() -> dict[str, Any]:
    tests: dict[str, Any] = yaml.safe_load((ACTIONS_DIR / "action_test.yaml").read_text())
    return tests


def health_tests() -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load((MODEL / "health_test.yaml").read_text())["tests"]
    return tests


def load(path: Path) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    return obj


def test_the_layout_is_argo_cds() -> None:
    for rel in ("health.lua", "health_test.yaml", "actions/discovery.lua"):
        assert (MODEL / rel).is_file(), rel
    assert (ACTIONS_DIR / "action_test.yaml").is_file()
    assert list((MODEL / "testdata").glob("*.yaml"))
    assert list((ACTIONS_DIR / "testdata").glob("*.yaml"))


def test_discovery_lists_every_action_of_the_operator() -> None:
    names = discovered()
    assert len(names) == len(set(names)), names
    assert set(names) == set(ACTIONS)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_a_script_that_sets_the_annotation(action: str) -> None:
    script = ACTIONS_DIR / action / "action.lua"
    assert script.is_file(), f"{action} is in discovery.lua but has no {script}"
    text = script.read_text()
    assert "if obj.metadata.annotations == nil then" in text
    assert f'obj.metadata.annotations["{ACTION_ANNOTATION}"] = "{action}"' in text
    assert text.rstrip().endswith("return obj")


def test_no_action_script_is_left_out_of_discovery() -> None:
    assert action_dirs() == set(discovered())


def test_every_discovery_case_lists_every_action() -> None:
    cases = action_tests()["discoveryTests"]
    assert cases
    for case in cases:
        names = [a["name"] for a in case["result"]]
        assert sorted(names) == sorted(discovered()), case["inputPath"]
        assert all(isinstance(a["disabled"], bool) for a in case["result"]), case["inputPath"]


def test_every_action_has_a_test_case() -> None:
    tested = {t["action"] for t in action_tests()["actionTests"]}
    untested = set(discovered()) - tested
    assert not untested, f"actions without an actionTests case: {sorted(untested)}"


def test_every_action_is_enabled_in_some_case_and_disabled_in_another() -> None:
    seen: dict[str, set[bool]] = {name: set() for name in discovered()}
    for case in action_tests()["discoveryTests"]:
        for action in case["result"]:
            seen[action["name"]].add(action["disabled"])
    assert all(flags == {True, False} for flags in seen.values()), seen


def test_action_outputs_only_set_the_annotation() -> None:
    for case in action_tests()["actionTests"]:
        source = load(ACTIONS_DIR / case["inputPath"])
        expected = copy.deepcopy(source)
        expected["metadata"].setdefault("annotations", {})[ACTION_ANNOTATION] = case["action"]
        assert load(ACTIONS_DIR / case["expectedOutputPath"]) == expected, case


def test_every_testdata_file_is_used_and_is_an_artpulsemodel() -> None:
    """Argo CD picks the scripts by the input's apiVersion and kind."""
    used = {MODEL / t["inputPath"] for t in health_tests()}
    for case in action_tests()["discoveryTests"]:
        used.add(ACTIONS_DIR / case["inputPath"])
    for case in action_tests()["actionTests"]:
        used |= {ACTIONS_DIR / case["inputPath"], ACTIONS_DIR / case["expectedOutputPath"]}
    present = {*(MODEL / "testdata").glob("*.yaml"), *(ACTIONS_DIR / "testdata").glob("*.yaml")}
    assert used == present, {"missing": used - present, "unused": present - used}
    for path in present:
        obj = load(path)
        assert obj["apiVersion"].startswith("artpulse.io/"), path
        assert obj["kind"] == "ArtPulseModel", path


def test_health_cases_expect_argo_cd_statuses() -> None:
    assert {t["healthStatus"]["status"] for t in health_tests()} <= ARGO_STATUSES


def test_the_argocd_cm_bundle_holds_the_scripts() -> None:
    """The value of resource.customizations.actions.artpulse.io_ArtPulseModel (make argocd-lua-bundle)."""
    bundle = yaml.safe_load(BUNDLE.read_text())
    assert set(bundle) == {"discovery.lua", "definitions"}
    assert bundle["discovery.lua"] == (ACTIONS_DIR / "discovery.lua").read_text()
    scripts = {d["name"]: d["action.lua"] for d in bundle["definitions"]}
    on_disk = {name: (ACTIONS_DIR / name / "action.lua").read_text() for name in action_dirs()}
    assert scripts == on_disk, "stale: run `make argocd-lua-bundle`"


def test_lint_runs_the_lua_tests() -> None:
    makefile = (REPO / "Makefile").read_text()
    (lint,) = re.findall(r"^lint:([^#\n]*)", makefile, flags=re.MULTILINE)
    assert "argocd-lua-test" in lint.split()
    assert "$(ARGOCD_LUA_ROOT)" in makefile
    assert "ARGOCD_LUA_ROOT := manifests/argocd/resource_customizations" in makefile


def test_the_runner_pins_the_lua_argo_cd_embeds() -> None:
    """hack/argocd-lua runs the tests on Argo CD's gopher-lua and gopher-json (argo-cd v3.6)."""
    runner = REPO / "hack" / "argocd-lua"
    gomod = (runner / "go.mod").read_text()
    gosum = (runner / "go.sum").read_text()
    for module, version in (
        ("github.com/yuin/gopher-lua", "v1.1.2"),
        ("layeh.com/gopher-json", "v0.0.0-20190114024228-97fed8db8427"),
    ):
        assert re.search(rf"^\s*{re.escape(module)} {re.escape(version)}$", gomod, re.MULTILINE)
        assert f"{module} {version} h1:" in gosum
    assert "replace" not in gomod

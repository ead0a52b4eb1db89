"""The plugin's copies of the operator's contract, held against their sources, and the plugin's
promise to ship alone: standard library only, Python 3.9 syntax, its own version.

The plugin cannot import the operator (kubectl_artpulse.contract says why), so each constant is
compared with the one the operator, the CRD or the manifests use.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import kubectl_artpulse
import pytest
import yaml
from artpulse_operator.engine import desired, rollout
from kubectl_artpulse import contract

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "plugin"
SOURCES = [*sorted((PLUGIN / "kubectl_artpulse").glob("*.py")), PLUGIN / "build_dist.py"]


def test_the_actions_are_the_operators() -> None:
    assert set(contract.ACTIONS) == set(rollout.ACTIONS)
    assert contract.ACTIONS == rollout.ACTIONS  # and in the same order, for --help
    assert contract.ACTION_ANNOTATION == rollout.ACTION_ANNOTATION


def test_the_pod_labels_are_the_operators() -> None:
    for name in (
        "LABEL_NAME",
        "LABEL_INSTANCE",
        "LABEL_MANAGED_BY",
        "LABEL_TRACK",
        "LABEL_VERSION",
    ):
        assert getattr(contract, name) == getattr(desired, name), name
    assert (contract.APP_NAME, contract.MANAGED_BY) == (desired.APP_NAME, desired.MANAGED_BY)
    selector = dict(pair.split("=", 1) for pair in contract.pod_selector("m").split(","))
    assert selector == desired.owner_labels("m")


def test_the_resource_is_the_crds() -> None:
    crd = yaml.safe_load((REPO / "crds" / "artpulsemodel.yaml").read_text())
    assert crd["metadata"]["name"] == contract.CRD_NAME
    assert (
        crd["spec"]["group"],
        crd["spec"]["names"]["plural"],
        crd["spec"]["names"]["singular"],
        crd["spec"]["names"]["kind"],
    ) == (contract.GROUP, contract.PLURAL, contract.SINGULAR, contract.KIND)
    assert contract.VERSION in [v["name"] for v in crd["spec"]["versions"] if v["served"]]
    assert f"{contract.GROUP}/{contract.VERSION}" == desired.API_VERSION
    assert f"{contract.PLURAL}.{contract.VERSION}.{contract.GROUP}" == contract.RESOURCE


def test_version_finds_the_operator_deployment_as_shipped() -> None:
    documents = yaml.safe_load_all((REPO / "manifests" / "base" / "operator.yaml").read_text())
    deployment = next(d for d in documents if d and d.get("kind") == "Deployment")
    key, value = contract.OPERATOR_LABEL_SELECTOR.split("=")
    assert deployment["metadata"]["labels"][key] == value


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_standard_library_only(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "kubectl_artpulse", (path.name, name)


@pytest.mark.parametrize("path", SOURCES, ids=[p.name for p in SOURCES])
def test_python_3_9_syntax(path: Path) -> None:
    """macOS's /usr/bin/python3 is 3.9: the zipapp's shebang may well find it."""
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


def test_its_own_distribution() -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    assert project["version"] == kubectl_artpulse.__version__
    assert project["dependencies"] == []
    assert project["scripts"] == {
        "kubectl-artpulse": "kubectl_artpulse.cli:main",
        "kubectl_complete-artpulse": "kubectl_artpulse.completion:kubectl_complete",
    }
    operator = tomllib.loads((REPO / "operator" / "pyproject.toml").read_text())["project"]
    assert "scripts" not in operator, "the operator no longer installs the plugin"
    assert not (REPO / "operator" / "artpulse_operator" / "cli.py").exists()

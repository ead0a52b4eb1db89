"""Every example in manifests/examples is accepted by the real API server (server-side dry run)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[3] / "manifests" / "examples").glob("*.yaml")
    if p.name != "kustomization.yaml"
)


@pytest.fixture(scope="module")
def namespace(control_plane: Any) -> str:
    name = f"examples-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    return name


def test_every_strategy_and_provider_has_an_example() -> None:
    specs = [yaml.safe_load(p.read_text())["spec"] for p in EXAMPLES]
    kinds = {
        (
            s.get("strategy", {}).get("type", "Canary"),
            s.get("trafficRouting", {}).get("provider", "Replicas"),
        )
        for s in specs
    }
    assert {
        ("Single", "Replicas"),
        ("Canary", "Replicas"),
        ("Canary", "GatewayAPI"),
        ("Canary", "Nginx"),
    } <= kinds
    assert any(kind == "BlueGreen" for kind, _ in kinds)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(control_plane: Any, namespace: str, path: Path) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))
    assert "created (server dry run)" in result.stdout


def test_examples_apply_as_a_kustomization(control_plane: Any, namespace: str) -> None:
    examples = EXAMPLES[0].parent
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-k", str(examples)
    )
    assert result.stdout.count("created (server dry run)") == len(EXAMPLES)

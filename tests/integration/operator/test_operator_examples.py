"""Every example in manifests/examples is accepted by the real API server (server-side dry run),
the one-per-strategy files and the alias chain (``alias-chain/``, one file per namespace)."""

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


CHAIN = sorted((EXAMPLES[0].parent / "alias-chain").glob("*.yaml"))


@pytest.mark.parametrize("path", [*EXAMPLES, *CHAIN], ids=lambda p: p.name)
def test_example_is_accepted(control_plane: Any, namespace: str, path: Path) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert result.stdout.count("created (server dry run)") == len(documents), result.stdout


def test_the_alias_chain_links_staging_to_production() -> None:
    staging, production = (
        next(d for d in yaml.safe_load_all(p.read_text()) if d["kind"] == "ArtPulseModel")
        for p in CHAIN[::-1]  # production.yaml sorts first
    )
    assert staging["spec"]["model"]["stableAlias"] == production["spec"]["model"]["candidateAlias"]
    assert "confirmPromotion" in production["spec"]["analysis"]


def test_examples_apply_as_a_kustomization(control_plane: Any, namespace: str) -> None:
    examples = EXAMPLES[0].parent
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-k", str(examples)
    )
    assert result.stdout.count("created (server dry run)") == len(EXAMPLES)

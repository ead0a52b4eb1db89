"""Fixtures of the plugin's tests: a fake kubectl (plugin_fakes.FakeKubectl) and a model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kubectl_artpulse import commands
from plugin_fakes import SCRIPT, FakeKubectl, load


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    state = tmp_path / "kubectl-state"
    state.mkdir()
    (state / "rules.json").write_text("[]")
    binary = tmp_path / "kubectl"
    binary.write_text(SCRIPT.format(python=sys.executable, state=str(state)))
    binary.chmod(0o755)
    monkeypatch.setenv("ARTPULSE_KUBECTL", str(binary))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # A watch kubectl ends by itself is started again at once (no pause between restarts).
    monkeypatch.setattr(commands, "WATCH_RESTART_DELAY_S", 0.0)
    return FakeKubectl(state, binary)


@pytest.fixture
def model() -> dict[str, Any]:
    """tests/data/plugin/model.yaml: a canary at its first step, as the API server returns it."""
    return dict(load("model.yaml"))

"""``actions.available_actions`` against every discovery case of the Argo CD action tests, so
the dashboard's buttons, Argo CD's menu and the operator's ``handle_action`` agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubectl_artpulse.actions import available_actions, request_action
from kubectl_artpulse.contract import ACTIONS
from kubectl_artpulse.kubectl import Kubectl
from plugin_fakes import FakeKubectl

ACTIONS_DIR = (
    Path(__file__).resolve().parents[3]
    / "manifests/argocd/resource_customizations/artpulse.io/ArtPulseModel/actions"
)
CASES = yaml.safe_load((ACTIONS_DIR / "action_test.yaml").read_text())["discoveryTests"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_the_actions_enabled_are_argo_cds(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ACTIONS_DIR / case["inputPath"]).read_text())
    expected = {a["name"]: not a.get("disabled", False) for a in case["result"]}
    assert available_actions(obj) == expected
    assert list(available_actions(obj)) == list(ACTIONS)


def test_every_state_the_lua_knows_is_covered() -> None:
    """Each action is enabled in some case and disabled in another (the table means something)."""
    seen = {a: set() for a in ACTIONS}
    for case in CASES:
        obj = yaml.safe_load((ACTIONS_DIR / case["inputPath"]).read_text())
        for action, enabled in available_actions(obj).items():
            seen[action].add(enabled)
    assert all(values == {True, False} for values in seen.values()), seen


def test_request_action_is_a_merge_patch_of_the_annotation(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json("patch", obj={"metadata": {"name": "m", "namespace": "ml"}})
    request_action(Kubectl(str(fake_kubectl.binary)), "m", "ml", "pause")
    (call,) = fake_kubectl.calls
    assert call == [
        "patch", "artpulsemodels.v1alpha1.artpulse.io", "m", "--namespace", "ml",
        "--type=merge", "--patch", '{"metadata": {"annotations": {"artpulse.io/action": "pause"}}}',
        "-o", "json",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown action"):
        request_action(Kubectl(str(fake_kubectl.binary)), "m", "ml", "delete")

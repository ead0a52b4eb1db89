"""The manual actions: which ones the operator would take now, and how one is asked for.

``available_actions`` is the Python twin of Argo CD's action discovery
(``manifests/argocd/resource_customizations/artpulse.io/ArtPulseModel/actions/discovery.lua``),
which mirrors ``handle_action`` in ``operator/artpulse_operator/engine/rollout.py``;
``tests/unit/plugin/test_plugin_actions.py`` runs it on every case of that directory's
``action_test.yaml``, so the three cannot drift apart. Pure.

``request_action`` sets the ``artpulse.io/action`` annotation with a merge patch; the operator
acts on it once, records the outcome in ``status.lastAction`` and removes it. Who calls it:
``cli`` (``kubectl artpulse promote ...``) and the dashboard's buttons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubectl_artpulse.contract import ACTION_ANNOTATION, ACTIONS, RESOURCE
from kubectl_artpulse.kubectl import Kubectl

__all__ = ["available_actions", "request_action"]

_ROLLING = frozenset({"Shadowing", "Progressing", "Promoting", "Degraded"})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def available_actions(obj: Mapping[str, Any]) -> dict[str, bool]:
    """``{action: the operator would take it now}``, for every action, in ACTIONS' order.

    - promote: a rollout is under way (Shadowing, Progressing, Degraded) and not paused; while
      Promoting only a blue-green switch whose verifying check has not passed yet;
    - promote-full: the same (a blue-green switch the operator refuses while the new colour's
      pods are not ready, which the object does not show);
    - abort: the same rollouts (also while paused), or a blue-green promotion whose old colour
      is still warm (``status.previous`` and ``status.scaleDownAt`` set);
    - retry: no rollout under way and a candidate failed (``status.failedVersions``);
    - pause: not paused; resume: paused, and not by ``spec.paused``.
    """
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    phase = status.get("phase") or "Pending"
    paused = phase == "Paused"
    effective = status.get("pausedFrom") if paused and status.get("pausedFrom") else phase
    rolling = effective in _ROLLING
    blue_green = _mapping(spec.get("strategy")).get("type") == "BlueGreen"
    passed = _mapping(status.get("analysis")).get("passedChecksInStep") or 0
    promotion_under_way = effective == "Promoting" and not (blue_green and passed < 1)
    warm_old_colour = (
        blue_green
        and phase == "Stable"
        and status.get("previous") is not None
        and status.get("scaleDownAt") is not None
    )
    failed_candidate = bool(status.get("failedVersions"))
    enabled = {
        "promote": not (paused or not rolling or promotion_under_way),
        "promote-full": not (paused or not rolling or promotion_under_way),
        "abort": (rolling and not promotion_under_way) or warm_old_colour,
        "retry": not (rolling or not failed_candidate),
        "pause": not paused,
        "resume": paused and spec.get("paused") is not True,
    }
    return {action: bool(enabled[action]) for action in ACTIONS}


def request_action(
    kubectl: Kubectl, name: str, namespace: str | None, action: str, *, quiet: bool = False
) -> Any:
    """Ask the operator for ``action`` on one model; returns the patched object."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    patch = json.dumps({"metadata": {"annotations": {ACTION_ANNOTATION: action}}})
    scope = ["--namespace", namespace] if namespace else []
    return kubectl.json(
        "patch", RESOURCE, name, *scope, "--type=merge", "--patch", patch, quiet=quiet
    )

"""Is a rollout done, and did it succeed? The verdict ``kubectl artpulse status`` waits for. Pure.

``assess`` reads one ArtPulseModel (as the API server returns it) and says:

- ``Succeeded`` (exit 0): phase ``Stable``, the operator has seen the current spec and no
  action waits for it;
- ``Failed`` (exit 1): phase ``RolledBack`` (the candidate failed and was undone, or was
  aborted), ``Degraded`` (gates failed with automatic rollback off: a person must promote or
  abort) or ``Failed`` (the operator cannot act on the spec);
- ``InProgress``: anything else. In particular a status the operator wrote for an older spec
  (``status.observedGeneration`` < ``metadata.generation``) and a pending
  ``artpulse.io/action`` annotation are in progress whatever the phase says, so a
  ``kubectl apply`` or ``kubectl artpulse promote`` followed at once by ``status`` is not read
  as already done. ``Paused`` is in progress too: it waits for ``resume``.

Worked example: ``{"metadata": {"generation": 2}, "status": {"phase": "Stable",
"observedGeneration": 1}}`` is InProgress ("waiting for the operator to observe generation
2 (observed 1)"); once the operator wrote ``observedGeneration: 2`` with phase Stable it is
Succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubectl_artpulse.contract import ACTION_ANNOTATION, FAILED_PHASES, SUCCEEDED_PHASES

__all__ = ["Assessment", "Outcome", "assess", "exit_code"]


class Outcome(str, Enum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Assessment:
    outcome: Outcome
    phase: str
    detail: str

    @property
    def finished(self) -> bool:
        return self.outcome is not Outcome.IN_PROGRESS


def exit_code(outcome: Outcome) -> int:
    """0 when it succeeded, 1 when it failed, 2 when it has not finished (yet)."""
    return {Outcome.SUCCEEDED: 0, Outcome.FAILED: 1, Outcome.IN_PROGRESS: 2}[outcome]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _version(ref: Any) -> str | None:
    ref = _mapping(ref)
    if not ref.get("version"):
        return None
    alias = f" ({ref['alias']})" if ref.get("alias") else ""
    return f"{ref['version']}{alias}"


def assess(obj: Mapping[str, Any]) -> Assessment:
    meta = _mapping(obj.get("metadata"))
    status = _mapping(obj.get("status"))
    phase = str(status.get("phase") or "Pending")
    message = str(status.get("message") or "")

    generation = _int(meta.get("generation"))
    observed = _int(status.get("observedGeneration"))
    if generation is not None and (observed is None or observed < generation):
        seen = "none" if observed is None else str(observed)
        return Assessment(
            Outcome.IN_PROGRESS,
            phase,
            f"waiting for the operator to observe generation {generation} (observed {seen})",
        )
    pending = _mapping(meta.get("annotations")).get(ACTION_ANNOTATION)
    if pending:
        return Assessment(
            Outcome.IN_PROGRESS, phase, f"waiting for the operator to act on {pending!r}"
        )

    if phase in SUCCEEDED_PHASES:
        return Assessment(
            Outcome.SUCCEEDED, phase, f"serving version {_version(status.get('stable')) or '-'}"
        )
    if phase in FAILED_PHASES:
        return Assessment(Outcome.FAILED, phase, _failure_detail(phase, status, message))
    return Assessment(Outcome.IN_PROGRESS, phase, _progress_detail(obj, status, message))


def _failure_detail(phase: str, status: Mapping[str, Any], message: str) -> str:
    if phase == "RolledBack":
        last = _mapping(status.get("lastRollout"))
        version = last.get("version") or "-"
        verb = "aborted" if last.get("result") == "Aborted" else "rolled back"
        reason = last.get("reason") or message
        stable = _version(status.get("stable"))
        detail = f"version {version} {verb}" + (f": {reason}" if reason else "")
        return detail + (f"; serving {stable}" if stable else "")
    if phase == "Degraded":
        return (message or "the gates failed") + " (automatic rollback is off: promote or abort)"
    return message or "the operator cannot act on this resource"


def _progress_detail(obj: Mapping[str, Any], status: Mapping[str, Any], message: str) -> str:
    parts = []
    if status.get("phase") == "Paused":
        source = status.get("pausedFrom")
        parts.append(f"paused{f' in {source}' if source else ''}; resume to continue")
    candidate = _version(status.get("candidate"))
    if candidate:
        parts.append(f"candidate {candidate}")
    steps = _mapping(_mapping(_mapping(obj.get("spec")).get("strategy")).get("canary")).get("steps")
    step = _int(status.get("currentStep"))
    if step is not None and isinstance(steps, list) and steps:
        parts.append(f"step {step + 1}/{len(steps)}")
    if candidate or status.get("canaryWeight"):
        parts.append(f"weight {status.get('canaryWeight') or 0}%")
    stable = _version(status.get("stable"))
    if stable:
        parts.append(f"stable {stable}")
    if message:
        parts.append(message)
    return ", ".join(parts) or "waiting for the operator"

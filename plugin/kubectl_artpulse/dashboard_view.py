"""What the dashboard's JSON API says of ArtPulseModels. Pure: plain dicts in, plain dicts out.

``model_summary`` is one row of the list (phase, tracks, weights, the last check's gate values,
READY); ``model_detail`` adds what the detail view shows (the check's evidence, the judge, the
custom metrics, history, conditions, which actions the operator would take, the marks of the
timeline). ``matrix_points`` reads a Prometheus ``query_range`` answer. Who calls it:
``kubectl_artpulse.dashboard``; tested in ``tests/unit/plugin/test_plugin_dashboard.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_artpulse.actions import available_actions
from kubectl_artpulse.contract import ACTION_ANNOTATION

__all__ = [
    "DEFAULT_WINDOW_S",
    "duration_seconds",
    "matrix_points",
    "model_detail",
    "model_summary",
    "timeline_marks",
]

DEFAULT_WINDOW_S = 60.0  # the CRD's default spec.analysis.window
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def duration_seconds(text: Any, default: float = DEFAULT_WINDOW_S) -> float:
    """A CRD duration (``1m``, ``90s``, ``1h30m``) in seconds; ``default`` when unreadable."""
    if not isinstance(text, str):
        return default
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return default
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    return total if position and position == len(text) and total > 0 else default


def _version(ref: Any) -> str | None:
    version = _mapping(ref).get("version")
    return str(version) if version else None


def _ready(status: Mapping[str, Any]) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        condition = _mapping(condition)
        if condition.get("type") == "Ready":
            return {
                "ready": condition.get("status") == "True",
                "reason": str(condition.get("reason") or ""),
                "message": str(condition.get("message") or ""),
            }
    return {"ready": False, "reason": "Unknown", "message": "no Ready condition yet"}


def _step(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str | None:
    steps = _mapping(_mapping(spec.get("strategy")).get("canary")).get("steps")
    current = status.get("currentStep")
    if not isinstance(current, int) or isinstance(current, bool):
        return None
    return f"{current + 1}/{len(steps) if isinstance(steps, list) else '?'}"


def model_summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One model as the list shows it."""
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    analysis = _mapping(status.get("analysis"))
    gates = _mapping(_mapping(spec.get("analysis")).get("gates"))
    tracks = [
        {
            "name": str(name),
            "version": _version(_mapping(track).get("version")),
            "weight": _number(_mapping(track).get("weight")) or 0,
            "scaled": bool(_mapping(track).get("scaled")),
        }
        for name, track in sorted(_mapping(status.get("tracks")).items())
    ]
    return {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "labels": {str(k): str(v) for k, v in _mapping(meta.get("labels")).items()},
        "model": str(_mapping(spec.get("model")).get("name") or ""),
        "strategy": str(_mapping(spec.get("strategy")).get("type") or "Canary"),
        "phase": str(status.get("phase") or "Pending"),
        "pausedFrom": status.get("pausedFrom"),
        "stable": _version(status.get("stable")),
        "candidate": _version(status.get("candidate")),
        "canaryWeight": _number(status.get("canaryWeight")) or 0,
        "step": _step(spec, status),
        "tracks": tracks,
        "check": {
            "verdict": analysis.get("verdict"),
            "time": analysis.get("lastCheckTime"),
            "track": analysis.get("track"),
            "version": analysis.get("version"),
            "p95LatencyMs": _number(analysis.get("p95LatencyMs")),
            "errorRate": _number(analysis.get("errorRate")),
            "driftScore": _number(analysis.get("driftScore")),
            "requests": _number(analysis.get("requests")),
        },
        "thresholds": {
            "p95LatencyMs": _number(gates.get("p95LatencyMs")),
            "maxErrorRate": _number(gates.get("maxErrorRate")),
            "maxDriftScore": _number(gates.get("maxDriftScore")),
        },
        "ready": _ready(status),
        "pendingAction": _mapping(meta.get("annotations")).get(ACTION_ANNOTATION),
        "message": str(status.get("message") or ""),
        "created": meta.get("creationTimestamp"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
    }


def timeline_marks(status: Mapping[str, Any]) -> list[dict[str, str]]:
    """The moments the plot marks with a line: rollouts begun and ended, steps, actions."""
    marks: list[dict[str, str]] = []

    def mark(when: Any, text: str) -> None:
        if isinstance(when, str) and when:
            marks.append({"time": when, "text": text})

    for record in status.get("history") or []:
        record = _mapping(record)
        version = record.get("version") or "?"
        mark(record.get("startedAt"), f"v{version} started")
        mark(record.get("finishedAt"), f"v{version} {record.get('result') or 'finished'}")
    last = _mapping(status.get("lastRollout"))
    if last.get("finishedAt") and not any(m["time"] == last.get("finishedAt") for m in marks):
        mark(last.get("finishedAt"), f"v{last.get('version') or '?'} {last.get('result') or ''}")
    candidate = _version(status.get("candidate"))
    if candidate:
        mark(status.get("rolloutStartedAt"), f"v{candidate} started")
        step = status.get("currentStep")
        if isinstance(step, int) and not isinstance(step, bool):
            mark(status.get("stepStartedAt"), f"step {step + 1}")
    action = _mapping(status.get("lastAction"))
    if action.get("action"):
        mark(action.get("time"), f"{action.get('action')}")
    unique = {(m["time"], m["text"]): m for m in marks}
    return sorted(unique.values(), key=lambda m: m["time"])


def model_detail(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One model as its detail view shows it (the Prometheus part is added by the caller)."""
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    analysis = dict(_mapping(status.get("analysis")))
    return {
        **model_summary(obj),
        "analysis": analysis,
        "window": _mapping(spec.get("analysis")).get("window") or "1m",
        "lastRollout": dict(_mapping(status.get("lastRollout"))) or None,
        "history": [dict(_mapping(h)) for h in reversed(status.get("history") or [])],
        "conditions": [dict(_mapping(c)) for c in status.get("conditions") or []],
        "lastAction": dict(_mapping(status.get("lastAction"))) or None,
        "failedVersions": [str(v) for v in status.get("failedVersions") or []],
        "actions": available_actions(obj),
        "marks": timeline_marks(status),
        "pausedBySpec": spec.get("paused") is True,
    }


def matrix_points(body: Any) -> list[list[float]]:
    """``[[unix time, value], ...]`` of the first series of a ``query_range`` answer; NaN and
    infinities dropped. Raises ValueError for an answer that is not a matrix."""
    data = _mapping(_mapping(body).get("data"))
    if _mapping(body).get("status") != "success" or data.get("resultType") != "matrix":
        raise ValueError(f"not a range query answer: {str(body)[:120]}")
    result: Sequence[Any] = data.get("result") or []
    if not result:
        return []
    points: list[list[float]] = []
    for pair in _mapping(result[0]).get("values") or []:
        try:
            when, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if not (math.isnan(value) or math.isinf(value)):
            points.append([when, value])
    return points

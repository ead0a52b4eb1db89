"""The plugin's views of ArtPulseModels, their pods and their history, as text. Pure.

Called by ``kubectl_artpulse.cli`` with what kubectl returned (``kubectl get -o json``); no
I/O here, so every view is tested on plain dicts (``tests/unit/plugin/test_plugin_render.py``).

- ``format_status``: the detail view of one model (``get``, and the head of ``watch``); with
  ``pods`` its tracks are a tree of the track's pods.
- ``format_line``: one line per change (``watch``).
- ``format_assessment``: one line of the verdict ``status`` waits for (``outcome.assess``).
- ``format_list``, ``format_history``: tables like ``kubectl get``.

Colour comes from a :class:`Palette`; the default one is plain text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubectl_artpulse.contract import (
    ACTION_ANNOTATION,
    FAILED_PHASES,
    LABEL_TRACK,
    LABEL_VERSION,
    SUCCEEDED_PHASES,
)
from kubectl_artpulse.outcome import Assessment

__all__ = [
    "PLAIN",
    "Palette",
    "PodInfo",
    "format_assessment",
    "format_history",
    "format_line",
    "format_list",
    "format_status",
    "format_table",
    "group_pods",
    "pod_info",
    "short_age",
]

_RESET = "\033[0m"
_GREEN, _RED, _YELLOW, _CYAN, _BOLD = "\033[32m", "\033[31m", "\033[33m", "\033[36m", "\033[1m"


@dataclass(frozen=True)
class Palette:
    """How text is styled: ANSI colours (only for a terminal) and the tree's glyphs."""

    colour: bool = False
    unicode: bool = True

    def paint(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.colour and text else text

    def phase(self, phase: str, text: str | None = None) -> str:
        """``text`` (default: the phase) in the colour of ``phase``."""
        shown = phase if text is None else text
        if phase in SUCCEEDED_PHASES:
            return self.paint(shown, _GREEN)
        if phase in FAILED_PHASES:
            return self.paint(shown, _RED)
        if phase == "Paused":
            return self.paint(shown, _CYAN)
        return self.paint(shown, _YELLOW)

    def bold(self, text: str) -> str:
        return self.paint(text, _BOLD)

    def good(self, text: str, ok: bool) -> str:
        return self.paint(text, _GREEN if ok else _RED)

    @property
    def branches(self) -> tuple[str, str, str, str]:
        """(middle child, last child, continuation, blank) of a tree."""
        if self.unicode:
            return ("├─ ", "└─ ", "│  ", "   ")
        return ("|- ", "`- ", "|  ", "   ")


PLAIN = Palette()


# --- small values ------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _v(ref: Any) -> str:
    if not isinstance(ref, Mapping) or not ref.get("version"):
        return "-"
    alias = f" ({ref['alias']})" if ref.get("alias") else ""
    return f"{ref['version']}{alias}"


def _num(value: Any, fmt: str = "{:.4g}") -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(float(value))
    except (TypeError, ValueError):
        return str(value)


def _parse_time(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _age(ts: Any, now: datetime) -> str:
    """``"42s ago"``, ``"5m ago"``, ``"3h ago"``; the value itself if it is no past time."""
    then = _parse_time(ts)
    if then is None:
        return "-" if not ts else str(ts)
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return str(ts)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def short_age(ts: Any, now: datetime) -> str:
    """The AGE column of ``kubectl get``: ``45s``, ``12m``, ``5h``, ``3d``."""
    then = _parse_time(ts)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _step(obj: Mapping[str, Any]) -> str:
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    steps = _mapping(_mapping(spec.get("strategy")).get("canary")).get("steps")
    try:
        current = int(status["currentStep"])
    except (KeyError, TypeError, ValueError):
        return "-"
    total = len(steps) if isinstance(steps, list) else "?"
    return f"{current + 1}/{total}"


# --- pods --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    """One pod of a track, as ``kubectl get pods`` would show it."""

    name: str
    track: str
    version: str
    status: str  # Running, Pending, Terminating, or a container's reason (CrashLoopBackOff)
    ready: int
    containers: int
    restarts: int
    created: str | None

    @property
    def is_ready(self) -> bool:
        return self.containers > 0 and self.ready == self.containers


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    meta = _mapping(pod.get("metadata"))
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    labels = _mapping(meta.get("labels"))
    statuses = [_mapping(c) for c in status.get("containerStatuses") or []]
    state = str(status.get("phase") or "Unknown")
    for container in statuses:
        reason = _mapping(_mapping(container.get("state")).get("waiting")).get(
            "reason"
        ) or _mapping(_mapping(container.get("state")).get("terminated")).get("reason")
        if reason:
            state = str(reason)
            break
    if meta.get("deletionTimestamp"):
        state = "Terminating"
    return PodInfo(
        name=str(meta.get("name") or "?"),
        track=str(labels.get(LABEL_TRACK) or "?"),
        version=str(labels.get(LABEL_VERSION) or "-"),
        status=state,
        ready=sum(1 for c in statuses if c.get("ready")),
        containers=len(spec.get("containers") or []) or len(statuses),
        restarts=sum(int(c.get("restartCount") or 0) for c in statuses),
        created=meta.get("creationTimestamp"),
    )


def group_pods(pods: Sequence[Mapping[str, Any]]) -> dict[str, list[PodInfo]]:
    """Pods (the ``items`` of ``kubectl get pods -o json``) by track, each track's by name."""
    grouped: dict[str, list[PodInfo]] = {}
    for pod in pods:
        info = pod_info(pod)
        grouped.setdefault(info.track, []).append(info)
    return {track: sorted(infos, key=lambda p: p.name) for track, infos in grouped.items()}


def _track_line(name: str, ts: Mapping[str, Any]) -> str:
    state = "up" if ts.get("scaled") else "scaled to zero"
    shadow = f", shadow {ts['shadowUri']}" if ts.get("shadowUri") else ""
    return (
        f"{name:<8} version {_v(ts.get('version'))}, weight {ts.get('weight', 0)}%, {state}{shadow}"
    )


def _tracks_tree(
    tracks: Mapping[str, Any],
    pods: Mapping[str, Sequence[PodInfo]],
    now: datetime,
    palette: Palette,
) -> list[str]:
    """Tracks, each with its pods beneath it; pods of a track the status does not name too."""
    middle, last, through, blank = palette.branches
    names = sorted(set(tracks) | set(pods))
    every_pod = [p for track in names for p in pods.get(track, ())]
    name_width = max((len(p.name) for p in every_pod), default=0)
    status_width = max((len(p.status) for p in every_pod), default=0)
    lines = ["Tracks:"]
    for i, name in enumerate(names):
        is_last_track = i == len(names) - 1
        head = last if is_last_track else middle
        if name in tracks:
            lines.append(f"{head}{_track_line(name, _mapping(tracks[name]))}")
        else:
            lines.append(f"{head}{name:<8} (not in the status)")
        indent = blank if is_last_track else through
        track_pods = list(pods.get(name, ()))
        if not track_pods:
            lines.append(f"{indent}{last}(no pods)")
        for j, pod in enumerate(track_pods):
            branch = last if j == len(track_pods) - 1 else middle
            ready = palette.good(f"{pod.ready}/{pod.containers}", pod.is_ready)
            status = palette.good(pod.status.ljust(status_width), pod.status == "Running")
            lines.append(
                f"{indent}{branch}{pod.name.ljust(name_width)}  {status}  ready {ready}  "
                f"restarts {pod.restarts}  version {pod.version}  age {short_age(pod.created, now)}"
            )
    return lines


# --- the detail view ---------------------------------------------------------------------------


def format_status(
    obj: Mapping[str, Any],
    now: datetime | None = None,
    pods: Mapping[str, Sequence[PodInfo]] | None = None,
    palette: Palette = PLAIN,
) -> str:
    """The human view of one ArtPulseModel (as returned by the API server).

    With ``pods`` (``group_pods`` of the model's pods) the tracks are shown as a tree of their
    pods, with readiness and restarts (``kubectl artpulse get``).
    """
    now = now or datetime.now(timezone.utc)
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    strategy = _mapping(spec.get("strategy")).get("type", "Canary")
    phase = str(status.get("phase", "Pending"))
    lines = [
        f"Name:       {meta.get('namespace', '?')}/{meta.get('name', '?')}",
        f"Model:      {_mapping(spec.get('model')).get('name', '-')}",
        f"Strategy:   {strategy}" + (" (paused by spec)" if spec.get("paused") else ""),
        f"Phase:      {palette.phase(phase)}"
        + (f" (from {status['pausedFrom']})" if status.get("pausedFrom") else ""),
        f"Stable:     {_v(status.get('stable'))}",
        f"Candidate:  {_v(status.get('candidate'))}",
        f"Weight:     {status.get('canaryWeight', 0)}%",
    ]
    if strategy == "Canary" and status.get("currentStep") is not None:
        lines.append(f"Step:       {_step(obj)} since {_age(status.get('stepStartedAt'), now)}")
    if status.get("activeColor"):
        lines.append(f"Active:     {status['activeColor']}")
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    tracks = _mapping(status.get("tracks"))
    if pods is not None:
        lines.extend(_tracks_tree(tracks, pods, now, palette))
    elif tracks:
        lines.append("Tracks:")
        for name, ts in sorted(tracks.items()):
            lines.append(f"  {_track_line(name, _mapping(ts))}")
    a = _mapping(status.get("analysis"))
    if a.get("lastCheckTime"):
        lines.append(
            f"Last check: {a.get('verdict', '-')} {_age(a.get('lastCheckTime'), now)} on "
            f"{a.get('track', '-')}/{a.get('version', '-')}: p95 {_num(a.get('p95LatencyMs'))} ms, "
            f"errors {_num(a.get('errorRate'))}, drift {_num(a.get('driftScore'))}, "
            f"requests {_num(a.get('requests'), '{:.0f}')}"
            + (
                f", p95/stable {_num(a.get('p95RatioToStable'))}"
                if a.get("p95RatioToStable") is not None
                else ""
            )
            + (
                f", agreement {_num(a.get('shadowAgreement'))}"
                if a.get("shadowAgreement") is not None
                else ""
            )
        )
        lines.append(
            f"            failed {a.get('failedChecks', 0)}, inconclusive "
            f"{a.get('inconclusiveChecks', 0)}, errors in a row {a.get('errorStreak', 0)}"
            + (f"; failed gates: {', '.join(a['failedGates'])}" if a.get("failedGates") else "")
        )
        if a.get("message"):
            lines.append(f"            {a['message']}")
        lines.extend(_judge_lines(a.get("judge")))
        for name, m in sorted(_mapping(a.get("metrics")).items()):
            m = _mapping(m)
            dry = " (dry run)" if m.get("dryRun") else ""
            lines.append(
                f"  metric {name}{dry}: {m.get('verdict', '-')}, value {_num(m.get('value'))}"
                + (f": {m['message']}" if m.get("message") else "")
            )
    if status.get("awaitingConfirmationSince"):
        lines.append(
            "Promotion waits for the confirmPromotion webhook since "
            f"{_age(status['awaitingConfirmationSince'], now)}"
        )
    action = _mapping(status.get("lastAction"))
    if action.get("action"):
        lines.append(
            f"Last action: {action['action']} {_age(action.get('time'), now)}: "
            f"{action.get('outcome', '')}"
        )
    pending = _mapping(meta.get("annotations")).get(ACTION_ANNOTATION)
    if pending:
        lines.append(f"Pending action: {pending} (not yet picked up by the operator)")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for c in conditions:
            c = _mapping(c)
            lines.append(
                f"  {c.get('type', '?'):<18} {c.get('status', '?'):<6} {c.get('reason', '')}"
                + (f": {c['message']}" if c.get("message") else "")
            )
    history = status.get("history") or []
    if history:
        lines.append("History:")
        lines.append(f"  {'VERSION':<8} {'RESULT':<11} {'FINISHED':<22} REASON")
        for h in reversed(history):
            h = _mapping(h)
            lines.append(
                f"  {h.get('version', '?'):<8} {h.get('result') or '-':<11} "
                f"{h.get('finishedAt') or '-':<22} {h.get('reason') or ''}"
            )
    return "\n".join(lines)


def _judge_lines(judge: Any) -> list[str]:
    """The judge's evidence: per test the e-value against its threshold (1/alpha_i)."""
    if not isinstance(judge, Mapping):
        return []
    lines = [f"  judge: {judge.get('verdict', '-')}: {judge.get('message', '')}"]
    for test, e in sorted(_mapping(judge.get("tests")).items()):
        e = _mapping(e)
        samples = e.get("samples") or [None, None]
        mark = "REGRESSION" if e.get("regression") else "rejected" if e.get("rejected") else "ok"
        lines.append(
            f"    {test:<8} e {_num(e.get('eValue'))} / {_num(e.get('threshold'))} {mark}; "
            f"candidate {_num(e.get('candidate'))} vs stable {_num(e.get('stable'))} "
            f"({_num(samples[0], '{:.0f}')} vs {_num(samples[-1], '{:.0f}')} samples)"
        )
    return lines


# --- one line per change, one line per verdict -----------------------------------------------


def format_line(
    obj: Mapping[str, Any], now: datetime | None = None, palette: Palette = PLAIN
) -> str:
    """One line per change for ``watch``; everything after the time stamp is the change."""
    status = _mapping(obj.get("status"))
    a = _mapping(status.get("analysis"))
    stamp = (now or datetime.now(timezone.utc)).strftime("%H:%M:%S")
    phase = str(status.get("phase", "Pending"))
    return (
        f"{stamp} phase={palette.phase(phase)} stable={_v(status.get('stable'))} "
        f"candidate={_v(status.get('candidate'))} weight={status.get('canaryWeight', 0)}% "
        f"step={status.get('currentStep') if status.get('currentStep') is not None else '-'} "
        f"check={a.get('verdict') or '-'} p95={_num(a.get('p95LatencyMs'))}ms "
        f"errors={_num(a.get('errorRate'))} requests={_num(a.get('requests'), '{:.0f}')}"
    )


def format_assessment(assessment: Assessment, palette: Palette = PLAIN) -> str:
    """``Progressing - candidate 4, step 1/3, weight 10%, stable 3`` (``status``)."""
    return f"{palette.phase(assessment.phase)} - {assessment.detail}"


# --- tables ------------------------------------------------------------------------------------


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    paint: Callable[[int, str, str], str] | None = None,
) -> str:
    """Columns padded like ``kubectl get``; ``paint(column, value, padded)`` may colour a cell
    after padding, so escape codes never upset the alignment."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row_index, row in enumerate([header, *rows]):
        cells = []
        for i, value in enumerate(row):
            padded = str(value) if i == len(row) - 1 else str(value).ljust(widths[i])
            cells.append(padded if paint is None or row_index == 0 else paint(i, value, padded))
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def format_list(
    items: Sequence[Mapping[str, Any]],
    now: datetime | None = None,
    all_namespaces: bool = False,
    palette: Palette = PLAIN,
) -> str:
    """``kubectl get apm`` with the rollout's step: one row per model."""
    now = now or datetime.now(timezone.utc)
    header = ["NAME", "MODEL", "STRATEGY", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "PHASE", "AGE"]
    if all_namespaces:
        header = ["NAMESPACE", *header]
    rows = []
    for obj in items:
        meta = _mapping(obj.get("metadata"))
        spec = _mapping(obj.get("spec"))
        status = _mapping(obj.get("status"))
        row = [
            str(meta.get("name", "?")),
            str(_mapping(spec.get("model")).get("name", "-")),
            str(_mapping(spec.get("strategy")).get("type", "Canary")),
            str(_mapping(status.get("stable")).get("version") or "-"),
            str(_mapping(status.get("candidate")).get("version") or "-"),
            f"{status.get('canaryWeight', 0)}%",
            _step(obj),
            str(status.get("phase") or "Pending"),
            short_age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row = [str(meta.get("namespace", "?")), *row]
        rows.append(row)
    phase_column = header.index("PHASE")

    def paint(column: int, value: str, padded: str) -> str:
        return palette.phase(value, padded) if column == phase_column else padded

    return format_table(header, rows, paint)


def format_history(obj: Mapping[str, Any], palette: Palette = PLAIN) -> str:
    """``status.history``, newest first."""
    history = [_mapping(h) for h in _mapping(obj.get("status")).get("history") or []]
    rows = [
        [
            str(h.get("version", "?")),
            str(h.get("result") or "-"),
            str(h.get("strategy") or "-"),
            str(h.get("startedAt") or "-"),
            str(h.get("finishedAt") or "-"),
            str(h.get("reason") or ""),
        ]
        for h in reversed(history)
    ]

    def paint(column: int, value: str, padded: str) -> str:
        if column != 1:
            return padded
        return palette.good(padded, value == "Promoted") if value != "-" else padded

    header = ["VERSION", "RESULT", "STRATEGY", "STARTED", "FINISHED", "REASON"]
    return format_table(header, rows, paint)

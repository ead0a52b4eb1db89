"""``kubectl-artpulse``: the kubectl plugin to watch and steer ArtPulseModel rollouts.

    kubectl artpulse status NAME [-n NS] [--watch]     phase, versions, weight, last check, history
    kubectl artpulse watch NAME [-n NS]                 the same, live (status --watch)
    kubectl artpulse promote|abort|retry|pause|resume NAME [-n NS]

The actions set the ``artpulse.io/action`` annotation; the operator acts on it once, records
it in ``status.lastAction`` and removes it. Nothing in the spec changes, so GitOps tools see
no drift. Uses the current kubeconfig (``KUBECONFIG``, ``--kubeconfig``, ``--context``) like
kubectl. Installed as the console script ``kubectl-artpulse``, which kubectl finds on PATH.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from artpulse_operator.engine.rollout import ACTION_ANNOTATION, ACTIONS

GROUP = "artpulse.io"
VERSION = "v1alpha1"
PLURAL = "artpulsemodels"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


# --- rendering (pure) ------------------------------------------------------------------------


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


def _age(ts: Any, now: datetime) -> str:
    if not isinstance(ts, str) or not ts:
        return "-"
    try:
        then = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return ts
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def format_status(obj: Mapping[str, Any], now: datetime | None = None) -> str:
    """The human view of one ArtPulseModel (as returned by the API server)."""
    now = now or datetime.now(UTC)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = (spec.get("strategy") or {}).get("type", "Canary")
    lines = [
        f"Name:       {meta.get('namespace', '?')}/{meta.get('name', '?')}",
        f"Model:      {(spec.get('model') or {}).get('name', '-')}",
        f"Strategy:   {strategy}" + (" (paused by spec)" if spec.get("paused") else ""),
        f"Phase:      {status.get('phase', 'Pending')}"
        + (f" (from {status['pausedFrom']})" if status.get("pausedFrom") else ""),
        f"Stable:     {_v(status.get('stable'))}",
        f"Candidate:  {_v(status.get('candidate'))}",
        f"Weight:     {status.get('canaryWeight', 0)}%",
    ]
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps")
    if strategy == "Canary" and status.get("currentStep") is not None:
        total = len(steps) if isinstance(steps, list) else "?"
        lines.append(
            f"Step:       {int(status['currentStep']) + 1}/{total} since "
            f"{_age(status.get('stepStartedAt'), now)}"
        )
    if status.get("activeColor"):
        lines.append(f"Active:     {status['activeColor']}")
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    tracks = status.get("tracks") or {}
    if tracks:
        lines.append("Tracks:")
        for name, ts in sorted(tracks.items()):
            ts = ts or {}
            state = "up" if ts.get("scaled") else "scaled to zero"
            shadow = f", shadow {ts['shadowUri']}" if ts.get("shadowUri") else ""
            lines.append(
                f"  {name:<8} version {_v(ts.get('version'))}, weight {ts.get('weight', 0)}%, "
                f"{state}{shadow}"
            )
    a = status.get("analysis") or {}
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
        for name, m in sorted((a.get("metrics") or {}).items()):
            m = m or {}
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
    action = status.get("lastAction") or {}
    if action.get("action"):
        lines.append(
            f"Last action: {action['action']} {_age(action.get('time'), now)}: "
            f"{action.get('outcome', '')}"
        )
    pending = (meta.get("annotations") or {}).get(ACTION_ANNOTATION)
    if pending:
        lines.append(f"Pending action: {pending} (not yet picked up by the operator)")
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for c in conditions:
            lines.append(
                f"  {c.get('type', '?'):<18} {c.get('status', '?'):<6} {c.get('reason', '')}"
                + (f": {c['message']}" if c.get("message") else "")
            )
    history = status.get("history") or []
    if history:
        lines.append("History:")
        lines.append(f"  {'VERSION':<8} {'RESULT':<11} {'FINISHED':<22} REASON")
        for h in reversed(history):
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
    for test, e in sorted((judge.get("tests") or {}).items()):
        e = e or {}
        samples = e.get("samples") or [None, None]
        mark = "REGRESSION" if e.get("regression") else "rejected" if e.get("rejected") else "ok"
        lines.append(
            f"    {test:<8} e {_num(e.get('eValue'))} / {_num(e.get('threshold'))} {mark}; "
            f"candidate {_num(e.get('candidate'))} vs stable {_num(e.get('stable'))} "
            f"({_num(samples[0], '{:.0f}')} vs {_num(samples[-1], '{:.0f}')} samples)"
        )
    return lines


def format_line(obj: Mapping[str, Any]) -> str:
    """One line per change for ``--watch``."""
    status = obj.get("status") or {}
    a = status.get("analysis") or {}
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    return (
        f"{stamp} phase={status.get('phase', 'Pending')} stable={_v(status.get('stable'))} "
        f"candidate={_v(status.get('candidate'))} weight={status.get('canaryWeight', 0)}% "
        f"step={status.get('currentStep') if status.get('currentStep') is not None else '-'} "
        f"check={a.get('verdict') or '-'} p95={_num(a.get('p95LatencyMs'))}ms "
        f"errors={_num(a.get('errorRate'))} requests={_num(a.get('requests'), '{:.0f}')}"
    )


# --- API access ------------------------------------------------------------------------------


def _api(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    from kubernetes import client
    from kubernetes import config as kube_config

    config: Any = kube_config  # the kubernetes package is untyped
    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
    except Exception as exc:  # missing or broken kubeconfig
        raise CliError(f"cannot load kubeconfig: {exc}") from exc
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except Exception:
        namespace = "default"
    return client.CustomObjectsApi(), namespace


def _explain(exc: Exception, name: str, namespace: str) -> CliError:
    status = getattr(exc, "status", None)
    if status == 404:
        return CliError(f'artpulsemodel "{name}" not found in namespace "{namespace}"')
    if status == 403:
        return CliError(f"forbidden: {getattr(exc, 'reason', '')} (check your RBAC)")
    reason = getattr(exc, "reason", None) or str(exc)
    return CliError(f"API server error: {reason}")


def get_model(api: Any, name: str, namespace: str) -> dict[str, Any]:
    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except Exception as exc:
        raise _explain(exc, name, namespace) from exc
    return obj


def request_action(api: Any, name: str, namespace: str, action: str) -> None:
    """Set ``artpulse.io/action`` (a merge patch: other annotations are untouched)."""
    body = {"metadata": {"annotations": {ACTION_ANNOTATION: action}}}
    try:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)
    except Exception as exc:
        raise _explain(exc, name, namespace) from exc


def watch_model(
    api: Any, name: str, namespace: str, out: TextIO, timeout: float | None = None
) -> None:
    """Print a line for every change of the resource until interrupted or ``timeout``."""
    from kubernetes import watch as kube_watch

    watch: Any = kube_watch  # the kubernetes package is untyped
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    resource_version: str | None = None
    while deadline is None or time.monotonic() < deadline:
        remaining = None if deadline is None else max(1, int(deadline - time.monotonic()))
        w: Any = watch.Watch()
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={name}"}
        if remaining is not None:
            kwargs["timeout_seconds"] = remaining
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            for event in w.stream(
                api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **kwargs
            ):
                obj = event["object"]
                resource_version = (obj.get("metadata") or {}).get("resourceVersion")
                if event["type"] == "DELETED":
                    out.write(f"artpulsemodel {namespace}/{name} was deleted\n")
                    out.flush()
                    return
                line = format_line(obj)
                if line.split(" ", 1)[1] != last:
                    last = line.split(" ", 1)[1]
                    out.write(line + "\n")
                    out.flush()
                if deadline is not None and time.monotonic() >= deadline:
                    w.stop()
                    return
        except Exception as exc:
            if getattr(exc, "status", None) == 410:  # resourceVersion too old: start over
                resource_version = None
                continue
            raise _explain(exc, name, namespace) from exc


# --- entry point -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl artpulse",
        description="Watch and steer ArtPulseModel rollouts (sets the artpulse.io/action annotation).",
    )
    parser.add_argument(
        "--kubeconfig", help="path to the kubeconfig (default: KUBECONFIG or ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context to use")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, help_text in (
        ("status", "show phase, versions, weight, the last check and history"),
        ("watch", "follow the rollout live (status --watch)"),
        ("promote", "advance one step / promote now"),
        ("abort", "roll back now"),
        ("retry", "roll out a failed candidate again"),
        ("pause", "hold the rollout where it is"),
        ("resume", "continue a paused rollout"),
    ):
        p = sub.add_parser(command, help=help_text)
        p.add_argument("name", metavar="NAME", help="the ArtPulseModel")
        p.add_argument("-n", "--namespace", help="namespace (default: from the kubeconfig context)")
        if command == "status":
            p.add_argument("-w", "--watch", action="store_true", help="follow changes live")
        if command in ("status", "watch"):
            p.add_argument(
                "--timeout", type=float, default=None, help="stop watching after SECONDS"
            )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        api, default_ns = _api(args.kubeconfig, args.context)
        namespace = args.namespace or default_ns
        if args.command in ACTIONS:
            get_model(api, args.name, namespace)  # a clear "not found" before patching
            request_action(api, args.name, namespace, args.command)
            out.write(
                f"{args.command} requested for artpulsemodel {namespace}/{args.name}; "
                f"follow it with: kubectl artpulse watch {args.name} -n {namespace}\n"
            )
            return 0
        obj = get_model(api, args.name, namespace)
        out.write(format_status(obj) + "\n")
        if args.command == "watch" or getattr(args, "watch", False):
            out.write("\n")
            out.flush()
            watch_model(api, args.name, namespace, out, timeout=args.timeout)
        return 0
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

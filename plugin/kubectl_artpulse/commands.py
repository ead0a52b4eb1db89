"""The commands of ``kubectl artpulse``: what each does with kubectl's answers (``cli.main``
parses the line and calls the one named, through ``HANDLERS``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any, TextIO

from kubectl_artpulse import __version__
from kubectl_artpulse.actions import request_action
from kubectl_artpulse.args import COMMANDS, Duration
from kubectl_artpulse.contract import (
    ACTIONS,
    CRD_NAME,
    GROUP,
    KIND,
    OPERATOR_LABEL_SELECTOR,
    RESOURCE,
    SINGULAR,
    pod_selector,
)
from kubectl_artpulse.kubectl import CliError, Kubectl, KubectlError
from kubectl_artpulse.outcome import Assessment, assess, exit_code
from kubectl_artpulse.render import (
    Palette,
    format_assessment,
    format_history,
    format_line,
    format_list,
    format_status,
    group_pods,
)
from kubectl_artpulse.yaml_out import to_yaml

__all__ = ["HANDLERS", "Invocation", "current_namespace"]

# A watch kubectl ended by itself (the API server closes watches after a while) is started
# again, at most this often.
WATCH_RESTART_DELAY_S = 1.0
# ``version`` asks the server for what it can see, but never waits long for it.
VERSION_REQUEST_TIMEOUT = "5s"
DASHBOARD_PORT = 3100


# --- talking to the cluster --------------------------------------------------------------------


def _ns(namespace: str | None) -> list[str]:
    return ["--namespace", namespace] if namespace else []


def current_namespace(kubectl: Kubectl) -> str:
    """The namespace kubectl uses when none is given (the context's, else ``default``)."""
    try:
        found = kubectl.run(
            "config", "view", "--minify", "-o", "jsonpath={..namespace}", quiet=True
        )
    except (KubectlError, CliError):
        return "default"
    return found.strip() or "default"


def get_model(kubectl: Kubectl, name: str, namespace: str | None) -> dict[str, Any]:
    obj = kubectl.json("get", RESOURCE, name, *_ns(namespace))
    if not isinstance(obj, dict):
        raise CliError(f"kubectl returned no {KIND} for {name!r}")
    return obj


def follow(
    kubectl: Kubectl, name: str, namespace: str, deadline: float | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of one model as ``(event type, object)``, from a watch kubectl keeps open
    (started again whenever kubectl ends it), until ``deadline`` (``time.monotonic()``)."""
    args = (
        "get",
        RESOURCE,
        name,
        *_ns(namespace),
        "--watch",
        "--output-watch-events",
        "-o",
        "json",
    )
    while True:
        started = time.monotonic()
        with closing(kubectl.stream(*args, deadline=deadline)) as events:
            for event in events:
                if not isinstance(event, dict):
                    continue
                found = event.get("object")
                obj: dict[str, Any] = found if isinstance(found, dict) else {}
                if event.get("type") == "ERROR":
                    raise CliError(f"the watch failed: {obj.get('message') or obj}")
                yield str(event.get("type") or "MODIFIED"), obj
        if deadline is not None and time.monotonic() >= deadline:
            return
        if time.monotonic() - started < WATCH_RESTART_DELAY_S:
            time.sleep(WATCH_RESTART_DELAY_S)


def _deadline(timeout: Duration | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout.seconds


def _emit(data: Any, output: str, out: TextIO) -> None:
    out.write(to_yaml(data) if output == "yaml" else json.dumps(data, indent=2) + "\n")


def _where(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# --- the commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One run of the plugin: its arguments, its kubectl, where it writes, how it styles."""

    args: argparse.Namespace
    kubectl: Kubectl
    out: TextIO
    palette: Palette

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def cmd_list(ctx: Invocation) -> int:
    args = ctx.args
    scope = ["--all-namespaces"] if args.all_namespaces else _ns(args.namespace)
    selector = ["--selector", args.selector] if args.selector else []
    data = ctx.kubectl.json("get", RESOURCE, *scope, *selector)
    if not isinstance(data, dict):
        raise CliError(f"kubectl returned no list of {KIND}s")
    items = [i for i in (data.get("items") or []) if isinstance(i, dict)]
    if args.output == "name":
        for obj in items:
            ctx.say(f"{SINGULAR}.{GROUP}/{_where(obj)[1]}")
    elif args.output:
        _emit(data, args.output, ctx.out)
    elif not items:
        where = " in any namespace" if args.all_namespaces else ""
        where = f" in namespace {args.namespace}" if args.namespace else where
        sys.stderr.write(f"No {KIND}s found{where}.\n")
    else:
        ctx.say(format_list(items, all_namespaces=args.all_namespaces, palette=ctx.palette))
    return 0


def cmd_get(ctx: Invocation) -> int:
    obj = get_model(ctx.kubectl, ctx.args.name, ctx.args.namespace)
    if ctx.args.output:
        _emit(obj, ctx.args.output, ctx.out)
        return 0
    namespace, name = _where(obj)
    unreadable = ""
    try:
        found = ctx.kubectl.json(
            "get", "pods", *_ns(namespace), "--selector", pod_selector(name), quiet=True
        )
        pods = group_pods([p for p in found.get("items") or [] if isinstance(p, dict)])
    except KubectlError as exc:
        pods, unreadable = {}, (exc.stderr.strip().splitlines() or [str(exc)])[0]
    ctx.say(format_status(obj, pods=pods, palette=ctx.palette))
    if unreadable:
        ctx.say(f"Pods:       not readable: {unreadable}")
    return 0


def _summary(obj: Mapping[str, Any], assessment: Assessment) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "outcome": str(assessment.outcome),
        "phase": assessment.phase,
        "detail": assessment.detail,
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "stable": (status.get("stable") or {}).get("version"),
        "candidate": (status.get("candidate") or {}).get("version"),
    }


def cmd_status(ctx: Invocation) -> int:
    args = ctx.args
    obj = get_model(ctx.kubectl, args.name, args.namespace)
    namespace, name = _where(obj)
    assessment = assess(obj)
    quiet = bool(args.output)  # -o: nothing but the document on stdout
    last = format_assessment(assessment, ctx.palette)
    if not quiet:
        ctx.say(last)
    no_time = args.timeout is not None and args.timeout.seconds <= 0
    if not assessment.finished and args.watch and not no_time:
        deadline = _deadline(args.timeout)
        for kind, current in follow(ctx.kubectl, name, namespace, deadline):
            if kind == "DELETED":
                raise CliError(f"{SINGULAR} {namespace}/{name} was deleted")
            obj, assessment = current, assess(current)
            line = format_assessment(assessment, ctx.palette)
            if line != last and not quiet:
                ctx.say(line)
            last = line
            if assessment.finished:
                break
    if args.output:
        _emit(_summary(obj, assessment), args.output, ctx.out)
    if not assessment.finished and args.watch and args.timeout is not None:
        sys.stderr.write(
            f"error: timed out after {args.timeout.text} waiting for "
            f"{SINGULAR} {namespace}/{name} to finish (phase {assessment.phase})\n"
        )
    return exit_code(assessment.outcome)


def cmd_watch(ctx: Invocation) -> int:
    obj = get_model(ctx.kubectl, ctx.args.name, ctx.args.namespace)
    namespace, name = _where(obj)
    ctx.say(format_status(obj, palette=ctx.palette) + "\n")
    last = ""
    for kind, current in follow(ctx.kubectl, name, namespace, _deadline(ctx.args.timeout)):
        if kind == "DELETED":
            ctx.say(f"{SINGULAR} {namespace}/{name} was deleted")
            return 0
        line = format_line(current, palette=ctx.palette)
        change = line.split(" ", 1)[1]  # without the time stamp
        if change != last:
            ctx.say(line)
            last = change
    return 0


def cmd_action(ctx: Invocation) -> int:
    action, name = ctx.args.command, ctx.args.name
    if action == "promote" and getattr(ctx.args, "full", False):
        action = "promote-full"
    obj = request_action(ctx.kubectl, name, ctx.args.namespace, action)
    namespace = _where(obj)[0] if isinstance(obj, dict) else ctx.args.namespace
    ctx.say(
        f"{action} requested for {SINGULAR} {namespace}/{name}; follow it with: "
        f"kubectl artpulse status {name} -n {namespace}"
    )
    return 0


def cmd_history(ctx: Invocation) -> int:
    obj = get_model(ctx.kubectl, ctx.args.name, ctx.args.namespace)
    history = (obj.get("status") or {}).get("history") or []
    if ctx.args.output:
        _emit(list(reversed(history)), ctx.args.output, ctx.out)
    elif not history:
        namespace, name = _where(obj)
        sys.stderr.write(f"No rollouts recorded for {SINGULAR} {namespace}/{name} yet.\n")
    else:
        ctx.say(format_history(obj, ctx.palette))
    return 0


def _first_line(exc: Exception) -> str:
    text = exc.stderr if isinstance(exc, KubectlError) and exc.stderr.strip() else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def server_versions(kubectl: Kubectl) -> dict[str, Any]:
    """What the cluster says of ArtPulse: the CRD's versions and the operator's Deployments."""
    quick = (
        kubectl
        if any(f.startswith("--request-timeout") for f in kubectl.flags)
        else Kubectl(
            kubectl.binary, [*kubectl.flags, f"--request-timeout={VERSION_REQUEST_TIMEOUT}"]
        )
    )
    server: dict[str, Any] = {}
    try:
        crd = quick.json(
            "get", "customresourcedefinitions.apiextensions.k8s.io", CRD_NAME, quiet=True
        )
        versions = (crd.get("spec") or {}).get("versions") or []
        server["crd"] = {
            "name": CRD_NAME,
            "served": [v.get("name") for v in versions if v.get("served")],
            "storage": next((v.get("name") for v in versions if v.get("storage")), None),
        }
    except (KubectlError, CliError) as exc:
        server["crd"] = {"name": CRD_NAME, "error": _first_line(exc)}
    try:
        found = quick.json(
            "get",
            "deployments",
            "--all-namespaces",
            "--selector",
            OPERATOR_LABEL_SELECTOR,
            quiet=True,
        )
        server["operator"] = [
            {
                "namespace": (d.get("metadata") or {}).get("namespace"),
                "name": (d.get("metadata") or {}).get("name"),
                "images": [
                    c.get("image")
                    for c in ((d.get("spec") or {}).get("template") or {})
                    .get("spec", {})
                    .get("containers", [])
                ],
                "ready": f"{(d.get('status') or {}).get('readyReplicas') or 0}/"
                f"{(d.get('spec') or {}).get('replicas', 1)}",
            }
            for d in found.get("items") or []
        ]
    except (KubectlError, CliError) as exc:
        server["operator"] = {"error": _first_line(exc)}
    return server


def cmd_version(ctx: Invocation) -> int:
    report: dict[str, Any] = {
        "client": {"version": __version__, "python": platform.python_version()}
    }
    if not ctx.args.client:
        report["server"] = server_versions(ctx.kubectl)
    if ctx.args.output:
        _emit(report, ctx.args.output, ctx.out)
        return 0
    ctx.say(f"Client:   kubectl-artpulse {__version__} (Python {platform.python_version()})")
    server = report.get("server")
    if server is None:
        return 0
    crd, operator = server["crd"], server["operator"]
    if "error" in crd and isinstance(operator, dict) and operator["error"] == crd["error"]:
        ctx.say(f"Server:   not readable: {crd['error']}")  # no cluster, or no kubectl
        return 0
    if "error" in crd:
        ctx.say(f"CRD:      {CRD_NAME} not readable: {crd['error']}")
    else:
        ctx.say(
            f"CRD:      {CRD_NAME}, served {', '.join(crd['served']) or '-'}, "
            f"storage {crd['storage'] or '-'}"
        )
    if isinstance(operator, dict):
        ctx.say(f"Operator: not readable: {operator['error']}")
    elif not operator:
        ctx.say(f"Operator: no Deployment labelled {OPERATOR_LABEL_SELECTOR} is visible")
    for d in operator if isinstance(operator, list) else []:
        ctx.say(
            f"Operator: {d['namespace']}/{d['name']}, image {', '.join(d['images']) or '-'}, "
            f"{d['ready']} ready"
        )
    return 0


def cmd_dashboard(ctx: Invocation) -> int:
    from kubectl_artpulse.dashboard import Dashboard, serve
    from kubectl_artpulse.promql import parse_service

    args = ctx.args
    try:
        port = int(args.port) if args.port is not None else DASHBOARD_PORT
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise CliError(f"--port: not a port number: {args.port!r}") from None
    try:
        prometheus = parse_service(args.prometheus) if args.prometheus else None
    except ValueError as exc:
        raise CliError(f"--prometheus: {exc}") from None
    dashboard = Dashboard(
        ctx.kubectl,
        namespace=None if args.all_namespaces else args.namespace,
        all_namespaces=args.all_namespaces,
        prometheus=prometheus,
        address=args.address or "127.0.0.1",
        port=port,
    )
    try:
        return serve(dashboard, ctx.out, open_browser=not args.no_browser)
    except OSError as exc:
        raise CliError(
            f"cannot listen on {dashboard.address}:{port}: {exc.strerror or exc}"
        ) from exc


def cmd_completion(ctx: Invocation) -> int:
    from kubectl_artpulse.completion import script

    ctx.out.write(script(ctx.args.shell))
    return 0


HANDLERS: dict[str, Callable[[Invocation], int]] = {
    "list": cmd_list,
    "get": cmd_get,
    "status": cmd_status,
    "watch": cmd_watch,
    "history": cmd_history,
    "version": cmd_version,
    "dashboard": cmd_dashboard,
    "completion": cmd_completion,
    **dict.fromkeys((a for a in ACTIONS if a in COMMANDS), cmd_action),
}

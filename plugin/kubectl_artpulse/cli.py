"""``kubectl artpulse``: watch, gate on and steer ArtPulseModel rollouts.

    kubectl artpulse list [-A] [-l SELECTOR] [-o json|yaml|name]
    kubectl artpulse get NAME [-o json|yaml]          the detail view, tracks as a tree of pods
    kubectl artpulse status NAME [--timeout 5m]       wait for the rollout: exit 0 Stable,
                                                      1 RolledBack/Degraded/Failed, 2 timeout
    kubectl artpulse watch NAME [--timeout 60]        the detail view, then a line per change
    kubectl artpulse promote|abort|retry|pause|resume NAME
    kubectl artpulse history NAME [-o json|yaml]
    kubectl artpulse version [--client] [-o json|yaml]
    kubectl artpulse dashboard [--port 3100] [-A]     a web page of the rollouts, behind a token
    kubectl artpulse completion bash|zsh

kubectl's flags (``-n``, ``--context``, ``--kubeconfig``, ``--as`` ...) are taken anywhere
on the line, before or after the command, and forwarded to kubectl, which does all the talking
to the cluster (``kubectl_artpulse.kubectl``). The actions set the ``artpulse.io/action``
annotation (a merge patch); the operator acts on it once, records it in
``status.lastAction`` and removes it, so GitOps tools see no drift.

Exit codes: 0 success, 1 failure (an error, not found, a failed rollout), 2 the rollout did
not finish within ``--timeout``, 130 interrupted. Installed as the console script
``kubectl-artpulse`` (``plugin/pyproject.toml``) or as the zipapp ``make plugin-dist`` builds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

from kubectl_artpulse import __version__
from kubectl_artpulse.actions import request_action
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
from kubectl_artpulse.kubectl import CliError, Kubectl, KubectlError, kubectl_binary
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

__all__ = ["COMMANDS", "GLOBAL_OPTIONS", "build_parser", "main", "parse_args"]

PROG = "kubectl artpulse"
# A watch kubectl ended by itself (the API server closes watches after a while) is started
# again, at most this often.
WATCH_RESTART_DELAY_S = 1.0
# ``version`` asks the server for what it can see, but never waits long for it.
VERSION_REQUEST_TIMEOUT = "5s"
DASHBOARD_PORT = 3100


# --- the command line, as data (the parser and the shell completion are made from it) -------


@dataclass(frozen=True)
class Duration:
    seconds: float
    text: str


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> Duration:
    """``90`` (seconds), ``90s``, ``5m``, ``1h30m``, ``500ms``, as kubectl writes durations."""
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return Duration(float(value), text)
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    if position == 0 or position != len(value):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 5m, 1h30m)")
    return Duration(total, text)


@dataclass(frozen=True)
class Option:
    """One option: its flags, its help, and what kind of value it takes.

    ``metavar`` None: a switch. ``forward``: a kubectl connection flag, passed on to every
    kubectl call as ``--flag=value``. ``values``: how the shell completes the value (``choices``,
    ``namespace``, ``context`` or ``file``).
    """

    flags: tuple[str, ...]
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    repeat: bool = False
    negatable: bool = False  # a switch that is on by default: --flag / --no-flag
    duration: bool = False
    forward: bool = False
    values: str = ""

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")

    @property
    def long(self) -> str:
        return self.flags[-1]

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None


NAMESPACE = Option(
    ("-n", "--namespace"),
    "the namespace (default: the kubeconfig context's)",
    "NAMESPACE",
    values="namespace",
)
ALL_NAMESPACES = Option(("-A", "--all-namespaces"), "list the models of every namespace")
GLOBAL_OPTIONS: tuple[Option, ...] = (
    NAMESPACE,
    ALL_NAMESPACES,
    Option(
        ("--context",), "the kubeconfig context to use", "CONTEXT", forward=True, values="context"
    ),
    Option(
        ("--kubeconfig",),
        "the kubeconfig file (default: KUBECONFIG or ~/.kube/config)",
        "FILE",
        forward=True,
        values="file",
    ),
    Option(("--cluster",), "the kubeconfig cluster to use", "CLUSTER", forward=True),
    Option(("--user",), "the kubeconfig user to use", "USER", forward=True),
    Option(("-s", "--server"), "the address of the API server", "URL", forward=True),
    Option(("--token",), "a bearer token for the API server", "TOKEN", forward=True),
    Option(("--as",), "the user to impersonate", "USER", forward=True),
    Option(
        ("--as-group",), "a group to impersonate (repeatable)", "GROUP", repeat=True, forward=True
    ),
    Option(("--as-uid",), "the UID to impersonate", "UID", forward=True),
    Option(
        ("--certificate-authority",),
        "a CA bundle for the API server",
        "FILE",
        forward=True,
        values="file",
    ),
    Option(
        ("--insecure-skip-tls-verify",), "do not verify the API server's certificate", forward=True
    ),
    Option(
        ("--request-timeout",),
        "how long one request to the server may take (e.g. 30s)",
        "DURATION",
        forward=True,
    ),
)


def _output(*formats: str) -> Option:
    return Option(
        ("-o", "--output"),
        f"print {' or '.join(formats)} instead of the view",
        "FORMAT",
        choices=formats,
    )


@dataclass(frozen=True)
class Command:
    help: str
    takes_name: bool = True
    options: tuple[Option, ...] = ()


TIMEOUT = Option(
    ("--timeout",),
    "give up after this long (90, 90s, 5m, 1h30m; default: wait as long as it takes)",
    "DURATION",
    duration=True,
)
COMMANDS: dict[str, Command] = {
    "list": Command(
        "list the models: phase, versions, weight, step",
        takes_name=False,
        options=(
            Option(("-l", "--selector"), "only models with these labels (k=v,...)", "SELECTOR"),
            _output("json", "yaml", "name"),
        ),
    ),
    "get": Command(
        "show one model: phase, versions, the last check, its tracks and their pods",
        options=(_output("json", "yaml"),),
    ),
    "status": Command(
        "wait until the rollout is done: exit 0 when Stable, 1 when RolledBack, Degraded or "
        "Failed, 2 on --timeout",
        options=(
            TIMEOUT,
            Option(("-w", "--watch"), "wait for the end (--no-watch: look once)", negatable=True),
            _output("json", "yaml"),
        ),
    ),
    "watch": Command("show one model, then a line for every change", options=(TIMEOUT,)),
    "promote": Command(
        "advance one step, end the shadow phase, switch colours, or promote now",
        options=(
            Option(
                ("--full",),
                "promote now: skip the remaining steps, the analysis and the confirmation",
            ),
        ),
    ),
    "abort": Command(
        "roll the candidate back now (BlueGreen: flip back while the old colour is warm)"
    ),
    "retry": Command("roll out a failed candidate again"),
    "pause": Command("hold the rollout where it is"),
    "resume": Command("continue a paused rollout"),
    "history": Command(
        "the model's last rollouts, newest first", options=(_output("json", "yaml"),)
    ),
    "version": Command(
        "the plugin's version, and the ArtPulse CRD and operator the cluster has",
        takes_name=False,
        options=(
            Option(("--client",), "only the plugin's own version (no cluster needed)"),
            _output("json", "yaml"),
        ),
    ),
    "dashboard": Command(
        "a web page of the models, their timelines and actions, on 127.0.0.1, behind a token",
        takes_name=False,
        options=(
            Option(("--port",), "the port to listen on (0: any free one)", "PORT"),
            Option(
                ("--address",),
                "the address to listen on (default 127.0.0.1; only this host reaches it)",
                "ADDRESS",
            ),
            Option(
                ("--prometheus",),
                "the Prometheus Service to ask through the API server (default: the model's "
                "spec.analysis.prometheus.address, else artpulse-system/prometheus:9090)",
                "NAMESPACE/SERVICE:PORT",
            ),
            Option(("--no-browser",), "do not open the page in a browser, only print its URL"),
        ),
    ),
    "completion": Command(
        "print a shell completion script (source <(kubectl-artpulse completion bash))",
        takes_name=False,
    ),
}
SHELLS = ("bash", "zsh")


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as kubectl's do; 2 is kept for ``status --timeout``."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\nSee '{self.prog} --help'.\n")
        raise SystemExit(1)


# A repeatable kubectl flag after the command is collected apart, then added to the ones before
# it (argparse would let the subcommand's list replace them).
_AFTER = "_after_command"


def _add(group: Any, option: Option, suppress: bool) -> None:
    kwargs: dict[str, Any] = {"help": option.help, "dest": option.dest}
    if suppress:  # in a subcommand: absent means "as given before the command"
        kwargs["default"] = argparse.SUPPRESS
        if option.repeat:
            kwargs["dest"] = option.dest + _AFTER
    if option.negatable:
        kwargs.update(action=argparse.BooleanOptionalAction)
        if not suppress:
            kwargs["default"] = True
    elif not option.takes_value:
        kwargs.update(action="store_true")
    else:
        kwargs.update(metavar=option.metavar)
        if option.choices:
            kwargs["choices"] = option.choices
        if option.repeat:
            kwargs["action"] = "append"
        if option.duration:
            kwargs["type"] = parse_duration
    group.add_argument(*option.flags, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Watch, gate on and steer ArtPulseModel rollouts. kubectl's flags may "
        "come before or after the command.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kubectl-artpulse {__version__}")
    kubectl_group = parser.add_argument_group("kubectl options")
    for option in GLOBAL_OPTIONS:
        _add(kubectl_group, option, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help, allow_abbrev=False)
        if command.takes_name:
            p.add_argument("name", metavar="NAME", help=f"the {KIND}")
        if name == "completion":
            p.add_argument("shell", metavar="SHELL", choices=SHELLS, help=" or ".join(SHELLS))
        for option in command.options:
            _add(p, option, suppress=False)
        group = p.add_argument_group("kubectl options")
        for option in GLOBAL_OPTIONS:
            _add(group, option, suppress=True)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, with kubectl's flags taken from before and after the command."""
    args = build_parser().parse_args(argv)
    for option in GLOBAL_OPTIONS:
        if option.repeat:
            after = vars(args).pop(option.dest + _AFTER, None) or []
            setattr(args, option.dest, [*(getattr(args, option.dest, None) or []), *after])
    return args


def connection_flags(values: Mapping[str, Any]) -> list[str]:
    """The kubectl connection flags given, as ``--flag=value`` (unambiguous for any value)."""
    flags: list[str] = []
    for option in GLOBAL_OPTIONS:
        value = values.get(option.dest)
        if not option.forward or value in (None, False, []):
            continue
        if not option.takes_value:
            flags.append(option.long)
        else:
            for item in value if isinstance(value, list) else [value]:
                flags.append(f"{option.long}={item}")
    return flags


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


# --- entry point -------------------------------------------------------------------------------


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _palette(stream: TextIO) -> Palette:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "├─│└".encode(encoding)
        unicode = True
    except (LookupError, UnicodeEncodeError):
        unicode = False
    return Palette(colour=use_colour(stream), unicode=unicode)


def _report(exc: KubectlError, args: argparse.Namespace, kubectl: Kubectl) -> None:
    """The error of a failed kubectl call: what kubectl said has mostly been passed on already;
    a missing model is said with its namespace."""
    name = getattr(args, "name", None)
    if exc.not_found and name:
        namespace = args.namespace or current_namespace(kubectl)
        sys.stderr.write(f'error: {SINGULAR} "{name}" not found in namespace "{namespace}"\n')
    elif exc.withheld.strip():
        sys.stderr.write(exc.withheld if exc.withheld.endswith("\n") else exc.withheld + "\n")
    elif not exc.stderr.strip():  # nothing said at all (a watch's stderr went straight through)
        sys.stderr.write(f"error: kubectl exited with code {exc.returncode}\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    if argv[:1] == ["__complete"]:  # the shell's completion asks (completion.py)
        from kubectl_artpulse.completion import complete

        return complete(argv[1:], out)
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error, already printed
        return exc.code if isinstance(exc.code, int) else 1
    if args.command is None:
        build_parser().print_help(out)
        return 0
    if args.all_namespaces and args.command not in ("list", "dashboard"):
        sys.stderr.write("error: -A/--all-namespaces applies to list and dashboard only\n")
        return 1
    kubectl = Kubectl(kubectl_binary(), tuple(connection_flags(vars(args))))
    ctx = Invocation(args, kubectl, out, _palette(out))
    try:
        return HANDLERS[args.command](ctx)
    except KubectlError as exc:
        _report(exc, args, kubectl)
        return 1
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl artpulse list | head`: the reader left, not an error
        # Python's recipe: stdout onto /dev/null, so the flush at exit does not fail again.
        with suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

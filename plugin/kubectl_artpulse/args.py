"""The command line of ``kubectl artpulse`` as data: its commands and options, and the parser
and the kubectl flags made from them (``completion.py`` makes the shell completion from the same
table). kubectl's flags are accepted before and after the command.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from kubectl_artpulse import __version__
from kubectl_artpulse.contract import (
    KIND,
)

__all__ = ["COMMANDS", "GLOBAL_OPTIONS", "PROG", "build_parser", "connection_flags", "parse_args"]

PROG = "kubectl artpulse"


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

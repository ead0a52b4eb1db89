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
import os
import sys
from collections.abc import Sequence
from contextlib import suppress
from typing import TextIO

from kubectl_artpulse.args import (
    COMMANDS,
    GLOBAL_OPTIONS,
    build_parser,
    connection_flags,
    parse_args,
)
from kubectl_artpulse.commands import HANDLERS, Invocation, current_namespace
from kubectl_artpulse.contract import SINGULAR
from kubectl_artpulse.kubectl import CliError, Kubectl, KubectlError, kubectl_binary
from kubectl_artpulse.render import Palette

__all__ = ["COMMANDS", "GLOBAL_OPTIONS", "build_parser", "main", "parse_args"]


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

"""Shell completion: the bash and zsh scripts, and the answers they ask the plugin for.

The scripts (``kubectl-artpulse completion bash|zsh``) are thin: on every TAB they run
``kubectl-artpulse __complete WORD... CURRENT`` and offer what it prints, one candidate a
line (``value<TAB>description``), then ``:<directive>``, cobra's protocol: ``:4`` no file
names, ``:0`` file names when nothing else fits. kubectl (1.26+) speaks the same protocol to
``kubectl_complete-artpulse``, which the distribution installs beside ``kubectl-artpulse``, so
``kubectl artpulse <TAB>`` completes through kubectl's own completion too.

Commands and flags come from ``cli.COMMANDS`` and ``cli.GLOBAL_OPTIONS``; model names,
namespaces and contexts from kubectl, with the connection flags typed so far.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["candidates", "complete", "kubectl_complete", "script"]

NO_FILES = 4  # cobra's ShellCompDirectiveNoFileComp
FILES = 0  # cobra's ShellCompDirectiveDefault: the shell may offer file names

BASH = r"""# bash completion for kubectl-artpulse, the ArtPulse kubectl plugin.
#   source <(kubectl-artpulse completion bash)
# or save it as /etc/bash_completion.d/kubectl-artpulse. `kubectl artpulse <TAB>` completes
# through kubectl's completion, which runs kubectl_complete-artpulse (installed beside it).
# Works with bash 3.2 (macOS) and later.
_kubectl_artpulse() {
    local line="${COMP_LINE:0:COMP_POINT}" reply directive=4 candidate
    local -a words=() candidates=()
    read -r -a words <<< "$line"
    [[ -z "$line" || "$line" == *[[:space:]] ]] && words+=("")
    reply=$("${words[0]}" __complete "${words[@]:1}" 2>/dev/null) || return 0
    while IFS= read -r candidate; do
        case "$candidate" in
            :*) directive=${candidate#:} ;;
            '') ;;
            *) candidate=${candidate%%$'\t'*}
               # bash splits words at '=': offer only what follows it in the current word.
               if [[ "${words[${#words[@]}-1]}" == *=* && "$COMP_WORDBREAKS" == *=* ]]; then
                   candidate=${candidate#*=}
               fi
               candidates+=("$candidate") ;;
        esac
    done <<< "$reply"
    COMPREPLY=("${candidates[@]}")
    if [[ ${#COMPREPLY[@]} -eq 0 && "$directive" == 0 ]]; then
        while IFS= read -r candidate; do COMPREPLY+=("$candidate"); done \
            < <(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")
    fi
}
complete -F _kubectl_artpulse kubectl-artpulse
"""

ZSH = r"""#compdef kubectl-artpulse
# zsh completion for kubectl-artpulse, the ArtPulse kubectl plugin.
#   source <(kubectl-artpulse completion zsh)      (after compinit)
# or save it as _kubectl-artpulse in a directory of $fpath. `kubectl artpulse <TAB>` completes
# through kubectl's completion, which runs kubectl_complete-artpulse (installed beside it).
_kubectl_artpulse() {
    local -a lines described
    local line value description directive=4
    lines=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    for line in "${lines[@]}"; do
        case "$line" in
            :*) directive=${line#:} ;;
            '') ;;
            *) value=${line%%$'\t'*}
               description=${line#*$'\t'}
               [[ "$description" == "$line" ]] && description=""
               described+=("${value//:/\\:}${description:+:$description}") ;;
        esac
    done
    if (( ${#described} )); then
        _describe -t artpulse 'kubectl-artpulse' described
    elif [[ "$directive" == 0 ]]; then
        _files
    fi
}
if [[ "${funcstack[1]}" == "_kubectl_artpulse" ]]; then
    _kubectl_artpulse "$@"
else
    compdef _kubectl_artpulse kubectl-artpulse
fi
"""


def script(shell: str) -> str:
    return {"bash": BASH, "zsh": ZSH}[shell]


def _lookup(kubectl_args: Sequence[str], *args: str) -> list[str]:
    """Names kubectl lists (``-o name``), without their ``kind/`` prefix; none on any error."""
    from kubectl_artpulse.kubectl import CliError, Kubectl, KubectlError, kubectl_binary

    kubectl = Kubectl(kubectl_binary(), [*kubectl_args, "--request-timeout=5s"])
    try:
        listed = kubectl.run(*args, quiet=True)
    except (CliError, KubectlError):
        return []
    return [line.rsplit("/", 1)[-1] for line in listed.split() if line]


def candidates(words: Sequence[str]) -> tuple[list[str], int]:
    """What may come at the last of ``words`` (the words after the plugin's name, the last one
    being the one under completion, maybe empty), and the directive for the shell."""
    from kubectl_artpulse.args import COMMANDS, GLOBAL_OPTIONS, SHELLS, Option, connection_flags
    from kubectl_artpulse.contract import RESOURCE

    *done, current = list(words) or [""]
    command: str | None = None
    positionals = 0
    expecting: Option | None = None
    given: dict[str, object] = {}

    def options() -> list[Option]:
        own = COMMANDS[command].options if command in COMMANDS else ()
        return [*own, *GLOBAL_OPTIONS]

    def find(flag: str) -> Option | None:
        return next((o for o in options() if flag in o.flags), None)

    def remember(option: Option, value: str) -> None:
        if option.repeat:
            given.setdefault(option.dest, [])
            values = given[option.dest]
            assert isinstance(values, list)
            values.append(value)
        else:
            given[option.dest] = value

    for word in done:
        if expecting is not None:
            remember(expecting, word)
            expecting = None
        elif word.startswith("-") and word != "-":
            flag, has_value, value = word.partition("=")
            option = find(flag)
            if option is not None and option.takes_value:
                if has_value:
                    remember(option, value)
                else:
                    expecting = option
            elif option is not None:
                given[option.dest] = True
        elif command is None:
            command = word
        else:
            positionals += 1

    kubectl_args = connection_flags(given)
    namespace = given.get("namespace")
    if isinstance(namespace, str) and namespace:
        kubectl_args = [*kubectl_args, f"--namespace={namespace}"]

    def values(option: Option, prefix: str) -> tuple[list[str], int]:
        if option.choices:
            return [v for v in option.choices if v.startswith(prefix)], NO_FILES
        if option.values == "file":
            return [], FILES
        if option.values == "namespace":
            found = _lookup(connection_flags(given), "get", "namespaces", "-o", "name")
        elif option.values == "context":
            found = _lookup(connection_flags(given), "config", "get-contexts", "-o", "name")
        else:
            found = []
        return [v for v in found if v.startswith(prefix)], NO_FILES

    if expecting is not None:
        return values(expecting, current)
    if current.startswith("-"):
        flag, has_value, prefix = current.partition("=")
        option = find(flag)
        if has_value and option is not None and option.takes_value:
            found, directive = values(option, prefix)
            return [f"{flag}={v}" for v in found], directive
        flags = []
        for option in options():
            for name in option.flags:
                flags.append(f"{name}\t{option.help}")
            if option.negatable:
                flags.append(f"--no-{option.long.lstrip('-')}\t{option.help}")
        return sorted(f for f in flags if f.startswith(current)), NO_FILES
    if command is None:
        return [
            f"{name}\t{c.help}" for name, c in COMMANDS.items() if name.startswith(current)
        ], NO_FILES
    if command == "completion" and positionals == 0:
        return [s for s in SHELLS if s.startswith(current)], NO_FILES
    if command in COMMANDS and COMMANDS[command].takes_name and positionals == 0:
        names = _lookup(kubectl_args, "get", RESOURCE, "-o", "name")
        return [n for n in names if n.startswith(current)], NO_FILES
    return [], NO_FILES


def complete(words: Sequence[str], out: TextIO) -> int:
    """``__complete``: the candidates, one a line, then ``:<directive>``."""
    found, directive = candidates(words)
    for candidate in found:
        out.write(candidate + "\n")
    out.write(f":{directive}\n")
    return 0


def kubectl_complete() -> int:
    """``kubectl_complete-artpulse``: what kubectl's own completion runs for the plugin."""
    return complete(sys.argv[1:], sys.stdout)

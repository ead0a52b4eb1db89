"""Every alert we ship leads on-call to a runbook section that exists, and the runbooks run
only tools that exist.

The alerts live in the rule files under `observability/` and, for Prometheus-operator users, in
the PrometheusRule under `manifests/` (test_ship_gitops_manifests checks the two hold the same
groups). Each alert's `runbook_url` annotation is a path from the repository root,
`docs/runbooks/<file>.md#<anchor>` (observability/README.md, "Runbook links", says why it is
not a web address); the file must exist and the anchor must be one GitHub renders for a heading
of it (lowercase, spaces to `-`, punctuation dropped, `-1`, `-2` ... for repeats).

The runbooks' fenced blocks are all shell, and every command in them starts with one of a
handful of tools: a cheap guard against a command invented while writing. `kubectl artpulse`
invocations must parse with the plugin's own argument parser (plugin/kubectl_artpulse), and `make` targets must be in
the Makefile. Links between the runbooks must land on a heading too.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubectl_artpulse.cli import build_parser

REPO = Path(__file__).resolve().parents[3]
RUNBOOKS = REPO / "docs" / "runbooks"
REQUIRED_RUNBOOKS = ["incident.md", "rollback.md", "on-call.md", "escalation.md"]
RUNBOOK_PREFIX = "docs/runbooks/"
# The first word of every command in a runbook (`kubectl artpulse` is the kubectl plugin).
ALLOWED_TOOLS = {"kubectl", "make", "curl", "export", "mlflow", "promtool", "jq", "grep"}
SHELL_LANGUAGES = {"sh", "bash", "shell"}
# Tokens after which the shell starts a new command.
COMMAND_SEPARATORS = {"|", "||", "|&", "&&", ";", "&", "("}
# Redirections: the next word is a file, not an argument.
REDIRECTIONS = {">", ">>", "<", ">&", "&>"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


# --- the alerts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    source: str  # the file it came from, relative to the repository
    annotations: dict[str, Any]


def rule_groups(document: Any) -> list[dict[str, Any]]:
    """The rule groups of a Prometheus rule file or of a PrometheusRule object."""
    if not isinstance(document, dict):
        return []
    if document.get("kind") == "PrometheusRule":
        return list((document.get("spec") or {}).get("groups") or [])
    groups = document.get("groups")
    return list(groups) if isinstance(groups, list) else []


def shipped_alerts() -> list[Alert]:
    alerts: list[Alert] = []
    paths = [*(REPO / "observability").rglob("*.yml"), *(REPO / "manifests").rglob("*.yaml")]
    for path in sorted(paths):
        for document in yaml.safe_load_all(path.read_text()):
            for group in rule_groups(document):
                for rule in group.get("rules") or []:
                    if "alert" in rule:
                        alerts.append(
                            Alert(
                                rule["alert"],
                                str(path.relative_to(REPO)),
                                dict(rule.get("annotations") or {}),
                            )
                        )
    return alerts


ALERTS = shipped_alerts()


# --- markdown --------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication).

    >>> github_anchor("ArtPulseHighP95Latency")
    'artpulsehighp95latency'
    >>> github_anchor("Rolling back a promoted version")
    'rolling-back-a-promoted-version'
    >>> github_anchor("What MLflow knows about a version (`artpulse.rollout.*`)")
    'what-mlflow-knows-about-a-version-artpulserollout'
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def outside_fences(text: str) -> Iterator[str]:
    fence: str | None = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and (fence is None or m.group(2).startswith(fence)):
            fence = None if fence else m.group(2)[0] * 3
            continue
        if fence is None:
            yield line


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in outside_fences(path.read_text()):
        m = HEADING.match(line)
        if not m:
            continue
        base = github_anchor(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    body: str


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, marker, language = len(m.group(1)), m.group(2), m.group(3)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(marker[0] * len(marker)):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append(Block(path, i + 1, language, "\n".join(body)))
        i = j + 1
    return blocks


def runbook_paths() -> list[Path]:
    return sorted(RUNBOOKS.glob("*.md"))


# --- shell commands --------------------------------------------------------------------------


def logical_lines(body: str) -> Iterator[str]:
    """Lines with backslash continuations joined, blank lines and comment lines dropped."""
    pending = ""
    for raw in body.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            yield line
    if pending.strip():
        yield pending.strip()


def commands(line: str) -> list[list[str]]:
    """Each simple command of a shell line as its words, command substitutions included,
    redirections left out.

    >>> commands("export IP=$(kubectl get pods -o name) && curl -s x | jq '.a | .b' > out")
    [['export', 'IP=$'], ['kubectl', 'get', 'pods', '-o', 'name'], ['curl', '-s', 'x'], ['jq', '.a | .b']]
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    result: list[list[str]] = []
    current: list[str] = []
    redirected = False
    for token in lexer:
        if redirected:
            redirected = False
        elif token in REDIRECTIONS:
            redirected = True
        elif token in COMMAND_SEPARATORS or token == ")":
            if current:
                result.append(current)
            current = []
        else:
            current.append(token)
    if current:
        result.append(current)
    return result


def shell_commands() -> list[tuple[str, list[str]]]:
    """(where, words) for every command in every runbook's fenced blocks."""
    found: list[tuple[str, list[str]]] = []
    for path in runbook_paths():
        for block in fenced_blocks(path):
            for line in logical_lines(block.body):
                where = f"{path.relative_to(REPO)}:{block.line}: {line}"
                found.extend((where, words) for words in commands(line))
    return found


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.MULTILINE))


# --- tests -----------------------------------------------------------------------------------


def test_the_alerts_are_found() -> None:
    sources = {a.source for a in ALERTS}
    assert "observability/prometheus/rules/artpulse-alerts.rules.yml" in sources
    assert "manifests/components/monitoring/prometheusrule.yaml" in sources
    assert len({a.name for a in ALERTS}) >= 6, sorted({a.name for a in ALERTS})


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: f"{a.source}:{a.name}")
def test_every_alert_has_a_runbook_section_that_exists(alert: Alert) -> None:
    url = alert.annotations.get("runbook_url")
    assert isinstance(url, str), f"{alert.name} in {alert.source} has no runbook_url"
    assert url.startswith(RUNBOOK_PREFIX), f"{alert.name}: {url} is not under {RUNBOOK_PREFIX}"
    file, _, anchor = url.partition("#")
    assert anchor, f"{alert.name}: {url} names no section (#anchor)"
    path = REPO / file
    assert path.is_file(), f"{alert.name}: {file} does not exist"
    assert anchor in anchors(path), (
        f"{alert.name}: no heading of {file} has the anchor #{anchor}; it has {sorted(anchors(path))}"
    )


def test_an_alert_has_one_runbook_wherever_it_is_shipped() -> None:
    urls: dict[str, set[str]] = {}
    for alert in ALERTS:
        urls.setdefault(alert.name, set()).add(str(alert.annotations.get("runbook_url")))
    assert {name: u for name, u in urls.items() if len(u) > 1} == {}


@pytest.mark.parametrize("name", REQUIRED_RUNBOOKS)
def test_the_runbooks_exist(name: str) -> None:
    path = RUNBOOKS / name
    assert path.is_file(), f"docs/runbooks/{name} is missing"
    assert fenced_blocks(path), f"docs/runbooks/{name} has no command to run"


def test_every_fenced_block_is_shell() -> None:
    others = [
        f"{b.path.relative_to(REPO)}:{b.line}: ```{b.language}"
        for path in runbook_paths()
        for b in fenced_blocks(path)
        if b.language not in SHELL_LANGUAGES
    ]
    assert others == [], "tag every block `sh` so the command guard reads it"


def test_every_command_uses_a_known_tool() -> None:
    found = shell_commands()
    assert found
    unknown = [f"{where}  ({words[0]})" for where, words in found if words[0] not in ALLOWED_TOOLS]
    assert unknown == [], f"only {sorted(ALLOWED_TOOLS)} may run in a runbook"


def test_kubectl_artpulse_commands_parse_with_the_plugin() -> None:
    parser = build_parser()
    calls = [
        (w, words[2:]) for w, words in shell_commands() if words[:2] == ["kubectl", "artpulse"]
    ]
    assert calls
    refused = []
    for where, args in calls:
        try:
            parser.parse_args(args)
        except SystemExit:
            refused.append(where)
    assert refused == []


def test_make_targets_exist() -> None:
    targets = makefile_targets()
    used = [
        (where, word)
        for where, words in shell_commands()
        if words[0] == "make"
        for word in words[1:]
        if not word.startswith("-") and "=" not in word
    ]
    assert used
    assert [(where, t) for where, t in used if t not in targets] == []


def test_links_between_the_runbooks_land_on_a_heading() -> None:
    broken = []
    for path in runbook_paths():
        for line in outside_fences(path.read_text()):
            for target in LINK.findall(line):
                if "://" in target:
                    continue
                file, _, anchor = target.partition("#")
                dest = (path.parent / file).resolve() if file else path
                if not dest.is_file():
                    broken.append(f"{path.name}: {target} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{path.name}: {target} (no such heading)")
    assert broken == []


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("ArtPulseRollbackHappened", "artpulserollbackhappened"),
        ("The first five minutes", "the-first-five-minutes"),
        ("MLflow or Prometheus unreachable", "mlflow-or-prometheus-unreachable"),
        ("Escalation: when, to whom, with what", "escalation-when-to-whom-with-what"),
        ("`kubectl artpulse` actions", "kubectl-artpulse-actions"),
        ("A [linked](x.md) heading", "a-linked-heading"),
    ],
)
def test_github_anchor(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor

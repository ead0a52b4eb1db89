"""Static checks of hack/go-bins (nothing is downloaded or built here).

hack/go-bins/build.sh builds coredns, traefik, prometheus and helm from the Go modules that
<name>/go.mod requires, and names its output directory after the version in VERSIONS; the two
must agree, or the cache would hold a binary under the wrong version. Traefik's go.mod carries
replace directives that only apply in the main module, so the wrapper must repeat exactly those.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GO_BINS = Path(__file__).resolve().parents[3] / "hack" / "go-bins"

PINNED = {
    "coredns": ("github.com/coredns/coredns", "v1.15.0"),
    "traefik": ("github.com/traefik/traefik/v3", "v3.6.12"),
    "prometheus": ("github.com/prometheus/prometheus", "v0.316.0"),
    "helm": ("helm.sh/helm/v4", "v4.3.2"),
}

# From traefik v3.6.12's own go.mod (its replace block).
TRAEFIK_REPLACES = {
    "github.com/abbot/go-http-auth": "github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e",
    "github.com/gorilla/mux": "github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59",
    "github.com/mailgun/minheap": "github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595",
}


def directives(gomod: Path, keyword: str) -> list[str]:
    """The entries of every `keyword X` line and `keyword ( ... )` block, comments dropped."""
    entries: list[str] = []
    in_block = False
    for raw in gomod.read_text().splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                entries.append(line)
        elif line == f"{keyword} (":
            in_block = True
        elif line.startswith(f"{keyword} "):
            entries.append(line[len(keyword) + 1 :].strip())
    return entries


def versions_file() -> dict[str, str]:
    pairs = {}
    for raw in (GO_BINS / "VERSIONS").read_text().splitlines():
        fields = raw.split("#", 1)[0].split()
        if fields:
            name, version = fields
            pairs[name] = version
    return pairs


@pytest.mark.parametrize("name", sorted(PINNED))
def test_go_mod_requires_the_pinned_version(name: str) -> None:
    module, version = PINNED[name]
    required = dict(entry.split()[:2] for entry in directives(GO_BINS / name / "go.mod", "require"))
    assert required.get(module) == version
    assert versions_file()[name] == version
    assert (GO_BINS / name / "go.sum").read_text().count(f"{module} {version} h1:") == 1


def test_traefik_repeats_exactly_the_upstream_replaces() -> None:
    replaces = {}
    for entry in directives(GO_BINS / "traefik" / "go.mod", "replace"):
        old, new = (side.strip() for side in entry.split("=>"))
        replaces[old] = new
    assert replaces == TRAEFIK_REPLACES


@pytest.mark.parametrize("name", ["coredns", "prometheus", "helm", "pause"])
def test_other_modules_replace_nothing(name: str) -> None:
    assert directives(GO_BINS / name / "go.mod", "replace") == []


def test_build_script_knows_every_program() -> None:
    """With no argument it builds the local cluster's programs; helm (a tool) only when named."""
    script = (GO_BINS / "build.sh").read_text()
    (default,) = re.findall(r"^all=\(([^)]*)\)", script, flags=re.MULTILINE)
    (tools,) = re.findall(r"^tools=\(([^)]*)\)", script, flags=re.MULTILINE)
    assert default.split() == ["coredns", "traefik", "prometheus", "pause"]
    assert tools.split() == ["helm"]
    for name in default.split() + tools.split():
        assert re.search(rf"^\s*{name}\)", script, flags=re.MULTILINE), f"no case for {name}"
        assert name in versions_file()
    assert set(versions_file()) == set(default.split() + tools.split())


def test_helm_is_stamped_with_its_version() -> None:
    """`helm version` says the pinned release, as Helm's own Makefile stamps it."""
    script = (GO_BINS / "build.sh").read_text()
    assert "-X helm.sh/helm/v4/internal/version.version=$version" in script


def test_pause_uses_only_the_standard_library() -> None:
    assert directives(GO_BINS / "pause" / "go.mod", "require") == []
    assert not (GO_BINS / "pause" / "go.sum").exists()

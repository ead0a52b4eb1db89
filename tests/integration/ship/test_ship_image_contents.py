"""What the built images hold, read from their OCI archives with tarfile and json (no engine).

hack/images.sh builds artpulse-operator and artpulse-inference with buildah and exports each as
an OCI archive (index.json -> manifest -> config and layer blobs) for containerd. The fixture
builds both (the script skips an image whose inputs have not changed, so a warm run takes
seconds; a cold one several minutes). Then, for each image, every layer's file list gives its
site-packages: the operator image carries the operator and none of the ML stack, the inference
image the ML stack and no operator; both run as uid 10001 behind tini.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

# A cold build of both images takes several minutes on two cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]
ARCHIVES = Path(os.environ.get("ARTPULSE_CACHE", Path.home() / ".cache/artpulse")) / "images"
SITE_PACKAGES = re.compile(r"^opt/artpulse/lib/python3\.\d+/site-packages/([^/]+)")
ML_STACK = ["sklearn", "mlflow", "pandas", "pyarrow", "matplotlib", "scipy"]


@dataclass(frozen=True)
class Image:
    """An OCI archive's image: its config and the paths its layers hold (whiteouts applied)."""

    config: dict[str, Any]
    paths: frozenset[str]

    def site_packages(self) -> set[str]:
        """Top-level names in the venv's site-packages (packages, modules, dist-info)."""
        found = set()
        for path in self.paths:
            match = SITE_PACKAGES.match(path)
            if match:
                found.add(match[1])
        return found


def read_image(archive: Path) -> Image:
    with tarfile.open(archive) as outer:

        def member(name: str) -> IO[bytes]:
            file = outer.extractfile(name)
            assert file is not None, f"{archive}: no {name}"
            return file

        def blob(digest: str) -> IO[bytes]:
            return member("blobs/sha256/" + digest.split(":", 1)[1])

        index = json.load(member("index.json"))
        (descriptor,) = index["manifests"]
        manifest = json.load(blob(descriptor["digest"]))
        config = json.load(blob(manifest["config"]["digest"]))
        paths: set[str] = set()
        for layer in manifest["layers"]:
            data: IO[bytes] | gzip.GzipFile = blob(layer["digest"])
            if layer["mediaType"].endswith("gzip"):
                data = gzip.GzipFile(fileobj=data)
            with tarfile.open(fileobj=data, mode="r|") as layer_tar:
                for entry in layer_tar:
                    name = entry.name.removeprefix("./").rstrip("/")
                    head, _, base = name.rpartition("/")
                    if base.startswith(".wh."):  # a whiteout: a lower layer's path is deleted
                        gone = f"{head}/{base[4:]}" if head else base[4:]
                        paths = {p for p in paths if p != gone and not p.startswith(gone + "/")}
                    else:
                        paths.add(name)
    return Image(config=config, paths=frozenset(paths))


@pytest.fixture(scope="module")
def images() -> dict[str, Image]:
    if shutil.which("buildah") is None or shutil.which("mmdebstrap") is None:
        pytest.skip("buildah and mmdebstrap build the images (make install installs them)")
    done = subprocess.run(
        ["bash", str(REPO / "hack/images.sh"), "build", "artpulse-operator", "artpulse-inference"],
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert done.returncode == 0, f"hack/images.sh build failed:\n{done.stdout}\n{done.stderr}"
    return {
        name: read_image(ARCHIVES / f"{name}.tar")
        for name in ["artpulse-operator", "artpulse-inference"]
    }


@pytest.mark.parametrize("name", ["artpulse-operator", "artpulse-inference"])
def test_runs_as_10001_behind_tini(images: dict[str, Image], name: str) -> None:
    image = images[name]
    config = image.config["config"]
    assert config["User"].split(":")[0] == "10001"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert "usr/bin/tini" in image.paths
    assert "opt/artpulse/bin/python" in image.paths
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == name
    assert labels["org.opencontainers.image.version"] == "0.1.0"


def test_the_operator_image_holds_the_operator_and_no_ml_stack(images: dict[str, Image]) -> None:
    image = images["artpulse-operator"]
    site = image.site_packages()
    assert "artpulse_operator" in site
    assert {"kopf", "kubernetes", "httpx", "aiohttp"} <= site
    assert not site & set(ML_STACK), site & set(ML_STACK)
    assert "artpulse_inference" not in site
    assert image.config["config"]["Cmd"] == ["python", "-m", "artpulse_operator"]
    assert "opt/artpulse/bin/kubectl-artpulse" not in image.paths  # the plugin ships apart


def test_the_inference_image_holds_the_ml_stack_and_no_operator(images: dict[str, Image]) -> None:
    image = images["artpulse-inference"]
    site = image.site_packages()
    assert {"artpulse_inference", "sklearn", "mlflow", "fastapi", "uvicorn"} <= site
    assert "artpulse_operator" not in site
    assert "kopf" not in site
    assert image.config["config"]["Cmd"] == ["artpulse-server"]
    prefix = "opt/artpulse/lib/python3.11/site-packages/artpulse_inference"
    assert f"{prefix}/templates/landing.html" in image.paths
    assert f"{prefix}/static/app.css" in image.paths

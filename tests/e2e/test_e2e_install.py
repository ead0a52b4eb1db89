"""dist/install.yaml, as `make release` renders it, installs the operator on the real node and a
canary runs through it to promotion.

The session's ArtPulse came from the local overlay. Here its operator is taken away (the
Deployment, its ServiceAccount, ClusterRole, binding and the peering object), and the release
bundle is applied once, exactly as rendered, with its registry-qualified images. The
node has no registry to pull from, so the locally built images are tagged with the release's
names in its containerd first, as a mirror would hold them. MLflow, Prometheus and the Gateway
stay: the bundle expects them at its default addresses. The CRDs stay too: deleting one would
delete every other scenario's models. Afterwards the local overlay is applied again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from artpulse_dev import release

from .e2e_support import E2E, canary_promotes, operator_pods_run, tag_local_image, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

OPERATOR_PARTS = (
    ("deployment", "artpulse-system", "artpulse-operator"),
    ("serviceaccount", "artpulse-system", "artpulse-operator"),
    ("clusterrolebinding", None, "artpulse-operator"),
    ("clusterrole", None, "artpulse-operator"),
    ("clusterkopfpeering", None, "artpulse-operator"),
)


def test_install_yaml_installs_the_operator_and_a_canary_promotes(
    artpulse: E2E, tmp_path: Path
) -> None:
    kubectl = artpulse.local.kubectl
    bundles = release.build(str(artpulse.local.node.binaries.kubectl), tmp_path / "dist")
    for program, ref in release.image_tags().items():
        tag_local_image(artpulse, program, ref)
    for kind, namespace, name in OPERATOR_PARTS:
        where = ["-n", namespace] if namespace else []
        kubectl("delete", kind, name, *where, "--ignore-not-found", "--wait=true", timeout=180)
    wait_for(lambda: not artpulse.local.operator_pods(), 180, "the overlay's operator pods gone")
    try:
        applied = kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(bundles["install.yaml"]),
            check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr  # one apply, nothing to retry
        operator_pods_run(artpulse, release.image_tags()["artpulse-operator"])
        story = canary_promotes(artpulse, "install", "the release's operator")
        story.kubectl("delete", "apm", story.name, "-n", story.namespace, "--wait=false")
    finally:
        artpulse.local.install()  # the overlay's operator again, for the scenarios after

"""The e2e package's cluster: ArtPulse installed on the session's real node, once.

`artpulse` installs `manifests/overlays/local` on the session `cluster` (the operator
as 2 pods with peering, MLflow, Prometheus, Traefik), trains v1 and v2 once with the
real `artpulse` CLI against the in-cluster MLflow, and hands each scenario a `Story`
on a namespace and a model name of its own (copies of those versions), so scenarios do
not share aliases. At the end the models are deleted with the operator still running
(its finalizers) and the overlay is removed, leaving the node to the other tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from artpulse_dev.cluster import Cluster
from artpulse_dev.localcluster import LocalCluster
from artpulse_dev.story import Story

from .e2e_support import E2E, SCENARIOS


@pytest.fixture(scope="package")
def artpulse(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    suffix = uuid.uuid4().hex[:6]
    namespaces = {s: f"e2e-{s}-{suffix}" for s in SCENARIOS}
    workdir = tmp_path_factory.mktemp("e2e")
    local = LocalCluster(state_dir=workdir / "artpulse", cluster=cluster).start()
    try:
        base = Story(
            local, workdir=workdir, namespace=namespaces["canary"], model=f"e2e-base-{suffix}"
        )
        base.demo_data(per_class=60)
        v1 = base.train("--no-alias")
        v2 = base.train("--no-alias", "--param", "C=2.0")
        yield E2E(local, namespaces, workdir, base, v1, v2)
    finally:
        for ns in namespaces.values():
            # With the operator still running, so its finalizers are handled.
            cluster.kubectl(
                "delete", "artpulsemodels", "--all", "-n", ns, "--timeout=60s", check=False
            )
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        local.uninstall()

"""Session fixtures for the real parts: Kubernetes, MLflow and Prometheus.

- `control_plane`: an API-only plane (etcd + kube-apiserver on loopback, no pods), for
  tests of the API's validation and RBAC and of the operator's objects; seconds to start.
- `cluster`: the real one-node cluster (`artpulse_dev.cluster`: controllers, scheduler,
  kubelet, containerd, kube-proxy, cluster DNS, our images), started the first time a
  test asks for it; one per session, since a node is the machine's.
- one MLflow server per session; a Prometheus per test that asks for one.

Tests marked `node_lifecycle` start and crash clusters of their own, so they run first,
before the session's cluster exists. Everything is stopped at the end, leaving no process
behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from artpulse_dev.cluster import Cluster
from artpulse_dev.controlplane import ControlPlane
from artpulse_dev.mlflow_server import MlflowServer
from artpulse_dev.prometheus import Prometheus

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane")).start()
    try:
        yield plane
    finally:
        plane.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Node lifecycle tests first: they need the machine's node to themselves."""
    items.sort(key=lambda item: item.get_closest_marker("node_lifecycle") is None)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    node = Cluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    try:
        yield server
    finally:
        server.stop()


PrometheusFactory = Callable[..., Prometheus]


@pytest.fixture
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    started: list[Prometheus] = []

    def start(
        targets: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        file_sd_dir: Path | None = None,
        scrape_interval: str = "1s",
        extra_labels: dict[str, str] | None = None,
    ) -> Prometheus:
        prom = Prometheus(
            tmp_path_factory.mktemp("prometheus"),
            targets=targets,
            rule_files=rule_files,
            file_sd_dir=file_sd_dir,
            scrape_interval=scrape_interval,
            evaluation_interval=scrape_interval,
            extra_labels=extra_labels or {},
        )
        started.append(prom)
        return prom.start()

    try:
        yield start
    finally:
        for prom in started:
            prom.stop()

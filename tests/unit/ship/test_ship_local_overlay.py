"""The local overlay (`manifests/overlays/local`) changes only what a one-node cluster needs.

Its Prometheus configuration is components/prometheus's with a 1 s scrape and evaluation interval (the
e2e gates check every 5 s over 20 s), nothing else: a job added there and forgotten
here would go unscraped locally. Its images are the locally built ones, and the fixed
ClusterIPs it pins are the ones the harness reaches the parts at.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml
from artpulse_dev import localcluster
from artpulse_inference.server.__main__ import KEEP_ALIVE_SECONDS

REPO = Path(__file__).resolve().parents[3]
LOCAL = REPO / "manifests" / "overlays" / "local"
# Where the harness reaches MLflow, Prometheus and the gateway: ClusterIPs the overlay pins.
PINNED_IPS = [
    url.split("//")[1].split(":")[0]
    for url in (
        localcluster.MLFLOW_HOST_URL,
        localcluster.PROMETHEUS_HOST_URL,
        localcluster.GATEWAY_HOST_URL,
    )
]


def test_prometheus_config_is_the_base_with_a_faster_scrape() -> None:
    base = yaml.safe_load((REPO / "manifests/components/prometheus/prometheus.yml").read_text())
    local = yaml.safe_load((LOCAL / "prometheus.yml").read_text())
    assert local["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    assert base["global"]["scrape_interval"] != "1s"
    base.pop("global")
    local.pop("global")
    assert local == base


def test_images_are_the_locally_built_ones() -> None:
    kustomization = yaml.safe_load((LOCAL / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    assert all(ref.startswith("localhost/artpulse-") for ref in images.values()), images
    assert images["ghcr.io/artpulse/artpulse-inference"] == localcluster.INFERENCE_IMAGE


def test_the_fixed_cluster_ips_are_the_ones_the_harness_uses() -> None:
    text = (LOCAL / "kustomization.yaml").read_text() + (LOCAL / "gateway.yaml").read_text()
    for ip in PINNED_IPS:
        assert f"clusterIP: {ip}" in text, ip


def test_the_gateway_closes_idle_upstream_connections_before_the_server_does() -> None:
    (deployment,) = [
        d
        for d in yaml.safe_load_all((LOCAL / "gateway.yaml").read_text())
        if d and d["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    flag = "--serversTransport.forwardingTimeouts.idleConnTimeout="
    (idle,) = [a.removeprefix(flag) for a in container["args"] if a.startswith(flag)]
    assert idle.endswith("s")
    assert float(idle.removesuffix("s")) < KEEP_ALIVE_SECONDS


def test_kind_gives_the_overlay_its_service_range() -> None:
    """`make kind-up` installs this overlay: its pinned ClusterIPs must be in kind's range."""
    kind = yaml.safe_load((REPO / "hack" / "kind-config.yaml").read_text())
    services = ipaddress.ip_network(kind["networking"]["serviceSubnet"])
    for ip in PINNED_IPS:
        assert ipaddress.ip_address(ip) in services, ip

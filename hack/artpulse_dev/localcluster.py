"""ArtPulse on the local one-node cluster: the shipped manifests, applied as a user would.

Development tooling, not part of the product. On a running `cluster.Cluster` (the
test session's, or one started here) it applies `manifests/overlays/local` with
`kubectl apply --server-side -k` and waits until everything runs as pods from the
locally built images: the operator (2 replicas, Kopf peering, its own ServiceAccount
and the shipped RBAC), MLflow, Prometheus (Kubernetes service discovery) and Traefik
serving the Gateway `gateway/artpulse-gateway`.

    python -m artpulse_dev.localcluster up       # cluster + ArtPulse, left running
    python -m artpulse_dev.localcluster status   # pods, models, where things are
    python -m artpulse_dev.localcluster down     # stop everything, leave nothing behind

The host reaches the parts at fixed ClusterIPs (the overlay pins them) through
kube-proxy's rules; pods reach them by their Service names through cluster DNS.
`make cluster-up`, `make cluster-down` and `hack/demo.py` call this module; the e2e
tests use `LocalCluster` on the session cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from artpulse_dev._proc import wait_until
from artpulse_dev.cluster import Cluster, stop_active
from artpulse_dev.controlplane import OPERATOR_NAMESPACE, REPO_ROOT

log = logging.getLogger("artpulse_dev.localcluster")

DEFAULT_STATE_DIR = REPO_ROOT / ".artpulse" / "cluster"
LOCAL_OVERLAY = REPO_ROOT / "manifests" / "overlays" / "local"
# The overlay's fixed ClusterIPs (manifests/overlays/local/kustomization.yaml, gateway.yaml).
MLFLOW_HOST_URL = "http://10.0.0.50:5000"
PROMETHEUS_HOST_URL = "http://10.0.0.51:9090"
GATEWAY_HOST_URL = "http://10.0.0.80"
# What pods (the operator, the inference servers) use: Service names through cluster DNS.
MLFLOW_CLUSTER_URL = f"http://mlflow.{OPERATOR_NAMESPACE}.svc:5000"
PROMETHEUS_CLUSTER_URL = f"http://prometheus.{OPERATOR_NAMESPACE}.svc:9090"
GATEWAY = {"name": "artpulse-gateway", "namespace": "gateway"}
WORKLOADS = (
    (OPERATOR_NAMESPACE, "mlflow"),
    (OPERATOR_NAMESPACE, "prometheus"),
    ("gateway", "traefik"),
    (OPERATOR_NAMESPACE, "artpulse-operator"),
)
INFERENCE_IMAGE = "localhost/artpulse-inference:0.1.0"


@dataclass
class LocalCluster:
    """ArtPulse installed from the local overlay on `cluster` (started here when None)."""

    state_dir: Path = DEFAULT_STATE_DIR
    cluster: Cluster | None = None
    with_operator: bool = True
    _own_cluster: bool = False
    images: dict[str, str] = field(default_factory=dict)

    # -- where things are -------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def node(self) -> Cluster:
        assert self.cluster is not None, "the cluster is not started"
        return self.cluster

    @property
    def kubeconfig(self) -> Path:
        return self.node.kubeconfig

    @property
    def tracking_uri(self) -> str:
        """MLflow as the host sees it (training, the demo's and the tests' clients)."""
        return MLFLOW_HOST_URL

    @property
    def prometheus_url(self) -> str:
        return PROMETHEUS_HOST_URL

    @property
    def gateway_url(self) -> str:
        return GATEWAY_HOST_URL

    def describe(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "kubectl": str(self.node.binaries.kubectl),
            "mlflow": self.tracking_uri,
            "prometheus": self.prometheus_url,
            "gateway": self.gateway_url,
            "logs": str(self.logs_dir),
            "nodeLogs": str(self.node.logs_dir),
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.node.kubectl(*args, input=input, check=check, timeout=timeout)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> LocalCluster:
        self.state_dir = self.state_dir.resolve()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.cluster is None:
            self.cluster = Cluster(self.state_dir / "node")
            self._own_cluster = True
            self.cluster.start()
        try:
            self.install()
        except BaseException:
            self.stop()
            raise
        return self

    def install(self) -> None:
        """`kubectl apply --server-side -k manifests/overlays/local`, then wait for the pods."""
        started = time.monotonic()
        # Twice: the first pass creates the CRDs (Kopf's peering kinds) that later objects need.
        rendered = self.kubectl("kustomize", str(LOCAL_OVERLAY)).stdout
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered, check=False
        )
        self.kubectl("wait", "--for", "condition=Established", "crd", "--all", "--timeout", "60s")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=rendered)
        if not self.with_operator:
            self.scale_operator(0)
        for namespace, name in WORKLOADS:
            if name == "artpulse-operator" and not self.with_operator:
                continue
            self.kubectl(
                "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout", "300s",
                timeout=320,
            )  # fmt: skip
        wait_until(self._gateway_programmed, 120, "Gateway gateway/artpulse-gateway programmed")
        wait_until(
            lambda: urllib.request.urlopen(f"{MLFLOW_HOST_URL}/health", timeout=2).status == 200,
            120,
            "MLflow through its ClusterIP",
        )
        log.info("ArtPulse installed in %.0f s", time.monotonic() - started)

    def _gateway_programmed(self) -> bool:
        out = self.kubectl(
            "-n", GATEWAY["namespace"], "get", "gateway", GATEWAY["name"], "-o",
            "jsonpath={.status.conditions[?(@.type=='Programmed')].status}", check=False,
        ).stdout  # fmt: skip
        return out.strip() == "True"

    def uninstall(self) -> None:
        """Remove what the overlay installed but its CRDs, and wait until it is gone.

        The session cluster goes on for other tests. CRDs stay, as Helm leaves them: deleting
        one deletes every object of its kind in the cluster, other tenants' too. Waiting means
        that no operator pod of the overlay is still acting, and that its namespaces are free
        to be made again, when the next test begins.
        """
        rendered = self.kubectl("kustomize", str(LOCAL_OVERLAY)).stdout
        kept = [
            doc
            for doc in yaml.safe_load_all(rendered)
            if doc and doc.get("kind") != "CustomResourceDefinition"
        ]
        self.kubectl(
            "delete", "--ignore-not-found", "--wait=true", "--timeout=300s", "-f", "-",
            input=yaml.safe_dump_all(kept), timeout=320,
        )  # fmt: skip

    def scale_operator(self, replicas: int) -> None:
        self.kubectl(
            "-n", OPERATOR_NAMESPACE, "scale", "deployment/artpulse-operator",
            f"--replicas={replicas}",
        )  # fmt: skip

    def operator_pods(self) -> list[dict[str, Any]]:
        out = self.kubectl(
            "-n", OPERATOR_NAMESPACE, "get", "pods", "-l",
            "app.kubernetes.io/name=artpulse-operator", "-o", "json",
        ).stdout  # fmt: skip
        return list(json.loads(out).get("items") or [])

    def active_operator(self) -> str | None:
        """The operator pod Kopf peering made active: the one that is not paused."""
        out = self.kubectl(
            "get", "clusterkopfpeering", "artpulse-operator", "-o", "json", check=False
        ).stdout
        if not out.strip():
            return None
        peers = dict(json.loads(out).get("status") or {})
        pods = {p["metadata"]["name"] for p in self.operator_pods()}
        # The highest-priority live peer is active; equal priorities: Kopf pauses both
        # sides until one leaves, so the operator sets distinct priorities per pod.
        live = sorted(
            ((int(v.get("priority", 0)), k) for k, v in peers.items() if isinstance(v, dict)),
            reverse=True,
        )
        for _priority, peer_id in live:
            for pod in pods:
                if pod in peer_id:
                    return str(pod)
        return None

    def stop(self) -> None:
        if self._own_cluster and self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the background cluster (`up` / `down` / `status`) ----------------------------------


def _print_where(info: dict[str, Any]) -> None:
    print(f"""the local cluster is up: one real node, ArtPulse running as pods
  MLflow       {info["mlflow"]}
  Prometheus   {info["prometheus"]}
  gateway      {info["gateway"]}   (Traefik; routes are told apart by their Host header)
  logs         {info["nodeLogs"]}

  export KUBECONFIG={info["kubeconfig"]}
  export PATH={Path(str(info["kubectl"])).parent}:$PATH
  kubectl get pods -A; kubectl get apm -A -w
stop it with `make cluster-down`""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m artpulse_dev.localcluster", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--no-operator", action="store_true", help="everything but the operator")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state_dir = args.state_dir.resolve()
    info_file = state_dir / "cluster.json"
    if args.command == "down":
        found = stop_active()
        info_file.unlink(missing_ok=True)
        print("local cluster stopped" if found else "no local cluster was running")
        return 0
    if args.command == "status":
        if not info_file.exists():
            print("no local cluster is running")
            return 1
        info = json.loads(info_file.read_text())
        _print_where(info)
        subprocess.run([info["kubectl"], "--kubeconfig", info["kubeconfig"], "get", "pods", "-A"])
        return 0
    local = LocalCluster(state_dir=state_dir, with_operator=not args.no_operator).start()
    info_file.write_text(json.dumps(local.describe(), indent=1))
    _print_where(local.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

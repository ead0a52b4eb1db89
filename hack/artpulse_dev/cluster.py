"""A real one-node Kubernetes cluster on this machine, started and stopped with one call.

Used by the test session (`tests/conftest.py`, the `cluster` fixture), by `make
cluster-up` / `make cluster-down` (through `localcluster.py`, which adds ArtPulse on
top) and by the demo. It starts, in order:

1. the host network (`hostnet.py`): the `cni0` bridge with the node's address and
   the egress guard;
2. the control plane (`controlplane.py`): etcd and kube-apiserver advertising the
   bridge address, ServiceAccount admission and token issuance on;
3. kube-controller-manager with its default controllers (deployment, replicaset,
   endpointslice, garbage collector, serviceaccount-token, persistentvolume-binder,
   ...), each under its own ServiceAccount, and kube-scheduler;
4. the node (`node.py`): containerd with our images imported, the kubelet, kube-proxy;
5. cluster DNS (CoreDNS as a Deployment behind the `kube-dns` Service) and local
   storage (a default StorageClass with static volumes under the run directory).

One node per machine (the bridge, the kubelet's ports and the iptables rules are the
machine's): starting a cluster first stops whatever an earlier one, crashed or not,
left running or lying around (`ACTIVE_FILE` says where it was).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artpulse_dev import hostnet
from artpulse_dev._proc import spawn, stop, stop_pid
from artpulse_dev.controlplane import CACHE_DIR, REPO_ROOT, Binaries, ControlPlane, find_binaries
from artpulse_dev.hostnet import NodeNetwork
from artpulse_dev.node import NODE_NAME, Node

log = logging.getLogger("artpulse_dev.cluster")

ACTIVE_FILE = CACHE_DIR / "active-node.json"
CONTAINERD_ROOT = CACHE_DIR / "containerd"
IMAGES_SCRIPT = REPO_ROOT / "hack" / "images.sh"
ADDONS_DIR = REPO_ROOT / "hack" / "cluster"
STATIC_VOLUMES = 6


def image_refs() -> dict[str, str]:
    """Image name -> the local reference `hack/images.sh` tags it with."""
    out = subprocess.run(
        ["bash", str(IMAGES_SCRIPT), "list"], capture_output=True, text=True, check=True
    ).stdout
    refs = {}
    for ref in out.split():
        name = ref.rsplit("/", 1)[-1].split(":")[0]
        refs[name] = ref
    return refs


def build_and_import_images(node: Node) -> None:
    """`make images` (cached), then each archive into the node's containerd."""
    subprocess.run(["bash", str(IMAGES_SCRIPT), "build"], check=True, stdout=sys.stderr)
    subprocess.run(
        ["bash", str(IMAGES_SCRIPT), "import", "--address", str(node.containerd_socket)],
        check=True,
        stdout=sys.stderr,
    )


@dataclass
class Cluster:
    """The control plane, its controllers and one node, all real; `start()` returns when
    the node is Ready and cluster DNS answers."""

    run_dir: Path
    binaries: Binaries = field(default_factory=find_binaries)
    network: NodeNetwork = field(default_factory=NodeNetwork)
    plane: ControlPlane | None = None
    node: Node | None = None
    images: dict[str, str] = field(default_factory=dict)
    _controllers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def control_plane(self) -> ControlPlane:
        assert self.plane is not None, "the cluster is not started"
        return self.plane

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, input=input, check=check, timeout=timeout)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Cluster:
        self.run_dir = self.run_dir.resolve()
        stop_active()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.images = image_refs()
        hostnet.prepare(self.network)
        _write_active(self.run_dir, [])
        self.plane = ControlPlane(
            self.run_dir / "controlplane",
            binaries=self.binaries,
            advertise_address=self.network.node_ip,
            service_account_admission=True,
        ).start()
        self._start_controllers()
        self.node = _node(self.run_dir, self.binaries, self.network, self.images["artpulse-pause"])
        self.node.start_containerd()
        self._record()
        build_and_import_images(self.node)
        self.node.start()
        self._record()
        self._install_addons()
        log.info("cluster up in %.0f s", time.monotonic() - started)

    def _start_controllers(self) -> None:
        plane, bins, pki = self.control_plane, self.binaries, self.run_dir / "controlplane" / "pki"
        assert bins.kube_controller_manager is not None
        assert bins.kube_scheduler is not None
        kcm = spawn(
            [
                bins.kube_controller_manager,
                "--kubeconfig", plane.kubeconfig,
                "--authentication-kubeconfig", plane.kubeconfig,
                "--authorization-kubeconfig", plane.kubeconfig,
                "--use-service-account-credentials=true",
                "--service-account-private-key-file", pki / "sa.key",
                "--root-ca-file", pki / "ca.crt",
                "--cluster-signing-cert-file", pki / "ca.crt",
                "--cluster-signing-key-file", pki / "ca.key",
                "--service-cluster-ip-range", self.network.service_cidr,
                "--controllers", "*",
                "--leader-elect=false",
                "--bind-address", "127.0.0.1",
                "--v", "1",
            ],
            self.logs_dir / "kube-controller-manager.log",
        )  # fmt: skip
        scheduler = spawn(
            [
                bins.kube_scheduler,
                "--kubeconfig", plane.kubeconfig,
                "--authentication-kubeconfig", plane.kubeconfig,
                "--authorization-kubeconfig", plane.kubeconfig,
                "--leader-elect=false",
                "--bind-address", "127.0.0.1",
                "--v", "1",
            ],
            self.logs_dir / "kube-scheduler.log",
        )  # fmt: skip
        self._controllers = [kcm, scheduler]

    def _install_addons(self) -> None:
        """Cluster DNS and local storage, from `hack/cluster/`, with the local image refs."""
        volumes_dir = self.run_dir / "volumes"
        for i in range(STATIC_VOLUMES):
            path = volumes_dir / f"pv{i}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
        text = "\n---\n".join(p.read_text() for p in sorted(ADDONS_DIR.glob("*.yaml")))
        text = (
            text.replace("${COREDNS_IMAGE}", self.images["artpulse-coredns"])
            .replace("${DNS_SERVICE_IP}", self.network.dns_service_ip)
            .replace("${VOLUMES_DIR}", str(volumes_dir))
        )
        volumes = [
            _static_volume(f"local-pv{i}", volumes_dir / f"pv{i}") for i in range(STATIC_VOLUMES)
        ]
        self.kubectl("apply", "-f", "-", input=text + "\n---\n" + "\n---\n".join(volumes))
        self.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout", "180s",
            timeout=200,
        )  # fmt: skip

    def _record(self) -> None:
        pids = [p.pid for p in self._controllers]
        if self.plane is not None:
            pids += [p.pid for p in (self.plane._apiserver, self.plane._etcd) if p is not None]
        if self.node is not None:
            pids += self.node.pids()
        _write_active(self.run_dir, pids)

    def stop(self) -> None:
        """Stop every part and leave nothing behind (processes, containers, mounts, rules)."""
        if self.node is not None:
            self.node.stop()
        for proc in self._controllers:
            stop(proc)
        self._controllers = []
        if self.plane is not None:
            self.plane.stop()
        if self.node is None:
            hostnet.remove_leftovers(self.network, [])
        self.node = None
        self.plane = None
        ACTIVE_FILE.unlink(missing_ok=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _node(run_dir: Path, bins: Binaries, net: NodeNetwork, pause_image: str = "") -> Node:
    """The node of the cluster under `run_dir` (also to clean up after one that crashed)."""
    assert bins.kubelet is not None
    assert bins.kube_proxy is not None
    plane = run_dir / "controlplane"
    return Node(
        run_dir=run_dir / "node",
        containerd_root=CONTAINERD_ROOT,
        kubelet_bin=bins.kubelet,
        kube_proxy_bin=bins.kube_proxy,
        kubectl_bin=bins.kubectl,
        kubeconfig=plane / "admin.kubeconfig",
        ca_file=plane / "pki" / "ca.crt",
        pause_image=pause_image or "localhost/artpulse-pause:unused",
        network=net,
    )


def leftover_containers(run_dir: Path) -> list[str]:
    """Containers the node's containerd still holds (its root outlives the node: images)."""
    node = _node(run_dir, find_binaries(build=False), NodeNetwork())
    node.start_containerd()
    try:
        return node.containers()
    finally:
        node.stop()


def _static_volume(name: str, path: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"artpulse.io/local-volume": "true"}},
            "spec": {
                "capacity": {"storage": "20Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "local",
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [NODE_NAME],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )


def _write_active(run_dir: Path, pids: list[int]) -> None:
    ACTIVE_FILE.parent.mkdir(parents=True, exist_ok=True)
    ACTIVE_FILE.write_text(json.dumps({"runDir": str(run_dir), "pids": pids}))


def stop_active() -> list[str]:
    """Stop the machine's node, whoever started it, and remove what it left; returns that."""
    found: list[str] = []
    net = NodeNetwork()
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = dict(json.loads(ACTIVE_FILE.read_text()))
    for pid in state.get("pids") or []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), 0)
            found.append(f"process {pid}")
            stop_pid(int(pid))
    run_dir = Path(str(state["runDir"])) if state.get("runDir") else None
    if run_dir is not None and (run_dir / "node").is_dir():
        found += _node(run_dir, find_binaries(build=False), net).recover()
    else:
        found += hostnet.remove_leftovers(net, [])
    ACTIVE_FILE.unlink(missing_ok=True)
    if found:
        log.info("removed what an earlier node left: %s", ", ".join(found))
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m artpulse_dev.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".artpulse" / "node-cluster")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "down":
        found = stop_active()
        print("stopped" if found else "no cluster was running")
        return 0
    cluster = Cluster(args.run_dir).start()
    print(f"cluster up; export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One real Kubernetes node on this machine: containerd + runc + CNI, the kubelet and kube-proxy.

Used by `cluster.py`, which starts the control plane first. The recipe is the one
that ran here (`shared/REAL-NODE.md`):

- containerd from Debian with a configuration of its own (socket, state and config
  under the node's run directory), runc as the runtime, `restrict_oom_score_adj`
  (root has no CAP_SYS_RESOURCE in this VM), the locally built pause image as the
  sandbox, and every registry pointed at a closed loopback port: no image is ever
  pulled from outside, every image the node runs is built here and imported;
- the CNI bridge (`cni0`) and host-local IPAM from Debian, on the pod range, with the
  IPAM state under the run directory;
- the kubelet (cgroupfs, cgroup v1 allowed, no QoS cgroups) registering the node by
  its bridge address, with x509 and webhook authentication of the API server's
  kubelet client and cluster DNS;
- kube-proxy in iptables mode.

Images live in a containerd root under the cache directory, kept between clusters
the way kind keeps a node image's content; containers, sandboxes, mounts, network
namespaces and iptables rules never outlive `stop()`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from artpulse_dev import hostnet
from artpulse_dev._proc import spawn, stop, wait_until
from artpulse_dev.hostnet import NodeNetwork

NODE_NAME = "artpulse-node"
CNI_BIN_DIR = Path("/usr/lib/cni")
CLUSTER_DOMAIN = "cluster.local"
# A loopback port nothing listens on: containerd's every registry host resolves here.
CLOSED_REGISTRY = "http://127.0.0.1:9"


@dataclass
class Node:
    """The node's processes; `start()` returns when the node is Ready."""

    run_dir: Path
    containerd_root: Path
    kubelet_bin: Path
    kube_proxy_bin: Path
    kubectl_bin: Path
    kubeconfig: Path
    ca_file: Path
    pause_image: str
    network: NodeNetwork = field(default_factory=NodeNetwork)
    _containerd: subprocess.Popen[bytes] | None = None
    _kubelet: subprocess.Popen[bytes] | None = None
    _kube_proxy: subprocess.Popen[bytes] | None = None

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def socket_dir(self) -> Path:
        """A short directory of this node's own for containerd's sockets (a unix socket path
        must stay under 108 bytes, which a pytest temp dir can exceed)."""
        digest = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:10]
        return Path("/run") / f"artpulse-{digest}"

    @property
    def containerd_socket(self) -> Path:
        return self.socket_dir / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.run_dir / "kubelet"

    @property
    def containerd_state(self) -> Path:
        return self.run_dir / "containerd" / "state"

    def mount_roots(self) -> list[Path]:
        return [self.kubelet_root, self.containerd_state, self.containerd_root]

    def pids(self) -> list[int]:
        return [p.pid for p in (self._kube_proxy, self._kubelet, self._containerd) if p]

    # -- containerd -----------------------------------------------------------------

    def start_containerd(self) -> None:
        """containerd alone: images can be imported before the kubelet runs."""
        (self.run_dir / "containerd").mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.containerd_root.mkdir(parents=True, exist_ok=True)
        certs = self.run_dir / "containerd" / "certs.d" / "_default"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "hosts.toml").write_text(
            "# Every registry resolves to a closed loopback port: nothing is pulled from outside.\n"
            f'server = "{CLOSED_REGISTRY}"\n'
            f'[host."{CLOSED_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
        )
        cni_conf = self.run_dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-artpulse.conflist").write_text(json.dumps(self._cni_conflist(), indent=1))
        config = self.run_dir / "containerd" / "config.toml"
        config.write_text(self._containerd_config(cni_conf))
        log = self.logs_dir / "containerd.log"
        self._containerd = spawn(["containerd", "--config", config], log)
        wait_until(
            lambda: self.ctr("version", check=False).returncode == 0,
            60,
            "containerd",
            self._containerd,
            log,
            interval=0.2,
        )

    def _containerd_config(self, cni_conf: Path) -> str:
        return f"""version = 2
root = "{self.containerd_root}"
state = "{self.containerd_state}"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.pause_image}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{self.run_dir / "containerd" / "certs.d"}"
"""

    def _cni_conflist(self) -> dict[str, object]:
        net = self.network
        return {
            "cniVersion": "1.0.0",
            "name": "artpulse",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": net.bridge,
                    "isGateway": True,
                    # No masquerade: pods have no way past this machine (hostnet's guard too).
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": net.pod_cidr, "gateway": net.node_ip}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.run_dir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {done.stderr.strip()}")
        return done

    def images(self) -> set[str]:
        out = self.ctr("images", "ls", "-q", check=False).stdout
        return {line.strip() for line in out.splitlines() if line.strip()}

    def containers(self) -> list[str]:
        out = self.ctr("containers", "ls", "-q", check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def remove_containers(self) -> list[str]:
        """Kill and delete every container (pods' and sandboxes') this containerd holds."""
        ids = self.containers()
        for cid in ids:
            self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
        for cid in ids:
            for _ in range(50):
                if self.ctr("tasks", "delete", "-f", cid, check=False).returncode != 0:
                    break
                time.sleep(0.1)
            self.ctr("containers", "delete", cid, check=False)
        return ids

    # -- kubelet and kube-proxy -----------------------------------------------------

    def start(self) -> Node:
        """containerd (if not yet), the kubelet and kube-proxy; returns once the node is Ready."""
        if self._containerd is None:
            self.start_containerd()
        self._start_kubelet()
        self._start_kube_proxy()
        wait_until(
            self._node_ready,
            120,
            "node Ready",
            self._kubelet,
            self.logs_dir / "kubelet.log",
            interval=0.5,
        )
        return self

    def _start_kubelet(self) -> None:
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": self.network.node_ip,
            "healthzBindAddress": "127.0.0.1",
            "clusterDNS": [self.network.dns_service_ip],
            "clusterDomain": CLUSTER_DOMAIN,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "staticPodPath": "",
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
            },
            "resolvConf": "/etc/resolv.conf",
            "shutdownGracePeriod": "0s",
            "podPidsLimit": 4096,
            "maxPods": 110,
        }
        path = self.run_dir / "kubelet-config.yaml"
        path.write_text(yaml.safe_dump(config))
        log = self.logs_dir / "kubelet.log"
        self._kubelet = spawn(
            [
                self.kubelet_bin,
                "--config", path,
                "--kubeconfig", self.kubeconfig,
                "--root-dir", self.kubelet_root,
                "--cert-dir", self.kubelet_root / "pki",
                "--hostname-override", NODE_NAME,
                "--node-ip", self.network.node_ip,
                "--v", "1",
            ],
            log,
        )  # fmt: skip
        wait_until(
            lambda: (
                urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=1).status == 200
            ),
            60,
            "kubelet",
            self._kubelet,
            log,
            interval=0.25,
        )

    def _start_kube_proxy(self) -> None:
        log = self.logs_dir / "kube-proxy.log"
        self._kube_proxy = spawn(
            [
                self.kube_proxy_bin,
                "--kubeconfig", self.kubeconfig,
                "--proxy-mode", "iptables",
                "--cluster-cidr", self.network.pod_cidr,
                "--hostname-override", NODE_NAME,
                "--bind-address", self.network.node_ip,
                "--metrics-bind-address", "127.0.0.1:10249",
                "--healthz-bind-address", "127.0.0.1:10256",
                "--conntrack-max-per-core", "0",
                "--v", "1",
            ],
            log,
        )  # fmt: skip
        wait_until(
            lambda: (
                urllib.request.urlopen("http://127.0.0.1:10256/healthz", timeout=1).status
                in (200, 503)
            ),
            60,
            "kube-proxy",
            self._kube_proxy,
            log,
            interval=0.25,
        )

    def _node_ready(self) -> bool:
        done = subprocess.run(
            [
                str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), "get", "node", NODE_NAME,
                "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )  # fmt: skip
        return done.stdout.strip() == "True"

    # -- teardown -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the node and remove what it made: containers, mounts, netns, rules, bridge."""
        stop(self._kube_proxy)
        stop(self._kubelet)
        if self._containerd is not None and self._containerd.poll() is None:
            self.remove_containers()
        stop(self._containerd)
        self._kube_proxy = self._kubelet = self._containerd = None
        self.cleanup()

    def recover(self) -> list[str]:
        """After a crash: containerd picks up the shims of any containers still running, which
        are then killed and deleted, and everything else left behind is removed."""
        self.start_containerd()
        ids = self.remove_containers()
        stop(self._containerd)
        self._containerd = None
        return [f"container {c}" for c in ids] + self.cleanup()

    def cleanup(self) -> list[str]:
        """What a node leaves behind, removed; also what a crash or `kill -9` left behind."""
        for shim in _shims_of(self.socket_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim, 9)
        subprocess.run([str(self.kube_proxy_bin), "--cleanup"], capture_output=True, timeout=120)
        found = hostnet.remove_leftovers(self.network, self.mount_roots())
        shutil.rmtree(self.kubelet_root, ignore_errors=True)
        shutil.rmtree(self.containerd_state, ignore_errors=True)
        shutil.rmtree(self.run_dir / "cni" / "ipam", ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return found


def _shims_of(socket_dir: Path) -> list[int]:
    """containerd-shim processes of this node's containerd (their -address is in socket_dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and cmdline[0].endswith(b"containerd-shim-runc-v2")
            and str(socket_dir).encode() in b" ".join(cmdline)
        ):
            pids.append(int(proc.name))
    return pids

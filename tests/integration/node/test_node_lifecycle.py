"""A node goes down without a trace, and comes back after a crash.

Runs before the session's cluster exists (marker `node_lifecycle`, conftest.py): it
starts a cluster, runs a pod, then `kill -9`s its kubelet, containerd and kube-proxy
in the middle, as a crash would. A new cluster on another run directory must clear
what the crashed one left (its processes, its still-running containers, mounts, network
namespaces, iptables chains, the bridge) and come up working; its `stop()` must then
leave nothing: the leftovers REAL-NODE.md found by hand are each checked here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from artpulse_dev import hostnet
from artpulse_dev.cluster import (
    ACTIVE_FILE,
    CONTAINERD_ROOT,
    Cluster,
    _node,
    leftover_containers,
)
from artpulse_dev.controlplane import find_binaries
from artpulse_dev.hostnet import NodeNetwork

pytestmark = [pytest.mark.integration, pytest.mark.node_lifecycle, pytest.mark.timeout(900)]

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {{name: sleeper, namespace: default}}
spec:
  securityContext: {{runAsNonRoot: true, runAsUser: 10001}}
  containers:
    - name: main
      image: {image}
      imagePullPolicy: Never
      command: ["python", "-c", "import time; time.sleep(3600)"]
"""


def processes_under(run_dir: Path) -> list[str]:
    """Live processes whose command line names `run_dir` or its node's socket directory
    (every part of a node does, containerd's shims by their socket)."""
    marks = [
        str(run_dir),
        str(_node(run_dir, find_binaries(build=False), NodeNetwork()).socket_dir),
    ]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if any(m in cmdline for m in marks) and state != "Z":
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def sleeper_processes() -> list[str]:
    return [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"time.sleep(3600)" in _read(p / "cmdline")
    ]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def start_sleeper(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input=SLEEPER.format(image=cluster.images["artpulse-operator"])
    )
    cluster.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s", timeout=130)


def assert_nothing_left(run_dir: Path, net: hostnet.NodeNetwork) -> None:
    assert processes_under(run_dir) == []
    assert sleeper_processes() == [], "a pod's process outlived its node"
    assert hostnet.mounts_under([run_dir, CONTAINERD_ROOT]) == []
    assert hostnet.cni_netns() == []
    assert hostnet.owned_chains() == []
    link = subprocess.run(["ip", "link", "show", net.bridge], capture_output=True, text=True)
    assert link.returncode != 0, f"{net.bridge} is still there"
    assert not ACTIVE_FILE.exists()


def test_a_crashed_node_is_recovered_and_a_stopped_one_leaves_nothing(tmp_path: Path) -> None:
    first = Cluster(tmp_path / "first").start()
    start_sleeper(first)
    assert sleeper_processes()
    assert first.node is not None
    # A crash: the node's parts die at once, their containers go on running.
    for pid in first.node.pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert sleeper_processes(), "the pod should outlive a crashed kubelet and containerd"
    assert (first.run_dir / "node" / "kubelet").is_dir()

    second = Cluster(tmp_path / "second")
    try:
        second.start()
        # The crashed node's processes and pod are gone, and the new node works.
        assert processes_under(first.run_dir) == []
        assert sleeper_processes() == []
        start_sleeper(second)
        pods = json.loads(second.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
        assert {p["metadata"]["name"] for p in pods} >= {"sleeper"}
    finally:
        second.stop()
    assert_nothing_left(second.run_dir, second.network)
    assert_nothing_left(first.run_dir, second.network)
    # And no container is left in the node's containerd (it keeps only images).
    assert leftover_containers(second.run_dir) == []
    assert_nothing_left(second.run_dir, second.network)

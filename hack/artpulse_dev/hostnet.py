"""The host side of the local node: its bridge, its firewall rules and the leftovers a node leaves.

Used by `node.py` when the node comes up and goes down, and before a `cluster-up` that
follows a crash. Everything here acts only on what the harness itself creates:

- the bridge `cni0` with the node's address (the API server advertises it, so pods
  reach the API server through the `kubernetes` Service, and the CNI bridge plugin
  reuses the bridge);
- an egress guard: traffic from the pod range may go to the pod range, the Service
  range and this host, nothing else (no pod of ours ever reaches past the machine);
- on teardown, what REAL-NODE.md found left behind: CNI network namespaces, veth
  pairs (they go with their namespaces), the kubelet's and containerd's mounts,
  kube-proxy's, the kubelet's and our iptables chains, and the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Chains that kube-proxy, the kubelet, the CNI plugins and this module create.
OWNED_CHAIN = re.compile(r"^(KUBE-|CNI-|ARTPULSE-)")
EGRESS_CHAIN = "ARTPULSE-EGRESS"
NETNS_DIR = Path("/var/run/netns")


@dataclass(frozen=True)
class NodeNetwork:
    """The addresses of the local node: a bridge on the pod range, and the Service range."""

    bridge: str = "cni0"
    pod_cidr: str = "10.244.0.0/24"
    service_cidr: str = "10.0.0.0/16"

    @property
    def node_ip(self) -> str:
        """The bridge's address: the node's InternalIP, the pods' gateway, the API server's."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def kubernetes_service_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))

    @property
    def dns_service_ip(self) -> str:
        return str(ipaddress.ip_network(self.service_cidr).network_address + 10)


def _run(*argv: str, check: bool = True, input: str | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def prepare(net: NodeNetwork) -> None:
    """Kernel settings, the bridge with the node's address, and the egress guard."""
    for key, value in (
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
    ):
        path = Path("/proc/sys") / key
        if path.exists() and path.read_text().strip() != value:
            path.write_text(value)
    prefix = ipaddress.ip_network(net.pod_cidr).prefixlen
    if _run("ip", "link", "show", net.bridge, check=False) == "":
        _run("ip", "link", "add", net.bridge, "type", "bridge")
    addresses = _run("ip", "-o", "-4", "addr", "show", "dev", net.bridge)
    if f"{net.node_ip}/{prefix}" not in addresses:
        _run("ip", "addr", "add", f"{net.node_ip}/{prefix}", "dev", net.bridge)
    _run("ip", "link", "set", net.bridge, "up")
    _share_netns_dir()
    _install_egress_guard(net)


def _share_netns_dir() -> None:
    """Make the netns directory a shared mount point before containerd mounts pods' namespaces
    in it, as `ip netns add` would do on first use: done later, that bind mount would stack
    over the pods' namespace mounts and hide them (they could then not be removed)."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mountpoint", "-q", str(NETNS_DIR)]).returncode != 0:
        _run("mount", "--bind", str(NETNS_DIR), str(NETNS_DIR))
    _run("mount", "--make-shared", str(NETNS_DIR))


def _install_egress_guard(net: NodeNetwork) -> None:
    """Pods may reach pods, Services (DNAT happens before FORWARD) and this host; nothing else."""
    if _run("iptables", "-S", EGRESS_CHAIN, check=False) == "":
        _run("iptables", "-N", EGRESS_CHAIN)
    _run("iptables", "-F", EGRESS_CHAIN)
    for allowed in (net.pod_cidr, net.service_cidr):
        _run("iptables", "-A", EGRESS_CHAIN, "-d", allowed, "-j", "RETURN")
    _run("iptables", "-A", EGRESS_CHAIN, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
    jump = ["FORWARD", "-s", net.pod_cidr, "-j", EGRESS_CHAIN]
    if subprocess.run(["iptables", "-C", *jump], capture_output=True).returncode != 0:
        _run("iptables", "-I", *jump)


def remove_leftovers(net: NodeNetwork, mount_roots: list[Path]) -> list[str]:
    """Remove everything a node leaves behind (also after a crash); returns what was found."""
    found: list[str] = []
    found += _unmount_under(mount_roots)
    found += _delete_cni_netns()
    found += _flush_owned_chains()
    if _run("ip", "link", "show", net.bridge, check=False):
        found += _delete_ports_of(net.bridge)
        _run("ip", "link", "delete", net.bridge, check=False)
        found.append(f"bridge {net.bridge}")
    return found


def mounts_under(roots: list[Path]) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    resolved = [str(r.resolve()) for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == r or point.startswith(r + "/") for r in resolved):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _unmount_under(roots: list[Path]) -> list[str]:
    points = mounts_under(roots)
    for point in points:
        _run("umount", "-l", point, check=False)
    return [f"mount {p}" for p in points]


def cni_netns() -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith("cni-"))


def _delete_cni_netns() -> list[str]:
    names = cni_netns()
    for name in names:
        if subprocess.run(["ip", "netns", "delete", name], capture_output=True).returncode != 0:
            # A bind mount of the directory stacked over the namespace's own mount (a node
            # from before `_share_netns_dir`): lift it so the namespace can go.
            while subprocess.run(["umount", str(NETNS_DIR)], capture_output=True).returncode == 0:
                pass
            _run("ip", "netns", "delete", name, check=False)
        with contextlib.suppress(OSError):
            (NETNS_DIR / name).unlink()
    if NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()):
        # The shared bind mount `_share_netns_dir` made, now that no namespace needs it.
        subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
    return [f"netns {n}" for n in names]


def _delete_ports_of(bridge: str) -> list[str]:
    """veth ends still attached to the bridge (a pod's namespace held open by a stray process)."""
    gone = []
    for line in _run("ip", "-o", "link", "show", "master", bridge, check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        _run("ip", "link", "delete", name, check=False)
        gone.append(f"veth {name}")
    return gone


def owned_chains() -> list[str]:
    """`table/chain` for every chain of ours, kube-proxy's, the kubelet's or CNI's, v4 and v6."""
    chains = []
    for tool in ("iptables", "ip6tables"):
        for line in _run(f"{tool}-save", check=False).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and OWNED_CHAIN.match(line[1:]):
                chains.append(f"{tool}:{table}/{line[1:].split()[0]}")
    return chains


def _flush_owned_chains() -> list[str]:
    """Drop our chains and every rule that jumps to one, keeping everybody else's rules."""
    found = owned_chains()
    for tool in ("iptables", "ip6tables"):
        saved = _run(f"{tool}-save", check=False)
        if not saved:
            continue
        kept = []
        for line in saved.splitlines():
            if line.startswith(":") and OWNED_CHAIN.match(line[1:]):
                continue
            if line.startswith("-A ") and _mentions_owned_chain(line):
                continue
            kept.append(line)
        if len(kept) != len(saved.splitlines()):
            _run(f"{tool}-restore", input="\n".join(kept) + "\n")
    return found


def _mentions_owned_chain(rule: str) -> bool:
    words = rule.split()
    chain = words[1]
    targets = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g")]
    return bool(OWNED_CHAIN.match(chain)) or any(OWNED_CHAIN.match(t) for t in targets)

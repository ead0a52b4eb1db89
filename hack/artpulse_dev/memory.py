"""What the local cluster costs in memory: every process of it, grouped by part.

Used by the demo's summary and by `python -m artpulse_dev.memory RUN_DIR [SOCKET_DIR]`. A process
belongs to the cluster when its command line names the cluster's run directory (etcd,
the API server, the controllers, the kubelet, kube-proxy and containerd do) or the node's
socket directory (containerd's shims, which daemonize away from containerd, do), or when
it descends from one of those (every container of every pod). Memory is
the proportional set size (PSS: shared pages split between their users), so the parts
add up to what the cluster really holds.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, name, command line)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(proc.name)] = (ppid, name, cmdline)
    return found


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cluster_memory(*markers: Path) -> dict[str, float]:
    """MiB of PSS by part: the node's own processes by name, pods' processes as 'pods:<cmd>'.

    ``markers``: the paths whose mention in a command line makes a process the cluster's own
    (the run directory, the node's socket directory).
    """
    procs = _processes()
    roots = {pid for pid, (_, _, cmd) in procs.items() if any(str(m) in cmd for m in markers)}
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in procs.items():
        children[ppid].append(pid)
    usage: dict[str, float] = defaultdict(float)
    for root in roots:
        name = procs[root][1]
        usage[name] += _pss_kib(root) / 1024
        stack = list(children[root])
        while stack:
            pid = stack.pop()
            if pid in roots:
                continue
            usage[f"pods:{procs[pid][1]}"] += _pss_kib(pid) / 1024
            stack.extend(children[pid])
    return dict(sorted(usage.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if not args:
        print("usage: python -m artpulse_dev.memory RUN_DIR [SOCKET_DIR]", file=sys.stderr)
        return 2
    usage = cluster_memory(*(Path(a).resolve() for a in args))
    for part, mib in usage.items():
        print(f"{mib:8.1f} MiB  {part}")
    print(f"{sum(usage.values()):8.1f} MiB  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())

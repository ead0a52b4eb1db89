"""What every benchmark report shares: the machine line, and its own section of
docs/benchmarks.md, leaving the other sections alone.

Each script in loadtest/ owns the text between `<!-- BEGIN <marker> -->` and
`<!-- END <marker> -->`; a first run appends its section.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(marker: str, text: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace (or append) the `marker` section; `text` includes its own BEGIN/END lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- BEGIN {marker} -->.*?<!-- END {marker} -->", re.S)
    if pattern.search(current):
        current = pattern.sub(lambda _: text, current)
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)
    return path


def machine_facts(versions: Mapping[str, str]) -> dict[str, str]:
    """CPUs, CPU model, RAM and Python, then the benchmark's own `versions`, then the load."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    mem_kb = int(match[1]) if match else 0
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        **versions,
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }

"""Writes one benchmark's section of docs/benchmarks.md, leaving the other sections alone.

Each script in loadtest/ owns the text between `<!-- BEGIN <marker> -->` and
`<!-- END <marker> -->`; a first run appends its section.
"""

from __future__ import annotations

import re
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

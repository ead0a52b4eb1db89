"""The CRD case table (tests/data/operator/crd_cases.yaml) and how a case's spec is built:
the table's base spec with the case's keys laid over it (``None`` drops a key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CASES: dict[str, Any] = yaml.safe_load(
    (REPO / "tests" / "data" / "operator" / "crd_cases.yaml").read_text()
)


def merge_spec(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_spec(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out

"""Shared helpers of the training integration tests (small generated image sets)."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from artpulse_inference.cli import main
from artpulse_inference.core.features import FEATURE_NAMES, features_from_path
from artpulse_inference.training.demo_data import generate_demo_dataset

PER_CLASS = 8  # 6 styles x 8 = 48 images: passes the default gate, trains in a second


def unique_name(prefix: str = "train-it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_dataset(root: Path, *, per_class: int = PER_CLASS, exposure: float = 1.0) -> Path:
    generate_demo_dataset(root, per_class=per_class, exposure=exposure)
    return root


def run_cli(argv: list[str]) -> tuple[int, dict | None, str]:
    """Run ``artpulse`` in-process; (exit code, last stdout line as JSON if any, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    payload = None
    if lines:
        try:
            payload = json.loads(lines[-1])
        except ValueError:
            payload = None
    return code, payload, err.getvalue()


def write_feature_rows(images_dir: Path, out: Path, *, wrapped: bool) -> Path:
    with out.open("w") as fh:
        for path in sorted(images_dir.rglob("*.jpg")):
            row = features_from_path(path)
            assert list(row) == list(FEATURE_NAMES)
            fh.write(json.dumps({"features": row} if wrapped else row) + "\n")
    return out

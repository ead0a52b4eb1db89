"""Feature-extraction throughput: 256x256 JPEGs to feature rows, decoding included.

    .venv/bin/python loadtest/bench_features.py [--images 600] [--workers 2] [--repeats 3]

Generates JPEGs with the demo-data painter (real, compressible pictures rather than
noise), then measures images per second for:

- a naive reference: full-resolution decode and five features in float numpy, one process
  (what the issue's anchor of about 485 images/s on one core describes);
- ``decode_image`` + ``extract_features`` one image at a time (the server's path);
- the same in batches of 64 (``features_matrix_from_bytes``);
- ``extract_features_from_paths`` over a process pool (the training path: files read from
  disk, decoded and featurised in worker processes).

Wall-clock and CPU-time figures are both reported: the machine may be shared, and images
per CPU-second says what the code costs regardless of what else runs. The target is at
least 800 images/s on 2 cores. Writes its section between ``<!-- BEGIN bench_features -->``
and ``<!-- END bench_features -->`` of docs/benchmarks.md (and prints it).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MARKER = "bench_features"

sys.path.insert(0, str(REPO / "inference"))

from artpulse_inference.core.features import (  # noqa: E402
    FEATURE_NAMES,
    decode_image,
    extract_features,
    features_matrix_from_bytes,
)
from artpulse_inference.training.dataset import extract_features_from_paths  # noqa: E402
from artpulse_inference.training.demo_data import STYLES, render_image  # noqa: E402
from report import machine_facts, write_section  # noqa: E402


def naive_features(data: bytes) -> list[float]:
    """The plain version: full decode, float HSV/grey at 256x256, five features."""
    import io

    image = Image.open(io.BytesIO(data)).convert("RGB")
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64) / 255.0
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    gx = np.abs(np.diff(grey, axis=1))
    gy = np.abs(np.diff(grey, axis=0))
    edges = ((gx[:-1, :] + gy[:, :-1]) > 0.1).mean()
    return [hsv[..., 0].mean(), hsv[..., 1].mean(), hsv[..., 2].mean(), grey.std(), float(edges)]


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its reaped children)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    return wall, cpu


def measure(name: str, fn: Callable[[], Any], n: int, repeats: int) -> dict[str, Any]:
    fn()  # warm up (imports, caches, pool start-up paths)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = timed(fn)
        walls.append(wall)
        cpus.append(cpu)
    result = {
        "name": name,
        "best": n / min(walls),
        "median": n / statistics.median(walls),
        "per_cpu_s": n / statistics.median(cpus) if statistics.median(cpus) > 0 else float("nan"),
    }
    print(
        f"{name:<55} best {result['best']:7.0f}/s  median {result['median']:7.0f}/s  "
        f"{result['per_cpu_s']:7.0f} per CPU-second",
        flush=True,
    )
    return result


def machine() -> dict[str, str]:
    return machine_facts({"numpy": np.__version__, "pillow": PIL.__version__})


def render(results: list[dict[str, Any]], info: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Image features (loadtest/bench_features.py)",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {info['cpus']} CPUs "
        f"({info['cpu']}), {info['ram']} RAM, load average at the end {info['load']} "
        f"(the machine is shared). Python {info['python']}, numpy {info['numpy']}, "
        f"Pillow {info['pillow']}. {args.images} demo-data JPEGs of 256x256 "
        f"({len(FEATURE_NAMES)} features each), best and median of {args.repeats} runs.",
        "",
        "| path | best images/s | median images/s | images per CPU-second |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['best']:.0f} | {r['median']:.0f} | {r['per_cpu_s']:.0f} |"
        )
    naive = results[0]
    single = next(r for r in results if r["name"].startswith("batched"))
    pool = results[-1]
    speedup = single["per_cpu_s"] / naive["per_cpu_s"]
    lines += [
        "",
        f"Target: at least 800 images/s on 2 cores, decoding included. The pool measured "
        f"{pool['best']:.0f} images/s (best) on this machine as it was loaded; from the CPU "
        f"cost, two otherwise idle cores give about {2 * single['per_cpu_s']:.0f} images/s "
        "(2 x the batched single-process images per CPU-second). Per CPU-second the batched "
        f"path does {speedup:.1f}x the naive reference's work in the same run; scaled to the "
        f"issue's anchor (the naive version at about 485 images/s on one idle core) that is "
        f"about {485 * speedup:.0f} images/s per core. What makes it fast: JPEGs "
        "are decoded at reduced DCT scale (`Image.draft`, 256 -> 64 pixels) so libjpeg skips "
        "most of the inverse DCT; every image is featurised at 64x64; sums run on 8-bit "
        "integers and 256-bin histograms (`bincount`) instead of float images; batches go "
        "to a process pool.",
        "",
        f"<!-- END {MARKER} -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    blobs = [
        render_image(STYLES[i % len(STYLES)], i // len(STYLES), size=256)
        for i in range(args.images)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        paths = []
        for i, data in enumerate(blobs):
            path = Path(tmp) / f"{i:05d}.jpg"
            path.write_bytes(data)
            paths.append(path)
        n = len(blobs)
        results = [
            measure(
                "naive reference: full decode, 5 float features, 1 process",
                lambda: [naive_features(b) for b in blobs],
                n,
                args.repeats,
            ),
            measure(
                "decode_image + extract_features, one at a time, 1 process",
                lambda: [extract_features(decode_image(b)) for b in blobs],
                n,
                args.repeats,
            ),
            measure(
                "batched (64) decode + features, 1 process",
                lambda: [features_matrix_from_bytes(blobs[i : i + 64]) for i in range(0, n, 64)],
                n,
                args.repeats,
            ),
            measure(
                f"files -> features, process pool of {args.workers} (training path)",
                lambda: extract_features_from_paths(paths, workers=args.workers),
                n,
                args.repeats,
            ),
        ]
    text = render(results, machine(), args)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(MARKER, text)}")


if __name__ == "__main__":
    main()

"""Memory benchmark: the inference server's RSS under concurrent hostile image uploads.

Run: ``.venv/bin/python loadtest/bench_hostile_images.py [--clients 16] [--duration 10]``

What it does, all on loopback, bounded in time:
1. starts a throwaway MLflow server and registers a model with the real feature columns
   (``inference_server_helpers.register_model``, as ``bench_inference.py`` does);
2. starts our server (``python -m artpulse_inference.server``) with its default image
   limits (``MAX_IMAGE_DECODED_BYTES``, ``IMAGE_DECODE_CONCURRENCY``), waits until ready,
   reads its idle RSS and resets its high-water mark (``/proc/<pid>/clear_refs``);
3. ``--clients`` threads POST, for ``--duration`` seconds, the worst inputs of
   ``tests/security/security_images_hostile.worst_inputs`` (tiny files with huge decoded
   sizes: 6300x6300 RGBA, 6000x6000 1-bit, 16-bit, interlaced, transparent palette,
   progressive JPEG) and the largest PNG the budget accepts, in turn, half to
   ``/predict-image`` (API key) and half to ``/demo/predict`` (demo token), while RSS is
   sampled every 10 ms; the peak is the larger of the samples and ``VmHWM``;
4. for contrast, the same server with the budget lifted (8 GiB, 3 decode slots: only
   ``MAX_IMAGE_PIXELS`` stands, as on main before the budget) and 3 clients sending the
   6300x6300 RGBA PNG, as the finding measured it (main also composited at full size,
   so it paid more than this run does);
5. writes the figures between the ``<!-- BEGIN bench_hostile_images -->`` markers of
   docs/benchmarks.md (and prints them).

The bound, documented in docs/security.md: peak RSS stays under the example pod limit of
512 MiB, and peak minus idle stays under IMAGE_DECODE_CONCURRENCY x MAX_IMAGE_DECODED_BYTES
plus 64 MiB (request bodies, Python objects, allocator slack). Not a test: the script
reports whether the bound held; ``tests/security/test_security_images.py`` holds the
refusals and the concurrency bound itself.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "inference_server"))
sys.path.insert(0, str(REPO / "tests" / "security"))

from artpulse_dev._proc import free_port, spawn, stop  # noqa: E402
from artpulse_dev.mlflow_server import MlflowServer  # noqa: E402
from inference_server_helpers import register_model  # noqa: E402
from report import machine_facts, write_section  # noqa: E402
from security_images_hostile import RGB, worst_inputs, zero_png  # noqa: E402

MARKER = "bench_hostile_images"
MIB = 1024 * 1024
POD_LIMIT_MIB = 512
SLACK_MIB = 64
API_KEY = "bench-hostile-images-api-key-0123456789"
DEMO_KEY = "bench-hostile-images-demo-key-0123456789abcdef"
DEFAULT_BUDGET = 48 * MIB
DEFAULT_CONCURRENCY = 2


@dataclass
class Run:
    name: str
    clients: int
    duration: float
    budget: int
    concurrency: int
    idle_mib: float = 0.0
    peak_mib: float = 0.0
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    requests: int = 0

    @property
    def above_idle_mib(self) -> float:
        return self.peak_mib - self.idle_mib


def proc_status_kib(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(match[1]) if match else 0


def reset_high_water_mark(pid: int) -> None:
    # "5" resets VmHWM to the current RSS (Linux 4.0+, same user).
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def wait_ready(url: str, timeout: float, proc: Any, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; log tail:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s; log tail:\n{log.read_text()[-2000:]}")


def demo_token(port: int) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/demo/token", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return str(json.loads(r.read())["access_token"])


def post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def hammer(
    port: int, inputs: dict[str, bytes], clients: int, duration: float, token: str, run: Run
) -> None:
    """``clients`` threads, each cycling through inputs and both endpoints until the end."""
    lock = threading.Lock()
    stop_at = time.monotonic() + duration
    endpoints = [
        ("/predict-image", {"x-api-key": API_KEY}),
        ("/demo/predict", {"Authorization": f"Bearer {token}"}),
    ]

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        names = itertools.cycle(sorted(inputs))
        for _ in range(index):
            next(names)
        turn = index
        while time.monotonic() < stop_at:
            name = next(names)
            path, auth = endpoints[turn % 2]
            turn += 1
            headers = auth | {"Content-Type": "image/jpeg" if "jpeg" in name else "image/png"}
            try:
                status = post(conn, path, inputs[name], headers)
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                run.statuses.setdefault(name, Counter())[status] += 1
                run.requests += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def measure(
    run: Run, mlflow_uri: str, model_uri: str, version: str, inputs: dict[str, bytes], work: Path
) -> Run:
    port = free_port()
    log = work / f"{run.name}.log"
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "MODEL_URI": model_uri,
        "MODEL_NAME": model_uri.split("/")[1],
        "MODEL_VERSION": version,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "API_KEYS": API_KEY,
        "DEMO_JWK_CURRENT_KID": "k1",
        "DEMO_JWK_KEYS_JSON": json.dumps({"k1": DEMO_KEY}),
        "DEMO_RATE_LIMIT_PER_MINUTE": "0",
        "DEMO_TOKEN_RATE_LIMIT_PER_MINUTE": "0",
        "DRIFT_HISTORY_PATH": str(work / f"{run.name}-drift.jsonl"),
        "MAX_IMAGE_DECODED_BYTES": str(run.budget),
        "IMAGE_DECODE_CONCURRENCY": str(run.concurrency),
    }
    proc = spawn([sys.executable, "-m", "artpulse_inference.server"], log, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready", 180, proc, log)
        token = demo_token(port)
        time.sleep(1.0)  # let start-up garbage settle before reading "idle"
        run.idle_mib = proc_status_kib(proc.pid, "VmRSS") / 1024
        reset_high_water_mark(proc.pid)
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(proc_status_kib(proc.pid, "VmRSS"))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            hammer(port, inputs, run.clients, run.duration, token, run)
        finally:
            done.set()
            sampler.join()
        run.peak_mib = max(max(samples, default=0), proc_status_kib(proc.pid, "VmHWM")) / 1024
        if proc.poll() is not None:
            raise RuntimeError(f"server died under load; log tail:\n{log.read_text()[-2000:]}")
    finally:
        stop(proc)
    print(
        f"[{run.name}] idle {run.idle_mib:.0f} MiB, peak {run.peak_mib:.0f} MiB "
        f"(+{run.above_idle_mib:.0f}), {run.requests} requests: "
        + "; ".join(f"{k} {dict(v)}" for k, v in sorted(run.statuses.items())),
        flush=True,
    )
    return run


def machine() -> dict[str, str]:
    import fastapi
    import PIL
    import uvicorn

    return machine_facts(
        {"Pillow": PIL.__version__, "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__}
    )


def render(
    bounded: Run, contrast: Run | None, inputs: dict[str, bytes], info: dict[str, str]
) -> str:
    bound_mib = bounded.concurrency * bounded.budget / MIB + SLACK_MIB
    held = bounded.peak_mib < POD_LIMIT_MIB and bounded.above_idle_mib < bound_mib
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Hostile images: peak memory of the inference server",
        "",
        "`loadtest/bench_hostile_images.py` (`make bench-images`): a real server process with a",
        f"registered model; {bounded.clients} clients for {bounded.duration:.0f} s POST the inputs below in turn, half",
        "to `/predict-image` (API key), half to `/demo/predict` (demo token). RSS from",
        "`/proc/<pid>/status`, sampled every 10 ms; the peak is the larger of the samples and",
        "`VmHWM` (reset after the idle reading).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| input | bytes on the wire | answers |",
        "| --- | ---: | --- |",
    ]
    for name in sorted(inputs):
        answers = bounded.statuses.get(name, Counter())
        shown = ", ".join(f"{count} x {status}" for status, count in sorted(answers.items()))
        lines.append(f"| {name} | {len(inputs[name]):,} | {shown} |")
    lines += [
        "",
        "| run | MAX_IMAGE_DECODED_BYTES | IMAGE_DECODE_CONCURRENCY | clients | requests | idle RSS MiB | peak RSS MiB | peak - idle MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in [bounded] + ([contrast] if contrast else []):
        lines.append(
            f"| {run.name} | {run.budget / MIB:.0f} MiB | {run.concurrency} | {run.clients} | {run.requests} "
            f"| {run.idle_mib:.0f} | {run.peak_mib:.0f} | {run.above_idle_mib:.0f} |"
        )
    lines += [
        "",
        f"Bound (docs/security.md): peak RSS < {POD_LIMIT_MIB} MiB (the example pod limit) and peak - idle <",
        f"IMAGE_DECODE_CONCURRENCY x MAX_IMAGE_DECODED_BYTES + {SLACK_MIB} MiB = {bound_mib:.0f} MiB. "
        f"Measured: {bounded.peak_mib:.0f} MiB peak, {bounded.above_idle_mib:.0f} MiB above idle: "
        + ("**held**." if held else "**NOT held**."),
    ]
    if contrast:
        lines.append(
            f"Contrast, with the budget lifted (8 GiB, 3 slots; MAX_IMAGE_PIXELS alone, as before the budget): "
            f"{contrast.clients} concurrent 6300x6300 RGBA PNGs of 154 KB took the server from "
            f"{contrast.idle_mib:.0f} to {contrast.peak_mib:.0f} MiB, and that is with the compositing "
            "already moved after the reduction (main also composited at full size, so it paid more)."
        )
    lines += ["", f"<!-- END {MARKER} -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    parser.add_argument("--no-contrast", action="store_true", help="skip the run without a budget")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone"
    )
    args = parser.parse_args()

    inputs = dict(worst_inputs())
    # The largest RGB PNG the default budget accepts: decoded in full, the accepted worst case.
    side = int((DEFAULT_BUDGET / 4.2) ** 0.5) // 100 * 100
    inputs[f"png-rgb-{side}x{side}-within-budget"] = zero_png(side, side, color_type=RGB)

    work = Path(tempfile.mkdtemp(prefix="bench-hostile-images-"))
    mlflow_server = MlflowServer(work / "mlflow").start()
    try:
        name = "bench-images"
        version = register_model(mlflow_server.tracking_uri, name, kind="logreg", seed=7)
        uri = f"models:/{name}/{version}"
        bounded = measure(
            Run("budget (defaults)", args.clients, args.duration, DEFAULT_BUDGET, DEFAULT_CONCURRENCY),
            mlflow_server.tracking_uri, uri, version, inputs, work,
        )  # fmt: skip
        contrast = None
        if not args.no_contrast:
            contrast = measure(
                Run("no budget, 3 slots", 3, min(args.duration, 6.0), 8 * 1024 * MIB, 3),
                mlflow_server.tracking_uri, uri, version,
                {"png-rgba-6300x6300": inputs["png-rgba-6300x6300"]}, work,
            )  # fmt: skip
    finally:
        mlflow_server.stop()
    text = render(bounded, contrast, inputs, machine())
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(MARKER, text)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

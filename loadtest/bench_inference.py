"""Inference benchmark: our server against `mlflow models serve` on the same registered model.

Run: ``.venv/bin/python loadtest/bench_inference.py [--duration 10] [--models logreg,forest]``

What it does, all on loopback, bounded in time:
1. starts a throwaway MLflow server (SQLite, served artifacts) in a temp directory;
2. registers a LogisticRegression and a 100-tree RandomForest trained on random rows with
   the real feature columns (``core.features.FEATURE_NAMES``) and a signature;
3. for each model, starts our server (``python -m artpulse_inference.server``) and MLflow's
   own (``mlflow models serve --env-manager local``, uvicorn, 1 worker) on the same
   ``models:/`` URI, measures start-up time (until ready) and checks both give the same
   label for the same row;
4. loads each with wrk (Debian's package, ``loadtest/bench_inference_post.lua``): one row
   per request at 1 and 16 connections, then batches of 100 rows at 16 connections; the
   two servers take turns, one at a time, in the same run;
5. writes req/s, p50/p99, rows/s, RSS and start-up time between the
   ``<!-- BEGIN bench_inference -->`` markers of docs/benchmarks.md (and prints them).

Not a test: no thresholds are asserted. DESIGN.md section 6 states the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "inference_server"))

from artpulse_dev._proc import free_port, spawn, stop  # noqa: E402
from artpulse_dev.mlflow_server import MlflowServer  # noqa: E402
from artpulse_inference.core.features import FEATURE_NAMES  # noqa: E402
from inference_server_helpers import random_rows, register_model  # noqa: E402
from report import write_section  # noqa: E402

MARKER = "bench_inference"
LUA = Path(__file__).with_name("bench_inference_post.lua")
ANCHOR = {  # DESIGN.md section 6, mlflow models serve on a 2-core machine
    "logreg": {1: 287, 16: 248},
    "forest": {1: 97, 16: 65},
}
TARGET_FACTOR = {"logreg": 10, "forest": 5}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx


@dataclass
class ServerRun:
    kind: str
    server: str
    startup_s: float
    rss_mb: float = 0.0
    results: dict[str, WrkResult] = field(default_factory=dict)


def _to_ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value.strip())
    if not m:
        raise ValueError(value)
    number, unit = float(m[1]), m[2]
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, body_file: Path, connections: int, duration: int) -> WrkResult:
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    lat = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps_match is None or "50" not in lat or "99" not in lat:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    rps = float(rps_match[1])
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return WrkResult(rps, _to_ms(lat["50"]), _to_ms(lat["99"]), total, errors)


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants (mlflow models serve runs uvicorn as a child)."""
    pids = [pid]
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True
    ).stdout
    table = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    changed = True
    while changed:
        changed = False
        for p, pp, _ in table:
            if pp in pids and p not in pids:
                pids.append(p)
                changed = True
    return sum(rss for p, _, rss in table if p in pids) / 1024.0


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited; log tail:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s; log tail:\n{log.read_text()[-2000:]}")


def wait_shadow(metrics_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(metrics_url, timeout=5) as r:
            if 'role="shadow"' in r.read().decode():
                return
        time.sleep(0.2)
    raise RuntimeError("shadow model not loaded")


def post_json(url: str, payload: Any) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    import fastapi
    import mlflow
    import sklearn
    import uvicorn

    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[
        0:1
    ]
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "wrk": wrk_version[0] if wrk_version else "?",
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def bench_model(
    kind: str, mlflow_uri: str, work: Path, duration: int, shadow: bool
) -> list[ServerRun]:
    name = f"bench-{kind}"
    version = register_model(mlflow_uri, name, kind=kind, seed=7)
    uri = f"models:/{name}/{version}"
    rows = random_rows(100, seed=11)
    bodies = {
        ("ours", 1): {"rows": rows[:1]},
        ("ours", 100): {"rows": rows},
        ("mlflow", 1): {"dataframe_records": rows[:1]},
        ("mlflow", 100): {"dataframe_records": rows},
    }
    files = {}
    for key, payload in bodies.items():
        path = work / f"{kind}-{key[0]}-{key[1]}.json"
        path.write_text(json.dumps(payload))
        files[key] = path

    runs: list[ServerRun] = []
    servers = ["ours", "mlflow"] + (["ours+shadow"] if shadow else [])
    for server in servers:
        port = free_port()
        log = work / f"{kind}-{server}.log"
        # `mlflow models serve` execs `uvicorn` from PATH: put this venv first.
        venv_bin = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        }
        if server.startswith("ours"):
            if server == "ours+shadow":
                # Every request also mirrored to a shadow copy of the model, off the path.
                env.update(SHADOW_MODEL_URI=uri, SHADOW_PERCENT="100")
            env.update(
                ENVIRONMENT="development",
                MODEL_URI=uri,
                MODEL_VERSION=version,
                HOST="127.0.0.1",
                PORT=str(port),
                LOG_LEVEL="warning",
                DRIFT_HISTORY_PATH=str(work / f"{kind}-drift.jsonl"),
            )
            argv: list[str] = [sys.executable, "-m", "artpulse_inference.server"]
            ready, invoke = f"http://127.0.0.1:{port}/ready", f"http://127.0.0.1:{port}/predict"
        else:
            mlflow_bin = Path(sys.executable).with_name("mlflow")
            argv = [str(mlflow_bin), "models", "serve", "-m", uri, "--env-manager", "local",
                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
            ready, invoke = f"http://127.0.0.1:{port}/ping", f"http://127.0.0.1:{port}/invocations"
        started = time.monotonic()
        proc = spawn(argv, log, env=env)
        try:
            wait_http(ready, 180, proc, log)
            run = ServerRun(kind, server, time.monotonic() - started)
            if server == "ours+shadow":
                wait_shadow(f"http://127.0.0.1:{port}/metrics", 120)
            answer = post_json(invoke, bodies[("mlflow" if server == "mlflow" else "ours", 1)])
            print(
                f"[{kind}/{server}] ready in {run.startup_s:.1f}s; sample answer: {str(answer)[:160]}",
                flush=True,
            )
            # Warm-up (JIT-free Python still has caches, connection setup, first-call costs).
            run_wrk(invoke, files[("mlflow" if server == "mlflow" else "ours", 1)], 4, 2)
            kind_of_body = "mlflow" if server == "mlflow" else "ours"
            for conns in (1, 16):
                res = run_wrk(invoke, files[(kind_of_body, 1)], conns, duration)
                run.results[f"c{conns}"] = res
                print(
                    f"[{kind}/{server}] 1 row, {conns:>2} conn: {res.rps:8.0f} req/s  p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:7.2f} ms  errors {res.errors}",
                    flush=True,
                )
            res = run_wrk(invoke, files[(kind_of_body, 100)], 16, duration)
            run.results["batch100"] = res
            print(
                f"[{kind}/{server}] 100 rows, 16 conn: {res.rps * 100:8.0f} rows/s  p99 {res.p99_ms:7.2f} ms  errors {res.errors}",
                flush=True,
            )
            run.rss_mb = tree_rss_mb(proc.pid)
            runs.append(run)
        finally:
            stop(proc)
    return runs


def render(runs: list[ServerRun], info: dict[str, str], duration: int) -> str:
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Inference server vs `mlflow models serve`",
        "",
        f"`loadtest/bench_inference.py`: the same registered model ({len(FEATURE_NAMES)} feature columns) served by our",
        "server and by `mlflow models serve --env-manager local` (uvicorn, 1 worker), one after the",
        f"other in one run, loaded by wrk on loopback for {duration}s per cell. One row per request",
        "unless stated. Ratio = ours / MLflow's measured in the same run; the anchor is DESIGN.md section 6.",
        "`ours+shadow`: our server with every request mirrored to a shadow copy of the model (the",
        "caller's latency should not change).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        "| model | server | start-up s | RSS MB | req/s @1 | p50/p99 ms @1 | req/s @16 | p50/p99 ms @16 | rows/s (100-row batches @16) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        c1, c16, b = r.results["c1"], r.results["c16"], r.results["batch100"]
        lines.append(
            f"| {r.kind} | {r.server} | {r.startup_s:.1f} | {r.rss_mb:.0f} | {c1.rps:.0f} | {c1.p50_ms:.2f} / {c1.p99_ms:.2f} "
            f"| {c16.rps:.0f} | {c16.p50_ms:.2f} / {c16.p99_ms:.2f} | {b.rps * 100:.0f} | {c1.errors + c16.errors + b.errors} |"
        )
    lines += [
        "",
        "| model | ours / MLflow @16 (same run) | ours / anchor @16 | goal | p99 @16 (goal < 10 ms for logreg) |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    by = {(r.kind, r.server): r for r in runs}
    for kind in ("logreg", "forest"):
        if (kind, "ours") not in by or (kind, "mlflow") not in by:
            continue
        ours, theirs = by[(kind, "ours")].results["c16"], by[(kind, "mlflow")].results["c16"]
        lines.append(
            f"| {kind} | {ours.rps / max(theirs.rps, 1e-9):.1f}x | {ours.rps / ANCHOR[kind][16]:.1f}x "
            f"| >= {TARGET_FACTOR[kind]}x | {ours.p99_ms:.2f} ms |"
        )
    lines += ["", f"<!-- END {MARKER} -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--models", default="logreg,forest", help="comma-separated: logreg,forest")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    mlflow_server = MlflowServer(work / "mlflow").start()
    runs: list[ServerRun] = []
    try:
        for kind in args.models.split(","):
            runs += bench_model(
                kind.strip(),
                mlflow_server.tracking_uri,
                work,
                args.duration,
                shadow=kind.strip() == "logreg",
            )
    finally:
        mlflow_server.stop()
    text = render(runs, machine(), args.duration)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(MARKER, text)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Inference benchmark: our server side by side with MLServer, KServe and MLflow, same model.

Run: ``.venv/bin/python loadtest/bench_inference.py [--duration 5] [--models logreg,forest]``
(``make bench-inference``; the peers' venvs come from ``hack/peers.sh``, installed on first use).

What it does, all on loopback, bounded in time (about 7 minutes at 5 s per cell):
1. starts a throwaway MLflow server (SQLite, served artifacts) in a temp directory;
2. registers a LogisticRegression and a 100-tree RandomForest trained on random rows with
   the real feature columns (``core.features.FEATURE_NAMES``) and a signature, and writes
   each fitted estimator, read back from MLflow, as ``model.joblib`` for the peers
   (``artpulse_dev.peers.export_joblib``);
3. for each model, one server at a time, each started from nothing and timed until ready:
   ours (``python -m artpulse_inference.server``: ``/predict`` and the Open Inference
   Protocol ``/v2/models/<name>/infer``), ours with a 100% shadow (logreg; ``/predict``),
   MLServer with mlserver-sklearn (OIP REST; twice: ``parallel_workers: 0``, one process,
   and its default ``1``, an inference worker process behind the HTTP one),
   KServe's ModelServer with a scikit-learn model (hack/peers/kserve_sklearn.py; OIP v2 REST, ``PREDICT_PROBA=true``: over v2 it cannot answer
   string labels), and ``mlflow models serve --env-manager local`` (``/invocations``); plus,
   once, a bare endpoint on our HTTP stack (``artpulse_dev.bare_endpoint``: uvloop +
   httptools, constant JSON), the ceiling. Each server's first answer is checked against the
   estimator's own label before it is loaded;
4. loads each with wrk (Debian's package, ``loadtest/bench_inference_post.lua``) in four cells:
   1 and 16 connections, single rows and 100-row batches, after a 2 s warm-up;
5. per cell: req/s, p50/p99, rows/s, errors and CPU-µs per request (the server's process
   tree, user + system, from ``/proc/<pid>/stat``, over the cell / requests served); per
   server: start-up (spawn to ready) and RSS after its cells; writes it all between the
   ``<!-- BEGIN bench_inference -->`` markers of docs/benchmarks.md (and prints it).

Not a test: no thresholds are asserted; the goals of issue 15 and DESIGN.md section 6 are
compared in the text, met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "inference_server"))

import numpy as np  # noqa: E402
from artpulse_dev import peers  # noqa: E402
from artpulse_dev.mlflow_server import MlflowServer  # noqa: E402
from artpulse_inference.core.features import FEATURE_NAMES  # noqa: E402
from inference_server_helpers import random_rows, register_model  # noqa: E402
from report import machine_facts, write_section  # noqa: E402

MARKER = "bench_inference"
LUA = Path(__file__).with_name("bench_inference_post.lua")
ANCHOR = {  # DESIGN.md section 6, mlflow models serve on a 2-core machine
    "logreg": {1: 287, 16: 248},
    "forest": {1: 97, 16: 65},
}
TARGET_FACTOR = {"logreg": 10, "forest": 5}  # ours / mlflow @16, DESIGN.md section 6
CONNECTIONS = (1, 16)
BATCHES = (1, 100)
PEERS = ("mlserver", "mlserver (1 worker)", "kserve", "mlflow")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx


@dataclass
class Cell:
    conns: int
    rows: int
    wrk: WrkResult
    cpu_us_per_request: float


@dataclass
class Route:
    """One endpoint of a server: what it is called in the table, its path, its bodies."""

    label: str
    path: str
    body: Callable[[list[dict[str, float]]], Any]
    labels_of: Callable[[Any, int], list[str]]  # the answer's predicted labels
    cells: list[Cell] = field(default_factory=list)


@dataclass
class ServerRun:
    kind: str  # logreg, forest, or "-" for the bare endpoint
    server: str
    startup_s: float = 0.0
    rss_mb: float = 0.0
    routes: list[Route] = field(default_factory=list)


def _to_ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", value.strip())
    if not m:
        raise ValueError(value)
    number, unit = float(m[1]), m[2]
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, body_file: Path, connections: int, duration: int) -> WrkResult:
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", "5s", "-s", str(LUA), url]  # fmt: skip
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    lat = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total_match = re.search(r"(\d+) requests in", out)
    if rps_match is None or total_match is None or "50" not in lat or "99" not in lat:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m[1])
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(x) for x in m.groups())
    return WrkResult(
        float(rps_match[1]), _to_ms(lat["50"]), _to_ms(lat["99"]), int(total_match[1]), errors
    )


def post_json(url: str, payload: Any) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


# Request bodies and answer readers, one pair per protocol.
def tensor(rows: list[dict[str, float]]) -> dict[str, Any]:
    data = [row[name] for row in rows for name in FEATURE_NAMES]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), len(FEATURE_NAMES)],
                        "datatype": "FP64", "data": data}]}  # fmt: skip


def tensor_both_outputs(rows: list[dict[str, float]]) -> dict[str, Any]:
    """MLServer's sklearn runtime answers only ``predict`` unless asked: ask for what ours sends."""
    return {**tensor(rows), "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}


def oip_output(name: str) -> Callable[[Any, int], list[str]]:
    def labels(answer: Any, n: int) -> list[str]:
        out = next(o for o in answer["outputs"] if o["name"] == name)
        return [str(v) for v in np.ravel(out["data"])]

    return labels


def proba_argmax(classes: list[str]) -> Callable[[Any, int], list[str]]:
    def labels(answer: Any, n: int) -> list[str]:
        proba = np.asarray(answer["outputs"][0]["data"], dtype=float).reshape(n, -1)
        return [classes[i] for i in proba.argmax(axis=1)]

    return labels


def _no_labels(answer: Any, n: int) -> list[str]:
    return []


def measure(
    run: ServerRun, process: peers.PeerProcess, rows: list[dict[str, float]], work: Path,
    duration: int, expected: list[str],
) -> None:  # fmt: skip
    """Check each route's first answer, then load it cell by cell; fills ``run``."""
    for route in run.routes:
        url = process.url + route.path
        files = {}
        for n in BATCHES:
            slug = re.sub(r"[^a-z0-9]+", "-", f"{run.kind}-{run.server}-{route.label}")
            files[n] = work / f"{slug}-{n}.json"
            files[n].write_text(json.dumps(route.body(rows[:n])))
        answer = post_json(url, route.body(rows[: BATCHES[-1]]))
        got = route.labels_of(answer, BATCHES[-1])
        if got and got != expected[: BATCHES[-1]]:
            raise RuntimeError(
                f"{run.server} {route.label} disagrees with the estimator: {got[:5]}"
            )
        print(
            f"[{run.kind}/{run.server} {route.label}] answer: {json.dumps(answer)[:140]}",
            flush=True,
        )
        run_wrk(url, files[1], 4, 2)  # warm-up: first-call costs, connection set-up
        for n in BATCHES:
            for conns in CONNECTIONS:
                cpu_before = process.cpu_seconds()
                res = run_wrk(url, files[n], conns, duration)
                cpu = process.cpu_seconds() - cpu_before
                cell = Cell(conns, n, res, 1e6 * cpu / max(res.requests, 1))
                route.cells.append(cell)
                print(
                    f"[{run.kind}/{run.server} {route.label}] {n:>3} rows {conns:>2} conn: "
                    f"{res.rps:8.0f} req/s  p50 {res.p50_ms:6.2f}  p99 {res.p99_ms:7.2f} ms  "
                    f"{cell.cpu_us_per_request:7.0f} CPU-us/req  errors {res.errors}",
                    flush=True,
                )
    run.rss_mb = process.rss_mb()


def wait_shadow(metrics_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(metrics_url, timeout=5) as r:
            if 'role="shadow"' in r.read().decode():
                return
        time.sleep(0.2)
    raise RuntimeError("shadow model not loaded")


def bench_model(kind: str, mlflow_uri: str, work: Path, duration: int) -> list[ServerRun]:
    import joblib

    name = f"bench-{kind}"
    version = register_model(mlflow_uri, name, kind=kind, seed=7)
    uri = f"models:/{name}/{version}"
    joblib_path = peers.export_joblib(mlflow_uri, uri, work / f"{kind}-joblib")
    estimator = joblib.load(joblib_path)
    classes = [str(c) for c in estimator.classes_]
    rows = random_rows(max(BATCHES), seed=11)
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES))
    expected = [str(v) for v in estimator.predict(frame)]

    def predict_labels(answer: Any, n: int) -> list[str]:
        return [p["label"] for p in answer["predictions"]]

    def ours_env(shadow: bool) -> dict[str, str]:
        env = {
            "ENVIRONMENT": "development", "MODEL_URI": uri, "MODEL_NAME": name,
            "MODEL_VERSION": version, "MLFLOW_TRACKING_URI": mlflow_uri, "LOG_LEVEL": "warning",
            "DRIFT_HISTORY_PATH": str(work / f"{kind}-drift.jsonl"),
        }  # fmt: skip
        if shadow:  # every request also mirrored to a shadow copy of the model, off the path
            env.update(SHADOW_MODEL_URI=uri, SHADOW_PERCENT="100")
        return env

    infer = f"/v2/models/{name}/infer"
    plan: list[tuple[ServerRun, Callable[[], peers.PeerProcess]]] = [
        (
            ServerRun(kind, "ours", routes=[
                Route("/v2/.../infer", infer, tensor, oip_output("label")),
                Route("/predict", "/predict", lambda r: {"rows": r}, predict_labels),
            ]),
            lambda: peers.ours(ours_env(False), work / f"{kind}-ours.log"),
        ),
        (
            ServerRun(kind, "mlserver", routes=[
                Route("/v2/.../infer", infer, tensor_both_outputs, oip_output("predict")),
            ]),
            lambda: peers.mlserver(
                peers.mlserver_repository(work / f"{kind}-mlserver", name, version, joblib_path),
                name,
                work / f"{kind}-mlserver.log",
            ),
        ),
        (
            ServerRun(kind, "mlserver (1 worker)", routes=[
                Route("/v2/.../infer", infer, tensor_both_outputs, oip_output("predict")),
            ]),
            lambda: peers.mlserver(
                peers.mlserver_repository(
                    work / f"{kind}-mlserver-1", name, version, joblib_path, parallel_workers=1
                ),
                name,
                work / f"{kind}-mlserver-1.log",
            ),
        ),
        (
            ServerRun(kind, "kserve", routes=[
                Route("/v2/.../infer (proba)", infer, tensor, proba_argmax(classes)),
            ]),
            lambda: peers.kserve_sklearn(
                joblib_path.parent, name, work / f"{kind}-kserve.log", predict_proba=True
            ),
        ),
        (
            ServerRun(kind, "mlflow", routes=[
                Route("/invocations", "/invocations", lambda r: {"dataframe_records": r},
                      lambda a, n: [str(v) for v in a["predictions"]]),
            ]),
            lambda: peers.mlflow_serve(mlflow_uri, uri, work / f"{kind}-mlflow.log"),
        ),
    ]  # fmt: skip
    if kind == "logreg":
        plan.insert(1, (
            ServerRun(kind, "ours+shadow", routes=[
                Route("/predict", "/predict", lambda r: {"rows": r}, predict_labels),
            ]),
            lambda: peers.ours(ours_env(True), work / f"{kind}-ours-shadow.log"),
        ))  # fmt: skip
    runs = []
    for run, make in plan:
        with make() as process:
            process.start()
            run.startup_s = process.startup_s
            print(f"[{kind}/{run.server}] ready in {run.startup_s:.1f}s", flush=True)
            if run.server == "ours+shadow":
                wait_shadow(process.url + "/metrics", 120)
            measure(run, process, rows, work, duration, expected)
        runs.append(run)
    return runs


def bench_bare(work: Path, duration: int) -> ServerRun:
    rows = random_rows(max(BATCHES), seed=11)
    run = ServerRun("-", "bare", routes=[Route("/infer", "/infer", tensor, _no_labels)])
    with peers.bare(work / "bare.log") as process:
        process.start()
        run.startup_s = process.startup_s
        measure(run, process, rows, work, duration, [])
    return run


def machine() -> dict[str, str]:
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return machine_facts({"wrk": wrk[0].split(" Copyright")[0] if wrk else "?"})


def versions() -> dict[str, str]:
    """Each server's own packages, from the venv it runs in."""
    stack = ["fastapi", "starlette", "uvicorn", "uvloop", "pydantic", "scikit-learn", "numpy"]
    ours = peers.peer_versions(Path(sys.executable), ["artpulse-inference", "mlflow", *stack])
    mlserver = peers.peer_versions(peers.peer_python("mlserver"), ["mlserver", "mlserver-sklearn", *stack])  # fmt: skip
    kserve = peers.peer_versions(peers.peer_python("kserve"), ["kserve", *stack])
    return {
        "ours and mlflow (.venv)": ", ".join(f"{k} {v}" for k, v in ours.items()),
        "mlserver (peers/mlserver)": ", ".join(f"{k} {v}" for k, v in mlserver.items()),
        "kserve (peers/kserve; ModelServer + hack/peers/kserve_sklearn.py, sklearnserver is not on PyPI)": ", ".join(
            f"{k} {v}" for k, v in kserve.items()
        ),
    }


def _cell(run: ServerRun, route: str, conns: int, rows: int) -> Cell | None:
    for r in run.routes:
        if r.label.startswith(route):
            for c in r.cells:
                if (c.conns, c.rows) == (conns, rows):
                    return c
    return None


def goals(runs: list[ServerRun]) -> list[str]:
    """The issue's goals, each met or missed, from this run's numbers."""
    by = {(r.kind, r.server): r for r in runs}
    bare = by.get(("-", "bare"))
    lines = ["", "| goal | measured | met |", "| --- | --- | :-: |"]

    def line(goal: str, measured: str, met: bool) -> None:
        lines.append(f"| {goal} | {measured} | {'yes' if met else '**no**'} |")

    for kind in ("logreg", "forest"):
        if (kind, "ours") not in by:
            continue
        ours = by[(kind, "ours")]
        misses = []
        for rows in BATCHES:
            for conns in CONNECTIONS:
                for route in ("/v2", "/predict"):
                    mine = _cell(ours, route, conns, rows)
                    for peer in PEERS:
                        theirs = (
                            _cell(by[(kind, peer)], "/", conns, rows)
                            if (kind, peer) in by
                            else None
                        )
                        if mine and theirs and mine.wrk.rps <= theirs.wrk.rps:
                            misses.append(f"{route} {rows} row(s) @{conns} vs {peer}")
        line(f"{kind}: ours beats every peer in every cell (req/s)",
             "all cells" if not misses else "missed: " + "; ".join(misses), not misses)  # fmt: skip
        infer16 = _cell(ours, "/v2", 16, 1)
        if kind == "logreg" and infer16:
            ml = _cell(by[(kind, "mlserver")], "/", 16, 1) if (kind, "mlserver") in by else None
            for peer in ("mlserver", "mlserver (1 worker)"):
                ml = _cell(by[(kind, peer)], "/", 16, 1) if (kind, peer) in by else None
                if ml:
                    ratio = infer16.wrk.rps / max(ml.wrk.rps, 1e-9)
                    line(f"logreg /infer @16, 1 row: >= 6x {peer}", f"{ratio:.1f}x ({infer16.wrk.rps:.0f} vs {ml.wrk.rps:.0f} req/s)", ratio >= 6)  # fmt: skip
            line("logreg /infer @16, 1 row: p99 < 5 ms", f"{infer16.wrk.p99_ms:.2f} ms", infer16.wrk.p99_ms < 5)  # fmt: skip
            ceiling = _cell(bare, "/", 16, 1) if bare else None
            if ceiling:
                share = infer16.wrk.rps / max(ceiling.wrk.rps, 1e-9)
                line("logreg /infer @16, 1 row: >= 80% of the bare endpoint", f"{100 * share:.0f}% ({ceiling.wrk.rps:.0f} req/s bare)", share >= 0.8)  # fmt: skip
        if kind == "forest":
            for route in ("/v2", "/predict"):
                cell = _cell(ours, route, 16, 1)
                if cell:
                    line(f"forest {route} @16, 1 row: p99 < 10 ms", f"{cell.wrk.p99_ms:.2f} ms", cell.wrk.p99_ms < 10)  # fmt: skip
        mine, mlflow = _cell(ours, "/predict", 16, 1), _cell(by[(kind, "mlflow")], "/", 16, 1) if (kind, "mlflow") in by else None  # fmt: skip
        if mine and mlflow:
            ratio = mine.wrk.rps / max(mlflow.wrk.rps, 1e-9)
            line(f"{kind} /predict @16: >= {TARGET_FACTOR[kind]}x mlflow (DESIGN.md 6)",
                 f"{ratio:.1f}x same run, {mine.wrk.rps / ANCHOR[kind][16]:.1f}x the anchor", ratio >= TARGET_FACTOR[kind])  # fmt: skip
    return lines


def render(runs: list[ServerRun], info: dict[str, str], vers: dict[str, str], duration: int) -> str:
    lines = [
        f"<!-- BEGIN {MARKER} -->",
        "## Inference server vs MLServer, KServe and `mlflow models serve`",
        "",
        f"`loadtest/bench_inference.py` (`make bench-inference`): the same fitted estimator ({len(FEATURE_NAMES)}",
        "feature columns; registered in MLflow as skops for ours and `mlflow models serve`, the",
        "same object written as `model.joblib` for MLServer and KServe) served by each server in",
        f"turn, one process each, in one run; wrk on loopback, {duration} s per cell after a 2 s warm-up.",
        'Bodies: ours `/predict` `{"rows": [...]}`; OIP servers one FP64 tensor `[N, 12]`',
        "(`input-0`); mlflow `dataframe_records`. Answers: ours label + probabilities on both",
        "routes; MLServer asked for `predict` + `predict_proba` (by default it computes only",
        "`predict`), run twice: `mlserver` with `parallel_workers: 0` (inference in its HTTP",
        "process, its fastest one-process setup) and `mlserver (1 worker)` with its default",
        "(one inference worker process behind the HTTP one); KServe's ModelServer probabilities (`PREDICT_PROBA=true`: over v2 it cannot",
        'answer string labels, a 500 "decoding str is not supported"); mlflow labels. Ours in',
        "development mode (no credential, as in the earlier runs of this benchmark).",
        "`ours+shadow`: every request also mirrored to a shadow copy of the model. `bare`: a",
        "constant JSON answer on our HTTP stack (FastAPI, uvicorn, uvloop, httptools), the",
        "ceiling. CPU-µs/req: the server's process tree (user + system) over the cell / requests;",
        "wrk shares the 2 cores, so absolute numbers are lower than on a separate load machine.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        *[f"- {k}: {v}" for k, v in vers.items()],
        "",
        "| model | server | route | start-up s | RSS MB |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in runs:
        lines.append(
            f"| {r.kind} | {r.server} | {', '.join(x.label for x in r.routes)} | {r.startup_s:.1f} | {r.rss_mb:.0f} |"
        )
    lines += [
        "",
        "| model | server | route | rows/req | conns | req/s | p50 ms | p99 ms | rows/s | CPU-µs/req | errors |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rows in BATCHES:
        for conns in CONNECTIONS:
            for r in runs:
                for route in r.routes:
                    for c in route.cells:
                        if (c.rows, c.conns) != (rows, conns):
                            continue
                        w = c.wrk
                        lines.append(
                            f"| {r.kind} | {r.server} | {route.label} | {rows} | {conns} | {w.rps:.0f} "
                            f"| {w.p50_ms:.2f} | {w.p99_ms:.2f} | {w.rps * rows:.0f} | {c.cpu_us_per_request:.0f} | {w.errors} |"
                        )
    lines += goals(runs)
    lines += ["", f"<!-- END {MARKER} -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk cell (default 5)")
    parser.add_argument("--models", default="logreg,forest", help="comma-separated: logreg,forest")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    for peer in ("mlserver", "kserve"):
        peers.peer_python(peer)  # install before anything is timed
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    mlflow_server = MlflowServer(work / "mlflow").start()
    runs: list[ServerRun] = []
    try:
        runs.append(bench_bare(work, args.duration))
        for kind in args.models.split(","):
            runs += bench_model(kind.strip(), mlflow_server.tracking_uri, work, args.duration)
    finally:
        mlflow_server.stop()
    # Anything else running shows here: the cells are only comparable on an idle machine.
    info["load after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = render(runs, info, versions(), args.duration)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(MARKER, text)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

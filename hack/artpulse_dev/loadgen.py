"""A small load generator for the local cluster: steady traffic through the Gateway.

Development tooling. The demo's and the e2e tests' `Story` uses `LoadGenerator` and
reads its outcomes (a request failed? which version answered? how long?); on its
own it prints a summary line every few seconds:

    python -m artpulse_dev.loadgen http://10.0.0.80/predict --header 'host: NAME.NS.artpulse.local' \\
        --rps 20 --duration 60 --body-file request.json [--header 'x-api-key: ...']

Every request opens its own connection (no keep-alive), so a process that is
stopped between two requests cannot break a reused connection: each outcome says
something about the gateway and the servers, not about the client's pool. Requests
are paced at a fixed rate by worker threads; a slow server therefore lowers the
achieved rate instead of piling up requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Body = Callable[[], tuple[bytes, Mapping[str, str]]]


@dataclass(frozen=True)
class Outcome:
    started: float  # time.time()
    latency_s: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    error: str | None
    upstream: str
    version: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def version_of(response: httpx.Response) -> str | None:
    header = response.headers.get("x-model-version")
    if header:
        return str(header)
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        for key in ("model_version", "version", "modelVersion"):
            if key in body and body[key] is not None:
                return str(body[key])
        model = body.get("model")
        if isinstance(model, dict) and model.get("version") is not None:
            return str(model["version"])
    return None


@dataclass
class LoadGenerator:
    """`rps` requests per second to `url` from `workers` threads until `stop()`."""

    url: str
    body: Body
    rps: float = 20.0
    workers: int = 4
    timeout_s: float = 10.0
    method: str = "POST"
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _next: float = 0.0

    def start(self) -> LoadGenerator:
        self._next = time.monotonic()
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"loadgen-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _slot(self) -> float:
        with self._lock:
            slot = self._next = max(self._next + 1.0 / self.rps, time.monotonic() - 1.0)
            return slot

    def _work(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=self.timeout_s, limits=limits) as http:
            while not self._stop.is_set():
                delay = self._slot() - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                content, headers = self.body()
                started, t0 = time.time(), time.perf_counter()
                try:
                    response = http.request(self.method, self.url, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    outcome = Outcome(started, time.perf_counter() - t0, 0, repr(exc), "", None)
                else:
                    error = None if response.is_success else response.text[:300]
                    outcome = Outcome(
                        started,
                        time.perf_counter() - t0,
                        response.status_code,
                        error,
                        response.headers.get("x-artpulse-upstream", ""),
                        version_of(response) if response.is_success else None,
                    )
                with self._lock:
                    self.outcomes.append(outcome)

    # -- reading the outcomes ------------------------------------------------------------

    def between(self, start: float, end: float | None = None) -> list[Outcome]:
        """Outcomes of requests started in [start, end) (time.time() values)."""
        end = end if end is not None else float("inf")
        with self._lock:
            return [o for o in self.outcomes if start <= o.started < end]

    def failures(self, start: float = 0.0, end: float | None = None) -> list[Outcome]:
        return [o for o in self.between(start, end) if not o.ok]

    def recent(self, seconds: float) -> list[Outcome]:
        return self.between(time.time() - seconds)


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Count, failures, achieved rate, p50/p95 latency (ms) and the versions that answered."""
    if not outcomes:
        return {
            "requests": 0,
            "failed": 0,
            "rps": 0.0,
            "p50_ms": 0.0,
            "p95_ms": 0.0,
            "versions": {},
        }
    latencies = sorted(o.latency_s * 1000 for o in outcomes)
    span = max(o.started for o in outcomes) - min(o.started for o in outcomes)
    versions: dict[str, int] = {}
    for o in outcomes:
        if o.version is not None:
            versions[o.version] = versions.get(o.version, 0) + 1
    return {
        "requests": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "rps": round(len(outcomes) / span, 1) if span > 0 else 0.0,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds; 0 = until Ctrl-C")
    parser.add_argument("--body-file", help="request body (JSON) to POST; GET when absent")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    content = b""
    if args.body_file:
        with open(args.body_file, "rb") as f:
            content = f.read()
        headers.setdefault("content-type", "application/json")
    gen = LoadGenerator(
        args.url, lambda: (content, headers), rps=args.rps, workers=args.workers,
        method="POST" if args.body_file else "GET",
    ).start()  # fmt: skip
    started = time.time()
    try:
        while args.duration <= 0 or time.time() - started < args.duration:
            time.sleep(5)
            print(json.dumps(summarize(gen.recent(5))), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        gen.stop()
    total = summarize(gen.outcomes)
    print("total", json.dumps(total))
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

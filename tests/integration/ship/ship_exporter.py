"""A real metrics endpoint for the observability tests: `python ship_exporter.py PORT STATE.json`.

It serves /metrics (prometheus_client, the exposition format the inference server and the
operator use) with series described by a JSON state file that the test may rewrite at any time:

    {"traffic": [{"model", "version", "track", "route", "rps", "latency_s", "error_ratio"}],
     "gauges":  [{"name", "labels": {...}, "value"}],
     "counters": [{"name", "labels": {...}, "value"}],   # name without _total
     "histograms": [{"name", "labels": {...}, "value", "per_s"}]}  # `per_s` observations of `value`

`traffic` is turned into artpulse_http_requests_total and the
artpulse_http_request_duration_seconds histogram by a thread that records `rps` requests per
second with the given latency and share of 500s, so rates and quantiles move like a real server's.
Used by tests/integration/ship only; the inference server's own metrics are tested by its area.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TICK_S = 0.1


class StateCollector:
    """Gauges and counters exactly as the state file says, read at every scrape."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        current = self.state.read()
        for kind, family_type in (("gauges", GaugeMetricFamily), ("counters", CounterMetricFamily)):
            by_name: dict[str, list[dict[str, Any]]] = {}
            for series in current.get(kind, []):
                by_name.setdefault(series["name"], []).append(series)
            for name, items in by_name.items():
                label_names = sorted({k for s in items for k in s.get("labels", {})})
                family = family_type(name, f"test series {name}", labels=label_names)
                for s in items:
                    labels = s.get("labels", {})
                    family.add_metric(
                        [str(labels.get(k, "")) for k in label_names], float(s["value"])
                    )
                yield family


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.cached: dict[str, Any] = {}
        self.mtime = 0.0

    def read(self) -> dict[str, Any]:
        with self.lock:
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self.mtime:
                    self.cached = json.loads(self.path.read_text())
                    self.mtime = mtime
            except (OSError, ValueError):
                pass  # a half-written file: keep the last good state
            return self.cached


def simulate_traffic(
    state: State, registry: CollectorRegistry, requests: Counter, duration: Histogram
) -> None:
    owed: dict[int, float] = {}
    errors_owed: dict[int, float] = {}
    histograms: dict[str, Histogram] = {}
    owed_observations: dict[str, float] = {}
    while True:
        for spec in state.read().get("histograms", []):
            name = spec["name"]
            labels = {k: str(v) for k, v in spec.get("labels", {}).items()}
            if name not in histograms:  # every spec of one name has the same label names
                histograms[name] = Histogram(
                    name, f"test histogram {name}", sorted(labels), registry=registry
                )
            key = f"{name}{sorted(labels.items())}"
            owed_observations[key] = owed_observations.get(key, 0.0) + float(spec["per_s"]) * TICK_S
            series = histograms[name].labels(**labels) if labels else histograms[name]
            while owed_observations[key] >= 1:
                owed_observations[key] -= 1
                series.observe(float(spec["value"]))
        for index, flow in enumerate(state.read().get("traffic", [])):
            owed[index] = owed.get(index, 0.0) + float(flow["rps"]) * TICK_S
            while owed[index] >= 1:
                owed[index] -= 1
                labels = {k: str(flow[k]) for k in ("model", "version", "track", "route")}
                errors_owed[index] = errors_owed.get(index, 0.0) + float(flow.get("error_ratio", 0))
                failed = errors_owed[index] >= 1
                if failed:
                    errors_owed[index] -= 1
                requests.labels(**labels, method="POST", status="500" if failed else "200").inc()
                duration.labels(**labels, method="POST").observe(float(flow["latency_s"]))
        time.sleep(TICK_S)


def main() -> None:
    port, state_path = int(sys.argv[1]), Path(sys.argv[2])
    registry = CollectorRegistry()
    state = State(state_path)
    registry.register(StateCollector(state))
    requests = Counter(
        "artpulse_http_requests_total",
        "HTTP requests",
        ["model", "version", "track", "route", "method", "status"],
        registry=registry,
    )
    duration = Histogram(
        "artpulse_http_request_duration_seconds",
        "HTTP request duration",
        ["model", "version", "track", "route", "method"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    start_http_server(port, addr="127.0.0.1", registry=registry)
    simulate_traffic(state, registry, requests, duration)


if __name__ == "__main__":
    main()

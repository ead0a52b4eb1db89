"""``kubectl artpulse dashboard`` in a real browser (headless chromium), over a fake kubectl
that also answers Prometheus' range queries as the API server's service proxy would: the list
renders (a hostile name as text), a model's detail draws the SVG timeline with its points, and
Promote issues the annotate call. No cluster: it lives here, with the other browser tests,
because it starts a browser. Screenshots are kept in the test's temporary directory (and in
``ARTPULSE_SCREENSHOT_DIR`` when set) for a human to look at.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubectl_artpulse.dashboard import Dashboard, bind
from kubectl_artpulse.kubectl import Kubectl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "inference_server"))  # the Browser of the other tests
sys.path.insert(0, str(HERE.parents[1] / "unit" / "plugin"))  # the plugin's test data
from inference_server_helpers import Browser, wait_for  # noqa: E402
from plugin_fakes import load  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("chromedriver") is None, reason="apt-get install -y chromium chromium-driver"
    ),
]

SCREENSHOTS = os.environ.get("ARTPULSE_SCREENSHOT_DIR")
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"

# A kubectl that answers from models.json, logs its argv, and plays Prometheus for --raw:
# the canary weight went 0 -> 10 -> 50 during the last half hour, the canary's p95 is higher.
FAKE = r"""#!{python}
import json, math, sys, time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

state = Path({state!r})
argv = sys.argv[1:]
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps(argv) + "\n")
models = json.loads((state / "models.json").read_text())
if "--raw" in argv:
    url = urlsplit(argv[argv.index("--raw") + 1])
    q = {{k: v[0] for k, v in parse_qs(url.query).items()}}
    start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
    query, values, t = q["query"], [], start
    while t <= end:
        age = end - t
        if "canary_weight" in query:
            v = 0 if age > 1200 else 10 if age > 500 else 50
        elif "histogram_quantile" in query:
            base = 38 if 'track="canary"' in query else 21
            v = base + 4 * math.sin(t / 90.0)
        elif "5.." in query:
            v = 0.004 if 'track="canary"' in query else 0.001
        else:
            v = 0.12 if 'track="canary"' in query else 0.05
        if not ('track="canary"' in query and age > 1200):
            values.append([t, str(v)])
        t += step
    print(json.dumps({{"status": "success", "data": {{"resultType": "matrix",
                      "result": [{{"metric": {{}}, "values": values}}]}}}}))
elif argv[:1] == ["get"] or "get" in argv:
    rest = [a for a in argv if not a.startswith("--")]
    names = [a for a in rest[2:] if a not in ("json", "-o") and a not in {{m["metadata"]["namespace"] for m in models}}]
    if names:
        found = [m for m in models if m["metadata"]["name"] == names[0]]
        if not found:
            sys.stderr.write("Error from server (NotFound): not found\n")
            sys.exit(1)
        print(json.dumps(found[0]))
    else:
        print(json.dumps({{"items": models}}))
elif "patch" in argv:
    print(json.dumps(models[0]))
else:
    sys.exit(99)
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    state = tmp_path / "kubectl-state"
    state.mkdir()
    model = dict(load("model.yaml"))
    model["spec"]["analysis"] = {
        "window": "1m",
        "gates": {"p95LatencyMs": 90, "maxErrorRate": 0.01, "maxDriftScore": 0.3},
    }
    model["status"]["analysis"]["judge"] = {
        "verdict": "Inconclusive",
        "message": "gathering evidence",
        "tests": {
            "errors": {"eValue": 1.4, "threshold": 40, "candidate": 0.004, "stable": 0.001,
                       "samples": [812, 7310]},
            "latency": {"eValue": 3.1, "threshold": 40, "candidate": 38, "stable": 21,
                        "samples": [812, 7310]},
        },
    }  # fmt: skip
    model["status"]["analysis"]["metrics"] = {
        "accuracy-proxy": {"value": 0.93, "verdict": "Pass", "message": "above 0.9"}
    }
    hostile = copy.deepcopy(model)
    hostile["metadata"]["name"] = HOSTILE
    hostile["metadata"]["namespace"] = "ml"
    hostile["status"] = {"phase": "Stable", "stable": {"version": "7"}}
    degraded = copy.deepcopy(model)
    degraded["metadata"]["name"] = "sculpture-detector"
    degraded["status"].update(phase="Degraded", canaryWeight=50, currentStep=1)
    degraded["status"]["conditions"][0].update(status="False", reason="GatesFailed")
    (state / "models.json").write_text(json.dumps([model, degraded, hostile]))
    binary = tmp_path / "kubectl"
    binary.write_text(FAKE.format(python=sys.executable, state=str(state)))
    binary.chmod(0o755)
    return state


@pytest.fixture
def dashboard(fake: Path, tmp_path: Path) -> Iterator[Dashboard]:
    d = Dashboard(Kubectl(str(tmp_path / "kubectl")), namespace="ml", port=0)
    server = bind(d)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield d
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    b = Browser(tmp_path)
    try:
        yield b
    finally:
        b.close()


def keep(png: Path) -> Path:
    assert png.stat().st_size > 10_000, "a blank page"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(SCREENSHOTS) / png.name)
    return png


def calls(state: Path) -> list[list[str]]:
    log = state / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_list_detail_timeline_and_promote(
    dashboard: Dashboard, browser: Any, fake: Path, tmp_path: Path
) -> None:
    browser.get(dashboard.url)
    rows = browser.wait_text("#models", lambda t: "sculpture-detector" in t, "the list")
    assert "art-classifier" in rows
    assert "Progressing" in rows
    assert "Degraded" in rows
    assert HOSTILE in rows  # the name, as text
    assert browser.script("return document.title") == "ArtPulse rollouts"  # no onerror ran
    assert browser.script("return document.querySelectorAll('#models img').length") == 0
    assert "token=" not in browser.script("return location.href")  # the redirect dropped it
    keep(browser.screenshot(tmp_path / "dashboard-list.png"))

    browser.click('a[href="#/model/ml/art-classifier"]')
    browser.wait_text("#detail-name", lambda t: t == "ml/art-classifier", "the detail")
    points = wait_for(
        lambda: browser.script(
            "return document.querySelectorAll('#chart-weight circle.point').length"
        ),
        30,
        "timeline points",
    )
    assert points > 20
    series = browser.script(
        "return [...document.querySelectorAll('#chart-weight g.series')]"
        ".map(g => g.getAttribute('data-series'))"
    )
    assert "canary weight (%)" in series
    assert "p95 canary (ms)" in series
    assert browser.script("return document.getElementById('btn-resume').disabled") is True
    keep(browser.screenshot(tmp_path / "dashboard-detail.png"))

    browser.click("#btn-promote")
    browser.wait_text("#action-result", lambda t: "promote requested" in t, "promote answered")
    patches = [c for c in calls(fake) if "patch" in c]
    assert len(patches) == 1
    assert '{"metadata": {"annotations": {"artpulse.io/action": "promote"}}}' in patches[0]
    assert "art-classifier" in patches[0]
    browser.script("window.scrollTo(0, document.body.scrollHeight)")
    keep(browser.screenshot(tmp_path / "dashboard-detail-bottom.png"))


def test_prometheus_unreachable_is_said(
    dashboard: Dashboard, browser: Any, fake: Path, tmp_path: Path
) -> None:
    dashboard.prometheus = None
    script = (tmp_path / "kubectl").read_text()
    (tmp_path / "kubectl").write_text(script.replace(
        'if "--raw" in argv:',
        'if "--raw" in argv:\n    sys.stderr.write("Error from server (ServiceUnavailable): '
        'no endpoints available for service prometheus\\n"); sys.exit(1)\nif False:',
    ))  # fmt: skip
    browser.get(dashboard.url.replace("/?", "/?x=1&") + "#/model/ml/art-classifier")
    note = browser.wait_text("#prometheus-note", bool, "the Prometheus note")
    assert "no endpoints available" in note
    assert "ROLLOUT HISTORY" in browser.text("#view").upper()
    keep(browser.screenshot(tmp_path / "dashboard-no-prometheus.png"))

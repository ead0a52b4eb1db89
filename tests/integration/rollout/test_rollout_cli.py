"""kubectl-artpulse against the real API server: status, actions, watch, errors, plugin discovery."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from artpulse_operator.cli import main

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent

MODEL = """
apiVersion: artpulse.io/v1alpha1
kind: ArtPulseModel
metadata: {{name: {name}, namespace: {ns}}}
spec:
  model: {{name: artpulse-classifier}}
  serving: {{image: artpulse-inference:0.1.0}}
  strategy:
    type: Canary
    canary: {{steps: [{{weight: 10, pause: 60s}}, {{weight: 50}}, {{weight: 100}}]}}
"""

STATUS = {
    "phase": "Progressing",
    "stable": {"version": "3", "alias": "champion", "uri": "models:/artpulse-classifier/3"},
    "candidate": {"version": "4", "alias": "challenger", "uri": "models:/artpulse-classifier/4"},
    "canaryWeight": 10,
    "currentStep": 0,
    "stepStartedAt": "2026-01-01T00:00:00Z",
    "tracks": {
        "stable": {"version": {"version": "3"}, "weight": 90, "scaled": True},
        "canary": {"version": {"version": "4"}, "weight": 10, "scaled": True},
    },
    "analysis": {
        "lastCheckTime": "2026-01-01T00:00:30Z",
        "verdict": "Pass",
        "track": "canary",
        "version": "4",
        "p95LatencyMs": 12.5,
        "errorRate": 0.0,
        "driftScore": 0.04,
        "requests": 812,
        "failedChecks": 0,
    },
    "history": [
        {
            "version": "2",
            "result": "RolledBack",
            "finishedAt": "2025-12-31T10:00:00Z",
            "reason": "p95LatencyMs 130 > 90",
        },
        {
            "version": "3",
            "result": "Promoted",
            "finishedAt": "2025-12-31T12:00:00Z",
            "reason": "gates passed",
        },
    ],
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Serving",
            "message": "serving version 3",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ],
}


@pytest.fixture
def model(control_plane) -> tuple[str, str]:
    ns = f"cli-{uuid.uuid4().hex[:6]}"
    name = "art-classifier"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("apply", "-f", "-", input=MODEL.format(name=name, ns=ns))
    set_status(control_plane, ns, name, STATUS)
    return ns, name


def set_status(control_plane, ns: str, name: str, status: dict) -> None:  # type: ignore[no-untyped-def]
    control_plane.kubectl(
        "patch",
        "artpulsemodel",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def run(control_plane, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    rc = main(["--kubeconfig", str(control_plane.kubeconfig), *args], out=out)
    return rc, out.getvalue()


def test_status_shows_phase_versions_weight_check_and_history(control_plane, model) -> None:
    ns, name = model
    rc, text = run(control_plane, "status", name, "-n", ns)
    assert rc == 0
    assert f"{ns}/{name}" in text
    assert "Phase:      Progressing" in text
    assert "Stable:     3 (champion)" in text
    assert "Candidate:  4 (challenger)" in text
    assert "Weight:     10%" in text
    assert "Step:       1/3" in text
    assert "Last check: Pass" in text
    assert "p95 12.5 ms" in text
    assert "requests 812" in text
    history = text[text.index("History:") :]
    assert history.index("Promoted") < history.index("RolledBack")  # newest first


@pytest.mark.parametrize("action", ["promote", "abort", "retry", "pause", "resume"])
def test_actions_set_the_annotation(control_plane, model, action: str) -> None:
    ns, name = model
    control_plane.kubectl("annotate", "artpulsemodel", name, "-n", ns, "team=vision")
    rc, text = run(control_plane, action, name, "-n", ns)
    assert rc == 0
    assert f"{action} requested" in text
    annotations = json.loads(
        control_plane.kubectl(
            "get", "artpulsemodel", name, "-n", ns, "-o", "jsonpath={.metadata.annotations}"
        ).stdout
    )
    assert annotations["artpulse.io/action"] == action
    assert annotations["team"] == "vision"  # a merge patch: other annotations stay
    rc, text = run(control_plane, "status", name, "-n", ns)
    assert f"Pending action: {action}" in text


def test_missing_model_is_a_clear_error(control_plane, model, capsys) -> None:
    ns, _ = model
    rc, _ = run(control_plane, "promote", "nope", "-n", ns)
    assert rc == 1
    assert f'artpulsemodel "nope" not found in namespace "{ns}"' in capsys.readouterr().err


def test_nobody_is_told_forbidden(control_plane, model, capsys) -> None:
    ns, name = model
    out = io.StringIO()
    rc = main(
        ["--kubeconfig", str(control_plane.nobody_kubeconfig), "abort", name, "-n", ns], out=out
    )
    assert rc == 1
    assert "forbidden" in capsys.readouterr().err


def test_watch_prints_each_change(control_plane, model) -> None:
    ns, name = model
    out = io.StringIO()
    thread = threading.Thread(
        target=main,
        args=(
            [
                "--kubeconfig",
                str(control_plane.kubeconfig),
                "watch",
                name,
                "-n",
                ns,
                "--timeout",
                "60",
            ],
        ),
        kwargs={"out": out},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 60
    while "weight=10%" not in out.getvalue():
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.1)
    set_status(control_plane, ns, name, {"canaryWeight": 50, "currentStep": 1})
    while "weight=50%" not in out.getvalue():
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.1)
    set_status(control_plane, ns, name, {"phase": "RolledBack", "canaryWeight": 0})
    while "phase=RolledBack" not in out.getvalue():
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.1)
    control_plane.kubectl("delete", "artpulsemodel", name, "-n", ns)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "was deleted" in out.getvalue()


def test_kubectl_finds_the_plugin(control_plane, model) -> None:
    ns, name = model
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(control_plane.kubeconfig),
    }
    kubectl = str(control_plane.binaries.kubectl)
    listed = subprocess.run(
        [kubectl, "plugin", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "kubectl-artpulse" in listed.stdout
    result = subprocess.run(
        [kubectl, "artpulse", "status", name, "-n", ns],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Phase:      Progressing" in result.stdout

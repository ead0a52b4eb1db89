"""kubectl-artpulse against the real API server, through the real kubectl: list, get, status (the
CI gate and its exit codes), actions, watch, version, errors, and discovery as a kubectl plugin.

The plugin talks to the cluster only through kubectl (``ARTPULSE_KUBECTL`` names the harness's
kubectl); the status is written directly to the status subresource, as the operator would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubectl_artpulse.cli import main

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
# What the operator writes when a candidate failed, and when it was promoted (a merge patch:
# null removes the candidate).
ROLLED_BACK = {
    "phase": "RolledBack",
    "candidate": None,
    "canaryWeight": 0,
    "currentStep": None,
    "lastRollout": {"version": "4", "result": "RolledBack", "reason": "p95LatencyMs 130 > 90"},
}
PROMOTED = {
    "phase": "Stable",
    "stable": {"version": "4", "alias": "champion", "uri": "models:/artpulse-classifier/4"},
    "candidate": None,
    "canaryWeight": 0,
    "currentStep": None,
}


@pytest.fixture(autouse=True)
def harness_kubectl(control_plane, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The plugin runs the harness's kubectl, as it would run the one on a user's PATH."""
    monkeypatch.setenv("ARTPULSE_KUBECTL", str(control_plane.binaries.kubectl))
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def model(control_plane) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    ns = f"cli-{uuid.uuid4().hex[:6]}"
    name = "art-classifier"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("apply", "-f", "-", input=MODEL.format(name=name, ns=ns))
    # As the operator would: the status is that of the spec just applied.
    observed = generation(control_plane, ns, name)
    set_status(control_plane, ns, name, {**STATUS, "observedGeneration": observed})
    return ns, name


def generation(control_plane, ns: str, name: str) -> int:  # type: ignore[no-untyped-def]
    out = control_plane.kubectl(
        "get", "artpulsemodel", name, "-n", ns, "-o", "jsonpath={.metadata.generation}"
    ).stdout
    return int(out)


def set_status(control_plane, ns: str, name: str, status: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
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


def run(control_plane, *args: str, kubeconfig: Path | None = None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    rc = main(["--kubeconfig", str(kubeconfig or control_plane.kubeconfig), *args], out=out)
    return rc, out.getvalue()


def in_thread(control_plane, *args: str) -> tuple[threading.Thread, io.StringIO, list[int]]:  # type: ignore[no-untyped-def]
    """``main`` running in the background; its exit code lands in the list."""
    out = io.StringIO()
    codes: list[int] = []
    argv = ["--kubeconfig", str(control_plane.kubeconfig), *args]
    thread = threading.Thread(
        target=lambda: codes.append(main(argv, out=out)), daemon=True, name="kubectl-artpulse"
    )
    thread.start()
    return thread, out, codes


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


# --- get and list ------------------------------------------------------------------------------


@pytest.mark.parametrize("flags_first", [True, False])
def test_get_shows_phase_versions_weight_check_and_history(
    control_plane, model, flags_first: bool
) -> None:
    ns, name = model
    args = ("-n", ns, "get", name) if flags_first else ("get", name, "-n", ns)
    rc, text = run(control_plane, *args)
    assert rc == 0
    assert f"{ns}/{name}" in text
    assert "Phase:      Progressing" in text
    assert "Stable:     3 (champion)" in text
    assert "Candidate:  4 (challenger)" in text
    assert "Weight:     10%" in text
    assert "Step:       1/3" in text
    assert "├─ canary   version 4, weight 10%, up" in text  # no pods run on the API-only plane
    assert "(no pods)" in text
    assert "Last check: Pass" in text
    assert "p95 12.5 ms" in text
    assert "requests 812" in text
    history = text[text.index("History:") :]
    assert history.index("Promoted") < history.index("RolledBack")  # newest first


def test_list_as_json_and_as_a_table(control_plane, model) -> None:
    ns, name = model
    rc, out = run(control_plane, "list", "-n", ns, "-o", "json")
    assert rc == 0
    listed = json.loads(out)
    assert [item["metadata"]["name"] for item in listed["items"]] == [name]
    assert listed["items"][0]["status"]["canaryWeight"] == 10
    rc, out = run(control_plane, "-A", "list")
    assert rc == 0
    row = next(line.split() for line in out.splitlines() if line.startswith(ns))
    assert row[:9] == [ns, name, "artpulse-classifier", "Canary", "3", "4", "10%", "1/3", "Progressing"]  # fmt: skip


def test_history_and_yaml(control_plane, model) -> None:
    ns, name = model
    rc, out = run(control_plane, "history", name, "-n", ns)
    assert rc == 0
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["3", "Promoted"], ["2", "RolledBack"]]  # fmt: skip
    rc, out = run(control_plane, "get", name, "-n", ns, "-o", "yaml")
    assert rc == 0
    assert "  canaryWeight: 10\n" in out


# --- status: the CI gate -----------------------------------------------------------------------


def test_status_exit_codes(control_plane, model) -> None:
    ns, name = model
    assert run(control_plane, "status", name, "-n", ns, "--timeout", "2s")[0] == 2
    set_status(control_plane, ns, name, ROLLED_BACK)
    rc, out = run(control_plane, "-n", ns, "status", name, "--timeout", "30s")
    assert rc == 1
    assert out.startswith("RolledBack - version 4 rolled back: p95LatencyMs 130 > 90")
    set_status(control_plane, ns, name, PROMOTED)
    rc, out = run(control_plane, "status", name, "-n", ns, "--timeout", "30s")
    assert rc == 0
    assert out.startswith("Stable - serving version 4 (champion)")


def test_status_follows_the_rollout_live(control_plane, model) -> None:
    ns, name = model
    thread, out, codes = in_thread(control_plane, "status", name, "-n", ns, "--timeout", "60s")
    wait_for(lambda: "Progressing - " in out.getvalue(), out.getvalue())
    set_status(control_plane, ns, name, {"canaryWeight": 50, "currentStep": 1})
    wait_for(lambda: "step 2/3, weight 50%" in out.getvalue(), out.getvalue())
    set_status(control_plane, ns, name, PROMOTED)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert codes == [0]
    assert out.getvalue().splitlines()[-1] == "Stable - serving version 4 (champion)"


def test_status_does_not_take_an_unobserved_spec_for_done(control_plane, model) -> None:
    ns, name = model
    set_status(control_plane, ns, name, PROMOTED)
    assert run(control_plane, "status", name, "-n", ns, "--no-watch")[0] == 0
    control_plane.kubectl(
        "patch", "artpulsemodel", name, "-n", ns, "--type=merge",
        "-p", json.dumps({"spec": {"strategy": {"canary": {"steps": [{"weight": 25}, {"weight": 100}]}}}}),
    )  # fmt: skip
    rc, out = run(control_plane, "status", name, "-n", ns, "--timeout", "2s")
    assert rc == 2
    new = generation(control_plane, ns, name)
    assert f"waiting for the operator to observe generation {new}" in out
    set_status(control_plane, ns, name, {"observedGeneration": new})
    assert run(control_plane, "status", name, "-n", ns, "--timeout", "30s")[0] == 0


# --- actions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["promote", "abort", "retry", "pause", "resume"])
def test_actions_set_the_annotation(control_plane, model, action: str) -> None:
    ns, name = model
    control_plane.kubectl("annotate", "artpulsemodel", name, "-n", ns, "team=vision")
    rc, text = run(control_plane, action, name, "-n", ns)
    assert rc == 0
    assert f"{action} requested for artpulsemodel {ns}/{name}" in text
    annotations = json.loads(
        control_plane.kubectl(
            "get", "artpulsemodel", name, "-n", ns, "-o", "jsonpath={.metadata.annotations}"
        ).stdout
    )
    assert annotations["artpulse.io/action"] == action
    assert annotations["team"] == "vision"  # a merge patch: other annotations stay
    rc, text = run(control_plane, "get", name, "-n", ns)
    assert f"Pending action: {action}" in text
    rc, text = run(control_plane, "status", name, "-n", ns, "--no-watch")
    assert rc == 2
    assert f"waiting for the operator to act on {action!r}" in text


# --- errors ------------------------------------------------------------------------------------


def test_missing_model_is_a_clear_error(control_plane, model, capsys) -> None:
    ns, _ = model
    rc, _ = run(control_plane, "promote", "nope", "-n", ns)
    assert rc == 1
    assert capsys.readouterr().err == f'error: artpulsemodel "nope" not found in namespace "{ns}"\n'


def test_nobody_is_told_forbidden(control_plane, model, capsys) -> None:
    ns, name = model
    rc, _ = run(control_plane, "abort", name, "-n", ns, kubeconfig=control_plane.nobody_kubeconfig)
    assert rc == 1
    err = capsys.readouterr().err
    assert "forbidden" in err  # kubectl's own message, as it said it
    assert "Traceback" not in err


def test_version_reads_the_crd(control_plane) -> None:
    rc, out = run(control_plane, "version")
    assert rc == 0
    assert "CRD:      artpulsemodels.artpulse.io, served v1alpha1, storage v1alpha1" in out
    # Whatever other tests of the session deployed: the admin may read it, so no "not readable".
    assert "Operator: " in out
    assert "not readable" not in out


# --- watch -------------------------------------------------------------------------------------


def test_watch_prints_each_change(control_plane, model) -> None:
    ns, name = model
    thread, out, codes = in_thread(control_plane, "watch", name, "-n", ns, "--timeout", "60")
    wait_for(lambda: "weight=10%" in out.getvalue(), out.getvalue())
    set_status(control_plane, ns, name, {"canaryWeight": 50, "currentStep": 1})
    wait_for(lambda: "weight=50%" in out.getvalue(), out.getvalue())
    set_status(control_plane, ns, name, {"phase": "RolledBack", "canaryWeight": 0})
    wait_for(lambda: "phase=RolledBack" in out.getvalue(), out.getvalue())
    control_plane.kubectl("delete", "artpulsemodel", name, "-n", ns)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert codes == [0]
    assert "was deleted" in out.getvalue()


# --- as a kubectl plugin -----------------------------------------------------------------------


def test_kubectl_finds_the_plugin(control_plane, model) -> None:
    ns, name = model
    kubectl = Path(control_plane.binaries.kubectl)
    env = {
        **os.environ,
        # The venv's console script, and the kubectl it runs in turn (ARTPULSE_KUBECTL unset).
        "PATH": f"{VENV_BIN}:{kubectl.parent}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(control_plane.kubeconfig),
    }
    env.pop("ARTPULSE_KUBECTL", None)
    listed = subprocess.run(
        [str(kubectl), "plugin", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "kubectl-artpulse" in listed.stdout
    result = subprocess.run(
        [str(kubectl), "artpulse", "-n", ns, "get", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Phase:      Progressing" in result.stdout
    # kubectl execs the plugin: its exit code is the plugin's, so CI can gate on it.
    gated = subprocess.run(
        [str(kubectl), "artpulse", "status", name, "-n", ns, "--timeout", "1s"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gated.returncode == 2, gated.stderr
    assert "timed out after 1s" in gated.stderr

"""Leader election as shipped: two operator replicas with the Deployment's peering settings.

The base runs two replicas of `python -m artpulse_operator` with ARTPULSE_PEERING_NAME set, and
ships Kopf's peering CRDs but no peering object: the replicas create it at startup. Here two real operator processes run against the control plane from
the harness, the way the Deployment starts them (namespaced to a test namespace, so they touch
nothing else in the shared API server: Kopf then keeps its records in a KopfPeering there instead
of the ClusterKopfPeering, with the same rules). Exactly one must be active and the other paused;
when the active one stops, the standby must take over. Kopf starts every replica paused and\nlogs when one resumes; that log line is how the test tells the active replica from the standby.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PAUSED = "Pausing operations in favour of"
ALL_PAUSED = "Pausing all operators"
RESUMED = "Resuming operations after the pause"


def wait_for(what: str, probe: Callable[[], Any], deadline_s: float) -> Any:
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def last_peering_state(log: str) -> str | None:
    """The last peering transition a replica logged: RESUMED (active), PAUSED, or None."""
    found = [(log.rfind(m), m) for m in (PAUSED, ALL_PAUSED, RESUMED) if m in log]
    return max(found)[1] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deployment_env() -> dict[str, str]:
    """The operator container's literal env from manifests/base/operator.yaml."""
    docs = yaml.safe_load_all((REPO / "manifests/base/operator.yaml").read_text())
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"ship-peering-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_one_replica_is_active_and_the_standby_takes_over(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl(
        "apply", "--server-side", "-f", str(REPO / "manifests/crds/kopf-peering-crds.yaml")
    )
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev"
    )
    env = deployment_env()
    peering = env["ARTPULSE_PEERING_NAME"]
    # No KopfPeering is created here: the bundle ships none, the replicas create it at startup
    # (both try; one gets a conflict and goes on).

    # A CRD's watch cache answers 429 for a moment after it is established; start the replicas
    # once both resources they watch can be listed.
    def served(resource: str) -> bool:
        return control_plane.kubectl("get", resource, "-n", namespace, check=False).returncode == 0

    for resource in ("kopfpeerings.kopf.dev", "artpulsemodels.artpulse.io"):
        wait_for(f"{resource} to be served", lambda r=resource: served(r), 60)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ARTPULSE_")}
    replicas: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(2):
            log = tmp_path / f"operator-{i}.log"
            replica_env = {
                **base_env,
                "ARTPULSE_PEERING_NAME": peering,
                "ARTPULSE_HEALTH_HOST": "127.0.0.1",
                "ARTPULSE_HEALTH_PORT": str(free_port()),
                "ARTPULSE_NAMESPACES": namespace,
                "ARTPULSE_KUBECONFIG": str(control_plane.kubeconfig),
                "KUBECONFIG": str(control_plane.kubeconfig),
            }
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "artpulse_operator"],
                    env=replica_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            replicas.append((proc, log))

        def peers() -> dict[str, Any]:
            got = control_plane.kubectl(
                "get", "kopfpeering", peering, "-n", namespace, "-o", "json", check=False
            )
            if got.returncode != 0:  # not created yet
                return {}
            return dict(json.loads(got.stdout).get("status") or {})

        def logs() -> list[str]:
            for proc, log in replicas:
                assert proc.poll() is None or proc.returncode == 0, log.read_text()[-3000:]
            return [log.read_text() for _, log in replicas]

        records = wait_for(
            "both replicas in the peering", lambda: len(peers()) == 2 and peers(), 60
        )
        priorities = sorted(r.get("priority") for r in records.values())
        assert priorities[0] != priorities[1], (
            f"equal peering priorities {priorities}: Kopf pauses every replica, none is active"
        )

        def active_replicas() -> list[int]:
            # Kopf starts every replica paused; the one with the highest priority resumes. A
            # replica that starts before it sees its peer resumes for a moment, then pauses:
            # wait until exactly one is left active.
            active = [i for i, t in enumerate(logs()) if last_peering_state(t) == RESUMED]
            return active if len(active) == 1 else []

        (active,) = wait_for("one replica to become active", active_replicas, 60)
        standby = 1 - active
        # The standby must stay paused while the active replica is alive.
        wait_for("the standby's own peering record", lambda: len(peers()) == 2, 30)
        assert last_peering_state(logs()[standby]) in (None, PAUSED)
        assert not any(ALL_PAUSED in t for t in logs())

        replicas[active][0].send_signal(signal.SIGTERM)
        replicas[active][0].wait(timeout=60)
        wait_for("the standby to resume", lambda: RESUMED in logs()[standby], 130)
    finally:
        for proc, _ in replicas:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()

"""``kubectl artpulse dashboard`` against the real API server, through the real kubectl: the
token's cookie, the JSON API listing a model whose status was written through the status
subresource (as the operator would), and Promote landing as the ``artpulse.io/action``
annotation. The fixtures mirror ``tests/integration/rollout/test_rollout_cli.py``.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubectl_artpulse.dashboard import CSRF_HEADER, Dashboard, bind
from kubectl_artpulse.kubectl import Kubectl

pytestmark = pytest.mark.integration

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
    "stable": {"version": "3", "alias": "champion"},
    "candidate": {"version": "4", "alias": "challenger"},
    "canaryWeight": 10,
    "currentStep": 0,
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
    },
}


@pytest.fixture
def model(control_plane) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    ns = f"dash-{uuid.uuid4().hex[:6]}"
    name = "art-classifier"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("apply", "-f", "-", input=MODEL.format(name=name, ns=ns))
    generation = int(
        control_plane.kubectl(
            "get", "artpulsemodel", name, "-n", ns, "-o", "jsonpath={.metadata.generation}"
        ).stdout
    )
    control_plane.kubectl(
        "patch", "artpulsemodel", name, "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {**STATUS, "observedGeneration": generation}}),
    )  # fmt: skip
    return ns, name


@pytest.fixture
def dashboard(control_plane, model: tuple[str, str]) -> Iterator[Dashboard]:  # type: ignore[no-untyped-def]
    kubectl = Kubectl(
        str(control_plane.binaries.kubectl), (f"--kubeconfig={control_plane.kubeconfig}",)
    )
    d = Dashboard(kubectl, namespace=model[0], port=0)
    server = bind(d)
    threading.Thread(target=server.serve_forever, daemon=True, name="dashboard").start()
    try:
        yield d
    finally:
        server.shutdown()
        server.server_close()


def call(
    d: Dashboard, method: str, target: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, target, body=data, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_json_api_and_promote_over_the_real_api_server(
    control_plane,  # type: ignore[no-untyped-def]
    dashboard: Dashboard,
    model: tuple[str, str],
) -> None:
    ns, name = model
    assert call(dashboard, "GET", "/api/models")[0] == 401
    status, headers, _ = call(dashboard, "GET", f"/?token={dashboard.token}")
    assert status == 303
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, body = call(dashboard, "GET", "/api/session", {"Cookie": cookie})
    csrf = json.loads(body)["csrfToken"]

    status, _, body = call(dashboard, "GET", "/api/models", {"Cookie": cookie})
    assert status == 200, body
    (listed,) = json.loads(body)["models"]
    assert (listed["namespace"], listed["name"]) == (ns, name)
    assert listed["phase"] == "Progressing"
    assert listed["canaryWeight"] == 10
    assert listed["check"]["p95LatencyMs"] == 12.5

    # The detail: the status is there; Prometheus is not (an API-only plane has no pods), and
    # the page says so instead of failing.
    status, _, body = call(dashboard, "GET", f"/api/models/{ns}/{name}", {"Cookie": cookie})
    assert status == 200, body
    detail = json.loads(body)
    assert detail["actions"]["promote"] is True
    assert detail["prometheus"]["ok"] is False
    assert detail["prometheus"]["error"]

    origin = f"http://127.0.0.1:{dashboard.port}"
    headers = {"Cookie": cookie, "Origin": origin, "Content-Type": "application/json"}
    status, _, body = call(
        dashboard, "POST", f"/api/models/{ns}/{name}/actions", headers, {"action": "promote"}
    )
    assert status == 403  # no CSRF header
    headers[CSRF_HEADER] = csrf
    status, _, body = call(
        dashboard, "POST", f"/api/models/{ns}/{name}/actions", headers, {"action": "promote"}
    )
    assert status == 200, body
    annotation = control_plane.kubectl(
        "get", "artpulsemodel", name, "-n", ns,
        "-o", "jsonpath={.metadata.annotations.artpulse\\.io/action}",
    ).stdout  # fmt: skip
    assert annotation == "promote"

    status, _, body = call(dashboard, "GET", "/api/models/no-such-ns/x", {"Cookie": cookie})
    assert status == 404, body

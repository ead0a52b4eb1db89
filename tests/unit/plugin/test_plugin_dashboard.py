"""``kubectl artpulse dashboard``'s HTTP handling in-process, against a fake kubectl
(plugin_fakes.FakeKubectl): the token and the session cookie, the Host check, CSRF, the
actions' kubectl calls, the JSON API, errors (400, 404, 409, 502), escaping, and one real
socket."""

from __future__ import annotations

import copy
import http.client
import json
import threading
from http.cookies import SimpleCookie
from typing import Any

import pytest
from kubectl_artpulse.contract import RESOURCE
from kubectl_artpulse.dashboard import CSRF_HEADER, Dashboard, Request, Response, bind
from kubectl_artpulse.dashboard_assets import APP_JS, INDEX_HTML
from kubectl_artpulse.kubectl import Kubectl
from plugin_fakes import FakeKubectl

TOKEN = "test-token-0123456789"
HOST = "127.0.0.1:3100"
NAME, NS = "art-classifier", "ml"


def matrix(*points: tuple[float, float]) -> str:
    values = [[t, str(v)] for t, v in points]
    return json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": [{"values": values}]}}
    )


@pytest.fixture
def dashboard(fake_kubectl: FakeKubectl) -> Dashboard:
    return Dashboard(
        Kubectl(str(fake_kubectl.binary), ("--context=prod",)),
        namespace=NS,
        token=TOKEN,
        clock=lambda: 1_767_225_600.0,
    )


def request(
    d: Dashboard, target: str, *, method: str = "GET", body: bytes = b"", **headers: str
) -> Response:
    sent = {"host": HOST, **{k.replace("_", "-").lower(): v for k, v in headers.items()}}
    return d.handle(Request(method, target, sent, body))


def sign_in(d: Dashboard) -> dict[str, str]:
    """The token's redirect and its cookie; then the session's CSRF token."""
    response = request(d, f"/?token={TOKEN}")
    assert response.status == 303
    cookie = dict(response.headers)["Set-Cookie"]
    jar: SimpleCookie = SimpleCookie()
    jar.load(cookie)
    morsel = jar[d.cookie_name]
    session = request(d, "/api/session", cookie=f"{d.cookie_name}={morsel.value}")
    return {"cookie": f"{d.cookie_name}={morsel.value}", **json.loads(session.body)}


def post(d: Dashboard, auth: dict[str, str], body: Any, **headers: str) -> Response:
    sent = {
        "cookie": auth["cookie"],
        "origin": f"http://{HOST}",
        "content_type": "application/json",
        CSRF_HEADER: auth["csrfToken"],
        **headers,
    }
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(d, f"/api/models/{NS}/{NAME}/actions", method="POST", body=raw, **sent)


# --- who may ask ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/", "/static/app.js", "/api/models", f"/api/models/{NS}/{NAME}", "/nope"]
)
def test_nothing_without_the_token_or_the_cookie(dashboard: Dashboard, target: str) -> None:
    response = request(dashboard, target)
    assert response.status == 401
    assert request(dashboard, target, cookie=f"{dashboard.cookie_name}=guessed").status == 401
    assert request(dashboard, target + "?token=wrong").status == 401


def test_the_token_sets_a_strict_http_only_cookie_and_leaves_the_url(
    dashboard: Dashboard,
) -> None:
    response = request(dashboard, f"/?token={TOKEN}&x=1")
    headers = dict(response.headers)
    assert response.status == 303
    assert headers["Location"] == "/?x=1"  # the token is gone from the address bar
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # a session of its own, not the token
    auth = sign_in(dashboard)
    page = request(dashboard, "/", cookie=auth["cookie"])
    assert page.status == 200
    assert f'content="{auth["csrfToken"]}"' in page.body.decode()
    assert dashboard.url == f"http://127.0.0.1:3100/?token={TOKEN}"


def test_the_token_cannot_sign_in_a_post(dashboard: Dashboard) -> None:
    response = request(dashboard, f"/api/models/{NS}/{NAME}/actions?token={TOKEN}", method="POST")
    assert response.status == 401


@pytest.mark.parametrize(
    "host",
    ["evil.example.com:3100", "127.0.0.1:3101", "127.0.0.1", "", "127.0.0.2:3100", "[::1]:3100"],
)
def test_other_host_headers_are_refused(dashboard: Dashboard, host: str) -> None:
    response = dashboard.handle(Request("GET", f"/?token={TOKEN}", {"host": host}))
    assert response.status == 403


def test_localhost_is_the_loopback_listen_address(dashboard: Dashboard) -> None:
    response = dashboard.handle(Request("GET", f"/?token={TOKEN}", {"host": "localhost:3100"}))
    assert response.status == 303


def test_a_wildcard_address_answers_to_ip_literals_only(fake_kubectl: FakeKubectl) -> None:
    d = Dashboard(Kubectl(str(fake_kubectl.binary)), namespace=NS, address="0.0.0.0", port=80)
    assert d.allowed_host("192.168.1.9:80")
    assert not d.allowed_host("rebind.example.com:80")


def test_every_answer_has_the_security_headers(dashboard: Dashboard) -> None:
    for response in (request(dashboard, "/"), request(dashboard, f"/?token={TOKEN}")):
        headers = dict(response.headers)
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_no_inline_script_and_the_script_no_inner_html() -> None:
    assert "<script>" not in INDEX_HTML
    assert "<script " in INDEX_HTML
    assert "style=" not in INDEX_HTML
    assert " on" not in INDEX_HTML.split("<body>")[1]  # no inline handlers either
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in APP_JS


# --- the JSON API --------------------------------------------------------------------------


def test_the_list(dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [model]})
    auth = sign_in(dashboard)
    response = request(dashboard, "/api/models", cookie=auth["cookie"])
    assert response.status == 200
    assert response.content_type == "application/json"
    body = json.loads(response.body)
    assert body["namespace"] == NS
    assert body["allNamespaces"] is False
    (m,) = body["models"]
    assert m["name"] == NAME
    assert m["namespace"] == NS
    assert m["phase"] == "Progressing"
    assert m["stable"] == "3"
    assert m["candidate"] == "4"
    assert m["canaryWeight"] == 10
    assert m["step"] == "1/3"
    assert m["tracks"] == [
        {"name": "canary", "version": "4", "weight": 10, "scaled": True},
        {"name": "stable", "version": "3", "weight": 90, "scaled": True},
    ]
    assert m["check"] == {
        "verdict": "Pass",
        "time": "2026-01-01T00:00:30Z",
        "track": "canary",
        "version": "4",
        "p95LatencyMs": 12.5,
        "errorRate": 0.0,
        "driftScore": 0.04,
        "requests": 812,
    }
    assert m["ready"] == {"ready": True, "reason": "Serving", "message": "serving version 3"}
    assert fake_kubectl.calls == [
        ["--context=prod", "get", RESOURCE, "--namespace", NS, "-o", "json"]
    ]


def test_all_namespaces(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    d = Dashboard(
        Kubectl(str(fake_kubectl.binary)), namespace=None, all_namespaces=True, token=TOKEN
    )
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [model]})
    auth = sign_in(d)
    assert json.loads(request(d, "/api/models", cookie=auth["cookie"]).body)["allNamespaces"]
    assert fake_kubectl.calls[-1] == ["get", RESOURCE, "--all-namespaces", "-o", "json"]


def test_the_detail_with_prometheus_through_the_api_server(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer("get", "--raw", stdout=matrix((1.0, 10), (2.0, 50)))
    auth = sign_in(dashboard)
    response = request(dashboard, f"/api/models/{NS}/{NAME}", cookie=auth["cookie"])
    assert response.status == 200
    d = json.loads(response.body)
    assert d["actions"] == {
        "promote": True, "promote-full": True, "abort": True, "retry": False,
        "pause": True, "resume": False
    }  # fmt: skip
    assert [h["version"] for h in d["history"]] == ["3", "2"]  # newest first
    assert d["analysis"]["verdict"] == "Pass"
    assert {"time": "2025-12-31T10:00:00Z", "text": "v2 RolledBack"} in d["marks"]
    assert d["samples"][0]["weight"] == 10
    prom = d["prometheus"]
    assert prom["ok"] is True
    assert prom["target"] == "artpulse-system/prometheus:9090"
    metrics = [(s["metric"], s["track"]) for s in prom["series"]]
    assert metrics == [
        ("weight", ""),
        ("p95_latency_ms", "canary"), ("error_rate", "canary"), ("drift_score", "canary"),
        ("p95_latency_ms", "stable"), ("error_rate", "stable"), ("drift_score", "stable"),
    ]  # fmt: skip
    assert prom["series"][0]["points"] == [[1.0, 10.0], [2.0, 50.0]]
    raw = fake_kubectl.calls_with("--raw")
    assert len(raw) == 7
    path = raw[0][raw[0].index("--raw") + 1]
    assert path.startswith(
        "/api/v1/namespaces/artpulse-system/services/prometheus:9090/proxy/api/v1/query_range?"
    )
    assert "--context=prod" in raw[0]
    assert "--request-timeout=5s" in raw[0]
    # Asked again within the cache's time: Prometheus is not asked again.
    request(dashboard, f"/api/models/{NS}/{NAME}", cookie=auth["cookie"])
    assert len(fake_kubectl.calls_with("--raw")) == 7


def test_prometheus_unreachable_is_said_and_the_status_still_shown(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer(
        "get", "--raw", rc=1,
        stderr='Error from server (ServiceUnavailable): no endpoints available for service "prometheus:9090"\n',
    )  # fmt: skip
    auth = sign_in(dashboard)
    response = request(dashboard, f"/api/models/{NS}/{NAME}", cookie=auth["cookie"])
    assert response.status == 200
    d = json.loads(response.body)
    assert d["prometheus"]["ok"] is False
    assert "no endpoints available" in d["prometheus"]["error"]
    assert d["phase"] == "Progressing"
    assert d["history"]
    assert len(fake_kubectl.calls_with("--raw")) == 1  # gave up at the first failure


def test_a_kubectl_failure_is_a_502_with_its_message(
    dashboard: Dashboard, fake_kubectl: FakeKubectl
) -> None:
    fake_kubectl.answer(
        "get", RESOURCE, rc=1,
        stderr='Error from server (Forbidden): artpulsemodels.artpulse.io is forbidden: User "jane" cannot list resource\n',
    )  # fmt: skip
    auth = sign_in(dashboard)
    response = request(dashboard, "/api/models", cookie=auth["cookie"])
    assert response.status == 502
    error = json.loads(response.body)["error"]
    assert error.startswith("kubectl failed: Error from server (Forbidden)")
    assert "Traceback" not in error


def test_a_missing_model_is_404(dashboard: Dashboard, fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer(
        "get", RESOURCE, NAME, rc=1,
        stderr=f'Error from server (NotFound): artpulsemodels.artpulse.io "{NAME}" not found\n',
    )  # fmt: skip
    auth = sign_in(dashboard)
    response = request(dashboard, f"/api/models/{NS}/{NAME}", cookie=auth["cookie"])
    assert response.status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../etc/passwd",
        "/static/../api/models",
        "/static/%2e%2e/x",
        "/api/models/ml/..",
        "/api/models/ml/<script>",
        "/api/models/ml/--kubeconfig=x",
        "/api/models/ml/m/delete",
        "/favicon.ico",
        "/static/",
        "//api/models",
    ],
)
def test_unknown_routes_and_dot_dot_are_404(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, target: str
) -> None:
    auth = sign_in(dashboard)
    assert request(dashboard, target, cookie=auth["cookie"]).status == 404
    assert fake_kubectl.calls == []  # nothing reached kubectl


def test_wrong_methods_are_405(dashboard: Dashboard) -> None:
    auth = sign_in(dashboard)
    assert request(dashboard, "/api/models", method="POST", cookie=auth["cookie"]).status == 405
    response = request(dashboard, f"/api/models/{NS}/{NAME}/actions", cookie=auth["cookie"])
    assert response.status == 405


def test_hostile_names_stay_data(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    hostile = copy.deepcopy(model)
    hostile["metadata"]["name"] = "<img src=x onerror=alert(1)>"
    hostile["metadata"]["labels"] = {"team": "</script><script>alert(2)</script>"}
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [hostile]})
    auth = sign_in(dashboard)
    response = request(dashboard, "/api/models", cookie=auth["cookie"])
    (m,) = json.loads(response.body)["models"]
    assert m["name"] == "<img src=x onerror=alert(1)>"  # as data; the page sets textContent
    assert response.content_type == "application/json"
    text = response.body.decode()
    assert "<" not in text
    assert ">" not in text


# --- actions -------------------------------------------------------------------------------


def test_promote_is_the_annotation_the_cli_sets(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer_json("patch", obj=model)
    auth = sign_in(dashboard)
    response = post(dashboard, auth, {"action": "promote"})
    assert response.status == 200, response.body
    assert json.loads(response.body) == {"requested": "promote", "namespace": NS, "name": NAME}
    (patch,) = fake_kubectl.calls_with("patch")
    assert patch == [
        "--context=prod", "patch", RESOURCE, NAME, "--namespace", NS, "--type=merge", "--patch",
        '{"metadata": {"annotations": {"artpulse.io/action": "promote"}}}', "-o", "json",
    ]  # fmt: skip


def test_abort_needs_its_confirmation(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer_json("patch", obj=model)
    auth = sign_in(dashboard)
    assert post(dashboard, auth, {"action": "abort"}).status == 400
    assert fake_kubectl.calls_with("patch") == []
    assert post(dashboard, auth, {"action": "abort", "confirm": True}).status == 200
    assert len(fake_kubectl.calls_with("patch")) == 1


def test_an_action_the_operator_would_refuse_is_409(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    auth = sign_in(dashboard)
    response = post(dashboard, auth, {"action": "resume"})  # not paused
    assert response.status == 409
    assert "would not resume" in json.loads(response.body)["error"]
    assert fake_kubectl.calls_with("patch") == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({CSRF_HEADER: ""}, 403),
        ({CSRF_HEADER: "wrong"}, 403),
        ({"origin": "http://evil.example.com"}, 403),
        ({"origin": "null"}, 403),
        ({"origin": f"http://{HOST}", "sec_fetch_site": "cross-site"}, 403),
        ({"content_type": "text/plain"}, 415),
    ],
)
def test_csrf_and_origin_checks(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, headers: dict[str, str], status: int
) -> None:
    auth = sign_in(dashboard)
    assert post(dashboard, auth, {"action": "promote"}, **headers).status == status
    assert fake_kubectl.calls == []


def test_no_origin_falls_back_to_the_referer(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer_json("patch", obj=model)
    auth = sign_in(dashboard)
    sent = {
        "cookie": auth["cookie"], "content-type": "application/json",
        CSRF_HEADER.lower(): auth["csrfToken"], "host": HOST,
    }  # fmt: skip
    body = b'{"action": "pause"}'
    target = f"/api/models/{NS}/{NAME}/actions"
    assert dashboard.handle(Request("POST", target, sent, body)).status == 403  # neither
    sent["referer"] = f"http://{HOST}/"
    assert dashboard.handle(Request("POST", target, sent, body)).status == 200


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe", b"[]", b'{"action": "delete"}', b'{"action": 1}', b""]
)
def test_bad_bodies_are_400(dashboard: Dashboard, fake_kubectl: FakeKubectl, body: bytes) -> None:
    auth = sign_in(dashboard)
    assert post(dashboard, auth, body).status == 400
    assert fake_kubectl.calls == []


def test_a_failed_patch_is_a_502(
    dashboard: Dashboard, fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, NAME, obj=model)
    fake_kubectl.answer(
        "patch", rc=1, stderr='Error from server (Forbidden): User "jane" cannot patch\n'
    )
    auth = sign_in(dashboard)
    response = post(dashboard, auth, {"action": "promote"})
    assert response.status == 502
    assert "cannot patch" in json.loads(response.body)["error"]


# --- on a real socket ----------------------------------------------------------------------


def test_over_a_socket(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [model]})
    d = Dashboard(Kubectl(str(fake_kubectl.binary)), namespace=NS, port=0, token=TOKEN)
    server = bind(d)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        conn.request("GET", "/api/models")
        unsigned = conn.getresponse()
        unsigned.read()
        assert unsigned.status == 401
        conn.request("GET", f"/?token={TOKEN}")
        signed = conn.getresponse()
        signed.read()
        assert signed.status == 303
        cookie = signed.getheader("Set-Cookie").split(";")[0]
        conn.request("GET", "/api/models", headers={"Cookie": cookie})
        listed = conn.getresponse()
        assert listed.status == 200
        assert json.loads(listed.read())["models"][0]["name"] == NAME
        conn.request("GET", "/", headers={"Cookie": cookie, "Host": f"evil.test:{d.port}"})
        refused = conn.getresponse()
        refused.read()
        assert refused.status == 403
        conn.request("POST", "/api/models/ml/m/actions", body=b"x" * 20000,
                     headers={"Cookie": cookie})  # fmt: skip
        assert conn.getresponse().status == 413
    finally:
        server.shutdown()
        server.server_close()

"""``kubectl artpulse dashboard``: a local web page of the rollouts, over the user's kubeconfig.

Every read and every action is a kubectl call with the flags the plugin was given, so the
page can do exactly what the user's RBAC lets kubectl do, nothing more. Prometheus is asked
through the API server's service proxy (``kubectl_artpulse.promql``).

Who may use it. The server listens on 127.0.0.1 by default, but any local process (and any web
page the user's browser shows) can reach a loopback port, so:

- a random token (``secrets.token_urlsafe``) is made at start and printed in the URL
  ``http://127.0.0.1:PORT/?token=...``; a request carrying it gets a session cookie
  (``HttpOnly; SameSite=Strict``) and is redirected to the same page without the token, so it
  leaves the address bar; every request without a valid session or the token is 401;
- the Host header must name the listen address (``localhost`` too for a loopback address;
  only an IP literal when listening on a wildcard): a DNS-rebinding page has its own name;
- actions are POSTs of JSON only, with an Origin (else Referer) of this very server and the
  session's CSRF token in the ``X-ArtPulse-CSRF`` header; the server looks at the model again
  and refuses (409) an action the operator would not take (``actions.available_actions``);
- every answer has ``Content-Security-Policy: default-src 'self'`` (no inline script or style
  at all), ``X-Frame-Options: DENY``, ``Cache-Control: no-store``, ``nosniff`` and
  ``Referrer-Policy: no-referrer``; the page builds its DOM with ``textContent`` only.

Errors: a kubectl failure is a 502 JSON ``{"error": <kubectl's first line>}`` (404 for a
model that is not there), a bad body 400, an unknown route or a path with ``..`` 404; never a
traceback. ``Dashboard.handle`` is the whole server without sockets, so the unit tests call it
directly (``tests/unit/plugin/test_plugin_dashboard.py``); ``serve`` puts it on a socket.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from kubectl_artpulse.actions import available_actions, request_action
from kubectl_artpulse.contract import ACTIONS, KIND, RESOURCE
from kubectl_artpulse.dashboard_assets import APP_CSS, APP_JS, INDEX_HTML
from kubectl_artpulse.dashboard_view import (
    duration_seconds,
    matrix_points,
    model_detail,
    model_summary,
)
from kubectl_artpulse.kubectl import CliError, Kubectl, KubectlError
from kubectl_artpulse.promql import (
    ServiceRef,
    gate_queries,
    prometheus_service,
    query_range_path,
    weight_query,
)

__all__ = ["CSRF_HEADER", "Dashboard", "Request", "Response", "serve"]

CSRF_HEADER = "X-ArtPulse-CSRF"
MAX_BODY = 16 * 1024
# How far back the plot looks, and how many points a series has at most.
TIMELINE_S = 30 * 60.0
TIMELINE_POINTS = 180
PROMETHEUS_CACHE_S = 10.0
PROMETHEUS_TIMEOUT = "5s"
SAMPLES_KEPT = 720  # status samples per model the server remembers (one per change)
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
# A Kubernetes object name or namespace (DNS-1123 subdomain); anything else is no route.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_STATIC = {
    "/static/app.js": ("application/javascript; charset=utf-8", APP_JS),
    "/static/app.css": ("text/css; charset=utf-8", APP_CSS),
}


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the path and query, as the request line has them
    headers: Mapping[str, str]  # names in lower case
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, data: Any) -> Response:
    # <, > and & as JSON escapes: no answer ever holds markup, whatever a name or label says.
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")
    return Response(status, text.replace("&", "\\u0026").encode())


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


def _first_line(exc: Exception) -> str:
    text = exc.stderr if isinstance(exc, KubectlError) and exc.stderr.strip() else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


class Dashboard:
    """The dashboard's state (the token, the sessions, what it remembers of each model) and
    its request handling, without sockets."""

    def __init__(
        self,
        kubectl: Kubectl,
        *,
        namespace: str | None,
        all_namespaces: bool = False,
        prometheus: ServiceRef | None = None,
        address: str = "127.0.0.1",
        port: int = 3100,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.all_namespaces = all_namespaces
        self.prometheus = prometheus
        self.address = address
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, str] = {}  # session id -> its CSRF token
        self._samples: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self._prometheus_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    # --- who is asking ------------------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        return f"artpulse_dashboard_{self.port}"  # cookies ignore ports: one per dashboard

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/?{urlencode({'token': self.token})}"

    def allowed_host(self, host: str) -> bool:
        """The Host header names this server (DNS rebinding gives it another name)."""
        host = host.strip().lower()
        match = re.fullmatch(r"(\[[0-9a-f:.]+\]|[^:\[\]]+):(\d+)", host)
        if not match or int(match[2]) != self.port:
            return False
        name = match[1].strip("[]")
        try:
            listen = ipaddress.ip_address(self.address)
        except ValueError:
            return name == self.address.lower()
        if listen.is_unspecified:  # 0.0.0.0 or ::: any address of this machine, by number
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        if listen.is_loopback and name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name) == listen
        except ValueError:
            return False

    def _session(self, headers: Mapping[str, str]) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:
            return None
        morsel = cookie.get(self.cookie_name)
        if morsel is None:
            return None
        with self._lock:
            known = next((s for s in self._sessions if hmac.compare_digest(s, morsel.value)), None)
        return known

    def _new_session(self) -> tuple[str, str]:
        session, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session] = csrf
        return session, csrf

    def _token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    # --- the requests -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            response = self._handle(request)
        except Exception as exc:  # never a traceback to the browser; one line to the terminal
            sys.stderr.write(f"dashboard: {request.method} {request.target}: {exc!r}\n")
            response = _error(500, f"internal error: {type(exc).__name__}")
        response.headers.extend(SECURITY_HEADERS)
        return response

    def _handle(self, request: Request) -> Response:
        host = request.headers.get("host", "")
        if not self.allowed_host(host):
            return _error(403, f"this dashboard answers only to {self.address}:{self.port}")
        url = urlsplit(request.target)
        query = parse_qs(url.query)
        given = (query.get("token") or [""])[0]
        session = self._session(request.headers)
        if given and self._token_matches(given) and request.method == "GET":
            session, _ = self._new_session()
            rest = {k: v for k, v in query.items() if k != "token"}
            location = url.path + (f"?{urlencode(rest, doseq=True)}" if rest else "")
            return Response(
                303,
                b"",
                "text/plain",
                [
                    ("Location", location if location.startswith("/") else "/"),
                    (
                        "Set-Cookie",
                        f"{self.cookie_name}={session}; Path=/; HttpOnly; SameSite=Strict",
                    ),
                ],
            )
        if session is None:
            return _error(401, "not signed in: open the URL kubectl artpulse dashboard printed")
        path = url.path
        segments = [unquote(s) for s in path.split("/")]
        if any(s in ("..", ".") for s in segments) or "\\" in path or "//" in path:
            return _error(404, "no such page")
        return self._route(request, path, segments[1:], session)

    def _route(self, request: Request, path: str, parts: list[str], session: str) -> Response:
        get, post = request.method == "GET", request.method == "POST"
        if path == "/":
            return self._index(session) if get else _error(405, "GET only")
        if path in _STATIC:
            if not get:
                return _error(405, "GET only")
            content_type, text = _STATIC[path]
            return Response(200, text.encode(), content_type)
        if path == "/api/session":
            if not get:
                return _error(405, "GET only")
            with self._lock:
                csrf = self._sessions[session]
            return _json(200, {"csrfToken": csrf, **self._scope()})
        if path == "/api/models":
            return self._list() if get else _error(405, "GET only")
        if parts[:2] == ["api", "models"] and len(parts) in (4, 5):
            namespace, name = parts[2], parts[3]
            if not (_NAME.match(namespace) and _NAME.match(name)):
                return _error(404, "no such model")
            if len(parts) == 4:
                return self._detail(namespace, name) if get else _error(405, "GET only")
            if parts[4] == "actions":
                if not post:
                    return _error(405, "POST only")
                return self._action(request, namespace, name, session)
        return _error(404, "no such page")

    def _scope(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "allNamespaces": self.all_namespaces}

    def _index(self, session: str) -> Response:
        with self._lock:
            csrf = self._sessions[session]
        page = INDEX_HTML.replace("{{csrf}}", csrf)  # URL-safe characters: no escaping needed
        return Response(200, page.encode(), "text/html; charset=utf-8")

    # --- reading the models -----------------------------------------------------------------

    def _kubectl_failure(self, exc: Exception, what: str) -> Response:
        if isinstance(exc, KubectlError) and exc.not_found:
            return _error(404, f"{what} not found")
        return _error(502, f"kubectl failed: {_first_line(exc)}")

    def _list(self) -> Response:
        if self.all_namespaces:
            scope = ["--all-namespaces"]
        else:
            scope = ["--namespace", self.namespace] if self.namespace else []
        try:
            found = self.kubectl.json("get", RESOURCE, *scope, quiet=True)
        except (KubectlError, CliError) as exc:
            return self._kubectl_failure(exc, f"{KIND}s")
        items = [i for i in _items(found)]
        for obj in items:
            self._remember(obj)
        models = sorted(
            (model_summary(obj) for obj in items), key=lambda m: (m["namespace"], m["name"])
        )
        return _json(200, {"models": models, "time": self.clock(), **self._scope()})

    def _get(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.kubectl.json("get", RESOURCE, name, "--namespace", namespace, quiet=True)
        if not isinstance(found, dict):
            raise CliError(f"kubectl returned no {KIND} for {name!r}")
        return found

    def _detail(self, namespace: str, name: str) -> Response:
        try:
            obj = self._get(namespace, name)
        except (KubectlError, CliError) as exc:
            return self._kubectl_failure(exc, f"{KIND} {namespace}/{name}")
        self._remember(obj)
        detail = model_detail(obj)
        with self._lock:
            detail["samples"] = list(self._samples.get((namespace, name), ()))
        detail["prometheus"] = self._prometheus(obj, namespace, name)
        detail["time"] = self.clock()
        return _json(200, detail)

    def _remember(self, obj: Mapping[str, Any]) -> None:
        """A status sample, when something the plot shows changed (the demo samples so too)."""
        summary = model_summary(obj)
        check = summary["check"]
        sample = {
            "weight": summary["canaryWeight"],
            "phase": summary["phase"],
            "checkTime": check["time"],
            "p95LatencyMs": check["p95LatencyMs"],
            "errorRate": check["errorRate"],
            "driftScore": check["driftScore"],
        }
        with self._lock:
            kept = self._samples.setdefault(
                (summary["namespace"], summary["name"]), deque(maxlen=SAMPLES_KEPT)
            )
            if kept and {k: v for k, v in kept[-1].items() if k != "t"} == sample:
                return
            kept.append({"t": self.clock(), **sample})

    # --- Prometheus, through the API server -------------------------------------------------

    def _prometheus(self, obj: Mapping[str, Any], namespace: str, name: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            cached = self._prometheus_cache.get((namespace, name))
        if cached and now - cached[0] < PROMETHEUS_CACHE_S:
            return cached[1]
        result = self._ask_prometheus(obj, namespace, name, now)
        with self._lock:
            self._prometheus_cache[(namespace, name)] = (now, result)
        return result

    def _ask_prometheus(
        self, obj: Mapping[str, Any], namespace: str, name: str, now: float
    ) -> dict[str, Any]:
        found_spec, found_status = obj.get("spec"), obj.get("status")
        spec: Mapping[str, Any] = found_spec if isinstance(found_spec, Mapping) else {}
        status: Mapping[str, Any] = found_status if isinstance(found_status, Mapping) else {}
        service, note = prometheus_service(spec, namespace, self.prometheus)
        if service is None:
            return {"ok": False, "target": None, "error": note, "series": []}
        window = duration_seconds((spec.get("analysis") or {}).get("window"))
        model = str((spec.get("model") or {}).get("name") or name)
        start, step = now - TIMELINE_S, max(5.0, TIMELINE_S / TIMELINE_POINTS)
        asked: list[tuple[str, str, str, str]] = [
            ("weight", "", "canary weight (%)", weight_query(namespace, name))
        ]
        for track, ts in sorted((status.get("tracks") or {}).items()):
            version = ((ts or {}).get("version") or {}).get("version")
            if not version:
                continue
            queries = gate_queries(namespace, model, track, str(version), window)
            for key in ("p95_latency_ms", "error_rate", "drift_score"):
                asked.append((key, track, f"{key} {track} v{version}", queries[key]))
        series = []
        quick = self.kubectl
        if not any(f.startswith("--request-timeout") for f in quick.flags):
            quick = Kubectl(quick.binary, [*quick.flags, f"--request-timeout={PROMETHEUS_TIMEOUT}"])
        for metric, track, label, expr in asked:
            path = query_range_path(service, expr, start, now, step)
            try:
                body = json.loads(quick.run("get", "--raw", path, quiet=True))
                points = matrix_points(body)
            except (KubectlError, CliError, ValueError) as exc:
                return {
                    "ok": False,
                    "target": str(service),
                    "error": f"Prometheus at {service} is not reachable through the API "
                    f"server: {_first_line(exc)}",
                    "series": [],
                }
            series.append(
                {
                    "metric": metric,
                    "track": track,
                    "label": label,
                    "query": expr,
                    "points": points,
                }
            )
        return {
            "ok": True,
            "target": str(service),
            "error": None,
            "window": window,
            "start": start,
            "end": now,
            "series": series,
        }

    # --- actions ------------------------------------------------------------------------------

    def _same_origin(self, headers: Mapping[str, str]) -> bool:
        expected = f"http://{headers.get('host', '').strip().lower()}"
        origin = headers.get("origin")
        if origin is None:
            referer = headers.get("referer")
            if not referer:
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        if headers.get("sec-fetch-site") not in (None, "same-origin"):
            return False
        return origin.strip().lower() == expected

    def _action(self, request: Request, namespace: str, name: str, session: str) -> Response:
        if not self._same_origin(request.headers):
            return _error(403, "cross-origin request refused")
        with self._lock:
            csrf = self._sessions[session]
        given = request.headers.get(CSRF_HEADER.lower(), "")
        if not given or not hmac.compare_digest(given.encode(), csrf.encode()):
            return _error(403, f"missing or wrong {CSRF_HEADER} header")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, "send application/json")
        if len(request.body) > MAX_BODY:
            return _error(413, "body too large")
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            return _error(400, f'expected {{"action": one of {", ".join(ACTIONS)}}}')
        action = str(body["action"])
        if action == "abort" and body.get("confirm") is not True:
            return _error(400, 'abort needs "confirm": true')
        try:
            obj = self._get(namespace, name)
            if not available_actions(obj)[action]:
                phase = (obj.get("status") or {}).get("phase") or "Pending"
                return _error(409, f"the operator would not {action} now (phase {phase})")
            request_action(self.kubectl, name, namespace, action, quiet=True)
        except (KubectlError, CliError) as exc:
            return self._kubectl_failure(exc, f"{KIND} {namespace}/{name}")
        with self._lock:
            self._prometheus_cache.pop((namespace, name), None)
        return _json(200, {"requested": action, "namespace": namespace, "name": name})


def _items(found: Any) -> list[dict[str, Any]]:
    if not isinstance(found, dict):
        raise CliError(f"kubectl returned no list of {KIND}s")
    return [i for i in found.get("items") or [] if isinstance(i, dict)]


# --- on a socket --------------------------------------------------------------------------------


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kubectl-artpulse-dashboard"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = self.headers.get("Content-Length")
            try:
                size = int(length) if length else 0
            except ValueError:
                size = -1
            if size < 0 or size > MAX_BODY:
                response = _error(413 if size > MAX_BODY else 400, "bad Content-Length")
                response.headers.extend(SECURITY_HEADERS)
                self.close_connection = True
            else:
                body = self.rfile.read(size) if size else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = dashboard.handle(Request(self.command, self.path, headers, body))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for key, value in response.headers:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the token is in the first request's URL: keep it out of any log

    return Handler


def bind(dashboard: Dashboard) -> ThreadingHTTPServer:
    """A server on the dashboard's address and port (port 0: any free one, then recorded)."""
    server_class = ThreadingHTTPServer
    if ":" in dashboard.address:

        class V6Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = V6Server
    server = server_class((dashboard.address, dashboard.port), _handler(dashboard))
    server.daemon_threads = True
    dashboard.port = int(server.server_address[1])
    return server


def serve(dashboard: Dashboard, out: TextIO, open_browser: bool) -> int:
    server = bind(dashboard)
    out.write(
        f"ArtPulse dashboard on {dashboard.url}\n"
        "Anyone with this URL can act as you on the cluster: keep it to yourself. Ctrl-C stops.\n"
    )
    out.flush()
    if open_browser:
        import webbrowser

        threading.Thread(target=webbrowser.open, args=(dashboard.url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 130
    finally:
        server.server_close()
    return 0

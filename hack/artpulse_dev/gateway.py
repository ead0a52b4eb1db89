"""nginx (Debian's) as the local cluster's gateway: weighted routes to the runtime's processes.

Development tooling, not part of the product. On a real cluster a Gateway API
implementation or ingress-nginx routes traffic; here this module renders an nginx
configuration from the objects the operator writes and reloads nginx when it changes:

- an HTTPRoute's weighted `backendRefs` (provider GatewayAPI; the first rule that
  has backendRefs is used, its matches are ignored);
- an Ingress and its canary twin (`nginx.ingress.kubernetes.io/canary: "true"`
  with `canary-weight` out of `canary-weight-total`, default 100) for provider Nginx;
- a plain Service (provider Replicas: the `<name>` Service selects both tracks and
  the replica counts carry the weight).

How to reach a model (both documented in hack/README.md and printed by `localcluster up`):

- path prefix `http://127.0.0.1:<port>/<namespace>/<name>/...` (the prefix is
  stripped; `X-Forwarded-Prefix` carries it). `<name>` is an HTTPRoute, an Ingress
  or a Service of that name, in that order of precedence, so `/ml/art/predict`
  reaches the model `art` and `/ml/art-canary/predict` the canary track alone;
- Host header: every hostname of an HTTPRoute or host of an Ingress gets a server
  block (`curl -H 'Host: api.example.com' http://127.0.0.1:<port>/predict`). Two
  routes with the same hostname: the first by namespace/name wins, with a warning.

The split is nginx's smooth weighted round robin over the ready processes of every
backend (each process gets the backend's share divided by its process count), so
the weights hold exactly over any run of requests, and a connection error retries
on another process. A backend with weight but no ready process gets nothing (its
share goes to the others) rather than failing requests; a route with no ready
process at all answers 503. Every response carries `X-ArtPulse-Upstream` (the
process address) and `X-ArtPulse-Route`; the JSON access log is `logs/access.log`.

`GET /_artpulse/gateway` answers the configuration version: after a reload the
gateway waits until nginx serves the new version, so when `sync()` returns, no new
request goes to a process that was taken out (the runtime stops it only then).
Called by the runtime loop (`runtime.py`), which hands it the endpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from artpulse_dev._proc import free_port, spawn, stop, wait_until
from artpulse_dev.runtime import Endpoint, ProcessRuntime

log = logging.getLogger("artpulse_dev.gateway")

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_WEIGHT_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"
# Per-process weights are integers: a backend's share is spread over this many units.
WEIGHT_UNITS = 10000


class GatewayError(Exception):
    """nginx refused the rendered configuration, or did not take it up in time."""


# --- the route table (pure) --------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    namespace: str
    service: str
    weight: float
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True)
class Route:
    """Everything nginx needs for one routable name: where it is reached, where it goes."""

    namespace: str
    name: str
    kind: str  # HTTPRoute | Ingress | Service
    hostnames: tuple[str, ...]
    backends: tuple[Backend, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def shares(self) -> list[tuple[Backend, float]]:
        """Each backend that can serve, with its share of traffic (0..1, summing to 1).

        A backend with weight but no ready process is left out and its share spread
        over the others, so the gateway never sends a request nowhere.
        """
        live = [b for b in self.backends if b.weight > 0 and b.endpoints]
        total = sum(b.weight for b in live)
        return [(b, b.weight / total) for b in live] if total > 0 else []


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta["name"], dict(meta.get("annotations") or {})


def _ingress_service(ingress: Mapping[str, Any]) -> str | None:
    spec = ingress.get("spec") or {}
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = ((path.get("backend") or {}).get("service") or {}).get("name")
            if service:
                return str(service)
    default = ((spec.get("defaultBackend") or {}).get("service") or {}).get("name")
    return str(default) if default else None


def _ingress_hosts(ingress: Mapping[str, Any]) -> tuple[str, ...]:
    rules = (ingress.get("spec") or {}).get("rules") or []
    return tuple(sorted({r["host"] for r in rules if r.get("host")}))


def build_routes(
    services: Sequence[Mapping[str, Any]],
    httproutes: Sequence[Mapping[str, Any]],
    ingresses: Sequence[Mapping[str, Any]],
    endpoints: Mapping[tuple[str, str], Sequence[Endpoint]],
) -> list[Route]:
    """The routing table from plain API objects (dicts) and the runtime's endpoints."""

    def backend(namespace: str, service: str, weight: float) -> Backend:
        return Backend(namespace, service, weight, tuple(endpoints.get((namespace, service), ())))

    routes: dict[tuple[str, str], Route] = {}
    for svc in services:
        namespace, name, _ = _meta(svc)
        routes[(namespace, name)] = Route(
            namespace, name, "Service", (), (backend(namespace, name, 1),)
        )

    primaries = [i for i in ingresses if _meta(i)[2].get(CANARY, "").lower() != "true"]
    canaries = [i for i in ingresses if _meta(i)[2].get(CANARY, "").lower() == "true"]
    for ingress in primaries:
        namespace, name, _ = _meta(ingress)
        service = _ingress_service(ingress)
        if service is None:
            continue
        hosts = _ingress_hosts(ingress)
        backends = [backend(namespace, service, 1.0)]
        for canary in canaries:
            c_ns, c_name, annotations = _meta(canary)
            same_host = bool(hosts) and _ingress_hosts(canary) == hosts
            if c_ns != namespace or not (same_host or c_name == f"{name}-canary"):
                continue
            c_service = _ingress_service(canary)
            if c_service is None:
                continue
            total = float(annotations.get(CANARY_WEIGHT_TOTAL) or 100)
            weight = min(max(float(annotations.get(CANARY_WEIGHT) or 0), 0.0), total)
            backends = [
                backend(namespace, service, total - weight),
                backend(namespace, c_service, weight),
            ]
            break
        routes[(namespace, name)] = Route(namespace, name, "Ingress", hosts, tuple(backends))

    for httproute in httproutes:
        namespace, name, _ = _meta(httproute)
        spec = httproute.get("spec") or {}
        refs: list[Mapping[str, Any]] = []
        for rule in spec.get("rules") or []:
            if rule.get("backendRefs"):
                refs = rule["backendRefs"]
                break
        backends = [
            backend(
                ref.get("namespace") or namespace,
                ref["name"],
                float(ref["weight"]) if ref.get("weight") is not None else 1.0,
            )
            for ref in refs
            if (ref.get("kind") or "Service") == "Service"
        ]
        hosts = tuple(sorted(spec.get("hostnames") or ()))
        routes[(namespace, name)] = Route(namespace, name, "HTTPRoute", hosts, tuple(backends))
    return [routes[k] for k in sorted(routes)]


# --- the nginx configuration (pure) ---------------------------------------------------


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _upstream_block(route: Route) -> str:
    lines = [f"upstream {_upstream_name(route)} {{"]
    for backend, share in route.shares():
        per_process = max(1, round(share * WEIGHT_UNITS / len(backend.endpoints)))
        for ep in backend.endpoints:
            lines.append(
                f"    server {ep.host}:{ep.port} weight={per_process} max_fails=0;"
                f"  # {backend.namespace}/{backend.service} {ep.pod}"
            )
    lines.append("}")
    return "\n".join(lines)


def _upstream_name(route: Route) -> str:
    return "r_" + _ident(f"{route.namespace}__{route.name}")


_PROXY = """\
            proxy_pass http://{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Prefix "{prefix}";
            add_header X-ArtPulse-Upstream $upstream_addr always;
            add_header X-ArtPulse-Route "{key}" always;"""


def _location_body(route: Route, prefix: str) -> str:
    if not route.shares():
        return f'            default_type text/plain;\n            return 503 "no ready backend for {route.key}\\n";'
    return _PROXY.format(upstream=_upstream_name(route), prefix=prefix, key=route.key)


def render_nginx_config(
    routes: Sequence[Route], *, port: int, prefix: Path, run_as_root: bool = False
) -> str:
    """The whole nginx.conf for `routes`; ends with the version line the gateway checks."""
    body: list[str] = [
        "# Rendered by artpulse_dev.gateway (local development gateway); do not edit.",
        *(["user root;"] if run_as_root else []),
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'logs' / 'error.log'} warn;",
        "events { worker_connections 1024; }",
        "http {",
        f"    client_body_temp_path {prefix / 'tmp' / 'body'};",
        f"    proxy_temp_path {prefix / 'tmp' / 'proxy'};",
        f"    fastcgi_temp_path {prefix / 'tmp' / 'fastcgi'};",
        f"    uwsgi_temp_path {prefix / 'tmp' / 'uwsgi'};",
        f"    scgi_temp_path {prefix / 'tmp' / 'scgi'};",
        '    log_format artpulse escape=json \'{"time":"$time_iso8601","msec":$msec,'
        '"host":"$host","method":"$request_method","uri":"$request_uri","status":$status,'
        '"route":"$artpulse_route","upstream":"$upstream_addr",'
        '"upstream_status":"$upstream_status","request_time":$request_time}\';',
        f"    access_log {prefix / 'logs' / 'access.log'} artpulse;",
        "    client_max_body_size 20m;",
        "    proxy_connect_timeout 2s;",
        "    proxy_read_timeout 120s;",
        # A process that refuses the connection (just stopped) is skipped; a request
        # already sent is never replayed (nginx's default for POST).
        "    proxy_next_upstream error timeout http_502;",
        "    proxy_next_upstream_tries 3;",
        "    keepalive_timeout 30s;",
    ]
    serving = [r for r in routes if r.shares()]
    for route in serving:
        body.append("    " + _upstream_block(route).replace("\n", "\n    "))

    def server(listen_extra: str, names: str, locations: list[str]) -> None:
        body.append("    server {")
        body.append(f"        listen 127.0.0.1:{port}{listen_extra};")
        body.append(f"        server_name {names};")
        body.append('        set $artpulse_route "";')
        body.append("        location = /_artpulse/gateway {")
        body.append("            default_type text/plain;")
        body.append('            return 200 "@VERSION@\\n";')
        body.append("        }")
        body.extend(locations)
        body.append("    }")

    default_locations: list[str] = []
    for route in routes:
        prefix_path = f"/{route.namespace}/{route.name}"
        default_locations += [
            f"        location {prefix_path}/ {{",
            f'            set $artpulse_route "{route.key}";',
            # `rewrite ... break` ends the rewrite directives (a `return` after it would
            # never run), so only a route with backends strips the prefix.
            *(
                [f"            rewrite ^{re.escape(prefix_path)}(/.*)$ $1 break;"]
                if route.shares()
                else []
            ),
            _location_body(route, prefix_path),
            "        }",
        ]
    default_locations += [
        "        location / {",
        "            default_type text/plain;",
        '            return 404 "no route: use /<namespace>/<name>/... or a Host header of a route\\n";',
        "        }",
    ]
    server(" default_server", "_", default_locations)

    by_host: dict[str, Route] = {}
    for route in routes:
        if route.kind == "Service":
            continue
        for host in route.hostnames:
            if host in by_host:
                log.warning("host %s: %s wins over %s", host, by_host[host].key, route.key)
                continue
            by_host[host] = route
    for host, route in sorted(by_host.items()):
        server(
            "",
            host,
            [
                "        location / {",
                f'            set $artpulse_route "{route.key}";',
                _location_body(route, ""),
                "        }",
            ],
        )
    body.append("}")
    text = "\n".join(body) + "\n"
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text.replace("@VERSION@", version) + f"# version {version}\n"


def config_version(text: str) -> str:
    match = re.search(r"^# version (\w+)$", text, re.MULTILINE)
    return match.group(1) if match else ""


# --- the nginx process -------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not found:
        raise FileNotFoundError(
            "nginx not found: `apt-get install nginx-light` (or `make install`)"
        )
    return found


def _items(obj: Any) -> list[dict[str, Any]]:
    return list(obj.get("items") or []) if isinstance(obj, dict) else []


@dataclass
class NginxGateway:
    """A non-daemon nginx under `state_dir` on a free loopback port; `sync()` keeps it current."""

    state_dir: Path
    port: int = 0
    reload_timeout: float = 15.0
    drain_timeout: float = 3.0
    routes: list[Route] = field(default_factory=list)
    reloads: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _config: str = ""
    _nginx: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.state_dir / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.state_dir / "logs" / "access.log"

    @property
    def error_log(self) -> Path:
        return self.state_dir / "logs" / "error.log"

    def start(self) -> NginxGateway:
        self._nginx = nginx_binary()
        self.state_dir = self.state_dir.resolve()
        for sub in ("logs", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._config = self._render([])
        self._check(self._config, self.conf_path)
        self._proc = spawn(
            [self._nginx, "-p", self.state_dir, "-c", self.conf_path, "-e", self.error_log],
            self.state_dir / "logs" / "nginx.out",
        )
        wait_until(
            lambda: self._served_version() == config_version(self._config),
            30,
            "nginx gateway",
            self._proc,
            self.error_log,
        )
        return self

    def stop(self) -> None:
        stop(self._proc)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _render(self, routes: Sequence[Route]) -> str:
        return render_nginx_config(
            routes, port=self.port, prefix=self.state_dir, run_as_root=os.geteuid() == 0
        )

    def _check(self, text: str, path: Path) -> None:
        path.write_text(text)
        result = subprocess.run(
            [
                self._nginx,
                "-t",
                "-q",
                "-p",
                str(self.state_dir),
                "-c",
                str(path),
                "-e",
                str(self.error_log),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise GatewayError(f"nginx rejected {path}: {result.stderr.strip()}")

    def _served_version(self) -> str:
        with urllib.request.urlopen(f"{self.url}/_artpulse/gateway", timeout=2) as response:
            return str(response.read().decode().strip())

    def _workers(self) -> set[int]:
        """The nginx worker processes (children of the master) running now."""
        if self._proc is None:
            return set()
        master = str(self._proc.pid)
        workers = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if fields[1] == master and fields[0] != "Z":
                    workers.add(int(stat.parent.name))
        return workers

    def apply(self, routes: Sequence[Route]) -> bool:
        """Render `routes`; when the text changed, test it, reload nginx and wait until it is live.

        Live means: a new connection is answered with the new configuration's version,
        and the workers of the old configuration have exited (they stop accepting at
        once, then finish their requests; after `drain_timeout` we stop waiting for
        slow ones). Only then `self.routes` shows the new routes.
        """
        text = self._render(routes)
        if text == self._config:
            self.routes = list(routes)
            return False
        for route in routes:
            for b in route.backends if route.kind != "Service" else ():
                if b.weight > 0 and not b.endpoints:
                    # A real gateway would fail this share of requests; here it goes to
                    # the other backends (or 503 when none is left). Say so in the log.
                    log.warning(
                        "route %s: backend %s/%s has weight %g but no ready process",
                        route.key, b.namespace, b.service, b.weight,
                    )  # fmt: skip
        candidate = self.state_dir / "nginx.conf.new"
        self._check(text, candidate)
        candidate.replace(self.conf_path)
        old_workers = self._workers()
        subprocess.run(
            [self._nginx, "-s", "reload", "-p", str(self.state_dir), "-c", str(self.conf_path), "-e", str(self.error_log)],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self._config = text
        self.reloads += 1
        version = config_version(text)
        deadline = time.monotonic() + self.reload_timeout
        while True:
            with contextlib.suppress(OSError):
                if self._served_version() == version:
                    break
            if time.monotonic() > deadline:
                raise GatewayError(
                    f"nginx did not serve configuration {version} within {self.reload_timeout}s"
                )
            time.sleep(0.02)
        drained = time.monotonic() + self.drain_timeout
        while old_workers & self._workers() and time.monotonic() < drained:
            time.sleep(0.02)
        self.routes = list(routes)
        (self.state_dir / "routes.json").write_text(json.dumps(self.describe(), indent=1))
        return True

    def sync(
        self,
        endpoints: Mapping[tuple[str, str], list[Endpoint]],
        api: client.ApiClient,
        namespaces: frozenset[str] | None = None,
    ) -> None:
        """List Services, HTTPRoutes and Ingresses and apply the routes (the runtime's listener).

        `namespaces` limits the routes to those namespaces (None: all of them).
        """
        core = client.CoreV1Api(api)
        net = client.NetworkingV1Api(api)
        custom = client.CustomObjectsApi(api)
        services = ProcessRuntime._list(core.list_service_for_all_namespaces)
        ingresses = ProcessRuntime._list(net.list_ingress_for_all_namespaces)
        try:
            httproutes = _items(
                custom.list_cluster_custom_object("gateway.networking.k8s.io", "v1", "httproutes")
            )
        except ApiException as exc:
            if exc.status != 404:  # no Gateway API CRDs: no HTTPRoutes
                raise
            httproutes = []
        if namespaces is not None:
            services, httproutes, ingresses = (
                [o for o in objs if _meta(o)[0] in namespaces]
                for objs in (services, httproutes, ingresses)
            )
        self.apply(build_routes(services, httproutes, ingresses, endpoints))

    def describe(self) -> list[dict[str, Any]]:
        """The current routes as plain data: where each name goes and with which share."""
        return [
            {
                "route": r.key,
                "kind": r.kind,
                "path": f"/{r.namespace}/{r.name}/",
                "hostnames": list(r.hostnames),
                "backends": [
                    {
                        "service": f"{b.namespace}/{b.service}",
                        "weight": b.weight,
                        "share": round(dict((id(x), s) for x, s in r.shares()).get(id(b), 0.0), 4),
                        "endpoints": [f"{e.host}:{e.port}" for e in b.endpoints],
                    }
                    for b in r.backends
                ],
            }
            for r in self.routes
        ]


def shares_by_service(route: Route) -> dict[str, float]:
    return {f"{b.namespace}/{b.service}": s for b, s in route.shares()}


def find_route(routes: Iterable[Route], namespace: str, name: str) -> Route | None:
    return next((r for r in routes if r.namespace == namespace and r.name == name), None)

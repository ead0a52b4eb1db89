"""The operator's small HTTP endpoint: ``/healthz`` (liveness/readiness) and ``/metrics``.

Extra routes (``POST /webhooks/mlflow`` when a webhook secret is set) are mounted next to them.

Who calls it: the ``@kopf.on.startup`` handler starts it, ``@kopf.on.cleanup`` stops it. It runs
on the operator's event loop, so a blocked loop stops answering and the kubelet restarts the pod.
Kopf's own ``--liveness`` endpoint serves only one path; this one serves the Prometheus metrics on
the same port (8080, see Dockerfile.operator).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["HealthServer"]

HealthFn = Callable[[], Awaitable[Mapping[str, Any]]]


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: HealthFn,
        routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._health = health
        self._routes = tuple(routes)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [web.get("/healthz", self._healthz), web.get("/metrics", self._metrics), *self._routes]
        )
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        report = dict(await self._health())
        status = 200 if report.get("ok") else 503
        return web.Response(status=status, text=json.dumps(report), content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        # The process's own registry (reconciles) and the default one (rollout metrics,
        # process RSS/CPU); their metric names do not overlap.
        body = generate_latest(self._registry) + generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

"""MLflow's real webhooks reach ``POST /webhooks/mlflow`` and are verified (no Kubernetes).

A real ``mlflow server`` (SQLite) of this module's own, started with the switches MLflow needs to
deliver to a loopback ``http://`` URL (``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``,
``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS``; without them it refuses, see the first test) and a fixed
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` (otherwise each server process draws its own key for the
stored webhook secrets). Two webhooks share one secret: ``direct`` points at the route,
``tap`` at a recorder keeping each raw delivery, which the tests then resend (replays, forgeries).
Both are created before any alias moves: MLflow caches the webhooks of an event for 60 s.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from artpulse_dev._proc import free_port
from artpulse_dev.mlflow_server import MlflowServer
from artpulse_operator.engine.mlflow_events import AliasAction, AliasEvent
from artpulse_operator.handlers.mlflow_webhook import WEBHOOK_PATH, mlflow_webhook_route
from cryptography.fernet import Fernet
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

SECRET = f"artpulse-it-{uuid.uuid4().hex}"
ALIAS_EVENTS = ["model_version_alias.created", "model_version_alias.deleted"]
Delivery = tuple[dict[str, str], bytes]


class Receiver:
    """The route on a loopback aiohttp app in a thread of its own (the tests block on MLflow)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.registry = CollectorRegistry()
        self.events: list[tuple[float, AliasEvent]] = []
        self.taps: list[Delivery] = []
        self.fail_next = False
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _on_event(self, event: AliasEvent) -> int:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the runtime could not be reached")
        with self._changed:
            self.events.append((time.perf_counter(), event))
            self._changed.notify_all()
        return 1

    async def _tap(self, request: web.Request) -> web.Response:
        delivery = (dict(request.headers), await request.read())
        with self._changed:
            self.taps.append(delivery)
            self._changed.notify_all()
        return web.Response(status=204)

    async def _serve(self) -> None:
        app = web.Application()
        route = mlflow_webhook_route(SECRET.encode(), self._on_event, registry=self.registry)
        app.add_routes([route, web.post("/tap", self._tap)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def wait_event(
        self, match: Callable[[AliasEvent], bool], timeout: float = 30
    ) -> tuple[float, AliasEvent]:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next(((t, e) for t, e in self.events if match(e)), None), timeout
            )
        assert found, "no matching alias event before the deadline"
        return found

    def wait_tap(self, match: Callable[[bytes], bool], timeout: float = 30) -> Delivery:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((d for d in self.taps if match(d[1])), None), timeout
            )
        assert found, "no matching delivery at the tap before the deadline"
        return found

    def count(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "artpulse_operator_mlflow_events_total", {"result": result}
        )
        return value or 0.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture(scope="module")
def hooked_mlflow(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    server = MlflowServer(
        Path(tmp_path_factory.mktemp("mlflow-webhooks")),
        extra_env={
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        },
    ).start()
    try:
        client = MlflowClient(server.tracking_uri)
        for name, path in (("direct", WEBHOOK_PATH), ("tap", "/tap")):
            client.create_webhook(name, receiver.url(path), events=ALIAS_EVENTS, secret=SECRET)
        yield server.tracking_uri
    finally:
        server.stop()


def make_model(client: MlflowClient, versions: int) -> str:
    name = f"art-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, "s3://nowhere/model")
    return name


def test_without_the_switches_mlflow_refuses_loopback_http(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.tracking_uri)
    for url, why in (("http://127.0.0.1:9/x", "scheme"), ("https://127.0.0.1:9/x", "non-public")):
        with pytest.raises(MlflowException, match=why):
            client.create_webhook(f"refused-{uuid.uuid4().hex[:6]}", url, events=ALIAS_EVENTS)


def test_an_alias_move_reaches_the_route_verified(hooked_mlflow: str, receiver: Receiver) -> None:
    client = MlflowClient(hooked_mlflow)
    name = make_model(client, 6)
    from_call, from_return = [], []
    for version in range(1, 7):
        called = time.perf_counter()
        client.set_registered_model_alias(name, "challenger", str(version))
        returned = time.perf_counter()
        seen, event = receiver.wait_event(
            lambda e, v=str(version): e.model_name == name and e.version == v
        )
        assert (event.alias, event.action) == ("challenger", AliasAction.CREATED)
        from_call.append((seen - called) * 1000)
        from_return.append((seen - returned) * 1000)
    print(
        "\nwebhook latency over 6 alias moves, ms: "
        f"from the call min {min(from_call):.1f} median {statistics.median(from_call):.1f} "
        f"max {max(from_call):.1f}; from its return min {min(from_return):.1f} "
        f"median {statistics.median(from_return):.1f} max {max(from_return):.1f} "
        f"(first {from_call[0]:.1f} / {from_return[0]:.1f})"
    )
    assert receiver.count("accepted") >= 6


def test_a_deleted_alias_arrives_without_a_version(hooked_mlflow: str, receiver: Receiver) -> None:
    client = MlflowClient(hooked_mlflow)
    name = make_model(client, 1)
    client.set_registered_model_alias(name, "champion", "1")
    client.delete_registered_model_alias(name, "champion")
    _, event = receiver.wait_event(
        lambda e: e.model_name == name and e.action is AliasAction.DELETED
    )
    assert (event.alias, event.version) == ("champion", None)


def test_mlflows_test_button_is_accepted(hooked_mlflow: str, receiver: Receiver) -> None:
    client = MlflowClient(hooked_mlflow)
    direct = next(w for w in client.list_webhooks() if w.name == "direct")
    result = client.test_webhook(direct.webhook_id)
    assert result.success, result
    assert result.response_status == 202
    assert receiver.wait_event(lambda e: e.model_name == "example_model")


def _tapped(hooked_mlflow: str, receiver: Receiver) -> Delivery:
    """A genuine MLflow delivery, captured at the tap (the route has not seen its id)."""
    client = MlflowClient(hooked_mlflow)
    name = make_model(client, 1)
    client.set_registered_model_alias(name, "challenger", "1")
    headers, body = receiver.wait_tap(lambda b: name.encode() in b)
    print(f"\nMLflow delivery headers: {headers}\nbody: {body.decode()}")
    return headers, body


def _post(receiver: Receiver, headers: dict[str, str], body: bytes) -> httpx.Response:
    sent = {k: v for k, v in headers.items() if k.lower().startswith(("x-mlflow", "content-type"))}
    return httpx.post(receiver.url(WEBHOOK_PATH), headers=sent, content=body, timeout=10)


def test_forged_unsigned_and_replayed_deliveries_over_http(
    hooked_mlflow: str, receiver: Receiver
) -> None:
    headers, body = _tapped(hooked_mlflow, receiver)
    assert headers["X-MLflow-Signature"].startswith("v1,")

    forged = body.replace(b'"challenger"', b'"champion"')
    assert _post(receiver, headers, forged).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "X-MLflow-Signature"}
    assert _post(receiver, unsigned, body).status_code == 401

    first = _post(receiver, headers, body)
    assert (first.status_code, first.json()) == (202, {"resources": 1})
    replayed = _post(receiver, headers, body)
    assert (replayed.status_code, replayed.json()) == (409, {"error": "replay"})
    assert receiver.count("bad_signature") >= 1
    assert receiver.count("unsigned") >= 1
    assert receiver.count("replay") >= 1


def test_limits_and_failures_never_answer_500(hooked_mlflow: str, receiver: Receiver) -> None:
    headers, body = _tapped(hooked_mlflow, receiver)
    big = _post(receiver, headers, b" " * (64 * 1024 + 1))
    assert big.status_code == 413
    assert _post(receiver, {}, b"{").status_code == 401

    receiver.fail_next = True  # waking fails: 503, and the id is free for MLflow's retry
    failed = _post(receiver, headers, body)
    assert (failed.status_code, failed.json()) == (503, {"error": "wake_failed"})
    assert "Traceback" not in failed.text
    assert _post(receiver, headers, body).status_code == 202

"""notify.webhooks against a real HTTP receiver on 127.0.0.1 (an aiohttp server per test).

No Kubernetes: the HMAC keys come from an in-memory ``SecretSource``, and no fixture of
tests/conftest.py is asked for (they start only when a test names them). Retries use an
injected sleep that records the delays and returns at once; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from artpulse_dev._proc import free_port
from artpulse_operator.engine.notifications import (
    ConfirmTarget,
    RolloutEventKind,
    RolloutNotice,
    WebhookFormat,
    WebhookTarget,
    generic_payload,
    verify,
)
from artpulse_operator.notify import Notifier, confirm_promotion
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

SECRET = b"hmac-key-of-team-a"
NAMESPACE = "team-a"
LOGGER = "artpulse_operator.notify.webhooks"


@dataclass
class Answer:
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait for Receiver.release before answering


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers from ``answers`` in order (then ``default``) and records every request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.answers: list[Answer] = []
        self.default = Answer()
        self.seen: list[Seen] = []
        self.release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(Seen(request.path, dict(request.headers), body))
        answer = self.answers.pop(0) if self.answers else self.default
        if answer.hang:
            await self.release.wait()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


class FakeSecrets:
    """``SecretSource`` in memory; ``fail_first`` raises that many times first (an API blip)."""

    def __init__(self, data: dict[tuple[str, str, str], bytes], fail_first: int = 0) -> None:
        self.data = data
        self.fail_first = fail_first
        self.reads = 0

    async def get(self, namespace: str, name: str, key: str) -> bytes | None:
        self.reads += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("API server unreachable")
        return self.data.get((namespace, name, key))


class Sleeps:
    """An injected ``sleep``: records the delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def notice(kind: RolloutEventKind = RolloutEventKind.ROLLED_BACK) -> RolloutNotice:
    return RolloutNotice(
        kind=kind,
        namespace=NAMESPACE,
        name="fraud",
        model="fraud-detector",
        candidate_version="7",
        stable_version="6",
        weight=0,
        phase="RolledBack",
        message="version 7 rolled back: maxErrorRate",
        time=datetime.now(UTC),
        evidence={"errorRate": 0.12},
    )


def count(notifier: Notifier, result: str) -> float:
    value = notifier.registry.get_sample_value(
        "artpulse_operator_notifications_total", {"result": result}
    )
    return value or 0.0


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make_notifier(sleeps: Sleeps) -> AsyncIterator[Callable[..., Notifier]]:
    built: list[Notifier] = []

    def make(secrets: Any = None, *, start: bool = True, **options: Any) -> Notifier:
        options.setdefault("rand", lambda: 1.0)  # the backoff's upper bound, to assert on
        notifier = Notifier(
            None,
            secrets or FakeSecrets({(NAMESPACE, "hooks", "hmac-key"): SECRET}),
            registry=CollectorRegistry(),
            sleep=sleeps,
            **options,
        )
        if start:
            notifier.start()
        built.append(notifier)
        return notifier

    try:
        yield make
    finally:
        for notifier in built:
            await notifier.close(deadline_s=1.0)


# --- delivery --------------------------------------------------------------------------------


async def test_signed_delivery_verifies_at_the_receiver(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    notifier = make_notifier()
    signed = WebhookTarget("audit", receiver.url("/signed"), secret_name="hooks")
    plain = WebhookTarget("plain", receiver.url("/plain"))
    sent = notice()
    assert notifier.submit(NAMESPACE, [signed, plain], sent) is True
    await until(lambda: count(notifier, "sent") == 2, "two deliveries")

    by_path = {s.path: s for s in receiver.seen}
    got = by_path["/signed"]
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == "artpulse-operator"
    assert got.headers["X-ArtPulse-Event"] == "rolledBack"
    assert verify(
        SECRET,
        got.headers["X-ArtPulse-Timestamp"],
        got.headers["X-ArtPulse-Signature"],
        got.body,
        now=time.time(),
    )
    assert not verify(
        SECRET,
        got.headers["X-ArtPulse-Timestamp"],
        got.headers["X-ArtPulse-Signature"],
        got.body.replace(b"rolledBack", b"promoted"),
        now=time.time(),
    )
    assert json.loads(got.body) == generic_payload(sent)
    assert "X-ArtPulse-Signature" not in by_path["/plain"].headers
    assert "X-ArtPulse-Timestamp" in by_path["/plain"].headers


async def test_slack_format(receiver: Receiver, make_notifier: Callable[..., Notifier]) -> None:
    notifier = make_notifier()
    target = WebhookTarget("slack", receiver.url(), format=WebhookFormat.SLACK)
    notifier.submit(NAMESPACE, [target], notice())
    await until(lambda: count(notifier, "sent") == 1, "the Slack delivery")
    payload = json.loads(receiver.seen[0].body)
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith("[rolledBack] team-a/fraud:")
    assert payload["blocks"][0]["type"] == "section"


async def test_only_subscribed_events_are_sent(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    notifier = make_notifier()
    target = WebhookTarget("p", receiver.url(), events=frozenset({RolloutEventKind.PROMOTED}))
    assert notifier.submit(NAMESPACE, [target], notice(RolloutEventKind.STEP)) is True
    notifier.submit(NAMESPACE, [target], notice(RolloutEventKind.PROMOTED))
    await until(lambda: count(notifier, "sent") == 1, "the promoted delivery")
    assert [s.headers["X-ArtPulse-Event"] for s in receiver.seen] == ["promoted"]


# --- retries ---------------------------------------------------------------------------------


async def test_retry_after_503_then_200(
    receiver: Receiver, make_notifier: Callable[..., Notifier], sleeps: Sleeps
) -> None:
    receiver.answers = [Answer(503), Answer(503), Answer(200)]
    notifier = make_notifier()
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url(), secret_name="hooks")], notice())
    await until(lambda: count(notifier, "sent") == 1, "the third attempt")
    assert len(receiver.seen) == 3
    assert count(notifier, "retried") == 2
    assert count(notifier, "failed") == 0
    assert sleeps.delays == [1.0, 2.0]  # full jitter with rand() = 1: the bounds
    # Each attempt is signed afresh, and each verifies.
    assert all(
        verify(SECRET, s.headers["X-ArtPulse-Timestamp"], s.headers["X-ArtPulse-Signature"],
               s.body, now=time.time())
        for s in receiver.seen
    )  # fmt: skip


async def test_429_retry_after_is_honoured(
    receiver: Receiver, make_notifier: Callable[..., Notifier], sleeps: Sleeps
) -> None:
    receiver.answers = [Answer(429, headers={"Retry-After": "7"})]
    notifier = make_notifier(rand=lambda: 0.0)
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url())], notice())
    await until(lambda: count(notifier, "sent") == 1, "the retried delivery")
    assert sleeps.delays == [7.0]


async def test_no_retry_on_400_and_the_answer_is_never_logged(
    receiver: Receiver, make_notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # As the startup handler sets it: httpx logs every request's full URL at INFO.
    caplog.set_level(logging.WARNING, logger="httpx")
    receiver.answers = [Answer(400, body="INTERNAL-ANSWER-1234 secret=hunter2")]
    notifier = make_notifier()
    url = receiver.url("/services/T0/B0/PATH-TOKEN")
    notifier.submit(NAMESPACE, [WebhookTarget("audit", url)], notice())
    await until(lambda: count(notifier, "failed") == 1, "the failure")
    assert len(receiver.seen) == 1
    assert count(notifier, "retried") == 0
    assert "HTTP 400" in caplog.text
    assert "'audit'" in caplog.text
    assert "INTERNAL-ANSWER-1234" not in caplog.text
    assert "PATH-TOKEN" not in caplog.text  # a webhook URL's path is a credential


async def test_gives_up_after_max_attempts(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    receiver.default = Answer(500)
    notifier = make_notifier(max_attempts=3)
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url())], notice())
    await until(lambda: count(notifier, "failed") == 1, "giving up")
    assert len(receiver.seen) == 3
    assert count(notifier, "retried") == 2


async def test_redirects_are_not_followed(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    receiver.answers = [Answer(307, headers={"Location": receiver.url("/elsewhere")})]
    notifier = make_notifier()
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url("/hook"))], notice())
    await until(lambda: count(notifier, "failed") == 1, "the refused redirect")
    assert [s.path for s in receiver.seen] == ["/hook"]


async def test_connection_refused_is_retried(make_notifier: Callable[..., Notifier]) -> None:
    notifier = make_notifier(max_attempts=2)
    url = f"http://127.0.0.1:{free_port()}/hook"
    notifier.submit(NAMESPACE, [WebhookTarget("t", url)], notice())
    await until(lambda: count(notifier, "failed") == 1, "giving up")
    assert count(notifier, "retried") == 1


# --- secrets and the allowlist ---------------------------------------------------------------


async def test_unreadable_secret_is_never_sent_unsigned(
    receiver: Receiver, make_notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    notifier = make_notifier(FakeSecrets({}))
    target = WebhookTarget("t", receiver.url(), secret_name="missing", secret_key="k")
    notifier.submit(NAMESPACE, [target], notice())
    await until(lambda: count(notifier, "failed") == 1, "the failure")
    assert receiver.seen == []
    assert "Secret team-a/missing key 'k'" in caplog.text


async def test_secret_read_blip_is_retried_and_the_key_never_logged(
    receiver: Receiver, make_notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = FakeSecrets({(NAMESPACE, "hooks", "hmac-key"): SECRET}, fail_first=1)
    notifier = make_notifier(secrets)
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url(), secret_name="hooks")], notice())
    await until(lambda: count(notifier, "sent") == 1, "the delivery")
    assert secrets.reads == 2
    assert SECRET.decode() not in caplog.text


async def test_url_outside_the_allowlist_is_refused(
    receiver: Receiver, make_notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    notifier = make_notifier(url_allowed=lambda url: url.startswith("https://hooks.example.com/"))
    notifier.submit(NAMESPACE, [WebhookTarget("t", receiver.url())], notice())
    await until(lambda: count(notifier, "failed") == 1, "the refusal")
    assert receiver.seen == []
    assert "allowlist" in caplog.text


# --- never blocking --------------------------------------------------------------------------


async def test_dropped_when_the_queue_is_full(make_notifier: Callable[..., Notifier]) -> None:
    notifier = make_notifier(start=False, max_queue=2)
    target = WebhookTarget("t", "http://127.0.0.1:9/")
    assert notifier.submit(NAMESPACE, [target], notice()) is True
    assert notifier.submit(NAMESPACE, [target], notice()) is True
    assert notifier.submit(NAMESPACE, [target], notice()) is False
    assert count(notifier, "dropped") == 1
    await notifier.close(deadline_s=0.1)
    assert count(notifier, "failed") == 2  # abandoned at shutdown
    assert notifier.submit(NAMESPACE, [target], notice()) is False  # closed: dropped
    assert count(notifier, "dropped") == 2


async def test_submit_never_blocks_when_the_receiver_hangs(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    receiver.default = Answer(200, hang=True)
    notifier = make_notifier(max_attempts=1, workers=2)
    target = WebhookTarget("slow", receiver.url(), timeout_s=5.0)
    notifier.submit(NAMESPACE, [target], notice())
    await until(lambda: len(receiver.seen) >= 1, "the receiver to hold a request")

    started = time.perf_counter()
    results = [notifier.submit(NAMESPACE, [target], notice()) for _ in range(200)]
    elapsed = time.perf_counter() - started
    assert all(results)
    assert elapsed < 0.5, f"200 submits took {elapsed:.3f}s while the receiver hangs"
    assert notifier.pending == 201

    receiver.default = Answer(200)
    receiver.release.set()
    await until(lambda: count(notifier, "sent") == 201, "every delivery", timeout_s=20)


async def test_a_hanging_receiver_times_out_and_close_keeps_its_deadline(
    receiver: Receiver, make_notifier: Callable[..., Notifier]
) -> None:
    receiver.default = Answer(200, hang=True)
    notifier = make_notifier(max_attempts=2)
    notifier.submit(NAMESPACE, [WebhookTarget("slow", receiver.url(), timeout_s=0.3)], notice())
    await until(lambda: count(notifier, "retried") == 1, "the first attempt to time out")
    await until(lambda: len(receiver.seen) == 2, "the second attempt")

    started = time.perf_counter()
    await notifier.close(deadline_s=0.05)
    assert time.perf_counter() - started < 1.0
    assert count(notifier, "failed") == 1
    assert count(notifier, "sent") == 0


# --- confirmPromotion ------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


async def test_confirm_promotion_approved_on_200(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    target = ConfirmTarget(receiver.url("/confirm"), secret_name="gate")
    decision = await confirm_promotion(client, target, notice(), SECRET)
    assert decision.approved is True
    assert decision.status_code == 200
    (seen,) = receiver.seen
    assert seen.headers["X-ArtPulse-Event"] == "confirmPromotion"
    assert json.loads(seen.body)["event"] == "confirmPromotion"
    assert verify(
        SECRET,
        seen.headers["X-ArtPulse-Timestamp"],
        seen.headers["X-ArtPulse-Signature"],
        seen.body,
        now=time.time(),
    )


@pytest.mark.parametrize("status", [403, 500, 302])
async def test_confirm_promotion_refused_on_other_answers(
    receiver: Receiver, client: httpx.AsyncClient, status: int
) -> None:
    receiver.default = Answer(status, body="DENIED-BODY", headers={"Location": "/x"})
    decision = await confirm_promotion(client, ConfirmTarget(receiver.url()), notice(), None)
    assert decision.approved is False
    assert decision.status_code == status
    assert f"HTTP {status}" in decision.message
    assert "DENIED-BODY" not in decision.message


async def test_confirm_promotion_refused_on_timeout(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.default = Answer(200, hang=True)
    started = time.perf_counter()
    target = ConfirmTarget(receiver.url(), timeout_s=0.3)
    decision = await confirm_promotion(client, target, notice(), None)
    assert time.perf_counter() - started < 3.0
    assert (decision.approved, decision.status_code) == (False, None)
    assert "timed out after 0.3s" in decision.message


async def test_confirm_promotion_refused_on_connection_refused(client: httpx.AsyncClient) -> None:
    target = ConfirmTarget(f"http://127.0.0.1:{free_port()}/confirm")
    decision = await confirm_promotion(client, target, notice(), None)
    assert (decision.approved, decision.status_code) == (False, None)
    assert "connection failed" in decision.message


async def test_confirm_promotion_is_not_asked_unsigned(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    target = ConfirmTarget(receiver.url(), secret_name="gate", secret_key="k")
    decision = await confirm_promotion(client, target, notice(), None)
    assert decision.approved is False
    assert "Secret team-a/gate key 'k'" in decision.message
    assert receiver.seen == []


async def test_confirm_promotion_allowlist(receiver: Receiver, client: httpx.AsyncClient) -> None:
    decision = await confirm_promotion(
        client, ConfirmTarget(receiver.url()), notice(), None, url_allowed=lambda _: False
    )
    assert decision.approved is False
    assert "allowlist" in decision.message
    assert receiver.seen == []

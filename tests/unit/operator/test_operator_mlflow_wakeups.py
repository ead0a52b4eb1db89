"""MLflow wake-ups: ``Runtime.wake_model`` reconciles at once the resources following a model,
and the startup wiring mounts the webhook route only with a strong secret.

A fake reconciler (no cluster, no MLflow) answers each pass with the model it followed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from artpulse_operator.handlers.reconcile import Outcome
from artpulse_operator.handlers.runtime import Runtime
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.settings import Settings
from kopf._cogs.aiokits.aioenums import FlagSetter

MODELS = {("ns", "a"): "fraud", ("ns", "b"): "fraud", ("other", "c"): "churn"}


@dataclass
class FakeCache:
    def forget_owner(self, namespace: str, name: str) -> None:
        pass


@dataclass
class FakeReconciler:
    passes: list[tuple[str, str]] = field(default_factory=list)
    cache: FakeCache = field(default_factory=FakeCache)

    async def reconcile(self, namespace: str, name: str, *, full: bool = False) -> Outcome:
        self.passes.append((namespace, name))
        return Outcome(requeue_after=600.0, model=MODELS[(namespace, name)])


def runtime(reconciler: FakeReconciler) -> Runtime:
    fake: Any = reconciler
    return Runtime(settings=Settings(), kube=None, reconciler=fake, telemetry=Telemetry())  # type: ignore[arg-type]


async def test_wake_model_pokes_only_the_resources_following_that_model() -> None:
    rt = runtime(FakeReconciler())
    for ns, name in MODELS:
        await rt.reconcile_now(ns, name)
    for state in rt.states.values():
        state.poke.clear()

    assert rt.wake_model("fraud") == 2
    assert rt.wake_model("nobody-follows-this") == 0
    woken = {key for key, s in rt.states.items() if s.urgent and s.poke.is_set()}
    assert woken == {("ns", "a"), ("ns", "b")}


async def test_a_resource_never_reconciled_is_not_woken() -> None:
    rt = runtime(FakeReconciler())
    rt.state("ns", "a")  # known to the runtime, but no reconcile has said which model yet
    assert rt.wake_model("fraud") == 0


async def test_the_daemon_reconciles_at_once_when_woken() -> None:
    reconciler = FakeReconciler()
    rt = runtime(reconciler)
    rt.state("ns", "a").due = 0.0  # due at once, not after the usual first second
    stopper: FlagSetter[Any] = FlagSetter()
    daemon = asyncio.create_task(rt.follow("ns", "a", stopper.async_waiter))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    try:
        await _until(lambda: len(reconciler.passes) == 1)
        assert rt.states["ns", "a"].due - loop.time() > 500  # next poll in ~600 s
        assert rt.wake_model("fraud") == 1
        await _until(lambda: len(reconciler.passes) == 2, deadline_s=1.0)
    finally:
        stopper.set()
        await asyncio.wait_for(daemon, 5)
    assert ("ns", "a") not in rt.states  # the daemon forgot it on the way out


async def _until(condition: Any, deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)


class _Cfg:
    def __init__(self, secret: object) -> None:
        self.mlflow_webhook_secret = secret


def test_the_route_is_mounted_only_with_a_strong_secret() -> None:
    from artpulse_operator.handlers import _webhook_routes
    from pydantic import SecretStr

    rt = runtime(FakeReconciler())
    assert _webhook_routes(Settings(), rt) == []  # a Settings without the field yet
    assert _webhook_routes(_Cfg(None), rt) == []  # type: ignore[arg-type]
    assert _webhook_routes(_Cfg(SecretStr("")), rt) == []  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 16 bytes"):
        _webhook_routes(_Cfg(SecretStr("short")), rt)  # type: ignore[arg-type]
    [route] = _webhook_routes(_Cfg(SecretStr("x7Qp2Lm9Vd4Rt8Wz")), rt)  # type: ignore[arg-type]
    assert (route.method, route.path) == ("POST", "/webhooks/mlflow")

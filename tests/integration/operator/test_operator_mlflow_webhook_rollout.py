"""Challenger moved in MLflow -> rollout started, with MLflow's alias webhook and by polling.

Real parts, no kubelet: the API server + etcd (``control_plane``), a real ``mlflow server``
(SQLite) of this module's own started with the webhook switches (loopback ``http://`` allowed,
a fixed secret encryption key, ``MLFLOW_WEBHOOK_CACHE_TTL=0`` so a created or disabled webhook
counts from the next event on), and the operator as ``python -m artpulse_operator`` under its
shipped RBAC with ``ARTPULSE_MLFLOW_WEBHOOK_SECRET`` set, so it serves ``POST /webhooks/mlflow``
on its health port. One MLflow webhook (alias created/deleted, same secret) points there.

"Rollout started" is the resource's status read from the API: phase Progressing with
``candidate.version`` 2 (a Canary rollout enters Progressing at weight 0 and waits for its
workload, so neither pods nor Prometheus are needed). Each move uses a fresh model (versions 1
and 2, champion 1) and a fresh resource, Stable before its challenger alias is set.

- webhook: ``pollInterval: 5m``; the status must show the rollout long before any poll could be
  due (``rolloutStartedAt`` within the 5 minutes after the resource was created), and each move
  must be counted as an accepted delivery on the operator's /metrics.
- polling baseline: ``pollInterval: 10s`` with the webhook DISABLED in MLflow (MLflow's webhooks
  are server-wide, not per model: an active one would wake these resources too); no delivery may
  be counted while it runs.

No wall-clock bound on the latency itself (shared machines are noisy): the figures are printed,
and with ``ARTPULSE_WRITE_BENCHMARKS=1`` (``make bench-mlflow-webhook``) written to
docs/benchmarks.md, between ``<!-- BEGIN mlflow-webhook-latency -->`` and its END.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from artpulse_dev.mlflow_server import MlflowServer
from artpulse_operator.handlers.mlflow_webhook import WEBHOOK_PATH
from cryptography.fernet import Fernet
from mlflow.entities.webhook import WebhookEvent, WebhookEventStr
from mlflow.tracking import MlflowClient
from operator_process import (
    Kube,
    OperatorProcess,
    fresh_namespace,
    model_resource,
    register_model,
    running_operator,
    wait_for,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NS_PREFIX = "mlhook-"
SECRET = f"artpulse-it-{uuid.uuid4().hex}"
ALIAS_EVENTS: list[WebhookEventStr | WebhookEvent] = [
    "model_version_alias.created",
    "model_version_alias.deleted",
]
WEBHOOK_MOVES = 3
POLLING_MOVES = 2  # each waits a random part of the interval first: ~20 s in all
WEBHOOK_POLL = ("5m", 300.0)
POLLING_POLL = ("10s", 10.0)
STATUS_EVERY_S = 0.02  # how often the test reads the resource's status
FIRST_LOOK_S = 3.0  # the operator's per-resource daemon looks once ~1 s after it starts
MARKER = "mlflow-webhook-latency"
ACCEPTED = "artpulse_operator_mlflow_events_total"


def _load_report() -> ModuleType:
    """loadtest/report.py (machine facts, the docs section writer); loadtest is no package."""
    path = REPO / "loadtest" / "report.py"
    spec = importlib.util.spec_from_file_location("artpulse_loadtest_report", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Api:
    """The resource's status straight from the API server over one kept-alive connection (a
    kubectl per read would cost ~100 ms, more than what is measured)."""

    def __init__(self, control_plane: Any) -> None:
        config = json.loads(Path(control_plane.kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        token = config["users"][0]["user"]["token"]
        self._client = httpx.Client(
            base_url=cluster["server"],
            verify=str(cluster["certificate-authority"]),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def resource(self, namespace: str, name: str) -> dict[str, Any]:
        path = f"/apis/artpulse.io/v1alpha1/namespaces/{namespace}/artpulsemodels/{name}"
        response = self._client.get(path)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class Move:
    call_ms: float  # set_registered_model_alias, call to return
    started_ms: float  # the call -> status.rolloutStartedAt (the reconcile's clock)
    after_return_ms: float  # the call's return -> status.rolloutStartedAt
    seen_ms: float  # the call -> the first status read showing Progressing with version 2
    created_to_started_s: float  # metadata.creationTimestamp -> status.rolloutStartedAt


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _accepted(operator: OperatorProcess) -> float:
    for family in text_string_to_metric_families(operator.metrics()):
        for sample in family.samples:
            if sample.name == ACCEPTED and sample.labels.get("result") == "accepted":
                return float(sample.value)
    raise AssertionError(f"{ACCEPTED}{{result=accepted}} is not on the operator's /metrics")


def _prepare(kube: Kube, tracking_uri: str, count: int, poll: str) -> list[tuple[str, str]]:
    """``count`` (resource, model) pairs, each model with versions 1 and 2 and champion 1, each
    resource Stable on version 1."""
    pairs = []
    for i in range(count):
        model = register_model(tracking_uri, 2, {"champion": "1"})
        name = f"art-{i}"
        body = model_resource(name, model)
        body["spec"]["model"]["pollInterval"] = poll
        kube.apply(body)
        pairs.append((name, model))
    for name, _ in pairs:

        def stable(name: str = name) -> bool:
            return bool((kube.get("apm", name) or {}).get("status", {}).get("phase") == "Stable")

        wait_for(stable, f"{kube.ns}/{name} Stable", timeout=60)
    time.sleep(FIRST_LOOK_S)  # past each daemon's first look: what follows is a wake or a poll
    return pairs


def _move(api: Api, client: MlflowClient, namespace: str, name: str, model: str) -> Move:
    """Set challenger=2 and read the status every STATUS_EVERY_S until the rollout shows."""
    before = api.resource(namespace, name)["status"]
    assert (before["phase"], before.get("candidate")) == ("Stable", None), before
    wall = time.time()
    called = time.perf_counter()
    client.set_registered_model_alias(model, "challenger", "2")
    returned = time.perf_counter()
    wall_returned = time.time()
    deadline = called + 60
    while True:
        body = api.resource(namespace, name)
        status = body.get("status") or {}
        if status.get("phase") == "Progressing":
            seen = time.perf_counter()
            break
        assert time.perf_counter() < deadline, f"no rollout within 60 s: {status}"
        time.sleep(STATUS_EVERY_S)
    assert (status.get("candidate") or {}).get("version") == "2", status
    assert status["stable"]["version"] == "1", status
    started = _parse_time(status["rolloutStartedAt"])
    created = _parse_time(body["metadata"]["creationTimestamp"])
    return Move(
        call_ms=(returned - called) * 1000,
        started_ms=(started.timestamp() - wall) * 1000,
        after_return_ms=(started.timestamp() - wall_returned) * 1000,
        seen_ms=(seen - called) * 1000,
        created_to_started_s=(started - created).total_seconds(),
    )


@pytest.fixture(scope="module")
def hooked_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(
        Path(tmp_path_factory.mktemp("mlflow-hook-rollout")),
        extra_env={
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MLFLOW_WEBHOOK_CACHE_TTL": "0",  # no 60 s cache of the webhook list
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def operator(
    control_plane: Any, hooked_mlflow: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator-hook") / "operator.log"
    with running_operator(
        control_plane,
        hooked_mlflow.tracking_uri,
        log,
        f"{NS_PREFIX}*",
        ARTPULSE_MLFLOW_WEBHOOK_SECRET=SECRET,
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def webhook(hooked_mlflow: MlflowServer, operator: OperatorProcess) -> Iterator[str]:
    """MLflow's webhook to the operator's route (on its health port); deleted afterwards."""
    client = MlflowClient(hooked_mlflow.tracking_uri)
    url = f"http://127.0.0.1:{operator.port}{WEBHOOK_PATH}"
    hook = client.create_webhook("artpulse-operator", url, events=ALIAS_EVENTS, secret=SECRET)
    try:
        yield hook.webhook_id
    finally:
        client.delete_webhook(hook.webhook_id)


@pytest.fixture(scope="module")
def api(control_plane: Any) -> Iterator[Api]:
    client = Api(control_plane)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def results(control_plane: Any) -> Iterator[dict[str, list[Move]]]:
    """Filled by the tests; once both paths are measured, printed and written to the docs."""
    found: dict[str, list[Move]] = {}
    yield found
    if {"webhook", "polling"} <= found.keys():
        text = _report(control_plane, found)
        print(f"\n{text}")
        if os.environ.get("ARTPULSE_WRITE_BENCHMARKS"):  # `make bench-mlflow-webhook`
            _load_report().write_section(MARKER, text)


def test_a_webhook_starts_the_rollout_long_before_a_poll_could(
    control_plane: Any,
    hooked_mlflow: MlflowServer,
    operator: OperatorProcess,
    webhook: str,
    api: Api,
    results: dict[str, list[Move]],
) -> None:
    client = MlflowClient(hooked_mlflow.tracking_uri)
    assert client.get_webhook(webhook).status.is_active()
    moves = []
    with fresh_namespace(control_plane, NS_PREFIX) as kube:
        pairs = _prepare(kube, hooked_mlflow.tracking_uri, WEBHOOK_MOVES, WEBHOOK_POLL[0])
        for name, model in pairs:
            accepted = _accepted(operator)
            move = _move(api, client, kube.ns, name, model)
            # Its pollInterval cannot explain it: no poll is due before creation + 5 minutes.
            assert 0 < move.created_to_started_s < WEBHOOK_POLL[1], move
            # The delivery is what woke it: counted as accepted, and the log names the model.
            assert _accepted(operator) >= accepted + 1
            line = f"MLflow alias challenger of {model} created (version 2): 1 resource(s) woken"

            def logged(line: str = line) -> bool:
                return line in operator.log_path.read_text()

            wait_for(logged, f"the operator's log line {line!r}", timeout=10)
            moves.append(move)
    results["webhook"] = moves
    print(f"\nwebhook: {_row(moves)}")


def test_without_the_webhook_polling_starts_it_within_its_interval(
    control_plane: Any,
    hooked_mlflow: MlflowServer,
    operator: OperatorProcess,
    webhook: str,
    api: Api,
    results: dict[str, list[Move]],
) -> None:
    client = MlflowClient(hooked_mlflow.tracking_uri)
    client.update_webhook(webhook, status="DISABLED")
    moves = []
    try:
        with fresh_namespace(control_plane, NS_PREFIX) as kube:
            pairs = _prepare(kube, hooked_mlflow.tracking_uri, POLLING_MOVES, POLLING_POLL[0])
            accepted = _accepted(operator)
            for name, model in pairs:
                # Resources made one after the other poll in step: a random phase per move.
                time.sleep(random.uniform(0, POLLING_POLL[1]))
                moves.append(_move(api, client, kube.ns, name, model))
            assert _accepted(operator) == accepted, "a delivery arrived with the webhook disabled"
    finally:
        client.update_webhook(webhook, status="ACTIVE")
    for move in moves:
        assert move.started_ms > 0, move  # started after the move, by a poll
    results["polling"] = moves
    print(f"\npolling: {_row(moves)}")


def _stats(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def _row(moves: list[Move]) -> str:
    return (
        f"{len(moves)} moves; call -> rolloutStartedAt {_stats([m.started_ms for m in moves])} ms; "
        f"return -> rolloutStartedAt {_stats([m.after_return_ms for m in moves])} ms; "
        f"call -> status seen {_stats([m.seen_ms for m in moves])} ms; "
        f"MLflow call {_stats([m.call_ms for m in moves])} ms (min / median / max)"
    )


def _report(control_plane: Any, found: dict[str, list[Move]]) -> str:
    server = json.loads(control_plane.kubectl("version", "-o", "json").stdout)["serverVersion"]
    facts = _load_report().machine_facts(
        {
            "kopf": importlib.metadata.version("kopf"),
            "mlflow": importlib.metadata.version("mlflow"),
            "kube-apiserver": server["gitVersion"],
        }
    )
    machine = (
        f"Machine: {facts['cpus']} CPUs ({facts['cpu']}), {facts['ram']} RAM, shared with other "
        f"builds and tests (load average {facts['load']}). Python {facts['python']}, kopf "
        f"{facts['kopf']}, MLflow {facts['mlflow']}, kube-apiserver {facts['kube-apiserver']}. "
        f"{datetime.now(UTC):%Y-%m-%d}."
    )
    rows = [
        ("webhook, `pollInterval: 5m`", found["webhook"]),
        ("polling, `pollInterval: 10s`, webhook disabled", found["polling"]),
    ]
    table = [
        "| path | moves | `set_registered_model_alias` call (ms) | call -> `rolloutStartedAt` (ms) "
        "| its return -> `rolloutStartedAt` (ms) | call -> status read Progressing (ms) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, moves in rows:
        table.append(
            f"| {label} | {len(moves)} | {_stats([m.call_ms for m in moves])} "
            f"| {_stats([m.started_ms for m in moves])} "
            f"| {_stats([m.after_return_ms for m in moves])} "
            f"| {_stats([m.seen_ms for m in moves])} |"
        )
    return "\n".join(
        [
            f"<!-- BEGIN {MARKER} -->",
            "## MLflow alias events in: challenger moved → rollout started",
            "",
            "tests/integration/operator/test_operator_mlflow_webhook_rollout.py, one run: the API "
            "server + etcd (no kubelet), `mlflow server` (SQLite) with an alias webhook to the "
            "operator's `POST /webhooks/mlflow`, the operator as `python -m artpulse_operator` "
            "under its shipped RBAC. Each move: a fresh model (versions 1 and 2, champion 1) and "
            "a fresh Canary ArtPulseModel, Stable, then `challenger` set to 2; the status is read "
            f"from the API every {STATUS_EVERY_S * 1000:.0f} ms until phase Progressing with "
            "candidate 2 (weight 0, waiting for the workload: no pods or Prometheus needed). "
            "Polling: the same with the webhook disabled in MLflow (its webhooks are "
            "server-wide), each move at a random point of its resource's 10 s poll cycle.",
            "",
            machine,
            "",
            *table,
            "",
            "min / median / max. `rolloutStartedAt` is the operator's clock at the start of the "
            "reconcile that began the rollout (same machine as the test); the status read adds "
            "the reconcile itself, the status write and the test's read interval. A poll finds "
            "the move somewhere in its interval, so polling is uniform over 0-10 s here (and "
            "over 0-30 s at the default `pollInterval`); the webhook does not depend on it.",
            f"<!-- END {MARKER} -->",
        ]
    )

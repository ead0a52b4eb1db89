"""Staging -> production as an alias chain, on the real cluster, in two namespaces.

One MLflow model, two ArtPulseModels:

- staging (namespace ``staging``) follows ``challenger`` and serves ``staging``;
- production (namespace ``production``) follows ``staging`` and serves ``champion``, and its
  promotion waits for a ``confirmPromotion`` webhook; its rollout events go to a signed
  notification webhook.

Moving ``challenger`` to v2 rolls staging forward; its promotion moves ``staging``, which starts
production's rollout; production passes its analysis and then waits, serving both versions,
until the receiver (a pod standing in for a person or CI) approves. Only then does
``champion`` move. The receiver checks every notification's HMAC signature itself.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from artpulse_dev import webhook_receiver
from artpulse_dev.story import Story

from .e2e_support import (
    DATA,
    E2E,
    assert_no_failed_requests,
    stable_is,
    wait_for,
    workloads_left,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RECEIVER = Path(webhook_receiver.__file__).read_text()
OPERATOR_IMAGE = "localhost/artpulse-operator:0.1.0"


def _receiver_objects(namespace: str, key: str) -> list[dict[str, Any]]:
    labels = {"app": "webhook-receiver"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "webhook-hmac", "namespace": namespace},
            "stringData": {"hmac-key": key},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "webhook-receiver", "namespace": namespace, "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "receiver",
                        "image": OPERATOR_IMAGE,  # any image with Python; ours is here
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", RECEIVER],
                        "env": [{"name": "HMAC_KEY", "value": key}],
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True,
                        },
                    }
                ],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "webhook-receiver", "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": "http"}]},
        },
    ]


def _credentials_reader(namespace: str) -> dict[str, Any]:
    """Let the operator read this namespace's Secrets by name (the HMAC key), as a tenant does."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "artpulse-operator-credentials", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "artpulse-operator-credentials-reader",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "artpulse-operator", "namespace": "artpulse-system"}
        ],
    }


def _story(artpulse: E2E, scenario: str, model: str) -> Story:
    namespace = artpulse.namespaces[scenario]
    return Story(
        artpulse.local,
        workdir=artpulse.workdir,
        namespace=namespace,
        name=f"art-{scenario}",
        model=model,
        api_key=artpulse.api_keys.setdefault(namespace, secrets.token_urlsafe(24)),
    )


def test_staging_promotion_feeds_production_which_waits_for_approval(artpulse: E2E) -> None:
    staging = artpulse.story("staging")  # a fresh model name, shared with production
    production = _story(artpulse, "production", staging.model)
    for story in (staging, production):
        wait_for(lambda s=story: not workloads_left(s), 180, "earlier workloads gone")
    v1 = staging.copy_version(artpulse.base.model, artpulse.v1)
    v2 = staging.copy_version(artpulse.base.model, artpulse.v2)
    for alias in ("champion", "staging"):
        staging.set_alias(alias, v1)

    key = secrets.token_hex(24)
    ns = production.namespace
    production.kubectl("create", "namespace", ns, check=False)
    objects = [*_receiver_objects(ns, key), _credentials_reader(ns)]
    listing = {"apiVersion": "v1", "kind": "List", "items": objects}
    production.kubectl("apply", "-f", "-", input=json.dumps(listing))
    production.kubectl(
        "wait", "--for=condition=Ready", "pod/webhook-receiver", "-n", ns, "--timeout=120s"
    )
    receiver_ip = production.kubectl(
        "get", "service", "webhook-receiver", "-n", ns, "-o", "jsonpath={.spec.clusterIP}"
    ).strip()
    receiver = f"http://{receiver_ip}:8080"  # from this process; the operator uses DNS
    in_cluster = f"http://webhook-receiver.{ns}.svc:8080"

    staging.apply(staging.render((DATA / "chain-staging.yaml").read_text()))
    production.apply(
        production.render((DATA / "chain-production.yaml").read_text()).replace(
            "@RECEIVER@", in_cluster
        )
    )
    staging.wait(stable_is(v1), 300, "staging serves v1")
    production.wait(stable_is(v1), 300, "production serves v1")
    staging.wait_route_ready()
    production.wait_route_ready()
    loads = [s.start_traffic(rps=10) for s in (staging, production)]
    try:
        # challenger -> v2: staging rolls it forward and moves `staging`.
        staging.set_alias("challenger", v2)
        staging.wait(stable_is(v2), 300, "staging promotes v2")
        assert staging.alias("staging") == v2

        # Production follows `staging`, passes its analysis, then waits for the webhook.
        status = production.wait(
            lambda s: (
                bool(s.get("awaitingConfirmationSince"))
                and (s.get("candidate") or {}).get("version") == v2
            ),
            300,
            "production waits for confirmation",
        )
        assert status["phase"] == "Progressing", status
        assert production.alias("champion") == v1
        confirm = wait_for(
            lambda: (
                len(asks := [e for e in _log(receiver) if e["path"] == "/confirm"]) >= 2 and asks
            ),
            60,
            "the confirm webhook asked again",
        )
        assert all(e["signed"] for e in confirm), confirm
        assert confirm[0]["body"]["event"] == "confirmPromotion"
        assert confirm[0]["body"]["model"]["candidateVersion"] == v2
        assert production.alias("champion") == v1  # asked twice, refused (403): nothing moved

        approved_at = time.time()
        assert httpx.post(f"{receiver}/approve", timeout=5).status_code == 200
        production.wait(stable_is(v2), 300, "production promotes v2 after approval")
        promoted_s = time.time() - approved_at
        assert production.alias("champion") == v2
    finally:
        for load in loads:
            load.stop()

    notified = [e for e in _log(receiver) if e["path"] == "/notify"]
    events = [e["body"]["event"] for e in notified]
    assert {"started", "promoted"} <= set(events), events
    assert all(e["signed"] for e in notified), notified
    promoted = next(e for e in notified if e["body"]["event"] == "promoted")
    assert promoted["body"]["resource"] == {"namespace": ns, "name": production.name}
    reasons = [str(e.get("reason")) for e in production.events()]
    assert {"AwaitingConfirmation", "PromotionConfirmed"} <= set(reasons), reasons
    for load in loads:
        assert_no_failed_requests(load.failures())
    print(f"chain: production promoted {promoted_s:.1f}s after the approval")
    # Leave the node as the later scenarios expect it: their models alone on it.
    for story in (staging, production):
        story.kubectl("delete", "apm", story.name, "-n", story.namespace, "--wait=false")
    production.kubectl("delete", "pod,service", "webhook-receiver", "-n", ns, "--wait=false")


def _log(receiver: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{receiver}/log", timeout=5)
    response.raise_for_status()
    return list(response.json())

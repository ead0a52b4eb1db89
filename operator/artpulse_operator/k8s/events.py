"""Kubernetes Events on an ArtPulseModel (``kubectl describe apm`` shows them).

Who calls it: the reconcile service, for the events the engine's plan names and for the k8s
layer's own findings (an object it cannot write). Posting an Event is best effort: a failure
is logged, never fails the reconcile.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from artpulse_operator.engine.desired import MANAGED_BY
from artpulse_operator.k8s.client import ApiError, KubeClient, kind_for

__all__ = ["post_event"]

EVENTS = kind_for("v1", "Event")
_INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()
_log = logging.getLogger(__name__)


async def post_event(
    client: KubeClient, involved: Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    """Create a core/v1 Event about ``involved`` (the resource body)."""
    meta = involved.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', 'artpulse')}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "action": reason,
        "source": {"component": MANAGED_BY},
        "reportingComponent": MANAGED_BY,
        "reportingInstance": _INSTANCE[:128],
    }
    try:
        await client.create(EVENTS, namespace, event)
    except ApiError as exc:
        _log.warning(
            "could not post event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc
        )

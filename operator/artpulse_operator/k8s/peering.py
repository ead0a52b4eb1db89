"""The Kopf peering object the operator's replicas share, created by the operator itself.

Kopf keeps each replica's heartbeat in the status of a ``ClusterKopfPeering`` (cluster-wide
operator) or of a ``KopfPeering`` in every watched namespace (``ARTPULSE_NAMESPACES``); with
peering mandatory it refuses to run until that object exists. Shipping the object in the install
bundle would put a custom resource next to its own CRD, which a first ``kubectl apply`` cannot
map; so the startup handler creates it before Kopf's peering starts, and an existing one (an
earlier start, a GitOps copy) is left as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from artpulse_operator.k8s.client import ApiError, KubeClient, ResourceKind

CLUSTER_PEERING = ResourceKind("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", False)
NAMESPACED_PEERING = ResourceKind("kopf.dev/v1", "KopfPeering", "kopfpeerings")

_log = logging.getLogger(__name__)


def peering_object(name: str, namespace: str | None) -> dict[str, object]:
    kind = NAMESPACED_PEERING if namespace else CLUSTER_PEERING
    metadata: dict[str, object] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": "artpulse-operator",
            "app.kubernetes.io/part-of": "artpulse",
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata}


def _literal(namespace: str) -> bool:
    """A namespace by name, not one of Kopf's patterns (``team-*``, ``!kube-system``)."""
    return not any(c in namespace for c in "*?[]!")


async def ensure_peering(kube: KubeClient, name: str, namespaces: Iterable[str]) -> list[str]:
    """Create the peering object(s) that do not exist yet; return what was created.

    Patterns name no namespace to create in: the namespaces they match need their KopfPeering
    made by whoever makes the namespace (Kopf waits for it there).
    """
    created = []
    named = [*namespaces]
    patterns = [ns for ns in named if not _literal(ns)]
    if patterns:
        _log.warning(
            "no KopfPeering created for the namespace patterns %s: create %s in each namespace "
            "they match",
            ", ".join(patterns),
            name,
        )
    targets: list[str | None] = [ns for ns in named if _literal(ns)] if named else [None]
    for namespace in targets:
        kind = NAMESPACED_PEERING if namespace else CLUSTER_PEERING
        try:
            await kube.create(kind, namespace, peering_object(name, namespace))
        except ApiError as exc:
            if exc.conflict:  # already there: another replica or an earlier start made it
                continue
            # A role without `create` (an older install) is fine while the object exists.
            if exc.forbidden and await _exists(kube, kind, namespace, name):
                continue
            raise
        where = f"{namespace}/{name}" if namespace else name
        _log.info("created %s %s for the replicas' active/standby peering", kind.kind, where)
        created.append(where)
    return created


async def _exists(kube: KubeClient, kind: ResourceKind, namespace: str | None, name: str) -> bool:
    try:
        await kube.get(kind, namespace, name)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True

"""Write an ArtPulseModel's status once per reconcile, and only when it changed.

Who calls it: the reconcile service in ``handlers.reconcile``.

The write is a JSON merge patch of the status subresource carrying the ``resourceVersion`` the
reconcile read: if anything wrote the resource in between, the API server answers 409 and the
reconcile is retried from fresh state, so two reconciles can never both advance a step or both
promote. ``None`` values in the new status delete the stored keys (merge-patch semantics), which
is how a cleared field stays cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artpulse_operator.engine.desired import API_VERSION, FIELD_MANAGER, KIND
from artpulse_operator.k8s.client import KubeClient, kind_for

__all__ = ["ARTPULSE_MODELS", "METRIC_TEMPLATES", "pruned", "status_changed", "write_status"]

ARTPULSE_MODELS = kind_for(API_VERSION, KIND)
METRIC_TEMPLATES = kind_for(API_VERSION, "ArtPulseMetricTemplate")


def pruned(value: Any) -> Any:
    """The value as the API server stores it: ``None`` entries of objects dropped."""
    if isinstance(value, Mapping):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [pruned(v) for v in value]
    return value


def status_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` (every key, ``None`` = absent) would change the stored ``old``.

    Keys of ``old`` that ``new`` does not mention (another writer's) are not compared.
    """
    for key, value in new.items():
        if pruned(value) != old.get(key):
            if value is None and key not in old:
                continue
            return True
    return False


async def write_status(
    client: KubeClient,
    namespace: str,
    name: str,
    resource_version: str,
    new: Mapping[str, Any],
    old: Mapping[str, Any],
) -> bool:
    """Write ``new`` if it differs from ``old``; returns whether a write happened."""
    if not status_changed(new, old):
        return False
    await client.merge_patch(
        ARTPULSE_MODELS,
        namespace,
        name,
        {"metadata": {"resourceVersion": resource_version}, "status": dict(new)},
        subresource="status",
        field_manager=FIELD_MANAGER,
    )
    return True

"""Write an ArtPulseModel's status once per reconcile, and only when it changed.

Who calls it: the reconcile service in ``handlers.reconcile``.

The write is a JSON merge patch of the status subresource carrying the ``resourceVersion`` the
reconcile read: if anything wrote the resource in between, the API server answers 409 and the
reconcile is retried from fresh state, so two reconciles can never both advance a step or both
promote. ``None`` values in the new status delete the stored keys (merge-patch semantics), which
is how a cleared field stays cleared.

A merge patch merges objects key by key: a key the new status no longer has (a track dropped by
a strategy switch, a custom metric removed from the spec) would stay stored for ever, and every
later pass would differ from it and write again. :func:`status_patch` therefore sends such keys
as ``null``, in every object below the top level; the top-level keys the operator does not write
belong to another writer and are left alone. Lists are replaced whole, so they converge as they
are. The no-op check compares what the patch would store with what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artpulse_operator.engine.desired import API_VERSION, FIELD_MANAGER, KIND
from artpulse_operator.k8s.client import KubeClient, kind_for

__all__ = [
    "ARTPULSE_MODELS",
    "METRIC_TEMPLATES",
    "merged",
    "pruned",
    "status_changed",
    "status_patch",
    "write_status",
]

ARTPULSE_MODELS = kind_for(API_VERSION, KIND)
METRIC_TEMPLATES = kind_for(API_VERSION, "ArtPulseMetricTemplate")


def pruned(value: Any) -> Any:
    """The value as the API server stores it: ``None`` entries of objects dropped."""
    if isinstance(value, Mapping):
        return {k: pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [pruned(v) for v in value]
    return value


def _replacing(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` as a merge patch over ``old`` that leaves nothing of ``old`` behind.

    >>> _replacing({"a": {"x": 1}}, {"a": {"x": 1, "y": 2}, "b": 3})
    {'a': {'x': 1, 'y': None}, 'b': None}
    """
    patch = {key: _nested(value, old.get(key)) for key, value in new.items()}
    patch.update({key: None for key in old if key not in new})
    return patch


def _nested(value: Any, old: Any) -> Any:
    if isinstance(value, Mapping) and isinstance(old, Mapping):
        return _replacing(value, old)
    return value


def status_patch(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch of the status that makes the stored ``old`` hold what ``new`` says.

    ``new`` is sent whole (``None`` = absent); below the top level, a key of a stored object
    that the new object lacks is added as ``None``, so the merge removes it. Top-level keys of
    ``old`` that ``new`` does not mention (another writer's) are not touched.

    >>> status_patch({"phase": "Stable", "tracks": {"stable": {"weight": 100}}},
    ...              {"tracks": {"stable": {"weight": 80}, "canary": {"weight": 20}}, "kopf": {}})
    {'phase': 'Stable', 'tracks': {'stable': {'weight': 100}, 'canary': None}}
    """
    return {key: _nested(value, old.get(key)) for key, value in new.items()}


def merged(target: Any, patch: Any) -> Any:
    """RFC 7386: ``target`` with the merge ``patch`` applied (what the API server stores,
    before it drops the nulls left inside values, see :func:`pruned`)."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


def status_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` (every key, ``None`` = absent) would change the stored ``old``.

    Keys of ``old`` that ``new`` does not mention (another writer's) are not compared. Key order
    does not matter, and neither does ``10`` against ``10.0`` (JSON numbers); time fields are the
    strings ``engine.status`` formats, compared as written.
    """
    return bool(pruned(merged(old, status_patch(new, old))) != pruned(old))


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
        {"metadata": {"resourceVersion": resource_version}, "status": status_patch(new, old)},
        subresource="status",
        field_manager=FIELD_MANAGER,
    )
    return True

"""Make the cluster match ``engine.desired``: apply owned objects, delete the ones not wanted.

Who calls it: the reconcile service in ``handlers.reconcile`` once per reconcile, and again
when the drift watcher sees a hand edit of an owned object.

Every desired object is written with server-side apply under the field manager
``artpulse-operator`` and ``force``: the operator owns every field it renders, so a
``kubectl scale`` or an edited image or weight is taken back at the next apply, while fields
nobody renders (``status``, fields other controllers default) stay untouched. An apply whose
result equals the live object is a no-op in the API server (no new resourceVersion), so a
converged model costs reads, not writes. To save even those, :class:`ApplyCache` remembers what
was applied; the drift watcher forgets an entry when someone else changes the object.

Owned objects of the model that are no longer desired (another provider, a track that went
away, a PodDisruptionBudget or HorizontalPodAutoscaler switched off) are deleted, found by the
owner labels and checked against the owner's uid.

A Deployment rendered without ``spec.replicas`` belongs to an HPA (``engine.autoscaling``).
Server-side apply would *delete* a field its manager stops sending, and the Deployment would
fall back to one replica until the HPA's next sync. So before such an apply, when the live
Deployment's ``spec.replicas`` is still ours, the field manager
``artpulse-operator-handoff`` applies the live value first (the way Kubernetes documents handing
``replicas`` to an HPA): both own it with the same value, ours then lets go of it, the value
stays, and the HPA's first write takes it over.

Problems that retrying cannot fix (a route kind that is not installed, a forbidden or invalid
object) are collected as :class:`ApplyProblem` for a ``Degraded`` condition; anything else
that failed raises :class:`ApiError` for the caller to turn into ``kopf.TemporaryError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from artpulse_operator.engine.autoscaling import REPLICAS_HANDOFF_MANAGER
from artpulse_operator.engine.desired import (
    FIELD_MANAGER,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    OWNED_KINDS,
)
from artpulse_operator.k8s.client import ApiError, KubeClient, kind_for

__all__ = [
    "ApplyCache",
    "ApplyProblem",
    "SyncResult",
    "hand_replicas_over",
    "object_key",
    "owns_replicas",
    "sync_owned",
]

ObjectKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


def _digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApplyProblem:
    """An owned object the operator could not write, and why (for the Degraded condition)."""

    kind: str
    name: str
    reason: str  # RouteKindNotInstalled | Forbidden | Invalid
    message: str


@dataclass
class SyncResult:
    applied: int = 0  # objects actually sent to the API server
    skipped: int = 0  # unchanged since the last apply (cache hit)
    deleted: list[str] = field(default_factory=list)  # Kind/name
    problems: list[ApplyProblem] = field(default_factory=list)
    live: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)  # apply responses


class ApplyCache:
    """What this process applied last, per object, and which owners were fully synced.

    In memory only: after a restart every object is applied once again (a no-op where nothing
    changed), which is also what repairs edits made while the operator was down.
    """

    def __init__(self) -> None:
        self._digests: dict[ObjectKey, str] = {}
        self._owned_sets: dict[tuple[str, str], frozenset[ObjectKey]] = {}

    def unchanged(self, obj: Mapping[str, Any]) -> bool:
        return self._digests.get(object_key(obj)) == _digest(obj)

    def remember(self, obj: Mapping[str, Any]) -> None:
        self._digests[object_key(obj)] = _digest(obj)

    def forget(self, key: ObjectKey) -> None:
        self._digests.pop(key, None)

    def forget_owner(self, namespace: str, name: str) -> None:
        keys = self._owned_sets.pop((namespace, name), frozenset())
        for key in keys:
            self._digests.pop(key, None)

    def owned_set(self, namespace: str, name: str) -> frozenset[ObjectKey] | None:
        return self._owned_sets.get((namespace, name))

    def set_owned_set(self, namespace: str, name: str, keys: Iterable[ObjectKey]) -> None:
        self._owned_sets[(namespace, name)] = frozenset(keys)

    def __len__(self) -> int:
        return len(self._digests)


def _problem(obj: Mapping[str, Any], exc: ApiError) -> ApplyProblem | None:
    kind, name = obj["kind"], obj["metadata"]["name"]
    if exc.kind_missing:
        return ApplyProblem(
            kind,
            name,
            "RouteKindNotInstalled" if kind in ("HTTPRoute", "Ingress") else "KindNotInstalled",
            f"{obj['apiVersion']} {kind} is not served by this cluster (is its CRD installed?)",
        )
    if exc.forbidden:
        return ApplyProblem(kind, name, "Forbidden", exc.message)
    if exc.invalid:
        return ApplyProblem(kind, name, "Invalid", exc.message)
    return None


# Routing before workloads: a rollback's weight 0 reaches the route before the
# candidate's pods are scaled away, so no request is sent to a track with no pods
# left. Adding weight is safe in this order too, because the engine only gives
# weight to a track whose workload was already ready before this reconcile.
_KIND_ORDER = {"Service": 0, "HTTPRoute": 1, "Ingress": 1, "Deployment": 2}


def _apply_order(obj: Mapping[str, Any]) -> int:
    return _KIND_ORDER.get(str(obj.get("kind")), 1)


async def sync_owned(
    client: KubeClient,
    namespace: str,
    owner_name: str,
    owner_uid: str,
    desired: Sequence[Mapping[str, Any]],
    cache: ApplyCache,
    *,
    full: bool = False,
) -> SyncResult:
    """Apply ``desired`` and delete owned objects that are not in it.

    ``full`` ignores the cache (a periodic resync, or the first reconcile after start).
    An empty ``desired`` (nothing resolved yet) leaves the cluster alone.
    """
    result = SyncResult()
    if not desired:
        return result
    for obj in sorted(desired, key=_apply_order):
        if not full and cache.unchanged(obj):
            result.skipped += 1
            continue
        try:
            if _leaves_replicas_to_hpa(obj):
                await hand_replicas_over(client, obj)
            live = await client.apply(obj, field_manager=FIELD_MANAGER, force=True)
        except ApiError as exc:
            cache.forget(object_key(obj))
            problem = _problem(obj, exc)
            if problem is None:
                raise
            result.problems.append(problem)
            continue
        cache.remember(obj)
        result.applied += 1
        result.live[object_key(obj)] = live

    wanted = frozenset(object_key(o) for o in desired)
    if full or cache.owned_set(namespace, owner_name) != wanted:
        result.deleted = await _delete_unwanted(client, namespace, owner_name, owner_uid, wanted)
        cache.set_owned_set(namespace, owner_name, wanted)
        for kind_name in result.deleted:
            kind, _, name = kind_name.partition("/")
            for api_version, owned_kind in OWNED_KINDS:
                if owned_kind == kind:
                    cache.forget((api_version, kind, namespace, name))
    return result


async def _delete_unwanted(
    client: KubeClient,
    namespace: str,
    owner_name: str,
    owner_uid: str,
    wanted: frozenset[ObjectKey],
) -> list[str]:
    selector = f"{LABEL_INSTANCE}={owner_name},{LABEL_MANAGED_BY}={MANAGED_BY}"
    deleted: list[str] = []
    for api_version, kind_name in OWNED_KINDS:
        kind = kind_for(api_version, kind_name)
        try:
            items = await client.list(kind, namespace, label_selector=selector)
        except ApiError as exc:
            if exc.kind_missing or exc.forbidden:
                continue  # nothing of that kind can exist for us (or we may not see it)
            raise
        for item in items:
            meta = item.get("metadata") or {}
            key = (api_version, kind_name, namespace, meta.get("name", ""))
            if key in wanted or not _owned_by(meta, owner_uid):
                continue
            await client.delete(kind, namespace, meta["name"], uid=meta.get("uid"))
            deleted.append(f"{kind_name}/{meta['name']}")
    return deleted


def _owned_by(meta: Mapping[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or ())


# --- handing spec.replicas over to an HPA --------------------------------------------------


def _leaves_replicas_to_hpa(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Deployment" and "replicas" not in (obj.get("spec") or {})


def owns_replicas(live: Mapping[str, Any], manager: str = FIELD_MANAGER) -> bool:
    """Whether ``manager``'s apply owns the live object's ``spec.replicas``."""
    for entry in (live.get("metadata") or {}).get("managedFields") or ():
        if (
            entry.get("manager") == manager
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
            if "f:replicas" in spec:
                return True
    return False


async def hand_replicas_over(client: KubeClient, obj: Mapping[str, Any]) -> bool:
    """Let go of ``spec.replicas`` of the live Deployment ``obj`` names without changing it.

    Returns whether a handoff was written. Nothing to do when the Deployment does not exist
    yet or its replicas are no longer ours; a conflict means someone else (the HPA) changed the
    value since it was read, so it already owns the field and ours is gone.
    """
    kind = kind_for(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    try:
        live = await client.get(kind, meta.get("namespace"), meta["name"])
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None or not owns_replicas(live):
        return False
    handoff = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
        "spec": {"replicas": replicas},
    }
    try:
        await client.apply(handoff, field_manager=REPLICAS_HANDOFF_MANAGER, force=False)
    except ApiError as exc:
        if exc.conflict:
            return False
        raise
    return True

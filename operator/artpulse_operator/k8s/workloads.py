"""What each track's Deployment looks like now: the engine's workload observations.

Who calls it: the reconcile service, once per pass, before ``engine.rollout.plan`` (weight goes
only to a track whose pods were ready before this pass) and ``engine.desired`` (an autoscaled
track's HPA is pinned at the replicas its Deployment runs while a candidate holds traffic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artpulse_operator.engine.desired import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_TRACK,
    MANAGED_BY,
)
from artpulse_operator.k8s.client import KubeClient, kind_for

__all__ = ["Workloads", "observe_workloads", "workloads_ready"]

DEPLOYMENTS = kind_for("apps/v1", "Deployment")


@dataclass(frozen=True)
class Workloads:
    """Per track: ``ready`` (wanted replicas of the current template, all ready) and
    ``replicas`` (the Deployment's ``spec.replicas``, whoever set it: the operator or an HPA)."""

    ready: Mapping[str, bool] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)


def _ready(item: Mapping[str, Any], want: int) -> bool:
    st = item.get("status") or {}
    current = int(st.get("observedGeneration") or 0) >= int(
        (item.get("metadata") or {}).get("generation") or 0
    )
    return (
        current
        and int(st.get("readyReplicas") or 0) >= want
        and int(st.get("updatedReplicas") or 0) >= want
    )


async def observe_workloads(kube: KubeClient, namespace: str, name: str) -> Workloads:
    """One list of the model's Deployments, read per track."""
    items = await kube.list(
        DEPLOYMENTS,
        namespace,
        label_selector=f"{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}",
    )
    ready: dict[str, bool] = {}
    replicas: dict[str, int] = {}
    for item in items:
        track = ((item.get("metadata") or {}).get("labels") or {}).get(LABEL_TRACK)
        if not track:
            continue
        want = int((item.get("spec") or {}).get("replicas") or 0)
        replicas[track] = want
        ready[track] = _ready(item, want)
    return Workloads(ready=ready, replicas=replicas)


async def workloads_ready(kube: KubeClient, namespace: str, name: str) -> dict[str, bool]:
    """Per track: the Deployment runs its wanted replicas of the current template, all ready."""
    return dict((await observe_workloads(kube, namespace, name)).ready)

"""Whether each track's Deployment is ready: the engine's ``workloads_ready`` observation.

Who calls it: the reconcile service, once per pass, before ``engine.rollout.plan`` (weight goes
only to a track whose pods were ready before this pass).
"""

from __future__ import annotations

from artpulse_operator.engine.desired import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_TRACK,
    MANAGED_BY,
)
from artpulse_operator.k8s.client import KubeClient, kind_for

__all__ = ["workloads_ready"]

DEPLOYMENTS = kind_for("apps/v1", "Deployment")


async def workloads_ready(kube: KubeClient, namespace: str, name: str) -> dict[str, bool]:
    """Per track: the Deployment runs its wanted replicas of the current template, all ready."""
    items = await kube.list(
        DEPLOYMENTS,
        namespace,
        label_selector=f"{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}",
    )
    ready: dict[str, bool] = {}
    for item in items:
        track = ((item.get("metadata") or {}).get("labels") or {}).get(LABEL_TRACK)
        if not track:
            continue
        want = int((item.get("spec") or {}).get("replicas") or 0)
        st = item.get("status") or {}
        current = int(st.get("observedGeneration") or 0) >= int(
            (item.get("metadata") or {}).get("generation") or 0
        )
        ready[track] = (
            current
            and int(st.get("readyReplicas") or 0) >= want
            and int(st.get("updatedReplicas") or 0) >= want
        )
    return ready

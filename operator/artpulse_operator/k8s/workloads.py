"""What each track's Deployment looks like now: the engine's workload observations.

Who calls it: the reconcile service, once per pass, before ``engine.rollout.plan`` (weight goes
only to a track whose pods were ready before this pass) and ``engine.desired`` (an autoscaled
track's HPA is pinned at the replicas its Deployment runs while a candidate holds traffic).

A track is *ready* only when its Deployment runs, fully rolled out, the model version the status
read at the start of the pass says it runs (the version the previous pass applied):

- ``status.observedGeneration == metadata.generation``: the controller has seen the current
  spec, so the counts below describe the current template;
- ``updatedReplicas == readyReplicas == availableReplicas == spec.replicas``: every wanted pod
  runs the current template and has been available for ``minReadySeconds``;
- ``status.replicas == updatedReplicas``: no pod of an older template is left (a surge pod or a
  scale-down in flight would still take a share of the track's traffic);
- the pod template's ``artpulse.io/model-version`` label is the expected version.

The operator may not read pods (not in its RBAC), and need not: the template label, with the
generation observed and every replica updated, implies every pod carries it, since "updated"
means "of the ReplicaSet whose template is the Deployment's current one".

``spec.replicas`` is the wanted count whoever set it, the operator or an HPA (through the scale
subresource); an HPA scaling up or down makes the track not ready until it settles. Wanted at
0 (an unscaled track): ready once the controller has seen the generation, whatever pods still
drain and whatever version the template names, as before. Nothing routes to an unscaled track
and the engine never waits for one.

The expected version is checked here rather than in the engine: it is a fact about the
Deployment ("does it run what was applied"), and the engine keeps its one boolean per track.
``Workloads.versions`` still reports what each template runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from artpulse_operator.engine.desired import (
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_TRACK,
    LABEL_VERSION,
    MANAGED_BY,
)
from artpulse_operator.engine.status import TrackStatus
from artpulse_operator.k8s.client import KubeClient, kind_for

__all__ = [
    "Workloads",
    "deployment_ready",
    "observe_workloads",
    "template_version",
]

DEPLOYMENTS = kind_for("apps/v1", "Deployment")


@dataclass(frozen=True)
class Workloads:
    """Per track: ``ready`` (see the module docstring), ``replicas`` (the Deployment's
    ``spec.replicas``, whoever set it: the operator or an HPA) and ``versions`` (the model
    version its pod template runs, ``None`` without the label)."""

    ready: Mapping[str, bool] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, str | None] = field(default_factory=dict)


def _count(status: Mapping[str, Any], key: str) -> int:
    # The controller leaves zero counts out (omitempty).
    return int(status.get(key) or 0)


def template_version(deployment: Mapping[str, Any]) -> str | None:
    """The ``artpulse.io/model-version`` label of the Deployment's pod template."""
    template = (deployment.get("spec") or {}).get("template") or {}
    version = ((template.get("metadata") or {}).get("labels") or {}).get(LABEL_VERSION)
    return str(version) if version not in (None, "") else None


def deployment_ready(deployment: Mapping[str, Any], expected_version: str | None) -> bool:
    """Whether the Deployment runs ``expected_version``, fully rolled out (module docstring)."""
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) != generation:
        return False
    want = int((deployment.get("spec") or {}).get("replicas") or 0)
    if want == 0:
        return True
    updated = _count(status, "updatedReplicas")
    return (
        updated == want
        and _count(status, "readyReplicas") == want
        and _count(status, "availableReplicas") == want
        and _count(status, "replicas") == updated
        and expected_version is not None
        and template_version(deployment) == expected_version
    )


async def observe_workloads(
    kube: KubeClient, namespace: str, name: str, tracks: Mapping[str, TrackStatus]
) -> Workloads:
    """One list of the model's Deployments, read per track against ``tracks``: the tracks of
    the status the reconcile read, i.e. what the previous pass applied."""
    items = await kube.list(
        DEPLOYMENTS,
        namespace,
        label_selector=f"{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}",
    )
    ready: dict[str, bool] = {}
    replicas: dict[str, int] = {}
    versions: dict[str, str | None] = {}
    for item in items:
        track = ((item.get("metadata") or {}).get("labels") or {}).get(LABEL_TRACK)
        if not track:
            continue
        seen = tracks.get(track)
        expected = seen.version.version if seen is not None and seen.version else None
        replicas[track] = int((item.get("spec") or {}).get("replicas") or 0)
        versions[track] = template_version(item)
        ready[track] = deployment_ready(item, expected)
    return Workloads(ready=ready, replicas=replicas, versions=versions)

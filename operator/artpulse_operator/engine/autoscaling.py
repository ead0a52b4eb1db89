"""How many pods each track runs when ``spec.serving.autoscaling`` is set, and its HPA. Pure.

Who calls it: ``engine.desired``, per track, to choose the Deployment's ``spec.replicas`` and
render the autoscaling/v2 HorizontalPodAutoscaler ``<name>-<track>``; ``k8s.apply`` for the
field manager that hands ``spec.replicas`` over to the HPA.

Why an HPA per track and not a ``scale`` subresource: a CRD has one scale subresource, so it
could scale the model, never a track; and a per-track HPA needs nothing new of the user but
min/max/target, measures each track's own pods, and lets Kubernetes' own controller do the
scaling.

The rules (DESIGN.md section 2, "Autoscaling"):

- A running track with autoscaling has an HPA; the operator then leaves the Deployment's
  ``spec.replicas`` to it (the field is not in the applied object), except to start it: a
  Deployment that does not exist yet or runs 0 replicas (an HPA never scales up from 0) gets
  ``replicas: minReplicas`` once, and the next reconcile hands the field over.
- A track scaled to zero (the canary after a promotion or a rollback, the old colour after
  ``scaleDownDelay``) gets ``replicas: 0`` from the operator and no HPA (it is deleted), so
  nothing scales it back up behind the rollout's back.
- **No track shrinks while a candidate holds traffic, nor just after.** While two tracks run
  (a canary or blue-green rollout, the old colour kept warm), and for :data:`SETTLE_S` after a
  rollout finished (``status.lastRollout.finishedAt``), every running track's HPA
  ``minReplicas`` is raised to the replicas its Deployment runs (``spec.replicas`` as observed
  before this reconcile), capped at ``maxReplicas``. The HPA may still scale up (and the next
  reconcile raises the floor with it; the HPA's own 5-minute scale-down stabilisation outlasts
  the time to that reconcile); it cannot scale down. So the stable track, sized for all the
  traffic when the rollout began, still is when a rollback hands the traffic back at once. The
  window after the end matters: the HPA's scale-down recommendations remember the last five
  minutes, when the stable pods carried only part of the load; once they have aged out the
  user's ``minReplicas`` returns (at the first reconcile after) and the HPA scales as usual.

Worked example (autoscaling ``{minReplicas: 2, maxReplicas: 10}``): stable runs 6 pods under
load when the canary starts. Each reconcile pins stable's minReplicas at what it runs: 6 (and
the canary's at its own count, 2 at first). At 50% the stable pods' CPU halves and its HPA would
go to 3, but it cannot go below 6. The canary fails: weight 0 at once, the canary's Deployment to
0 and its HPA deleted; stable still runs 6 and takes all requests, its floor still 6 for five
more minutes, while the HPA's metrics catch up with the full load. Then its minReplicas is 2
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from artpulse_operator.engine.pod_spec import AutoscalingSpec

__all__ = [
    "REPLICAS_HANDOFF_MANAGER",
    "SETTLE_S",
    "TrackScale",
    "floors_held",
    "horizontal_pod_autoscaler",
    "pinned_min_replicas",
    "track_scale",
]

# The field manager that holds the Deployment's spec.replicas for the moment between the
# operator's last apply with replicas and the HPA's first write (k8s.apply).
REPLICAS_HANDOFF_MANAGER = "artpulse-operator-handoff"
# How long after a rollout the floors stay: the HPA's default scale-down stabilisation window.
SETTLE_S = 300.0


@dataclass(frozen=True, slots=True)
class TrackScale:
    """How one track's pods are counted.

    - ``replicas``: the Deployment's ``spec.replicas`` to apply; ``None`` leaves it to the HPA.
    - ``hpa_min`` / ``hpa_max``: the HPA's bounds; ``hpa_min`` None means no HPA.
    - ``fewest`` / ``most``: the pod counts the track runs between (for its PDB).
    """

    replicas: int | None
    hpa_min: int | None = None
    hpa_max: int | None = None

    @property
    def fewest(self) -> int:
        return self.hpa_min if self.hpa_min is not None else (self.replicas or 0)

    @property
    def most(self) -> int:
        return self.hpa_max if self.hpa_max is not None else (self.replicas or 0)


def floors_held(running_tracks: int, finished_at: datetime | None, now: datetime | None) -> bool:
    """Whether no HPA may shrink its track: two tracks run, or a rollout ended under
    :data:`SETTLE_S` ago.

    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> floors_held(2, None, now), floors_held(1, None, now)
    (True, False)
    >>> floors_held(1, now - timedelta(seconds=60), now)   # a rollback a minute ago
    True
    >>> floors_held(1, now - timedelta(seconds=600), now)
    False
    """
    if running_tracks >= 2:
        return True
    if finished_at is None or now is None:
        return False
    return (now - finished_at).total_seconds() < SETTLE_S


def pinned_min_replicas(auto: AutoscalingSpec, held: bool, observed: int | None) -> int:
    """The HPA's minReplicas: the user's, or while floors are held, what the track runs now.

    >>> spec = AutoscalingSpec(min_replicas=2, max_replicas=10)
    >>> pinned_min_replicas(spec, False, 6)     # the HPA is free
    2
    >>> pinned_min_replicas(spec, True, 6)      # a rollout: stable cannot shrink below 6
    6
    >>> pinned_min_replicas(spec, True, 14)     # never above maxReplicas
    10
    >>> pinned_min_replicas(spec, True, None)   # a new canary starts at the user's minimum
    2
    """
    if not held or observed is None:
        return auto.min_replicas
    return min(auto.max_replicas, max(auto.min_replicas, observed))


def track_scale(
    auto: AutoscalingSpec | None,
    scaled: bool,
    fixed: int,
    held: bool,
    observed: int | None,
) -> TrackScale:
    """The replicas field and HPA bounds of one track.

    ``fixed`` is the count without autoscaling (``engine.desired``'s split), ``observed`` the
    live Deployment's ``spec.replicas`` (None: no Deployment yet), ``held`` what
    :func:`floors_held` says for this plan.

    >>> auto = AutoscalingSpec(min_replicas=2, max_replicas=10)
    >>> track_scale(None, True, 3, False, 3)
    TrackScale(replicas=3, hpa_min=None, hpa_max=None)
    >>> track_scale(auto, False, 2, False, 4)      # scaled to zero: 0 and no HPA
    TrackScale(replicas=0, hpa_min=None, hpa_max=None)
    >>> track_scale(auto, True, 2, False, 4)       # the HPA owns replicas
    TrackScale(replicas=None, hpa_min=2, hpa_max=10)
    >>> track_scale(auto, True, 2, True, 0)        # a canary coming back from 0 starts at min
    TrackScale(replicas=2, hpa_min=2, hpa_max=10)
    """
    if not scaled:
        return TrackScale(replicas=0)
    if auto is None:
        return TrackScale(replicas=fixed)
    floor = pinned_min_replicas(auto, held, observed)
    start = floor if not observed else None
    return TrackScale(replicas=start, hpa_min=floor, hpa_max=auto.max_replicas)


def horizontal_pod_autoscaler(
    metadata: Mapping[str, Any],
    deployment: str,
    auto: AutoscalingSpec,
    min_replicas: int,
) -> dict[str, Any]:
    """The autoscaling/v2 HorizontalPodAutoscaler of the Deployment ``deployment``, its
    ``minReplicas`` chosen by :func:`track_scale` (``TrackScale.hpa_min``)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": dict(metadata),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": auto.hpa_metrics(),
        },
    }

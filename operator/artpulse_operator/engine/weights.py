"""Traffic-weight arithmetic: how a percentage becomes replicas, backend weights and annotations.

Pure functions, called by ``engine.desired`` when it renders the owned objects. Kept apart so the
arithmetic can be read with its worked examples and tested from a table
(``tests/data/operator/weights_cases.yaml``), the way Argo Rollouts keeps its canary maths in
``utils/replicaset/canary.go``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ReplicaSplit",
    "clamp_weight",
    "effective_weight",
    "primary_and_secondary",
    "split_replicas",
]


@dataclass(frozen=True, slots=True)
class ReplicaSplit:
    stable: int
    canary: int


def clamp_weight(weight: int) -> int:
    """Keep a weight within 0..100."""
    return max(0, min(100, weight))


def split_replicas(total: int, canary_weight: int) -> ReplicaSplit:
    """Split ``total`` pods between stable and canary so the pod ratio approximates the weight.

    Used by the Replicas provider, where one Service selects both tracks and kube-proxy spreads
    connections evenly over the ready pods, so the traffic share is the pod share.

    Rules, in order:
    - weight 0 -> all pods stable; weight 100 -> all pods canary.
    - otherwise canary = ceil(total * weight / 100) (a non-zero weight always gets a pod, as in
      Argo Rollouts), stable = total - canary;
    - while both tracks carry traffic each keeps at least one pod, even when that means one pod
      more than ``total`` (a 99% step with 2 replicas is 2 canary + 1 stable, not 2 + 0).

    Worked examples (total, weight -> stable, canary):
    - 10, 10 -> 9, 1        - 2, 10 -> 1, 1 (the nearest a two-pod split can get: 50%)
    - 4, 50 -> 2, 2         - 3, 50 -> 1, 2 (rounding favours the canary)
    - 2, 99 -> 1, 2         - 1, 50 -> 1, 1
    """
    if total < 0:
        raise ValueError(f"total replicas must not be negative, got {total}")
    weight = clamp_weight(canary_weight)
    if weight == 0:
        return ReplicaSplit(stable=total, canary=0)
    if weight == 100:
        return ReplicaSplit(stable=0, canary=total)
    canary = max(1, math.ceil(total * weight / 100))
    stable = max(1, total - canary)
    return ReplicaSplit(stable=stable, canary=canary)


def effective_weight(split: ReplicaSplit) -> int:
    """The canary's real traffic share (percent, rounded) for a replica split.

    >>> effective_weight(ReplicaSplit(stable=1, canary=1))
    50
    """
    pods = split.stable + split.canary
    if pods == 0:
        return 0
    return round(100 * split.canary / pods)


def primary_and_secondary(
    weights: Mapping[str, int], preferred_primary: str | None = None
) -> tuple[str, str | None]:
    """Which track the main route targets and which one gets the weighted extra route.

    The nginx provider needs this: the primary Ingress ``<name>`` points at one Service and the
    canary Ingress ``<name>-canary`` sends ``canary-weight`` percent to the other one. The
    primary is ``preferred_primary`` when given (the stable track, or the active colour for
    BlueGreen), else the track with the highest weight (ties: alphabetical, so the choice is
    stable between reconciles).

    >>> primary_and_secondary({"stable": 90, "canary": 10}, "stable")
    ('stable', 'canary')
    >>> primary_and_secondary({"stable": 100})
    ('stable', None)
    """
    if not weights:
        raise ValueError("no tracks to route to")
    if preferred_primary is not None and preferred_primary in weights:
        primary = preferred_primary
    else:
        primary = sorted(weights, key=lambda t: (-weights[t], t))[0]
    others = sorted(t for t in weights if t != primary)
    return primary, (others[0] if others else None)

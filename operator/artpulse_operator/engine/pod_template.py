"""The user's share of every track's pod template, and each track's PodDisruptionBudget. Pure.

Who calls it: ``engine.desired`` while it renders a track's Deployment (``_deployment``) and
the PodDisruptionBudget ``<name>-<track>`` beside it.

What the user shapes and what stays the operator's (DESIGN.md section 2, "Shaping the inference
pods"):

- scheduling (``nodeSelector``, ``tolerations``, ``affinity``, ``topologySpreadConstraints``),
  ``imagePullSecrets`` and ``serviceAccountName`` go into the pod spec as given (checked by
  ``engine.pod_spec``); ``serviceAccountName`` is always written (``default`` unless chosen),
  so taking it out of the spec really takes it out of the pods. A topology spread constraint without a ``labelSelector`` spreads the
  track's own pods (the operator fills in the track's selector).
- ``podLabels`` and ``podAnnotations`` are added to the template's; they cannot name the
  operator's keys (refused when parsed), and the operator's values are written last anyway.
- ``podSecurityContext`` sets identities (``runAsUser``, ``runAsGroup``, ``fsGroup``,
  ``supplementalGroups``, ``fsGroupChangePolicy``) and the seccomp/AppArmor profile
  (RuntimeDefault or Localhost) over the operator's defaults. ``runAsNonRoot: true`` is always
  set; the container's security context is fixed: no privilege escalation, a read-only root
  filesystem, every capability dropped. Nothing in the spec can loosen it, so the pods meet the
  Pod Security Standard "restricted" whatever the tenant writes.
- probe timings are the user's; the handlers (``/ready`` and ``/health`` on the ``http`` port)
  are the operator's.
- resources: a container without a cpu or memory request or limit gets
  :data:`DEFAULT_REQUESTS` for it (so the scheduler reserves room, and an HPA's CPU utilisation
  has a request to divide by); what the user wrote is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from artpulse_operator.engine.pod_spec import DisruptionBudgetSpec, ProbeTimings
from artpulse_operator.engine.spec import ServingSpec

__all__ = [
    "CONTAINER_SECURITY_CONTEXT",
    "DEFAULT_LIVENESS",
    "DEFAULT_READINESS",
    "DEFAULT_REQUESTS",
    "container_resources",
    "disruption_budget_spec",
    "liveness_probe",
    "pod_disruption_budget",
    "pod_security_context",
    "pod_shape",
    "readiness_probe",
    "template_annotations",
    "template_labels",
]

UID_GID = 10001

# Fixed: never taken from the spec.
CONTAINER_SECURITY_CONTEXT: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
_POD_SECURITY_DEFAULTS: Mapping[str, Any] = {
    "runAsUser": UID_GID,
    "runAsGroup": UID_GID,
    "fsGroup": UID_GID,
    "seccompProfile": {"type": "RuntimeDefault"},
}

DEFAULT_REQUESTS: Mapping[str, str] = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_SERVICE_ACCOUNT = "default"

DEFAULT_READINESS = ProbeTimings(period_seconds=5, failure_threshold=3)
DEFAULT_LIVENESS = ProbeTimings(initial_delay_seconds=10, period_seconds=10, failure_threshold=3)


def pod_security_context(serving: ServingSpec) -> dict[str, Any]:
    """The pod's securityContext: the operator's defaults, the user's choices, non-root always.

    >>> from artpulse_operator.engine.spec import ServingSpec
    >>> pod_security_context(ServingSpec(image="x", pod_security_context={"runAsUser": 2000}))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'runAsUser': 2000, 'runAsGroup': 10001, 'fsGroup': 10001,
     'seccompProfile': {'type': 'RuntimeDefault'}, 'runAsNonRoot': True}
    """
    context = {**_POD_SECURITY_DEFAULTS, **serving.pod_security_context}
    context["runAsNonRoot"] = True  # after the user's keys: it is not theirs to change
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in context.items()}


def container_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The user's ResourceRequirements plus a default request for cpu and memory each where
    neither a request nor a limit names it (a limit alone makes Kubernetes request the limit).

    >>> container_resources({})
    {'requests': {'cpu': '100m', 'memory': '256Mi'}}
    >>> container_resources({"limits": {"cpu": "2", "nvidia.com/gpu": 1}})
    {'limits': {'cpu': '2', 'nvidia.com/gpu': 1}, 'requests': {'memory': '256Mi'}}
    """
    limits = dict(resources.get("limits") or {})
    requests = dict(resources.get("requests") or {})
    for name, quantity in DEFAULT_REQUESTS.items():
        if name not in requests and name not in limits:
            requests[name] = quantity
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def _probe(path: str, timings: ProbeTimings, defaults: ProbeTimings) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": "http"}}
    for key, value, default in (
        ("initialDelaySeconds", timings.initial_delay_seconds, defaults.initial_delay_seconds),
        ("periodSeconds", timings.period_seconds, defaults.period_seconds),
        ("timeoutSeconds", timings.timeout_seconds, defaults.timeout_seconds),
        ("failureThreshold", timings.failure_threshold, defaults.failure_threshold),
    ):
        chosen = value if value is not None else default
        if chosen is not None:
            probe[key] = chosen
    return probe


def readiness_probe(serving: ServingSpec) -> dict[str, Any]:
    """``/ready``: ready only once the expected model version is loaded."""
    return _probe("/ready", serving.probes.readiness, DEFAULT_READINESS)


def liveness_probe(serving: ServingSpec) -> dict[str, Any]:
    return _probe("/health", serving.probes.liveness, DEFAULT_LIVENESS)


def template_labels(serving: ServingSpec, own: Mapping[str, str]) -> dict[str, str]:
    """The pod template's labels: the user's, then the operator's ``own`` (which always win)."""
    return {**serving.pod_labels, **own}


def template_annotations(serving: ServingSpec, own: Mapping[str, str]) -> dict[str, str]:
    return {**serving.pod_annotations, **own}


def pod_shape(serving: ServingSpec, selector: Mapping[str, str]) -> dict[str, Any]:
    """The pod spec fields the user shapes (only those set), for ``selector``'s track.

    >>> from artpulse_operator.engine.spec import ServingSpec
    >>> pod_shape(ServingSpec(image="x", topology_spread_constraints=({"maxSkew": 1,
    ...     "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"},)), {"t": "stable"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'serviceAccountName': 'default', 'topologySpreadConstraints': [{'maxSkew': 1,
      'topologyKey': 'zone', 'whenUnsatisfiable': 'ScheduleAnyway',
      'labelSelector': {'matchLabels': {'t': 'stable'}}}]}
    """
    # Always set, "default" unless chosen: the API server keeps the deprecated alias
    # `serviceAccount` in the stored template and copies it back into an absent
    # serviceAccountName, so a name that is merely dropped from the applied object would stay.
    shape: dict[str, Any] = {
        "serviceAccountName": serving.service_account_name or DEFAULT_SERVICE_ACCOUNT
    }
    if serving.image_pull_secrets:
        shape["imagePullSecrets"] = [{"name": n} for n in serving.image_pull_secrets]
    if serving.node_selector:
        shape["nodeSelector"] = dict(serving.node_selector)
    if serving.tolerations:
        shape["tolerations"] = [dict(t) for t in serving.tolerations]
    if serving.affinity:
        shape["affinity"] = dict(serving.affinity)
    if serving.topology_spread_constraints:
        constraints = []
        for constraint in serving.topology_spread_constraints:
            c = dict(constraint)
            c.setdefault("labelSelector", {"matchLabels": dict(selector)})
            constraints.append(c)
        shape["topologySpreadConstraints"] = constraints
    return shape


# --- PodDisruptionBudget -------------------------------------------------------------------


def disruption_budget_spec(
    budget: DisruptionBudgetSpec, fewest: int, most: int
) -> dict[str, Any] | None:
    """The PDB's budget for a track that runs between ``fewest`` and ``most`` pods (a fixed
    count: both equal; an HPA: its minReplicas and maxReplicas), or None for no PDB.

    - switched off, or a track with no pods: none;
    - nothing configured: ``maxUnavailable: 1`` where the track can run two pods or more
      (for one pod it would protect nothing);
    - ``maxUnavailable``: as given (never 0, refused when parsed);
    - ``minAvailable`` as an int: at most ``fewest - 1``, so ``kubectl drain`` can always move
      one pod at a time; a track of one pod gets no PDB (any minAvailable would block every
      drain of its node), and the same for a percentage on one pod.

    >>> disruption_budget_spec(DisruptionBudgetSpec(), 2, 2)
    {'maxUnavailable': 1}
    >>> disruption_budget_spec(DisruptionBudgetSpec(), 1, 1) is None
    True
    >>> disruption_budget_spec(DisruptionBudgetSpec(min_available=3), 2, 2)
    {'minAvailable': 1}
    >>> disruption_budget_spec(DisruptionBudgetSpec(min_available=2), 1, 5) is None
    True
    """
    if not budget.enabled or most <= 0:
        return None
    if budget.min_available is not None:
        if fewest < 2:
            return None
        value = budget.min_available
        if isinstance(value, int):
            value = min(value, fewest - 1)
        return {"minAvailable": value}
    if budget.max_unavailable is not None:
        return {"maxUnavailable": budget.max_unavailable}
    if most < 2:
        return None
    return {"maxUnavailable": 1}


def pod_disruption_budget(
    metadata: Mapping[str, Any],
    selector: Mapping[str, str],
    budget: Mapping[str, Any],
) -> dict[str, Any]:
    """The policy/v1 PodDisruptionBudget for one track's pods (``selector``).

    ``unhealthyPodEvictionPolicy: AlwaysAllow``: a pod that is not ready (a model that will not
    load) never holds up a node drain.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": dict(metadata),
        "spec": {
            **budget,
            "selector": {"matchLabels": dict(selector)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }

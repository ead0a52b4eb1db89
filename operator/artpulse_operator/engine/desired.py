"""The owned objects of one ArtPulseModel, rendered in full from its spec and status.

Pure: called by ``artpulse_operator.k8s.apply`` (through the handlers) once per reconcile, and
by the unit tests with YAML cases. The result is the complete desired state: the k8s layer
applies every object server-side and deletes owned objects that are not in the list, so a hand
edit is put back and a provider switch leaves nothing of the old provider behind.

What is rendered (DESIGN.md section 2, workload contract in INTERFACES.md):

- a Deployment ``<name>-<track>`` for every track in ``status.tracks`` that has a version
  (replicas from the weight for the Replicas provider, else ``serving.replicas``; zero when
  the track is not scaled),
- a Service ``<name>-<track>`` per track and the model Service ``<name>``,
- per provider: an HTTPRoute ``<name>`` with weighted backendRefs (GatewayAPI); an Ingress
  ``<name>`` and a canary Ingress ``<name>-canary`` with ``canary-weight`` (Nginx); nothing
  extra for Replicas, where ``<name>`` selects every track carrying traffic; with
  ``strategy.canary.headerRoute`` the HTTPRoute gets a first rule (same path plus the header)
  to the canary Service, and the canary Ingress the ``canary-by-header`` annotations, for as
  long as the canary pods run,
- a NetworkPolicy ``<name>`` confining every track's pods (``engine.network_policy``), unless
  switched off,
- per running track, a PodDisruptionBudget ``<name>-<track>`` (``engine.pod_template``) and,
  with ``serving.autoscaling``, a HorizontalPodAutoscaler ``<name>-<track>`` that then owns the
  Deployment's replicas (``engine.autoscaling``, including the rule that no track shrinks while
  a candidate holds traffic, nor for a while after).

The user's pod shaping (scheduling, pull secrets, ServiceAccount, labels, annotations, security
context, probe timings, default requests) is merged into every track's pod template by
``engine.pod_template``; changing it changes the template like a new image does.

An empty ``status.tracks`` (nothing resolved yet) renders nothing, and the k8s layer then leaves
existing objects alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from artpulse_operator.engine import pod_template
from artpulse_operator.engine.autoscaling import (
    TrackScale,
    floors_held,
    horizontal_pod_autoscaler,
    track_scale,
)
from artpulse_operator.engine.network_policy import NetworkPolicyDefaults, network_policy
from artpulse_operator.engine.pod_spec import CONTAINER_NAME
from artpulse_operator.engine.spec import HeaderMatch, ModelSpec, Provider, StrategyType
from artpulse_operator.engine.status import (
    TRACK_BLUE,
    TRACK_CANARY,
    TRACK_GREEN,
    TRACK_STABLE,
    RolloutStatus,
    TrackStatus,
)
from artpulse_operator.engine.weights import primary_and_secondary, split_replicas

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "FIELD_MANAGER",
    "KIND",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_TRACK",
    "LABEL_VERSION",
    "MANAGED_BY",
    "OWNED_KINDS",
    "desired_objects",
    "model_uri",
    "owner_labels",
]

API_GROUP = "artpulse.io"
API_VERSION = "artpulse.io/v1alpha1"
KIND = "ArtPulseModel"
FIELD_MANAGER = "artpulse-operator"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TRACK = "artpulse.io/track"
LABEL_VERSION = "artpulse.io/model-version"
APP_NAME = "artpulse-inference"
MANAGED_BY = "artpulse-operator"

ANNOTATION_CANARY = "nginx.ingress.kubernetes.io/canary"
ANNOTATION_CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
ANNOTATION_CANARY_BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
ANNOTATION_CANARY_BY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
ANNOTATION_CANARY_BY_HEADER_PATTERN = "nginx.ingress.kubernetes.io/canary-by-header-pattern"

# (apiVersion, kind) of everything desired_objects can render; the k8s layer lists these to
# find owned objects that are no longer desired.
OWNED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)

# Fixed render order so the output (and the HTTPRoute's backendRefs) is stable between calls.
_TRACK_ORDER = (TRACK_STABLE, TRACK_CANARY, TRACK_BLUE, TRACK_GREEN)
# A deleted pod leaves the endpoints at the moment it gets SIGTERM, but a gateway learns that
# later (Traefik throttles provider updates, 2 s by default; kube-proxy and ingress controllers
# resync too). The pod keeps serving this long first, so a scale-down, a rolling update or the
# canary's removal after a promotion or rollback drops no request routed to it meanwhile.
DRAIN_SECONDS = 5
# The drain, then the server's own graceful shutdown (10 s for in-flight requests), with room.
TERMINATION_GRACE_SECONDS = 30


def _track_key(track: str) -> tuple[int, str]:
    return (_TRACK_ORDER.index(track) if track in _TRACK_ORDER else len(_TRACK_ORDER), track)


def owner_labels(name: str) -> dict[str, str]:
    """Labels every owned object carries; also the selector the k8s layer lists owned objects by."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: name, LABEL_MANAGED_BY: MANAGED_BY}


def model_uri(model: str, version: str) -> str:
    return f"models:/{model}/{version}"


def desired_objects(
    name: str,
    namespace: str,
    uid: str,
    spec: ModelSpec,
    status: RolloutStatus,
    *,
    tracking_uri: str | None = None,
    network: NetworkPolicyDefaults | None = None,
    observed_replicas: Mapping[str, int] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every object the ArtPulseModel ``namespace/name`` owns, fully rendered.

    ``tracking_uri`` is the operator's default MLflow URI, used when ``spec.model.trackingUri``
    is empty (the pods need one to load their model). ``network`` holds the operator's
    NetworkPolicy settings (None: the built-in defaults). ``observed_replicas`` is each track's
    live Deployment ``spec.replicas`` before this reconcile (a track missing: no Deployment)
    and ``now`` the reconcile's time; only autoscaling reads them (``engine.autoscaling``).
    """
    tracks = {t: status.tracks[t] for t in sorted(status.tracks, key=_track_key)}
    if not tracks:
        return []
    owner = _owner_reference(name, uid)
    mlflow_uri = spec.model.tracking_uri or tracking_uri
    replicas = _replicas(spec, status, tracks)
    observed = observed_replicas or {}
    running = sum(1 for s in tracks.values() if s.scaled and s.version is not None)
    finished = status.last_rollout.finished_at if status.last_rollout else None
    held = floors_held(running, finished, now)
    objects: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    autoscalers: list[dict[str, Any]] = []
    for track, track_status in tracks.items():
        if track_status.version is None:
            continue
        scale = track_scale(
            spec.serving.autoscaling,
            track_status.scaled,
            replicas[track],
            held,
            observed.get(track),
        )
        objects.append(
            _deployment(name, namespace, owner, spec, track, track_status, scale, mlflow_uri)
        )
        budget, autoscaler = _track_extras(name, namespace, owner, spec, track, scale)
        budgets.extend(budget)
        autoscalers.extend(autoscaler)
    for track in tracks:
        objects.append(_track_service(name, namespace, owner, spec, track))
    objects.append(_model_service(name, namespace, owner, spec, tracks))
    provider = spec.traffic_routing.provider
    if provider is Provider.GATEWAY_API:
        objects.append(_http_route(name, namespace, owner, spec, tracks))
    elif provider is Provider.NGINX:
        objects.extend(_ingresses(name, namespace, owner, spec, status, tracks))
    policy = network_policy(
        name,
        namespace,
        _metadata(name, namespace, owner, owner_labels(name)),
        owner_labels(name),
        spec,
        network or NetworkPolicyDefaults(),
        mlflow_uri,
    )
    if policy is not None:
        objects.append(policy)
    # Appended last, so the objects of a model without them keep their order.
    return [*objects, *budgets, *autoscalers]


def _track_extras(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    track: str,
    scale: TrackScale,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The track's PodDisruptionBudget and HorizontalPodAutoscaler (each a list of zero or one),
    both named ``<name>-<track>`` and labelled with the track's selector."""
    selector = {**owner_labels(name), LABEL_TRACK: track}
    meta = _metadata(f"{name}-{track}", namespace, owner, selector)
    auto = spec.serving.autoscaling
    autoscaler = (
        [horizontal_pod_autoscaler(meta, f"{name}-{track}", auto, scale.hpa_min)]
        if auto is not None and scale.hpa_min is not None
        else []
    )
    budget = pod_template.disruption_budget_spec(
        spec.serving.disruption_budget, scale.fewest, scale.most
    )
    if budget is None:
        return [], autoscaler
    return [pod_template.pod_disruption_budget(meta, selector, budget)], autoscaler


# --- replicas --------------------------------------------------------------------------------


def _preferred_primary(status: RolloutStatus, tracks: Mapping[str, TrackStatus]) -> str | None:
    if TRACK_STABLE in tracks:
        return TRACK_STABLE
    if status.active_color in tracks:
        return status.active_color
    return None


def _replicas(
    spec: ModelSpec, status: RolloutStatus, tracks: Mapping[str, TrackStatus]
) -> dict[str, int]:
    """Pods per track.

    A track that is not scaled gets 0. For the GatewayAPI and Nginx providers every scaled track
    runs ``serving.replicas`` (the route splits the traffic). For Replicas the pods *are* the
    split: two tracks carrying traffic share ``serving.replicas`` pods by ``split_replicas``;
    a scaled track without live weight (shadowing, or the old colour kept warm) runs
    ``serving.replicas`` but the model Service does not select it.
    """
    per_track = spec.serving.replicas
    result = {t: (per_track if s.scaled else 0) for t, s in tracks.items()}
    if spec.traffic_routing.provider is not Provider.REPLICAS:
        return result
    live = {t: s.weight for t, s in tracks.items() if s.scaled and s.weight > 0}
    if len(live) == 2:
        primary, secondary = primary_and_secondary(live, _preferred_primary(status, tracks))
        assert secondary is not None
        split = split_replicas(per_track, live[secondary])
        result[primary] = split.stable
        result[secondary] = split.canary
    return result


# --- objects ---------------------------------------------------------------------------------


def _owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [dict(owner)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def _env(
    spec: ModelSpec, track: str, ts: TrackStatus, mlflow_uri: str | None
) -> list[dict[str, Any]]:
    assert ts.version is not None
    version = ts.version
    env: list[dict[str, Any]] = [
        {"name": "MODEL_URI", "value": version.uri or model_uri(spec.model.name, version.version)},
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "MODEL_VERSION", "value": version.version},
        {"name": "MODEL_ALIAS", "value": version.alias or ""},
        {"name": "ARTPULSE_TRACK", "value": track},
    ]
    if mlflow_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": mlflow_uri})
    if ts.shadow_uri:
        env.append({"name": "SHADOW_MODEL_URI", "value": ts.shadow_uri})
    env.append({"name": "PORT", "value": str(spec.serving.port)})
    env.append(
        {
            "name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
        }
    )
    user_names = {str(e.get("name")) for e in spec.serving.env}
    if spec.traffic_routing.provider is not Provider.REPLICAS and not user_names & _HOPS_VARS:
        # Behind a Gateway or an ingress every request comes from the proxy's address; the
        # client is the entry that proxy appended to X-Forwarded-For. Without this, all
        # clients would share one failed-authentication budget and one rate limit.
        env.append({"name": "TRUSTED_PROXY_HOPS", "value": "1"})
    # The user's variables come last: Kubernetes lets a later entry refer to earlier ones.
    env.extend(dict(e) for e in spec.serving.env)
    return env


# The inference server's settings for client addresses; the user's choice wins.
_HOPS_VARS = frozenset({"TRUSTED_PROXY_HOPS", "TRUST_FORWARDED_FOR"})


def _deployment(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    track: str,
    ts: TrackStatus,
    scale: TrackScale,
    mlflow_uri: str | None,
) -> dict[str, Any]:
    assert ts.version is not None
    serving = spec.serving
    selector = {**owner_labels(name), LABEL_TRACK: track}
    labels = {**selector, LABEL_VERSION: ts.version.version}
    port = serving.port
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": serving.image,
        "command": ["artpulse-server"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": _env(spec, track, ts, mlflow_uri),
        "readinessProbe": pod_template.readiness_probe(serving),
        "livenessProbe": pod_template.liveness_probe(serving),
        "securityContext": dict(pod_template.CONTAINER_SECURITY_CONTEXT),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        # The root filesystem is read-only; MLflow downloads the model into a temp dir.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "resources": pod_template.container_resources(serving.resources),
    }
    if serving.secret_ref:
        container["envFrom"] = [{"secretRef": {"name": serving.secret_ref}}]
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        # Never below the wanted capacity while a new model version rolls in.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {
                "labels": pod_template.template_labels(serving, labels),
                "annotations": pod_template.template_annotations(
                    serving,
                    {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                ),
            },
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                "securityContext": pod_template.pod_security_context(serving),
                **pod_template.pod_shape(serving, selector),
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if scale.replicas is not None:
        # Absent when an HPA owns the count: server-side apply then leaves it to the HPA.
        deployment_spec = {"replicas": scale.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(f"{name}-{track}", namespace, owner, labels),
        "spec": deployment_spec,
    }


def _service(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, owner, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {
                    "name": "http",
                    "port": spec.serving.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def _track_service(
    name: str, namespace: str, owner: Mapping[str, Any], spec: ModelSpec, track: str
) -> dict[str, Any]:
    selector = {**owner_labels(name), LABEL_TRACK: track}
    return _service(f"{name}-{track}", namespace, owner, spec, selector, selector)


def _model_service(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    tracks: Mapping[str, TrackStatus],
) -> dict[str, Any]:
    """The ``<name>`` Service: every pod carrying live traffic.

    When exactly one track has live weight the selector names it, so warm or shadowing pods of
    the other track get no requests; with two live tracks it selects both (the Replicas split).
    """
    selector = owner_labels(name)
    live = [t for t, s in tracks.items() if s.scaled and s.weight > 0]
    if len(live) == 1:
        selector = {**selector, LABEL_TRACK: live[0]}
    return _service(name, namespace, owner, spec, owner_labels(name), selector)


def _header_route_track(spec: ModelSpec, tracks: Mapping[str, TrackStatus]) -> str | None:
    """The track header-routed requests go to: the canary while its pods run, else none."""
    if spec.strategy.type is not StrategyType.CANARY or spec.strategy.canary.header_route is None:
        return None
    canary = tracks.get(TRACK_CANARY)
    if canary is None or not canary.scaled or canary.version is None:
        return None
    return TRACK_CANARY


def _http_route(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    tracks: Mapping[str, TrackStatus],
) -> dict[str, Any]:
    gw = spec.traffic_routing.gateway_api
    assert gw is not None  # parse_spec guarantees it for GatewayAPI
    parent_refs: list[dict[str, Any]] = []
    for ref in gw.parent_refs:
        parent: dict[str, Any] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": ref.name,
        }
        if ref.namespace:
            parent["namespace"] = ref.namespace
        if ref.section_name:
            parent["sectionName"] = ref.section_name
        parent_refs.append(parent)
    backends = [
        {
            "group": "",
            "kind": "Service",
            "name": f"{name}-{track}",
            "port": spec.serving.port,
            "weight": ts.weight if ts.scaled else 0,
        }
        for track, ts in tracks.items()
    ]
    path_match = {"path": {"type": "PathPrefix", "value": gw.path}}
    rules: list[dict[str, Any]] = []
    header_route = spec.strategy.canary.header_route
    header_track = _header_route_track(spec, tracks)
    if header_route is not None and header_track is not None:
        # Same path plus a header match: Gateway API gives the more specific rule precedence,
        # so a request with the header always reaches the candidate, whatever its weight.
        header = {
            "type": str(header_route.match),
            "name": header_route.name,
            "value": header_route.value,
        }
        rules.append(
            {
                "matches": [{**path_match, "headers": [header]}],
                "backendRefs": [
                    {
                        "group": "",
                        "kind": "Service",
                        "name": f"{name}-{header_track}",
                        "port": spec.serving.port,
                        "weight": 1,
                    }
                ],
            }
        )
    rules.append({"matches": [path_match], "backendRefs": backends})
    route_spec: dict[str, Any] = {"parentRefs": parent_refs, "rules": rules}
    if gw.hostnames:
        route_spec["hostnames"] = list(gw.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _metadata(name, namespace, owner, owner_labels(name)),
        "spec": route_spec,
    }


def _ingress(
    ingress_name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    labels: Mapping[str, str],
    service: str,
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    nginx = spec.traffic_routing.nginx
    assert nginx is not None  # parse_spec guarantees it for Nginx
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": nginx.path,
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": service, "port": {"number": spec.serving.port}}
                    },
                }
            ]
        }
    }
    if nginx.host:
        rule = {"host": nginx.host, **rule}
    ingress_spec: dict[str, Any] = {"ingressClassName": nginx.ingress_class_name, "rules": [rule]}
    if nginx.tls_secret_name and nginx.host:
        ingress_spec["tls"] = [{"hosts": [nginx.host], "secretName": nginx.tls_secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(ingress_name, namespace, owner, labels, annotations),
        "spec": ingress_spec,
    }


def _ingresses(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    spec: ModelSpec,
    status: RolloutStatus,
    tracks: Mapping[str, TrackStatus],
) -> list[dict[str, Any]]:
    """The primary Ingress ``<name>`` and, with a second track, the canary ``<name>-canary``.

    ingress-nginx sends ``canary-weight`` percent of the requests matching the primary's host and
    path to the canary Ingress's backend and the rest to the primary's.
    """
    weights = {t: (s.weight if s.scaled else 0) for t, s in tracks.items()}
    primary, secondary = primary_and_secondary(weights, _preferred_primary(status, tracks))
    header_track = _header_route_track(spec, tracks)
    if header_track is not None and header_track != primary:
        secondary = header_track
    labels = owner_labels(name)
    result = [_ingress(name, namespace, owner, spec, labels, f"{name}-{primary}", None)]
    if secondary is not None:
        annotations = {
            ANNOTATION_CANARY: "true",
            ANNOTATION_CANARY_WEIGHT: str(weights[secondary]),
        }
        header_route = spec.strategy.canary.header_route
        if header_route is not None and secondary == header_track:
            annotations[ANNOTATION_CANARY_BY_HEADER] = header_route.name
            key = (
                ANNOTATION_CANARY_BY_HEADER_PATTERN
                if header_route.match is HeaderMatch.REGULAR_EXPRESSION
                else ANNOTATION_CANARY_BY_HEADER_VALUE
            )
            annotations[key] = header_route.value
        result.append(
            _ingress(
                f"{name}-canary",
                namespace,
                owner,
                spec,
                {**labels, LABEL_TRACK: secondary},
                f"{name}-{secondary}",
                annotations,
            )
        )
    return result

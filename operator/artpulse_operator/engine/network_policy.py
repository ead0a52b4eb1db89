"""The NetworkPolicy ``<name>`` that confines one ArtPulseModel's inference pods.

Pure: ``engine.desired`` appends it to the owned objects (so it is applied, owned by the model
and garbage collected with it, and put back after a hand edit like every owned object).

What the policy lets through (Kubernetes NetworkPolicy semantics: once a policy selects a pod
for a direction, only what some policy allows passes; kubelet probes are never affected):

- **ingress** to the serving port only, from the sources in ``spec.serving.networkPolicy
  .ingressFrom`` or else the operator's defaults (``ARTPULSE_NETWORK_POLICY_INGRESS_FROM``:
  the gateway namespace and the Prometheus pods of the shipped local overlay). Everyone else in
  the cluster, including a client forging the proxy's identity headers, cannot connect.
- **egress** to DNS (port 53 to any address: node-local caches and host-network resolvers have
  no pod selector) and to MLflow: a tracking URI naming a cluster Service
  (``<svc>.<ns>.svc[.<domain>]``, or a bare ``<svc>`` in the model's own namespace) allows
  its namespace on the URI's port, which must then be the MLflow pods' port (it is for the
  shipped MLflow: 5000 both); any other host allows ``ARTPULSE_NETWORK_POLICY_MLFLOW_CIDRS``
  on the URI's port (any address on that port when the setting is empty, an IP literal alone
  when the URI names one). ``spec.serving.networkPolicy.egress`` adds rules (an S3 artifact
  store, an OIDC issuer's JWKS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from artpulse_operator.engine.spec import ModelSpec

__all__ = [
    "DEFAULT_INGRESS_FROM",
    "NetworkPolicyDefaults",
    "mlflow_egress",
    "network_policy",
]

NAMESPACE_LABEL = "kubernetes.io/metadata.name"

# The shipped local overlay: Traefik in the namespace `gateway`, Prometheus in artpulse-system.
DEFAULT_INGRESS_FROM: tuple[Mapping[str, Any], ...] = (
    {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "gateway"}}},
    {
        "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: "artpulse-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    },
)
_DNS_RULE: Mapping[str, Any] = {
    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class NetworkPolicyDefaults:
    """The operator's settings for the per-model NetworkPolicy."""

    enabled: bool = True
    ingress_from: tuple[Mapping[str, Any], ...] = DEFAULT_INGRESS_FROM
    mlflow_cidrs: tuple[str, ...] = ()


def _cluster_service_namespace(host: str, own_namespace: str) -> str | None:
    """The namespace of a cluster Service host name, None for anything else.

    >>> _cluster_service_namespace("mlflow.artpulse-system.svc.cluster.local", "ml")
    'artpulse-system'
    >>> _cluster_service_namespace("mlflow", "ml")
    'ml'
    >>> _cluster_service_namespace("mlflow.example.com", "ml") is None
    True
    """
    labels = host.split(".")
    if len(labels) == 1:
        return own_namespace
    if len(labels) >= 3 and labels[2] == "svc":
        return labels[1]
    return None  # "<svc>.<ns>" cannot be told from a public domain: treated as external


def mlflow_egress(
    tracking_uri: str | None, namespace: str, cidrs: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The egress rule that lets the pods load their model from ``tracking_uri``.

    >>> mlflow_egress("http://mlflow.artpulse-system.svc:5000", "ml", ())[0]["to"]
    [{'namespaceSelector': {'matchLabels': {'kubernetes.io/metadata.name': 'artpulse-system'}}}]
    >>> mlflow_egress("https://10.1.2.3", "ml", ())[0]
    {'to': [{'ipBlock': {'cidr': '10.1.2.3/32'}}], 'ports': [{'port': 443, 'protocol': 'TCP'}]}
    """
    if not tracking_uri:
        return []
    try:
        parts = urlsplit(tracking_uri)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return []
    host = (parts.hostname or "").lower()
    if not host or port is None:
        return []
    ports: list[dict[str, Any]] = [{"port": port, "protocol": "TCP"}]
    to: list[dict[str, Any]]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        to = [{"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}}]
    elif (service_ns := _cluster_service_namespace(host, namespace)) is not None:
        to = [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: service_ns}}}]
    else:
        to = [{"ipBlock": {"cidr": cidr}} for cidr in cidrs or ("0.0.0.0/0", "::/0")]
    return [{"to": to, "ports": ports}]


def network_policy(
    name: str,
    namespace: str,
    metadata: Mapping[str, Any],
    pod_selector: Mapping[str, str],
    spec: ModelSpec,
    defaults: NetworkPolicyDefaults,
    tracking_uri: str | None,
) -> dict[str, Any] | None:
    """The NetworkPolicy for the model's pods, or None when it is switched off.

    ``metadata`` is the owned object's metadata (name, labels, ownerReferences);
    ``pod_selector`` matches every track's pods; ``tracking_uri`` is the MLflow the pods use.
    """
    wanted = spec.serving.network_policy
    enabled = defaults.enabled if wanted.enabled is None else wanted.enabled
    if not enabled:
        return None
    sources = defaults.ingress_from if wanted.ingress_from is None else wanted.ingress_from
    ingress: list[dict[str, Any]] = []
    if sources:
        ingress.append(
            {
                "from": [dict(peer) for peer in sources],
                "ports": [{"port": spec.serving.port, "protocol": "TCP"}],
            }
        )
    egress: list[dict[str, Any]] = [dict(_DNS_RULE)]
    egress.extend(mlflow_egress(tracking_uri, namespace, defaults.mlflow_cidrs))
    egress.extend(dict(rule) for rule in wanted.egress)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": dict(metadata),
        "spec": {
            "podSelector": {"matchLabels": dict(pod_selector)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }

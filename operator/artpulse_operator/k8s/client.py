"""A small asynchronous Kubernetes REST client for the operator's own writes.

Who calls it: ``k8s.apply`` (server-side apply, list, delete of owned objects), ``k8s.status``
(the status subresource), ``k8s.events``; the handlers build one per process at startup.

Why not the ``kubernetes`` package's API classes: they are synchronous (a thread per call) and
have no first-class server-side apply. This client speaks JSON over ``httpx`` on the event loop
and borrows only the ``kubernetes`` package's kubeconfig / in-cluster loading, so every way of
authenticating that ``kubectl`` supports (client certificates, tokens, exec plugins, rotating
ServiceAccount tokens) works here too.

Errors are :class:`ApiError` with the HTTP status and the API server's message; the caller
decides which are temporary (``kopf.TemporaryError``) and which mean the resource cannot be
acted on (a ``Degraded`` condition).
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import config as kube_config
from kubernetes.client import Configuration

__all__ = ["ApiError", "KubeClient", "ResourceKind", "kind_for"]

IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class ApiError(Exception):
    """An API request failed. ``status`` is the HTTP status (0: no answer at all)."""

    def __init__(
        self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def invalid(self) -> bool:
        return self.status in (400, 422)

    @property
    def kind_missing(self) -> bool:
        """The resource type itself is not served (a CRD that is not installed)."""
        return self.status == 404 and not self.details.get("name")

    @property
    def temporary(self) -> bool:
        """Worth retrying as is: no answer, throttling, conflicts, server errors, timeouts."""
        return self.status in (0, 409, 429) or self.status >= 500


@dataclass(frozen=True, slots=True)
class ResourceKind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, sub: str | None = None
    ) -> str:
        base = (
            f"/api/{self.api_version}"
            if "/" not in self.api_version
            else f"/apis/{self.api_version}"
        )
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


_KINDS: dict[tuple[str, str], ResourceKind] = {
    (k.api_version, k.kind): k
    for k in (
        ResourceKind("apps/v1", "Deployment", "deployments"),
        ResourceKind("v1", "Service", "services"),
        ResourceKind("v1", "Event", "events"),
        ResourceKind("v1", "Namespace", "namespaces", namespaced=False),
        ResourceKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
        ResourceKind("networking.k8s.io/v1", "Ingress", "ingresses"),
        ResourceKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        ResourceKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        ResourceKind("v1", "Secret", "secrets"),
        ResourceKind("artpulse.io/v1alpha1", "ArtPulseModel", "artpulsemodels"),
        ResourceKind("artpulse.io/v1alpha1", "ArtPulseMetricTemplate", "artpulsemetrictemplates"),
    )
}


def kind_for(api_version: str, kind: str) -> ResourceKind:
    try:
        return _KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"unknown resource kind {api_version}/{kind}") from None


def _load_configuration(kubeconfig: str | None) -> Configuration:
    cfg = Configuration()
    if (
        kubeconfig is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.environ.get("KUBECONFIG")
    ):
        kube_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


class KubeClient:
    """JSON over HTTPS to one API server, authenticated like ``kubectl``."""

    def __init__(
        self, configuration: Configuration, *, timeout_s: float = 10.0, max_connections: int = 20
    ):
        self._cfg = configuration
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
            if configuration.cert_file:
                ctx.load_cert_chain(configuration.cert_file, configuration.key_file)
            verify = ctx
        self._http = httpx.AsyncClient(
            base_url=configuration.host,
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, **kwargs: Any) -> KubeClient:
        """In a pod (and no KUBECONFIG): the ServiceAccount; else the kubeconfig (default path)."""
        return cls(_load_configuration(kubeconfig), **kwargs)

    async def close(self) -> None:
        await self._http.aclose()

    def _auth_headers(self) -> dict[str, str]:
        cfg = self._cfg
        # In-cluster and exec-plugin configurations refresh their token through this hook
        # (projected ServiceAccount tokens rotate hourly).
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix(
            "BearerToken"
        )
        if token:
            return {"Authorization": token if " " in token else f"Bearer {token}"}
        if cfg.username and cfg.password:
            return {"Authorization": str(cfg.get_basic_auth_token())}
        return {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", **self._auth_headers()}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = await self._http.request(
                method, path, content=content, headers=headers, params=params
            )
        except httpx.HTTPError as exc:
            raise ApiError(
                0, type(exc).__name__, str(exc) or "no answer from the API server"
            ) from exc
        if response.status_code >= 400:
            raise _api_error(response)
        if not response.content or "json" not in response.headers.get("content-type", ""):
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "BadResponse", f"not JSON: {exc}") from exc
        return data if isinstance(data, dict) else {}

    # --- verbs ------------------------------------------------------------------------------

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]:
        return await self.request("GET", kind.path(namespace, name))

    async def list(
        self, kind: ResourceKind, namespace: str | None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"resourceVersion": "0"}  # served from the API server's watch cache
        if label_selector:
            params["labelSelector"] = label_selector
        data = await self.request("GET", kind.path(namespace), params=params)
        items = data.get("items") or []
        return [i for i in items if isinstance(i, dict)]

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply: create or converge the fields this manager owns."""
        kind = kind_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return await self.request(
            "PATCH",
            kind.path(meta.get("namespace"), meta["name"]),
            body=obj,
            content_type="application/apply-patch+yaml",  # JSON is YAML
            params={"fieldManager": field_manager, "force": "true" if force else "false"},
        )

    async def merge_patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        params = {"fieldManager": field_manager} if field_manager else None
        return await self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
            params=params,
        )

    async def json_patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """RFC 6902, applied atomically to the stored object: a failed ``test`` op changes
        nothing and is answered 422 ``Invalid`` (``ApiError.invalid``)."""
        return await self.request(
            "PATCH",
            kind.path(namespace, name),
            body=list(operations),
            content_type="application/json-patch+json",
        )

    async def create(
        self, kind: ResourceKind, namespace: str | None, obj: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.request("POST", kind.path(namespace), body=obj)

    async def delete(
        self, kind: ResourceKind, namespace: str | None, name: str, *, uid: str | None = None
    ) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            # Only the object we listed: never a same-named object created since.
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", kind.path(namespace, name), body=body)
        except ApiError as exc:
            if not exc.not_found:
                raise


def _api_error(response: httpx.Response) -> ApiError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = str(data.get("message") or response.text[:500] or response.reason_phrase)
    reason = str(data.get("reason") or response.reason_phrase)
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    return ApiError(response.status_code, reason, message, details)

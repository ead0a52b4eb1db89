"""The operator's one settings object, read from ``ARTPULSE_*`` environment variables.

Who calls it: ``__main__`` (which namespaces to watch) and the ``@kopf.on.startup`` handler
(clients, timeouts, worker limits). Everything a deployment may want to tune is here; the
table in ``operator/README.md`` lists the variables.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from artpulse_operator.engine.mlflow_events import check_secret
from artpulse_operator.engine.webhook_spec import parse_targets

__all__ = ["Settings"]


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting must not print the credentials next to it.
    model_config = SettingsConfigDict(
        env_prefix="ARTPULSE_", extra="ignore", hide_input_in_errors=True
    )

    # Where the models and the gates' data live when a resource does not say.
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Default MLflow tracking URI (spec.model.trackingUri wins)."
    )
    prometheus_url: str | None = Field(
        default=None, description="Default Prometheus URL (spec.analysis.prometheus.address wins)."
    )
    # Credentials. The operator's own go only to the URLs allowed here (issue 13, finding 11);
    # a resource naming another server brings a Secret of its own namespace.
    mlflow_tracking_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_TOKEN"),
        description="The operator's MLflow bearer token (sent only to allowlisted URIs).",
    )
    mlflow_tracking_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_USERNAME"),
        description="The operator's MLflow basic-auth user (with MLFLOW_TRACKING_PASSWORD).",
    )
    mlflow_tracking_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_PASSWORD")
    )
    mlflow_credential_uris: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated MLflow URLs that may receive the operator's credentials (same "
            "scheme, host, port; path at or below); empty: ARTPULSE_MLFLOW_TRACKING_URI only."
        ),
    )
    prometheus_token: SecretStr | None = Field(
        default=None, description="Bearer token for ARTPULSE_PROMETHEUS_URL only."
    )
    prometheus_username: str | None = Field(
        default=None, description="Basic-auth user for ARTPULSE_PROMETHEUS_URL only."
    )
    prometheus_password: SecretStr | None = Field(default=None)
    prometheus_ca_file: str | None = Field(
        default=None, description="PEM CA bundle trusted for ARTPULSE_PROMETHEUS_URL."
    )
    prometheus_cert_file: str | None = Field(
        default=None, description="PEM client certificate for ARTPULSE_PROMETHEUS_URL."
    )
    prometheus_key_file: str | None = Field(
        default=None, description="PEM key of ARTPULSE_PROMETHEUS_CERT_FILE."
    )
    prometheus_insecure_skip_verify: bool = Field(
        default=False,
        description="Skip TLS verification of ARTPULSE_PROMETHEUS_URL (never in production).",
    )
    prometheus_org_id: str | None = Field(
        default=None, description="X-Scope-OrgID sent to ARTPULSE_PROMETHEUS_URL (Mimir, Cortex)."
    )

    # The NetworkPolicy rendered per ArtPulseModel (spec.serving.networkPolicy wins).
    network_policy: bool = Field(
        default=True, description="Render a NetworkPolicy confining each model's pods."
    )
    network_policy_ingress_from: Annotated[list[dict[str, Any]], NoDecode] | None = Field(
        default=None,
        description=(
            "JSON list of NetworkPolicyPeer objects allowed to reach the pods; empty: the "
            "gateway namespace and the Prometheus pods of artpulse-system."
        ),
    )
    network_policy_mlflow_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs of an MLflow outside the cluster; empty: any address.",
    )

    registry_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one MLflow call.")
    metrics_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one PromQL query.")

    # The Kubernetes side.
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig path; empty: in-cluster ServiceAccount, else KUBECONFIG/~/.kube/config.",
    )
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated namespaces to watch; empty: the whole cluster.",
    )
    cluster_scanning: bool = Field(
        default=True,
        description=(
            "Watch namespaces and CRDs cluster-wide (Kopf's scanning: namespace globs, kinds "
            "installed later). False for an operator confined by Roles (namespace-install.yaml), "
            "which may not list them: the namespaces are then taken as named."
        ),
    )
    api_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one API request.")
    worker_limit: int = Field(
        default=50, ge=1, description="Resources processed at once by Kopf's event workers."
    )
    watch_server_timeout_s: int = Field(
        default=300, gt=0, description="Server-side timeout of a watch request (whole seconds)."
    )
    watch_client_timeout_s: float = Field(
        default=330.0, gt=0, description="Client-side timeout of a watch request."
    )
    resync_interval_s: float = Field(
        default=600.0,
        gt=0,
        description="Every so often each model's owned objects are re-applied without the cache.",
    )
    peering_name: str | None = Field(
        default=None,
        description="Kopf peering name for active/standby replicas; empty: standalone (one replica).",
    )
    allow_unsupported_kubernetes: bool = Field(
        default=False,
        description=(
            "Start (logging an error) on a Kubernetes older than the CRD's minimum "
            "(k8s.version.MIN_KUBERNETES_VERSION) instead of refusing to."
        ),
    )

    # Rollout notifications (notify/): the operator's own webhooks get every resource's events.
    notification_webhooks: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description=(
            "JSON list of webhooks (the shape of spec.notifications.webhooks) that receive the "
            "events of every ArtPulseModel; their secretRef is read in operator_namespace."
        ),
    )
    notification_url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated URL prefixes a resource's webhooks and confirmPromotion may call "
            "(scheme, host, port, path at or below); empty: any http(s) URL."
        ),
    )
    notification_queue_size: int = Field(default=1000, ge=1, le=100_000)
    notification_max_attempts: int = Field(default=6, ge=1, le=20)
    notification_workers: int = Field(default=2, ge=1, le=32)
    notification_drain_s: float = Field(default=10.0, ge=0, le=300)
    operator_namespace: str = Field(
        default="artpulse-system",
        validation_alias=AliasChoices("ARTPULSE_OPERATOR_NAMESPACE", "POD_NAMESPACE"),
        description="The operator's own namespace (Secrets of its notification webhooks).",
    )

    # MLflow alias webhooks: POST /webhooks/mlflow on the health port. Empty: polling only.
    mlflow_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret given to MLflow's create_webhook; empty: no webhook endpoint.",
    )

    # The process.
    health_host: str = Field(default="0.0.0.0", description="Address of /healthz and /metrics.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="0 disables the endpoint.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator(
        "namespaces",
        "mlflow_credential_uris",
        "network_policy_mlflow_cidrs",
        "notification_url_allowlist",
        mode="before",
    )
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @field_validator("network_policy_ingress_from", mode="before")
    @classmethod
    def _parse_peers(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    f"must be a JSON list of NetworkPolicyPeer objects: {exc}"
                ) from None
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(p, dict) for p in value)
        ):
            raise ValueError("must be a JSON list of NetworkPolicyPeer objects")
        return value

    @model_validator(mode="after")
    def _check_pairs(self) -> Settings:
        pairs = (
            (
                "MLFLOW_TRACKING_USERNAME",
                self.mlflow_tracking_username,
                "MLFLOW_TRACKING_PASSWORD",
                self.mlflow_tracking_password,
            ),
            (
                "ARTPULSE_PROMETHEUS_USERNAME",
                self.prometheus_username,
                "ARTPULSE_PROMETHEUS_PASSWORD",
                self.prometheus_password,
            ),
            (
                "ARTPULSE_PROMETHEUS_CERT_FILE",
                self.prometheus_cert_file,
                "ARTPULSE_PROMETHEUS_KEY_FILE",
                self.prometheus_key_file,
            ),
        )
        for first, a, second, b in pairs:
            if (a is None) != (b is None):
                given, missing = (first, second) if a is not None else (second, first)
                raise ValueError(f"{given} is set but {missing} is not: set both or neither")
        return self

    def mlflow_allowlist(self) -> list[str]:
        """URLs that may receive the operator's MLflow credentials."""
        if self.mlflow_credential_uris:
            return list(self.mlflow_credential_uris)
        return [self.mlflow_tracking_uri] if self.mlflow_tracking_uri else []

    @field_validator("notification_webhooks", mode="before")
    @classmethod
    def _parse_webhooks(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return []
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"must be a JSON list of webhook objects: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(w, dict) for w in value):
            raise ValueError("must be a JSON list of webhook objects")
        parse_targets(value, "ARTPULSE_NOTIFICATION_WEBHOOKS")  # SpecError is a ValueError
        return value

    @field_validator("mlflow_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_secret(value.get_secret_value().encode())  # ValueError: short or a placeholder
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level

"""The operator's one settings object, read from ``ARTPULSE_*`` environment variables.

Who calls it: ``__main__`` (which namespaces to watch) and the ``@kopf.on.startup`` handler
(clients, timeouts, worker limits). Everything a deployment may want to tune is here; the
table in ``operator/README.md`` lists the variables.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARTPULSE_", extra="ignore")

    # Where the models and the gates' data live when a resource does not say.
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Default MLflow tracking URI (spec.model.trackingUri wins)."
    )
    prometheus_url: str | None = Field(
        default=None, description="Default Prometheus URL (spec.analysis.prometheus.address wins)."
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

    # The process.
    health_host: str = Field(default="0.0.0.0", description="Address of /healthz and /metrics.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="0 disables the endpoint.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [ns.strip() for ns in value.split(",") if ns.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
        return level

"""Per resource and per reconcile: which URL each endpoint is, and which credentials it gets.

Who calls it: the reconcile service, before it asks MLflow or Prometheus anything. One
:class:`CredentialResolver` per process holds the operator's own credentials
(:class:`OperatorAuth`, from ``Settings``) and reads the Secrets resources name.

The rule, decided in ``engine.credentials.choose_auth``:

- the resource names a Secret (``spec.model.credentialsSecretRef``,
  ``spec.analysis.prometheus.credentialsSecretRef``): its credentials, wherever the URL is;
- else the operator's credentials, only when the URL is on the allowlist
  (``ARTPULSE_MLFLOW_CREDENTIAL_URIS``, default ``ARTPULSE_MLFLOW_TRACKING_URI``; for
  Prometheus, ``ARTPULSE_PROMETHEUS_URL``);
- else no credentials at all (and the condition says they were withheld).

A Secret that cannot be used makes the endpoint unusable for this pass (``Endpoint.problem``):
nothing is sent to it, and the condition names the Secret and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from artpulse_operator.credentials.http import TlsMaterialError, ssl_context
from artpulse_operator.engine.credentials import (
    CredentialProblem,
    CredentialSource,
    EndpointCredentials,
    HttpAuth,
    auth_from_secret,
    choose_auth,
)
from artpulse_operator.engine.spec import ModelSpec
from artpulse_operator.k8s.secrets import SecretGetter, read_secret_data
from artpulse_operator.settings import Settings

__all__ = ["CredentialResolver", "Endpoint", "OperatorAuth"]

MLFLOW_SECRET_FIELD = "spec.model.credentialsSecretRef"
PROMETHEUS_SECRET_FIELD = "spec.analysis.prometheus.credentialsSecretRef"
MLFLOW_ALLOWLIST_SETTING = "ARTPULSE_MLFLOW_CREDENTIAL_URIS"
PROMETHEUS_ALLOWLIST_SETTING = "ARTPULSE_PROMETHEUS_URL"


def _read(path: str | None, setting: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{setting}={path}: cannot read it: {exc}") from None


@dataclass(frozen=True, slots=True)
class OperatorAuth:
    """The operator's own credentials and the URLs they may go to."""

    mlflow: HttpAuth | None = None
    mlflow_allowlist: tuple[str, ...] = ()
    prometheus: HttpAuth | None = None
    prometheus_allowlist: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, cfg: Settings) -> OperatorAuth:
        """Raises ``ValueError`` naming the setting when a file cannot be read or loaded."""
        token = cfg.mlflow_tracking_token.get_secret_value() if cfg.mlflow_tracking_token else None
        password = cfg.mlflow_tracking_password
        mlflow = HttpAuth(
            token=token or None,
            username=cfg.mlflow_tracking_username or None,
            password=password.get_secret_value() if password else None,
        )
        prom_password = cfg.prometheus_password
        prometheus = HttpAuth(
            token=cfg.prometheus_token.get_secret_value() if cfg.prometheus_token else None,
            username=cfg.prometheus_username or None,
            password=prom_password.get_secret_value() if prom_password else None,
            ca_pem=_read(cfg.prometheus_ca_file, "ARTPULSE_PROMETHEUS_CA_FILE"),
            cert_pem=_read(cfg.prometheus_cert_file, "ARTPULSE_PROMETHEUS_CERT_FILE"),
            key_pem=_read(cfg.prometheus_key_file, "ARTPULSE_PROMETHEUS_KEY_FILE"),
            insecure_skip_verify=cfg.prometheus_insecure_skip_verify,
            org_id=cfg.prometheus_org_id or None,
        )
        try:
            ssl_context(prometheus)
        except TlsMaterialError as exc:
            setting = (
                "ARTPULSE_PROMETHEUS_CA_FILE"
                if exc.key == "ca.crt"
                else ("ARTPULSE_PROMETHEUS_CERT_FILE")
            )
            raise ValueError(f"{setting}: {exc}") from None
        return cls(
            mlflow=mlflow if mlflow.has_credentials else None,
            mlflow_allowlist=tuple(cfg.mlflow_allowlist()),
            prometheus=prometheus if prometheus != HttpAuth() else None,
            prometheus_allowlist=(cfg.prometheus_url,) if cfg.prometheus_url else (),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of one resource for this pass: where, with what, and how it was decided."""

    uri: str
    auth: HttpAuth
    report: EndpointCredentials

    @property
    def problem(self) -> CredentialProblem | None:
        return self.report.problem


class CredentialResolver:
    def __init__(self, kube: SecretGetter, settings: Settings, operator: OperatorAuth) -> None:
        self.kube = kube
        self.settings = settings
        self.operator = operator

    async def mlflow(self, namespace: str, spec: ModelSpec) -> Endpoint | None:
        """The MLflow endpoint of ``spec``; None when neither the spec nor the settings name one."""
        uri = spec.model.tracking_uri or self.settings.mlflow_tracking_uri
        if not uri:
            return None
        return await self._endpoint(
            "MLflow",
            uri,
            namespace,
            spec.model.credentials_secret,
            MLFLOW_SECRET_FIELD,
            MLFLOW_ALLOWLIST_SETTING,
            self.operator.mlflow,
            self.operator.mlflow_allowlist,
            HttpAuth(),
            allow_tls_only=False,
        )

    async def prometheus(self, namespace: str, spec: ModelSpec) -> Endpoint | None:
        """The Prometheus endpoint of ``spec``; None when neither the spec nor settings name one."""
        prom = spec.analysis.prometheus
        uri = prom.address or self.settings.prometheus_url
        if not uri:
            return None
        return await self._endpoint(
            "Prometheus",
            uri,
            namespace,
            prom.credentials_secret,
            PROMETHEUS_SECRET_FIELD,
            PROMETHEUS_ALLOWLIST_SETTING,
            self.operator.prometheus,
            self.operator.prometheus_allowlist,
            HttpAuth(insecure_skip_verify=prom.insecure_skip_verify, org_id=prom.org_id),
            allow_tls_only=True,
        )

    async def _endpoint(
        self,
        what: str,
        uri: str,
        namespace: str,
        secret_name: str | None,
        field_path: str,
        allowlist_setting: str,
        operator: HttpAuth | None,
        allowlist: tuple[str, ...],
        options: HttpAuth,
        *,
        allow_tls_only: bool,
    ) -> Endpoint:
        def report(
            source: CredentialSource | None, problem: CredentialProblem | None = None
        ) -> EndpointCredentials:
            return EndpointCredentials(what, uri, source, problem, field_path, allowlist_setting)

        own: HttpAuth | None = None
        if secret_name:
            data = await read_secret_data(self.kube, namespace, secret_name, field_path)
            if isinstance(data, CredentialProblem):
                return Endpoint(uri, HttpAuth(), report(None, data))
            parsed = auth_from_secret(
                data, f"{namespace}/{secret_name}", field_path, allow_tls_only=allow_tls_only
            )
            if isinstance(parsed, CredentialProblem):
                return Endpoint(uri, HttpAuth(), report(None, parsed))
            own = parsed
        choice = choose_auth(uri, own=own, operator=operator, allowlist=allowlist, options=options)
        if choice.source is CredentialSource.SECRET:
            try:
                ssl_context(choice.auth)
            except TlsMaterialError as exc:
                secret = f"{namespace}/{secret_name}"
                problem = CredentialProblem(
                    "SecretInvalid",
                    field_path,
                    secret,
                    exc.key,
                    f"{field_path}: Secret {secret} key {exc.key!r}: {exc}",
                )
                return Endpoint(uri, HttpAuth(), report(None, problem))
        return Endpoint(uri, choice.auth, report(choice.source))

"""Finding 11: the operator must not send its MLflow or Prometheus credentials to a tenant's URL.

The attack, sent for real: a tenant writes an ArtPulseModel whose ``spec.model.trackingUri``
(or ``spec.analysis.prometheus.address``) points at a server the tenant runs. Here that server
is a real HTTP listener on loopback that records every request's headers: it is the attacker's
machine, the thing under attack is the operator's client code. The operator's credentials are
configured as in production (``MLFLOW_TRACKING_TOKEN``, ``ARTPULSE_PROMETHEUS_*`` in its
environment), and the operator's own resolver and adapter factories (``handlers.runtime``) make
the requests. Only the Secret lookup is served from memory (the API server is not the subject).

Before the fix the MLflow adapter read ``MLFLOW_TRACKING_TOKEN`` from the environment for every
URL, so the tenant's listener received ``Authorization: Bearer <operator token>``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from artpulse_operator.credentials.resolver import CredentialResolver, Endpoint, OperatorAuth
from artpulse_operator.engine.credentials import CredentialSource
from artpulse_operator.engine.spec import ModelSpec, parse_spec
from artpulse_operator.handlers.clients import ClientCache
from artpulse_operator.handlers.runtime import adapter_factories
from artpulse_operator.k8s.client import ApiError, ResourceKind
from artpulse_operator.metrics import MetricsError
from artpulse_operator.registry import RegistryError
from artpulse_operator.settings import Settings

OPERATOR_MLFLOW_TOKEN = "operator-mlflow-token-0123456789"
OPERATOR_PROM_TOKEN = "operator-prometheus-token-0123456789"
TENANT_TOKEN = "tenant-a-token"


class _Recorder(BaseHTTPRequestHandler):
    """Answers like MLflow ("no such model") and Prometheus (an empty vector); records headers."""

    def do_GET(self) -> None:
        server: Listener = self.server  # type: ignore[assignment]
        server.seen.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        if "/api/2.0/mlflow/" in self.path:
            status = 404
            body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model"}
        else:
            status = 200
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return


class Listener(ThreadingHTTPServer):
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[dict[str, Any]] = []
        self.scheme = "http"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def authorizations(self) -> list[str | None]:
        return [r["headers"].get("authorization") for r in self.seen]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def operators_mlflow() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()


@pytest.fixture
def tenants_server() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.stop()


class Secrets:
    """The Secrets of the tenant's namespace, as the API server would answer a ``get``."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.secrets = secrets
        self.asked: list[tuple[str | None, str]] = []

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]:
        assert kind.kind == "Secret"
        self.asked.append((namespace, name))
        data = self.secrets.get((namespace or "", name))
        if data is None:
            raise ApiError(404, "NotFound", f'secrets "{name}" not found', {"name": name})
        return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def _settings(monkeypatch: pytest.MonkeyPatch, mlflow: str, prometheus: str) -> Settings:
    # The operator's environment as the shipped Deployment gives it (envFrom the credentials
    # Secret): the names MLflow's own client reads.
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", OPERATOR_MLFLOW_TOKEN)
    monkeypatch.setenv("ARTPULSE_MLFLOW_TRACKING_URI", mlflow)
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_URL", prometheus)
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_TOKEN", OPERATOR_PROM_TOKEN)
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_ORG_ID", "operators-tenant")
    return Settings()


def _spec(**parts: Any) -> ModelSpec:
    return parse_spec(
        {
            "model": {"name": "artpulse-classifier", **parts.get("model", {})},
            "serving": {"image": "artpulse-inference:0.1.0"},
            "analysis": {"prometheus": parts.get("prometheus", {})},
        }
    )


class Operator:
    """The operator's credential resolver and adapters, wired as ``build_runtime`` does."""

    def __init__(self, cfg: Settings, secrets: Secrets) -> None:
        self.resolver = CredentialResolver(secrets, cfg, OperatorAuth.from_settings(cfg))
        registry, metrics = adapter_factories(cfg)
        self.registries = ClientCache(registry)
        self.metrics = ClientCache(metrics)

    def mlflow(self, spec: ModelSpec) -> Endpoint:
        endpoint = asyncio.run(self.resolver.mlflow("team-a", spec))
        assert endpoint is not None
        if endpoint.problem is None:
            registry = self.registries.get(endpoint.uri, endpoint.auth)
            assert registry.resolve("artpulse-classifier", ["champion"]) == {"champion": None}
        return endpoint

    def prometheus(self, spec: ModelSpec) -> Endpoint:
        endpoint = asyncio.run(self.resolver.prometheus("team-a", spec))
        assert endpoint is not None
        if endpoint.problem is None:
            assert self.metrics.get(endpoint.uri, endpoint.auth).query("up") is None
        return endpoint


def test_a_tenants_tracking_uri_receives_no_operator_credentials(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    operator = Operator(cfg, Secrets({}))

    endpoint = operator.mlflow(_spec(model={"trackingUri": tenants_server.url}))

    assert tenants_server.seen, "the operator did not ask the tenant's server at all"
    assert tenants_server.authorizations() == [None] * len(tenants_server.seen)
    received = json.dumps(tenants_server.seen)
    assert OPERATOR_MLFLOW_TOKEN not in received
    assert OPERATOR_PROM_TOKEN not in received
    assert endpoint.report.source is CredentialSource.WITHHELD


def test_the_operators_own_mlflow_still_receives_them(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    operator = Operator(cfg, Secrets({}))

    operator.mlflow(_spec())  # no trackingUri: the operator's default, on the allowlist
    operator.mlflow(_spec(model={"trackingUri": operators_mlflow.url + "/"}))

    assert operators_mlflow.authorizations() == [f"Bearer {OPERATOR_MLFLOW_TOKEN}"] * 2


def test_an_extra_allowlisted_uri_receives_them_and_a_lookalike_does_not(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    monkeypatch.setenv("ARTPULSE_MLFLOW_CREDENTIAL_URIS", f"{operators_mlflow.url}/team-a")
    cfg = _settings(monkeypatch, "http://mlflow.artpulse-system.svc:5000", operators_mlflow.url)
    operator = Operator(cfg, Secrets({}))

    operator.mlflow(_spec(model={"trackingUri": f"{operators_mlflow.url}/team-a"}))
    operator.mlflow(_spec(model={"trackingUri": f"{operators_mlflow.url}/team-ab"}))

    assert operators_mlflow.authorizations() == [f"Bearer {OPERATOR_MLFLOW_TOKEN}", None]


def test_a_namespace_secret_sends_its_own_token_and_nothing_of_the_operators(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    secrets = Secrets({("team-a", "mlflow-creds"): {"token": TENANT_TOKEN}})
    operator = Operator(cfg, secrets)

    endpoint = operator.mlflow(
        _spec(
            model={
                "trackingUri": tenants_server.url,
                "credentialsSecretRef": {"name": "mlflow-creds"},
            }
        )
    )

    assert secrets.asked == [("team-a", "mlflow-creds")]  # its own namespace, by name
    assert tenants_server.authorizations() == [f"Bearer {TENANT_TOKEN}"]
    assert OPERATOR_MLFLOW_TOKEN not in json.dumps(tenants_server.seen)
    assert endpoint.report.source is CredentialSource.SECRET


@pytest.mark.parametrize(
    ("secrets", "reason", "named"),
    [
        ({}, "SecretNotFound", "team-a/mlflow-creds"),
        ({("team-a", "mlflow-creds"): {"username": "ops"}}, "SecretKeyMissing", "'password'"),
        ({("team-a", "mlflow-creds"): {"tokn": "typo"}}, "SecretKeyMissing", "'token'"),
    ],
)
def test_an_unusable_secret_sends_nothing_and_names_the_secret_and_key(
    monkeypatch: pytest.MonkeyPatch,
    operators_mlflow: Listener,
    tenants_server: Listener,
    secrets: dict[tuple[str, str], dict[str, str]],
    reason: str,
    named: str,
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    operator = Operator(cfg, Secrets(secrets))

    endpoint = operator.mlflow(
        _spec(
            model={
                "trackingUri": tenants_server.url,
                "credentialsSecretRef": {"name": "mlflow-creds"},
            }
        )
    )

    assert tenants_server.seen == []
    assert endpoint.problem is not None
    assert endpoint.problem.reason == reason
    assert "spec.model.credentialsSecretRef" in endpoint.problem.message
    assert named in endpoint.problem.message


def test_a_tenants_prometheus_receives_neither_token_nor_operator_tenant_header(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    operator = Operator(cfg, Secrets({}))

    operator.prometheus(_spec(prometheus={"address": tenants_server.url, "orgId": "team-a"}))
    operator.prometheus(_spec())  # the operator's own Prometheus

    tenant = tenants_server.seen[0]["headers"]
    assert "authorization" not in tenant
    assert tenant["x-scope-orgid"] == "team-a"  # the resource's own header, anonymously
    own = operators_mlflow.seen[0]["headers"]
    assert own["authorization"] == f"Bearer {OPERATOR_PROM_TOKEN}"
    assert own["x-scope-orgid"] == "operators-tenant"


def test_a_prometheus_secret_sends_basic_auth(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    secrets = Secrets({("team-a", "prom"): {"username": "team-a", "password": "pw-a"}})
    operator = Operator(cfg, secrets)

    operator.prometheus(
        _spec(prometheus={"address": tenants_server.url, "credentialsSecretRef": {"name": "prom"}})
    )

    expected = "Basic " + base64.b64encode(b"team-a:pw-a").decode()
    assert tenants_server.authorizations() == [expected]


def test_the_mlflow_client_adapter_refuses_an_unlisted_uri_while_credentials_are_in_env(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    """MlflowClient reads MLFLOW_TRACKING_TOKEN for every URL: the adapter must not be built."""
    from artpulse_operator.registry.mlflow import MlflowRegistry  # imports mlflow (dev extra)

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", OPERATOR_MLFLOW_TOKEN)
    with pytest.raises(RegistryError, match="MLFLOW_TRACKING_TOKEN"):
        MlflowRegistry(tenants_server.url, credential_uris=[operators_mlflow.url])
    assert tenants_server.seen == []

    MlflowRegistry(operators_mlflow.url, credential_uris=[operators_mlflow.url]).resolve(
        "artpulse-classifier", ["champion"]
    )
    # ...and this is why: MLflow's client does send the environment's token.
    assert operators_mlflow.authorizations()[0] == f"Bearer {OPERATOR_MLFLOW_TOKEN}"


# --- TLS: a CA bundle and client certificates for managed Prometheus, Thanos, Mimir ----------


def _certificates(directory: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM text."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: Any, san: list[Any]) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key(key)

    server_crt, server_key = leaf(
        "127.0.0.1",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_crt, client_key = leaf("artpulse-operator", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pems = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM).decode(),
        "server.crt": server_crt,
        "server.key": server_key,
        "tls.crt": client_crt,
        "tls.key": client_key,
    }
    for file_name, text in pems.items():
        (directory / file_name).write_text(text)
    return pems


@pytest.fixture
def mtls_prometheus(tmp_path: Path) -> Iterator[tuple[Listener, dict[str, str], Path]]:
    pems = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.load_verify_locations(cafile=tmp_path / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS, as a hardened Prometheus proxy does
    server = Listener(tls=context)
    yield server, pems, tmp_path
    server.stop()


def test_prometheus_tls_is_verified_by_default_and_a_secret_brings_ca_and_client_cert(
    monkeypatch: pytest.MonkeyPatch,
    operators_mlflow: Listener,
    mtls_prometheus: tuple[Listener, dict[str, str], Path],
) -> None:
    server, pems, _ = mtls_prometheus
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    secrets = Secrets(
        {
            ("team-a", "no-client-cert"): {"token": TENANT_TOKEN},
            ("team-a", "mtls"): {k: pems[k] for k in ("ca.crt", "tls.crt", "tls.key")},
        }
    )
    operator = Operator(cfg, secrets)

    # No CA given: the self-signed chain is refused (insecureSkipVerify is off by default).
    with pytest.raises(MetricsError, match="CERTIFICATE_VERIFY_FAILED"):
        operator.prometheus(
            _spec(
                prometheus={
                    "address": server.url,
                    "credentialsSecretRef": {"name": "no-client-cert"},
                }
            )
        )
    assert server.seen == []

    endpoint = operator.prometheus(
        _spec(prometheus={"address": server.url, "credentialsSecretRef": {"name": "mtls"}})
    )
    assert endpoint.report.source is CredentialSource.SECRET
    assert len(server.seen) == 1
    assert "authorization" not in server.seen[0]["headers"]


def test_the_operators_own_prometheus_with_ca_and_client_cert_files(
    monkeypatch: pytest.MonkeyPatch,
    operators_mlflow: Listener,
    mtls_prometheus: tuple[Listener, dict[str, str], Path],
) -> None:
    server, _, directory = mtls_prometheus
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_CA_FILE", str(directory / "ca.crt"))
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_CERT_FILE", str(directory / "tls.crt"))
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_KEY_FILE", str(directory / "tls.key"))
    cfg = _settings(monkeypatch, operators_mlflow.url, server.url)
    operator = Operator(cfg, Secrets({}))

    operator.prometheus(_spec())

    assert server.seen[0]["headers"]["authorization"] == f"Bearer {OPERATOR_PROM_TOKEN}"


def test_bad_pem_in_a_secret_is_a_problem_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, operators_mlflow: Listener, tenants_server: Listener
) -> None:
    cfg = _settings(monkeypatch, operators_mlflow.url, operators_mlflow.url)
    secrets = Secrets({("team-a", "prom"): {"token": "t", "ca.crt": "not a certificate"}})
    operator = Operator(cfg, secrets)

    endpoint = operator.prometheus(
        _spec(prometheus={"address": tenants_server.url, "credentialsSecretRef": {"name": "prom"}})
    )

    assert endpoint.problem is not None
    assert (endpoint.problem.reason, endpoint.problem.key) == ("SecretInvalid", "ca.crt")
    assert tenants_server.seen == []


def test_a_bad_ca_file_setting_is_refused_at_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_CA_FILE", str(bad))
    with pytest.raises(ValueError, match="ARTPULSE_PROMETHEUS_CA_FILE"):
        OperatorAuth.from_settings(Settings())
    monkeypatch.setenv("ARTPULSE_PROMETHEUS_CA_FILE", str(tmp_path / "missing.crt"))
    with pytest.raises(ValueError, match="ARTPULSE_PROMETHEUS_CA_FILE"):
        OperatorAuth.from_settings(Settings())

"""Which credentials an outgoing MLflow or Prometheus request may carry: the pure decisions.

Who calls it: ``credentials.resolver`` once per reconcile (it reads the Secrets and hands their
decoded data here), and the reconcile service, which sets the ``CredentialsResolved`` condition
with :func:`credentials_condition`.

The rule (issue 13, finding 11): a tenant who may write an ArtPulseModel chooses the URL of
its MLflow and Prometheus, so the operator's *own* credentials (its environment) go only to
the URLs its settings allow, never to whatever a resource names. A resource that names another
server brings its credentials in a Secret of its own namespace; without one, its requests are
anonymous and the condition says the operator's credentials were withheld.

Allowlist matching, by example (entry ``https://mlflow.example.com/team-a``)::

    https://mlflow.example.com/team-a           allowed (same scheme, host, port and path)
    https://mlflow.example.com:443/team-a/x     allowed (default port, path below the entry)
    https://mlflow.example.com/team-ab          refused (not on a path-segment boundary)
    http://mlflow.example.com/team-a            refused (another scheme)
    https://mlflow.example.com.evil.io/team-a   refused (another host)
    https://user@mlflow.example.com/team-a      refused (userinfo is never allowed)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from artpulse_operator.engine.rollout import EventSpec
from artpulse_operator.engine.status import ConditionType, RolloutStatus, set_condition

__all__ = [
    "SECRET_KEYS",
    "AuthChoice",
    "CredentialProblem",
    "CredentialSource",
    "EndpointCredentials",
    "HttpAuth",
    "auth_from_secret",
    "choose_auth",
    "credentials_condition",
    "uri_allowed",
    "with_credentials_condition",
]

# The keys a credentials Secret may hold (a kubernetes.io/basic-auth Secret has the same
# username/password keys; a kubernetes.io/tls Secret has tls.crt/tls.key).
KEY_TOKEN = "token"
KEY_USERNAME = "username"
KEY_PASSWORD = "password"
KEY_CA = "ca.crt"
KEY_CERT = "tls.crt"
KEY_KEY = "tls.key"
SECRET_KEYS = (KEY_TOKEN, KEY_USERNAME, KEY_PASSWORD, KEY_CA, KEY_CERT, KEY_KEY)

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HttpAuth:
    """What one HTTP client sends and trusts: bearer or basic auth, TLS material, tenant header.

    The secret fields are left out of ``repr`` so a logged object never shows them.
    """

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False
    org_id: str | None = None  # X-Scope-OrgID (Mimir, Cortex, Thanos tenants)

    @property
    def has_credentials(self) -> bool:
        """Whether anything here proves an identity (not just TLS trust or a tenant header)."""
        return bool(self.token or (self.username and self.password) or self.key_pem)

    def headers(self) -> dict[str, str]:
        """Headers every request carries (bearer token, tenant); basic auth is the client's."""
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.org_id:
            headers["X-Scope-OrgID"] = self.org_id
        return headers

    def without_credentials(self) -> HttpAuth:
        """The same trust and tenant options, with no identity."""
        return HttpAuth(
            ca_pem=self.ca_pem,
            insecure_skip_verify=self.insecure_skip_verify,
            org_id=self.org_id,
        )


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """A credentials Secret the operator cannot use, named down to the key.

    ``reason``: ``SecretNotFound``, ``SecretForbidden``, ``SecretKeyMissing`` or
    ``SecretInvalid``; ``field`` is the spec path that names the Secret.
    """

    reason: str
    field: str
    secret: str
    key: str | None
    message: str


def _origin(uri: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) URL without userinfo; None otherwise."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/")


def uri_allowed(uri: str, allowlist: Iterable[str]) -> bool:
    """Whether ``uri`` is on the allowlist: same scheme, host and port, and a path at or below
    the entry's path (on a segment boundary). See the module docstring for worked examples."""
    target = _origin(uri)
    if target is None:
        return False
    for entry in allowlist:
        allowed = _origin(entry)
        if allowed is None or allowed[:3] != target[:3]:
            continue
        prefix, path = allowed[3], target[3]
        if not prefix or path == prefix or path.startswith(prefix + "/"):
            return True
    return False


def _value(data: Mapping[str, str], key: str) -> str | None:
    value = data.get(key)
    return value if value and value.strip() else None


def auth_from_secret(
    data: Mapping[str, str], secret: str, field_path: str, *, allow_tls_only: bool = False
) -> HttpAuth | CredentialProblem:
    """The credentials in a Secret's decoded ``data``, or the problem naming the missing key.

    A Secret holds ``token`` (bearer) or ``username`` and ``password`` (basic), optionally
    ``ca.crt`` (the CA bundle to trust) and ``tls.crt`` with ``tls.key`` (a client
    certificate). With ``allow_tls_only`` (Prometheus) a client certificate or a CA alone is
    enough; MLflow needs a token or a username and password.
    """

    def missing(key: str, why: str) -> CredentialProblem:
        return CredentialProblem(
            "SecretKeyMissing", field_path, secret, key, f"{field_path}: Secret {secret} {why}"
        )

    token, username, password = (
        _value(data, KEY_TOKEN),
        _value(data, KEY_USERNAME),
        _value(data, KEY_PASSWORD),
    )
    cert, key = _value(data, KEY_CERT), _value(data, KEY_KEY)
    ca = _value(data, KEY_CA)
    if token and (username or password):
        return CredentialProblem(
            "SecretInvalid",
            field_path,
            secret,
            KEY_TOKEN,
            f"{field_path}: Secret {secret} has both {KEY_TOKEN!r} and "
            f"{KEY_USERNAME!r}/{KEY_PASSWORD!r}: keep one way of authenticating",
        )
    if username and not password:
        return missing(KEY_PASSWORD, f"has {KEY_USERNAME!r} but no key {KEY_PASSWORD!r}")
    if password and not username:
        return missing(KEY_USERNAME, f"has {KEY_PASSWORD!r} but no key {KEY_USERNAME!r}")
    if cert and not key:
        return missing(KEY_KEY, f"has {KEY_CERT!r} but no key {KEY_KEY!r}")
    if key and not cert:
        return missing(KEY_CERT, f"has {KEY_KEY!r} but no key {KEY_CERT!r}")
    if not token and not username:
        tls_only = allow_tls_only and (cert or ca)
        if not tls_only:
            keys = f"{KEY_TOKEN!r}, or {KEY_USERNAME!r} and {KEY_PASSWORD!r}"
            if allow_tls_only:
                keys += f", or {KEY_CERT!r} and {KEY_KEY!r}, or {KEY_CA!r}"
            return missing(KEY_TOKEN, f"has none of the keys {keys}")
    if not allow_tls_only and (cert or ca):
        return CredentialProblem(
            "SecretInvalid",
            field_path,
            secret,
            KEY_CERT if cert else KEY_CA,
            f"{field_path}: Secret {secret}: TLS keys ({KEY_CA!r}, {KEY_CERT!r}) are not "
            "supported for MLflow; use a token or a username and password",
        )
    return HttpAuth(
        token=token,
        username=username,
        password=password,
        ca_pem=ca,
        cert_pem=cert,
        key_pem=key,
    )


class CredentialSource(StrEnum):
    SECRET = "Secret"  # the resource's own Secret
    OPERATOR = "Operator"  # the operator's credentials: the URL is on its allowlist
    ANONYMOUS = "Anonymous"  # nobody has credentials for this URL: nothing withheld
    WITHHELD = "Withheld"  # the operator has credentials, but the URL is off its allowlist


@dataclass(frozen=True, slots=True)
class AuthChoice:
    source: CredentialSource
    auth: HttpAuth


def choose_auth(
    uri: str,
    *,
    own: HttpAuth | None,
    operator: HttpAuth | None,
    allowlist: Iterable[str],
    options: HttpAuth = HttpAuth(),
) -> AuthChoice:
    """What a request to ``uri`` carries.

    ``own``: the resource's Secret (always used when given: the tenant chose where it goes).
    ``operator``: the operator's credentials and TLS options, sent only when ``uri`` is on
    ``allowlist``. ``options``: the resource's non-secret options (tenant header, skipping TLS
    verification), used with its own Secret or anonymously, never with the operator's
    credentials (a tenant must not pick the tenant the operator's identity reads).

    >>> op = HttpAuth(token="t")
    >>> choose_auth("https://evil.io", own=None, operator=op, allowlist=["https://mlflow"]).source
    <CredentialSource.WITHHELD: 'Withheld'>
    """
    if own is not None:
        merged = HttpAuth(
            token=own.token,
            username=own.username,
            password=own.password,
            ca_pem=own.ca_pem,
            cert_pem=own.cert_pem,
            key_pem=own.key_pem,
            insecure_skip_verify=options.insecure_skip_verify,
            org_id=options.org_id,
        )
        return AuthChoice(CredentialSource.SECRET, merged)
    if operator is not None and uri_allowed(uri, allowlist):
        return AuthChoice(CredentialSource.OPERATOR, operator)
    anonymous = HttpAuth(insecure_skip_verify=options.insecure_skip_verify, org_id=options.org_id)
    if operator is not None and operator.has_credentials:
        return AuthChoice(CredentialSource.WITHHELD, anonymous)
    return AuthChoice(CredentialSource.ANONYMOUS, anonymous)


@dataclass(frozen=True, slots=True)
class EndpointCredentials:
    """How one endpoint of a resource was authenticated this reconcile (for the condition).

    ``what`` is ``MLflow`` or ``Prometheus``; ``problem`` is set when the resource's Secret
    could not be used (the endpoint is then not called); ``allowlist_setting`` names the
    operator setting that would allow the URL.
    """

    what: str
    uri: str
    source: CredentialSource | None
    problem: CredentialProblem | None = None
    field: str = ""
    allowlist_setting: str = ""


def credentials_condition(
    endpoints: Iterable[EndpointCredentials],
) -> tuple[bool, str, str]:
    """``(status, reason, message)`` of the ``CredentialsResolved`` condition.

    False when a Secret is unusable (its problem's reason) or when the operator's credentials
    were withheld from a URL off its allowlist (``OperatorCredentialsWithheld``); the first
    problem gives the reason, every endpoint is in the message.
    """
    reasons: list[str] = []
    parts: list[str] = []
    for ep in endpoints:
        if ep.problem is not None:
            reasons.append(ep.problem.reason)
            parts.append(f"{ep.what}: {ep.problem.message}")
        elif ep.source is CredentialSource.WITHHELD:
            reasons.append("OperatorCredentialsWithheld")
            parts.append(
                f"{ep.what}: {ep.uri} is not in {ep.allowlist_setting}, so the operator's "
                f"credentials are not sent there and requests go without credentials; "
                f"name a Secret of this namespace in {ep.field}"
            )
        elif ep.source is CredentialSource.SECRET:
            parts.append(f"{ep.what}: credentials from the resource's Secret")
        elif ep.source is CredentialSource.OPERATOR:
            parts.append(f"{ep.what}: the operator's credentials (allowlisted URL)")
        elif ep.source is CredentialSource.ANONYMOUS:
            parts.append(f"{ep.what}: no credentials")
    if reasons:
        return False, reasons[0], "; ".join(parts)
    return True, "CredentialsResolved", "; ".join(parts) or "no endpoint needs credentials"


def with_credentials_condition(
    status: RolloutStatus,
    endpoints: Iterable[EndpointCredentials],
    now: datetime,
    generation: int,
) -> tuple[RolloutStatus, list[EventSpec]]:
    """``status`` with ``CredentialsResolved`` set, and the Event of a change.

    A Warning when the condition turns False or its reason changes (a Secret went missing, a
    URL left the allowlist); a Normal Event when it turns True again. Nothing when no endpoint
    is configured at all.
    """
    endpoints = list(endpoints)
    if not endpoints:
        return status, []
    ok, reason, message = credentials_condition(endpoints)
    before = status.condition(ConditionType.CREDENTIALS_RESOLVED)
    conditions = set_condition(
        status.conditions,
        ConditionType.CREDENTIALS_RESOLVED,
        ok,
        reason,
        message,
        now,
        generation,
    )
    events: list[EventSpec] = []
    was_ok = before is not None and before.status == "True"
    if not ok and (before is None or was_ok or before.reason != reason):
        events.append(EventSpec("Warning", reason, message))
    elif ok and before is not None and not was_ok:
        events.append(EventSpec("Normal", reason, message))
    return replace(status, conditions=conditions), events

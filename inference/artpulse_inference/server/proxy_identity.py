"""Identity asserted by the authenticating proxy (oauth2-proxy) in front of the ops routes.

``deps.ops_caller`` asks :meth:`ProxyIdentity.read` what the request's headers say. The
email header (``x-auth-request-email``) is believed only when all of these hold:

- ``OPS_OIDC_TRUST_HEADERS=true``;
- the request carries the proxy's proof, the shared secret ``OPS_PROXY_SECRET`` in the
  header ``OPS_PROXY_SECRET_HEADER`` (``x-artpulse-proxy-secret``), once, equal in
  constant time. oauth2-proxy adds it to every request it forwards upstream; a client
  talking to the pod directly does not know it. A secret header survives kube-proxy's
  SNAT and any number of hops, which a source-address rule does not;
- the email's domain is in ``OPS_OIDC_ALLOWED_EMAIL_DOMAINS``.

Any identity header twice, or two email headers that disagree, is refused (400) before
anything else: with duplicates, which one a proxy set and which one the client sent is
anyone's guess. Without the proof the headers are ignored, and the refusal says so.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from .security import SCOPE_OPS, AuthError, Principal

# Headers oauth2-proxy (and similar proxies) use for the caller's identity. Email
# headers must agree with each other; each identity header may appear at most once.
EMAIL_HEADERS = ("x-auth-request-email", "x-forwarded-email")
USER_HEADERS = (
    "x-auth-request-user",
    "x-forwarded-user",
    "x-auth-request-preferred-username",
    "x-forwarded-preferred-username",
)

HeaderValues = Callable[[str], list[str]]


@dataclass(frozen=True, slots=True)
class ProxyAssertion:
    """What the headers claim: an email (or None), and whether the proxy proved it sent
    them. ``ignored_because`` explains an email that is not believed."""

    email: str | None
    proven: bool
    ignored_because: str | None = None


class ProxyIdentity:
    def __init__(
        self,
        *,
        trusted: bool,
        allowed_domains: tuple[str, ...],
        email_header: str = "x-auth-request-email",
        secret: str = "",
        secret_header: str = "x-artpulse-proxy-secret",
    ) -> None:
        self.trusted = trusted
        self.allowed_domains = allowed_domains
        self.email_header = email_header.lower()
        self.secret_header = secret_header.lower()
        self._secret = secret.encode()

    @property
    def active(self) -> bool:
        """Identity headers can be believed at all (the flag and a proxy secret are set)."""
        return self.trusted and bool(self._secret)

    def read(self, values: HeaderValues) -> ProxyAssertion:
        """The assertion in the headers; AuthError(400) for duplicated or disagreeing ones.

        ``values(name)`` returns every value of a header (``request.headers.getlist``).
        """
        email_names = tuple(dict.fromkeys((self.email_header, *EMAIL_HEADERS)))
        emails: dict[str, str] = {}
        for name in (*email_names, *USER_HEADERS, self.secret_header):
            found = values(name)
            if len(found) > 1:
                raise AuthError(
                    400,
                    f"the {name} header appears {len(found)} times; identity headers must "
                    "appear at most once",
                    scheme="oidc",
                )
            if found and name in email_names:
                emails[name] = found[0].strip().lower()
        if len(set(emails.values())) > 1:
            raise AuthError(
                400,
                f"identity headers disagree ({', '.join(sorted(emails))} name different "
                "users); refused",
                scheme="oidc",
            )
        email = next(iter(emails.values()), None)
        proven = self._proven(values(self.secret_header))
        ignored = None
        if email is not None and not proven:
            ignored = self._why_not_believed(values(self.secret_header))
        return ProxyAssertion(email, proven, ignored)

    def _proven(self, presented: list[str]) -> bool:
        if not self.active or len(presented) != 1:
            return False
        return hmac.compare_digest(presented[0].strip().encode(), self._secret)

    def _why_not_believed(self, presented: list[str]) -> str:
        if not self.trusted:
            return f"the {self.email_header} header is ignored (OPS_OIDC_TRUST_HEADERS is not true)"
        if not presented:
            return (
                f"the {self.email_header} header is ignored: the request did not come through "
                f"the identity proxy (no {self.secret_header} header)"
            )
        return (
            f"the {self.email_header} header is ignored: the {self.secret_header} header does "
            "not match OPS_PROXY_SECRET"
        )

    def principal_for(self, email: str) -> Principal:
        """The ops principal for a proven email, if its domain is allowed."""
        email = email.strip().lower()
        local, sep, domain = email.rpartition("@")
        if not sep or not local or not domain:
            raise AuthError(401, "identity header does not hold an email address", scheme="oidc")
        if not self.allowed_domains:
            raise AuthError(
                403,
                "no email domain is allowed for ops access",
                scheme="oidc",
                principal=f"oidc:{email}",
            )
        if domain not in self.allowed_domains:
            raise AuthError(
                403,
                f"email domain {domain[:100]!r} is not allowed for ops access",
                scheme="oidc",
                principal=f"oidc:{email}",
            )
        return Principal("oidc", f"oidc:{email}", frozenset({SCOPE_OPS}))

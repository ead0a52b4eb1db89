"""Read a credentials Secret of an ArtPulseModel's namespace (``get`` only, never list).

Who calls it: ``credentials.resolver``, once per reconcile for each Secret a resource names
(``spec.model.credentialsSecretRef``, ``spec.analysis.prometheus.credentialsSecretRef``).
A Secret that is missing, forbidden or undecodable is a :class:`CredentialProblem` naming the
Secret and the key (for the ``CredentialsResolved`` condition), never an exception; API errors
worth retrying (no answer, 5xx) still raise :class:`ApiError`.

Only the keys of ``engine.credentials.SECRET_KEYS`` are decoded; the rest of the Secret is
never looked at.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Protocol

from artpulse_operator.engine.credentials import SECRET_KEYS, CredentialProblem
from artpulse_operator.k8s.client import ApiError, ResourceKind, kind_for

__all__ = ["SECRETS", "SecretGetter", "read_secret_data"]

SECRETS = kind_for("v1", "Secret")
# The ClusterRole an administrator binds (RoleBinding) in a namespace whose models name Secrets.
READER_ROLE = "artpulse-operator-credentials-reader"


class SecretGetter(Protocol):
    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]: ...


async def read_secret_data(
    kube: SecretGetter, namespace: str, name: str, field_path: str
) -> dict[str, str] | CredentialProblem:
    """The decoded credential keys of Secret ``namespace/name``, or the problem."""
    secret = f"{namespace}/{name}"
    try:
        body = await kube.get(SECRETS, namespace, name)
    except ApiError as exc:
        if exc.not_found:
            return CredentialProblem(
                "SecretNotFound",
                field_path,
                secret,
                None,
                f"{field_path}: Secret {secret} not found",
            )
        if exc.forbidden:
            return CredentialProblem(
                "SecretForbidden",
                field_path,
                secret,
                None,
                f"{field_path}: the operator may not read Secret {secret}: bind the ClusterRole "
                f"{READER_ROLE} to its ServiceAccount with a RoleBinding in {namespace}",
            )
        raise
    data: Mapping[str, Any] = body.get("data") or {}
    decoded: dict[str, str] = {}
    for key in SECRET_KEYS:
        raw = data.get(key)
        if raw is None:
            continue
        try:
            decoded[key] = base64.b64decode(str(raw), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return CredentialProblem(
                "SecretInvalid",
                field_path,
                secret,
                key,
                f"{field_path}: Secret {secret} key {key!r} is not UTF-8 text",
            )
    return decoded

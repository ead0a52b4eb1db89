"""An :class:`~artpulse_operator.engine.credentials.HttpAuth` as ``httpx.Client`` options.

Who calls it: ``registry.mlflow_rest`` and ``metrics.prometheus`` when they build their client,
and the resolver, which builds the TLS context once to turn bad PEM data in a Secret into a
condition instead of a failed reconcile.

Credentials are explicit per client: nothing here reads the process environment, so a client
built for one URL never carries another URL's credentials (the MLflow client library reads
``MLFLOW_TRACKING_*`` from the environment for every request; this code does not).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any

import httpx

from artpulse_operator.engine.credentials import HttpAuth

__all__ = ["TlsMaterialError", "client_options", "ssl_context"]


class TlsMaterialError(ValueError):
    """The CA bundle or the client certificate cannot be loaded; ``key`` names which."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _load_client_cert(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # ssl loads a certificate chain from files only: a private temporary directory, removed
    # at once (the operator's /tmp is a memory-backed emptyDir in the shipped Deployment).
    with tempfile.TemporaryDirectory(prefix="artpulse-tls-") as directory:
        cert_path = os.path.join(directory, "tls.crt")
        key_path = os.path.join(directory, "tls.key")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(data)
        context.load_cert_chain(cert_path, key_path)


def ssl_context(auth: HttpAuth) -> ssl.SSLContext:
    """The TLS context: the system CAs plus ``ca_pem``, the client certificate if any.

    Raises :class:`TlsMaterialError` naming the key (``ca.crt``, ``tls.crt``) whose PEM data
    does not load.
    """
    context = ssl.create_default_context()
    if auth.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if auth.ca_pem:
        try:
            context.load_verify_locations(cadata=auth.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsMaterialError("ca.crt", f"the CA bundle does not load: {exc}") from None
    if auth.cert_pem and auth.key_pem:
        try:
            _load_client_cert(context, auth.cert_pem, auth.key_pem)
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise TlsMaterialError(
                "tls.crt", f"the client certificate or its key does not load: {exc}"
            ) from None
    return context


def client_options(auth: HttpAuth | None) -> dict[str, Any]:
    """``httpx.Client`` keyword arguments: headers, basic auth and TLS verification."""
    if auth is None:
        return {}
    options: dict[str, Any] = {"headers": auth.headers()}
    if auth.username and auth.password:
        options["auth"] = httpx.BasicAuth(auth.username, auth.password)
    if auth.ca_pem or auth.cert_pem or auth.insecure_skip_verify:
        options["verify"] = ssl_context(auth)
    return options

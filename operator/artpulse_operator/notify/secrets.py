"""The HMAC keys of webhook deliveries, read from a Secret of the resource's namespace.

Who calls it: ``notify.webhooks.Notifier`` (through the ``SecretSource`` protocol) before it
signs a delivery, and the reconcile service before it asks the confirm-promotion webhook.
``get`` only, never list; only the one key named by ``secretRef.key`` is decoded and the value
is never logged. A Secret that is missing, forbidden or lacks the key is ``None`` (the caller
refuses to send unsigned); an API error worth retrying (no answer, 429, 5xx) raises
:class:`~artpulse_operator.k8s.client.ApiError` so the delivery is retried.
"""

from __future__ import annotations

import base64
import binascii
import logging

from artpulse_operator.k8s.client import ApiError
from artpulse_operator.k8s.secrets import READER_ROLE, SECRETS, SecretGetter

__all__ = ["KubeSecretSource"]

_log = logging.getLogger(__name__)


class KubeSecretSource:
    """``SecretSource`` over the API server."""

    def __init__(self, kube: SecretGetter) -> None:
        self._kube = kube

    async def get(self, namespace: str, name: str, key: str) -> bytes | None:
        secret = f"{namespace}/{name}"
        try:
            body = await self._kube.get(SECRETS, namespace, name)
        except ApiError as exc:
            if exc.temporary:
                raise
            if exc.forbidden:
                _log.info(
                    "the operator may not read Secret %s: bind the ClusterRole %s in %s",
                    secret,
                    READER_ROLE,
                    namespace,
                )
            else:
                _log.info("Secret %s cannot be read: HTTP %s", secret, exc.status)
            return None
        raw = (body.get("data") or {}).get(key)
        if raw is None:
            _log.info("Secret %s has no key %r", secret, key)
            return None
        try:
            value = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            _log.info("Secret %s key %r is not base64 data", secret, key)
            return None
        if not value:
            _log.info("Secret %s key %r is empty", secret, key)
            return None
        return value

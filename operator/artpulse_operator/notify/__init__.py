"""Rollout notifications to tenants' webhooks and the confirm-promotion gate (the I/O side).

The records, payloads, signatures and spec parsing are pure, in
``artpulse_operator.engine.notifications``; this package sends them.
"""

from artpulse_operator.notify.secrets import KubeSecretSource
from artpulse_operator.notify.webhooks import (
    RESULTS,
    Notifier,
    SecretSource,
    confirm_promotion,
    new_client,
)

__all__ = [
    "RESULTS",
    "KubeSecretSource",
    "Notifier",
    "SecretSource",
    "confirm_promotion",
    "new_client",
]

"""The confirm-promotion gate: ask a tenant's webhook whether a candidate may be promoted.

Who calls it: the reconcile service, every analysis interval while a promotion waits for the
webhook's approval (Flagger's confirm-promotion webhook: it is asked again until it answers
2xx). Re-exported by ``notify.webhooks``. The answer's body is never read (``notify.delivery``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from artpulse_operator.engine.notifications import (
    CONFIRM_EVENT,
    ConfirmTarget,
    GateDecision,
    RolloutNotice,
    encode_body,
    generic_payload,
    url_origin,
)
from artpulse_operator.notify.delivery import build_headers, post_once, url_allowed_by

__all__ = ["confirm_promotion"]


async def confirm_promotion(
    client: httpx.AsyncClient,
    target: ConfirmTarget,
    notice: RolloutNotice,
    secret: bytes | None,
    *,
    url_allowed: Callable[[str], bool] | None = None,
    clock: Callable[[], float] = time.time,
) -> GateDecision:
    """Ask the confirm-promotion webhook once; approved only on a 2xx answer. Never raises.

    ``secret``: the HMAC key read from ``target.secret_name`` (None with a ``secret_name``:
    it could not be read, and the webhook is not asked unsigned).
    """
    origin = url_origin(target.url)
    try:
        if target.secret_name is not None and secret is None:
            return GateDecision(
                False,
                None,
                f"confirm-promotion webhook not asked: Secret {notice.namespace}/"
                f"{target.secret_name} key {target.secret_key!r} cannot be read",
            )
        if not url_allowed_by(url_allowed, target.url):
            return GateDecision(
                False, None, f"confirm-promotion webhook {origin} is not in the allowlist"
            )
        body = encode_body(generic_payload(notice, event=CONFIRM_EVENT))
        headers = build_headers(CONFIRM_EVENT, int(clock()), body, secret)
        attempt = await post_once(client, target.url, body, headers, target.timeout_s)
    except Exception as exc:
        return GateDecision(False, None, f"confirm-promotion webhook failed: {type(exc).__name__}")
    if attempt.ok:
        return GateDecision(
            True, attempt.status_code, f"approved by {origin} (HTTP {attempt.status_code})"
        )
    if attempt.status_code is None:
        return GateDecision(False, None, f"confirm-promotion webhook {origin}: {attempt.reason}")
    return GateDecision(
        False, attempt.status_code, f"not approved: {origin} answered {attempt.reason}"
    )

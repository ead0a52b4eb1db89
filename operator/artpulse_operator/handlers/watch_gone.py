"""A watch whose resource was just deleted ends quietly instead of stopping the operator.

When a CRD is deleted (here: the Gateway API's HTTPRoute, by an admin), the API server closes
its watches and Kopf reconnects them at once; its observer learns of the deletion a moment
later (Kopf's own note in ``kopf._core.reactor.observation``: the watch may "fail with HTTP
404"). Kopf 1.45 treats that 404 as fatal: the watcher fails, then the whole operator stops,
every model's rollout with it. With this installed, a 404 on a watch ends that stream after a
pause: Kopf reconnects, and soon either its observer stops the watcher (the CRD is gone) or the
watch works again (the CRD is back). The reconcile of each model then says ``Degraded``
(``RouteKindNotInstalled``) and recovers by itself.

Kopf has no public hook for this; ``install`` wraps its ``continuous_watch`` (the function its
``infinite_watch`` calls each round), and ``tests/unit/operator`` checks that it still exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("artpulse_operator.watch")

# Between the 404 and the next attempt: Kopf's own reconnect backoff is 0.1 s.
GONE_PAUSE_S = 2.0

_original = watching.continuous_watch
# Watches whose last attempt was a 404: the warning is said once per outage, not per retry.
_reported: set[str] = set()


async def continuous_watch_until_gone(**kwargs: Any) -> AsyncIterator[Any]:
    """``continuous_watch``, ending (after ``GONE_PAUSE_S``) where it would raise a 404."""
    where = f"{kwargs.get('resource')} in {kwargs.get('namespace') or 'the cluster'}"
    try:
        async for event in _original(**kwargs):
            _reported.discard(where)  # served again: a later 404 is news worth a warning
            yield event
    except errors.APINotFoundError:
        level = logging.DEBUG if where in _reported else logging.WARNING
        _reported.add(where)
        log.log(level, "watch of %s: the resource is not served (404), trying again", where)
        await asyncio.sleep(GONE_PAUSE_S)


def install() -> None:
    """Make Kopf's watchers use ``continuous_watch_until_gone``; idempotent."""
    watching.continuous_watch = continuous_watch_until_gone

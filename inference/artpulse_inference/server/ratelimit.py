"""Per-client token-bucket rate limiting (pure logic; ``deps.py`` applies it to requests).

A bucket holds ``burst`` tokens and refills at ``per_minute / 60`` tokens a second. A
request takes one token; with none left the caller gets 429 and a ``Retry-After`` of the
seconds until the next token. :meth:`RateLimiter.peek` asks without taking one. Buckets of idle clients are dropped so that a flood of
distinct addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_seconds: int  # 0 when allowed
    remaining: int


class RateLimiter:
    """Token buckets keyed by client id. ``per_minute == 0`` disables the limit."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_clients = max_clients
        # client -> (tokens, last refill time); ordered by last use for eviction.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def peek(self, client: str) -> RateDecision:
        """Would :meth:`hit` allow ``client`` now? Takes no token (the failure throttle asks
        this before a credential check and takes a token only when the check fails)."""
        if not self.enabled:
            return RateDecision(True, 0, self.burst)
        entry = self._buckets.get(client)
        if entry is None:
            return RateDecision(True, 0, self.burst)
        tokens, last = entry
        tokens = min(float(self.burst), tokens + (self._clock() - last) * self._rate)
        if tokens >= 1.0:
            return RateDecision(True, 0, int(tokens))
        return RateDecision(False, max(1, math.ceil((1.0 - tokens) / self._rate)), 0)

    def hit(self, client: str) -> RateDecision:
        if not self.enabled:
            return RateDecision(True, 0, self.burst)
        now = self._clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            tokens -= 1.0
            decision = RateDecision(True, 0, int(tokens))
        else:
            wait = (1.0 - tokens) / self._rate
            decision = RateDecision(False, max(1, math.ceil(wait)), 0)
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return decision

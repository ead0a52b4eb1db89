"""One HTTP client per (URL, credentials), shared by the resources that use the same pair.

Who calls it: the reconcile service, for its MLflow and Prometheus adapters. A client is built
for exactly one URL and one :class:`~artpulse_operator.engine.credentials.HttpAuth`, so the
credentials a resource's Secret holds never serve another resource's URL, and a rotated Secret
gets a new client. Least recently used clients beyond ``limit`` are closed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from artpulse_operator.engine.credentials import HttpAuth

__all__ = ["ClientCache"]

T = TypeVar("T")


class ClientCache(Generic[T]):
    def __init__(self, factory: Callable[[str, HttpAuth], T], limit: int = 256) -> None:
        self._factory = factory
        self._limit = limit
        self._clients: OrderedDict[tuple[str, HttpAuth], T] = OrderedDict()

    def get(self, uri: str, auth: HttpAuth) -> T:
        key = (uri, auth)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._factory(uri, auth)
            while len(self._clients) > self._limit:
                _, old = self._clients.popitem(last=False)
                close = getattr(old, "close", None)
                if callable(close):
                    close()
        else:
            self._clients.move_to_end(key)
        return client

    def __len__(self) -> int:
        return len(self._clients)

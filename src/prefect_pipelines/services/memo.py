"""A short-lived, single-flight memo of async reads (written here: cachetools has no async
single-flight, and a burst must not make the same read once per request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """Remembers each key's value for `seconds`; concurrent callers of one key share one
    read. A read that fails is not remembered. One per event loop."""

    def __init__(self, seconds: float, size: int = 1024) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: dict[Hashable, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._seconds:
            if len(self._entries) >= self._size:
                self._entries = {k: e for k, e in self._entries.items() if now - e[0] < self._seconds}
            entry = (now, asyncio.ensure_future(read()))
            self._entries[key] = entry
        try:
            return await asyncio.shield(entry[1])
        except BaseException:
            if self._entries.get(key) is entry and entry[1].done():
                del self._entries[key]
            raise

    def forget(self, key: Hashable) -> None:
        """Read the key afresh next time (its value just changed here)."""
        self._entries.pop(key, None)

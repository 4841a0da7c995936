"""The Prefect client prefect-pipelines uses: Prefect's, with a quicker answer to SQLite locks.

On SQLite, Prefect's server answers a write that meets another write's lock with 503 and
no Retry-After; Prefect's client then backs off exponentially, 2 s, 4 s, 8 s... so twenty
concurrent `run` calls took 16 s on an idle server. The transport below retries those 503s
itself after a few tens of milliseconds (the server rolled the transaction back, so a
retry is safe), and only hands a 503 to Prefect's own retry logic when the lock persists.
"""

from __future__ import annotations

import asyncio
import random

import httpx
from prefect.client.orchestration import PrefectClient, get_client

_RETRY_STATUS = 503


class LockRetryTransport(httpx.AsyncBaseTransport):
    """Retries 503 answers quickly, with jittered, doubling delays (about 5 s in all)."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *, attempts: int = 12,
                 first_delay: float = 0.02, max_delay: float = 1.0) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(retries=1)
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        delay = self.first_delay
        for attempt in range(self.attempts):
            response = await self.inner.handle_async_request(request)
            if response.status_code != _RETRY_STATUS or attempt == self.attempts - 1:
                return response
            await response.aclose()
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()


def pipelines_client() -> PrefectClient:
    """An async Prefect client whose requests ride out brief SQLite locks."""
    return get_client(httpx_settings={"transport": LockRetryTransport()})

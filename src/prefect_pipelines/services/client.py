"""The Prefect clients prefect-pipelines uses: Prefect's, with a quicker answer to SQLite locks.

On SQLite, Prefect's server answers a write that meets another write's lock with 503 and
no Retry-After; Prefect's client then backs off exponentially, 2 s, 4 s, 8 s... so twenty
concurrent `run` calls took 16 s on an idle server, and a run's last writes could take
over a minute during a burst. The transports below retry those 503s themselves after a
few tens of milliseconds (the server rolled the transaction back, so a retry is safe), and
only hand a 503 to Prefect's own retry logic when the lock persists.

They wrap the transport Prefect's client built, so everything Prefect configures there
stays as it is: TLS (`PREFECT_API_SSL_CERT_FILE`, `PREFECT_API_TLS_INSECURE_SKIP_VERIFY`),
HTTP/2, connection limits. The wrapping uses httpx's `_transport` attribute (stable across
httpx releases, but not public): where it is missing the client keeps Prefect's retries only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client

_RETRY_STATUS = 503


def _pauses(attempts: int = 12, first: float = 0.02, most: float = 1.0) -> Iterator[float]:
    """The waits between the attempts at one request: jittered, doubling, at most `most`
    (about 5 s in all for the defaults)."""
    delay = first
    for _ in range(attempts - 1):
        yield delay * random.uniform(0.5, 1.5)
        delay = min(delay * 2, most)


class LockRetryTransport(httpx.AsyncBaseTransport):
    """Retries 503 answers quickly (see the module), for an async client."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for pause in _pauses():
            response = await self.inner.handle_async_request(request)
            if response.status_code != _RETRY_STATUS:
                return response
            await response.aclose()
            await asyncio.sleep(pause)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class SyncLockRetryTransport(httpx.BaseTransport):
    """Retries 503 answers quickly (see the module), for a sync client."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for pause in _pauses():
            response = self.inner.handle_request(request)
            if response.status_code != _RETRY_STATUS:
                return response
            response.close()
            time.sleep(pause)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _quicken(prefect_client: Any, wrapper: type[LockRetryTransport] | type[SyncLockRetryTransport]) -> None:
    http = getattr(prefect_client, "_client", None)
    inner = getattr(http, "_transport", None)
    if inner is not None and not isinstance(inner, wrapper):
        http._transport = wrapper(inner)  # type: ignore[union-attr]


def pipelines_client() -> PrefectClient:
    """An async Prefect client of its own whose requests ride out brief SQLite locks.

    (`httpx_settings` is given so that Prefect never hands out the client of the flow run
    this is called in: that one is the engine's, and stays as Prefect made it.)"""
    client = get_client(httpx_settings={})
    _quicken(client, LockRetryTransport)
    return client


def pipelines_sync_client() -> SyncPrefectClient:
    """The sync twin of `pipelines_client`."""
    client = get_client(httpx_settings={}, sync_client=True)
    _quicken(client, SyncLockRetryTransport)
    return client

"""The Prefect clients prefect-pipelines uses: Prefect's, with a quicker answer to SQLite locks.

A 503 from a SQLite server (a write met another write's lock; the transaction was rolled
back) is retried after a few tens of milliseconds by the transports below, and handed to
Prefect's own exponential back-off only when the lock persists (measurements:
docs/history.md). They wrap the transports Prefect's client built, so its TLS, HTTP/2 and
proxy settings stay; the wrapping uses httpx's `_transport` and `_mounts` (not public):
where they are missing the client keeps Prefect's retries only, and says so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL

_RETRY_STATUS = 503
_log = logging.getLogger(__name__)


def _pauses(attempts: int = 12, first: float = 0.02, most: float = 1.0) -> Iterator[float]:
    """The waits between the attempts at one request: jittered, doubling, at most `most`
    (about 6 s in all for the defaults; then Prefect's own back-off takes over)."""
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
            await response.aread()  # read to its end, so the connection can be used again
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
            response.read()
            response.close()
            time.sleep(pause)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _quicken(prefect_client: Any, wrapper: type[LockRetryTransport] | type[SyncLockRetryTransport]) -> None:
    http = getattr(prefect_client, "_client", None)
    if http is None or not isinstance(getattr(http, "_transport", None), httpx.BaseTransport | httpx.AsyncBaseTransport):
        _log.warning("this httpx has no transport to wrap: SQLite locks get Prefect's slower retries")
        return
    http._transport = wrapper(http._transport)
    mounts = getattr(http, "_mounts", {})
    for pattern, transport in mounts.items():  # proxies named by the environment
        if transport is not None:
            mounts[pattern] = wrapper(transport)


def pipelines_client() -> PrefectClient:
    """An async Prefect client of its own whose requests ride out brief SQLite locks.

    `httpx_settings` is given so that Prefect never hands out the client of the flow run
    this is called in (that one is the engine's, and stays as Prefect made it). It keeps
    httpx's default connection limits, with which the facade's figures were measured
    (Prefect's own client allows 16 connections)."""
    client = get_client(httpx_settings={"limits": httpx.Limits(max_connections=100, max_keepalive_connections=20)})
    _quicken(client, LockRetryTransport)
    return client


def pipelines_sync_client() -> SyncPrefectClient:
    """The sync twin of `pipelines_client` (with Prefect's connection limits)."""
    client = get_client(httpx_settings={}, sync_client=True)
    _quicken(client, SyncLockRetryTransport)
    return client


_shared: dict[str, SyncPrefectClient] = {}
_shared_lock = threading.Lock()


def shared_sync_client() -> SyncPrefectClient:
    """A `pipelines_sync_client` per process and API URL, opened on first use and kept
    open: a run's step output and labels are sent through it from any thread (httpx's sync
    client is thread-safe)."""
    key = str(PREFECT_API_URL.value())
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = _shared[key] = pipelines_sync_client()
            client.__enter__()
        return client

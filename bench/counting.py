"""A counting reverse proxy in front of the Prefect API, for the bench only.

Every HTTP request is passed on as it came (its body, and the answer's raw bytes and
headers, untouched) and counted by method and route (ids replaced by `{id}`); a websocket
is piped both ways, and each message a client sends on `/events/in` (how Prefect's
clients emit events) is counted as an event. The proxy runs on its own thread and event
loop, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from typing import Any

import httpx
import uvicorn
import websockets

from tests.support.procs import free_port, wait_for

_ID = re.compile(r"/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]+)(?=/|$)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}


def _is_auth(text: str | None) -> bool:
    """The first message of Prefect's events client: its token, not an event."""
    try:
        return text is not None and json.loads(text).get("type") == "auth"
    except (ValueError, AttributeError):
        return False


def route(method: str, path: str) -> str:
    """`POST /api/flow_runs/{id}/set_state` from a request's method and path."""
    return f"{method} {_ID.sub('/{id}', path)}"


class CountingProxy:
    """`url` is the proxy's API URL (what PREFECT_API_URL is set to); `calls` counts
    requests by route, `events` the events clients sent."""

    def __init__(self, upstream_api_url: str) -> None:
        self.upstream = upstream_api_url.rstrip("/")
        self.origin = re.sub(r"/api$", "", self.upstream)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.calls: Counter[str] = Counter()
        self.events = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> CountingProxy:
        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", lifespan="off", interface="asgi3")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        wait_for(lambda: self._server is not None and self._server.started, timeout=30,
                 what="the counting proxy")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.events = 0

    def snapshot(self) -> tuple[Counter[str], int]:
        with self._lock:
            return Counter(self.calls), self.events

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    def _target(self, scope: dict[str, Any], scheme: str = "http") -> str:
        query = scope.get("query_string", b"").decode()
        origin = self.origin.replace("http", scheme, 1)
        return f"{origin}{scope['path']}" + (f"?{query}" if query else "")

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        with self._lock:
            self.calls[route(scope["method"], scope["path"])] += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=200))
        headers = [(key, value) for key, value in scope["headers"]
                   if key.decode().lower() not in _HOP_BY_HOP]
        request = self._client.build_request(scope["method"], self._target(scope),
                                             headers=headers, content=body)
        answer = await self._client.send(request, stream=True)
        try:
            await send({"type": "http.response.start", "status": answer.status_code,
                        "headers": [(key, value) for key, value in answer.headers.raw
                                    if key.decode().lower() not in _HOP_BY_HOP]})
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await answer.aclose()

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        counts = scope["path"].endswith("/events/in")
        with self._lock:
            self.calls[route("WS", scope["path"])] += 1
        headers = [(key.decode(), value.decode()) for key, value in scope["headers"]
                   if key.decode().lower() in ("authorization", "user-agent")]
        async with websockets.connect(
                self._target(scope, "ws"), additional_headers=headers, max_size=None,
                subprotocols=scope.get("subprotocols") or None) as upstream:  # Prefect's is "prefect"
            await receive()  # websocket.connect
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

            async def from_client() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        await upstream.close()
                        return
                    if counts and not _is_auth(message.get("text")):
                        with self._lock:
                            self.events += 1
                    await upstream.send(message.get("text") if message.get("text") is not None
                                        else message.get("bytes", b""))

            async def from_server() -> None:
                async for data in upstream:
                    key = "text" if isinstance(data, str) else "bytes"
                    await send({"type": "websocket.send", key: data})
                await send({"type": "websocket.close"})

            tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_server())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    pass  # either side going away ends the pipe

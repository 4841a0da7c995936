"""Every secret value the suite makes, and every facade response, for the final scan."""

from __future__ import annotations

import threading
from typing import Any


class SecretScan:
    """Secrets are registered as tests make them; facade responses are kept as sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: dict[str, str] = {}
        self.responses: list[tuple[str, bytes]] = []

    def add(self, value: str | None, what: str) -> None:
        if value and len(value) >= 8:
            with self._lock:
                self.secrets[value] = what

    def record(self, path: str, body: bytes) -> None:
        with self._lock:
            self.responses.append((path, body))

    def find(self, texts: list[tuple[str, str]]) -> list[str]:
        """`what` of every secret found, with where it was found."""
        found = []
        for secret, what in list(self.secrets.items()):
            for where, text in texts:
                if secret in text:
                    found.append(f"{what} in {where}")
        return found


scan = SecretScan()


class ResponseRecorder:
    """ASGI middleware that keeps a copy of every response body of the facade."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    scan.record(scope.get("path", ""), b"".join(chunks))
            await send(message)

        await self.app(scope, receive, capture)

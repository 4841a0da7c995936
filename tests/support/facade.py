"""The /v3 facade served for real (uvicorn, HTTP on 127.0.0.1) in a thread of the tests."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import uvicorn

from prefect_pipelines.api.app import create_app
from tests.support.procs import free_port, wait_for
from tests.support.secret_scan import ResponseRecorder, scan


class Facade:
    """uvicorn in a thread; `app.dependency_overrides` can swap settings per test."""

    def __init__(self) -> None:
        self.app = create_app()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(ResponseRecorder(self.app), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self.server.run,), daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, what="the facade to start")

    def create_token(self, user: str, admin: bool = False) -> str:
        from prefect.client.orchestration import get_client

        from prefect_pipelines.services.projects import set_admin
        from prefect_pipelines.services.tokens import create_token

        async def make() -> str:
            async with get_client() as client:
                if admin:
                    await set_admin(client, user, True)
                return await create_token(client, user)

        token = asyncio.run(make())
        scan.add(token, f"the API token of {user}")
        return token

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

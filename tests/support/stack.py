"""Facades and workers as processes of their own, the way a team deploys them: each on a
work pool of the test's own (so the session's worker never takes its runs), against a
Prefect server the test chooses, each killable on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.procs import Proc, free_port, wait_for
from tests.support.secret_scan import scan

CLI = [sys.executable, "-m", "prefect_pipelines.cli"]


class Stack:
    """Processes of one deployment of prefect-pipelines; `close()` stops what is left."""

    def __init__(self, state: Path, api_url: str, **settings: str) -> None:
        self.state = state
        self.api_url = api_url
        self.pool = f"pool-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "PREFECT_API_URL": api_url,
                    "PREFECT_PIPELINES_WORK_POOL": self.pool,
                    **{f"PREFECT_PIPELINES_{key.upper()}": value for key, value in settings.items()}}
        self.procs: list[Proc] = []
        self._tokens: dict[str, str] = {}

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        proc = Proc(argv, log=self.state / f"{name}.log", env={**self.env, **env})
        self.procs.append(proc)
        return proc

    def worker(self, name: str, *args: str, **env: str) -> Proc:
        """Start a worker and wait until it polls its pool."""
        proc = self.start(name, [*CLI, "worker", "--name", name, *args], **env)
        wait_for(lambda: "started" in proc.log_text() or not proc.alive(), timeout=90,
                 what=f"worker {name} to start")
        assert proc.alive(), proc.log_text()[-3000:]
        return proc

    def facade(self, name: str, port: int | None = None) -> tuple[Proc, str]:
        """Start a facade process; (the process, its URL)."""
        port = port or free_port()
        proc = self.start(name, [*CLI, "api", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(url) or not proc.alive(), timeout=90, what=f"facade {name}")
        assert proc.alive(), proc.log_text()[-3000:]
        return proc, url

    def token(self, user: str) -> str:
        """A token of `user`; alice is an admin, as in the session (she sets up GitHub apps)."""
        if user not in self._tokens:
            admin = ["--admin"] if user == "alice" else []
            token = subprocess.run([*CLI, "token", "create", "--user", user, *admin], env=self.env,
                                   capture_output=True, text=True, check=True).stdout.strip()
            scan.add(token, f"the API token of {user} (stack)")
            self._tokens[user] = token
        return self._tokens[user]

    def client(self, url: str, user: str = "alice", **options: Any) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=60,
                            headers={"Authorization": f"Bearer {self.token(user)}"}, **options)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=40)


def kill(proc: Proc) -> None:
    """SIGKILL a process and everything it started, as when its machine dies."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.popen.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def flow_runs_of(project: str) -> list[Any]:
    """The flow runs of a project's executions, read from Prefect."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"project:{project}"])),
                limit=200)

    return asyncio.run(read())


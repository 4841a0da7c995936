"""The embedded default: a Prefect server, a worker and the facade as child processes.

`prefect-pipelines server` uses this. Children are stopped in the order that lets each
one finish cleanly: the facade, then the worker (it may still report states), then the
Prefect server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HEALTH_TIMEOUT_SECONDS = 120


def prefect_server_argv(host: str, port: int) -> list[str]:
    """The command that starts a Prefect server (SQLite unless configured otherwise):
    `prefect server start`, with SQLAlchemy's aiosqlite stall corrected (see
    `prefect_pipelines.prefect_server`)."""
    return [sys.executable, "-m", "prefect_pipelines.prefect_server", "--host", host,
            "--port", str(port), "--analytics-off"]


def wait_healthy(api_url: str, timeout: float = HEALTH_TIMEOUT_SECONDS,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `<api_url>/health` answers.

    Raises:
        RuntimeError: it did not in time, or `proc` exited first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the Prefect server at {api_url} did not answer within {timeout:.0f}s")


@dataclass
class Child:
    """One supervised child process."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_timeout: float = 20

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of its process group after `stop_timeout` seconds."""
        if not self.alive():
            return
        try:
            os.kill(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
        except ProcessLookupError:
            pass


@dataclass
class Supervisor:
    """Starts children, notices when one dies, stops them all in reverse order."""

    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], *,
              log: Path | None = None, stop_timeout: float = 20) -> Child:
        """Start a child in its own process group (so Ctrl-C reaches only us)."""
        out = open(log, "ab") if log else None  # noqa: SIM115 - owned by the child's lifetime
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, popen, stop_timeout)
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        """A child that exited, if any."""
        return next((child for child in self.children if not child.alive()), None)

    def stop_all(self) -> None:
        """Stop children, last started first."""
        for child in reversed(self.children):
            child.stop()


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()


def serve(api_host: str | None = None, api_port: int | None = None) -> int:
    """Run the embedded default until Ctrl-C (SIGINT) or SIGTERM; return the exit code.

    Starts a Prefect server on SQLite unless PREFECT_API_URL points at one, then a
    worker on the project's work pool and the /v3 facade.
    """
    from prefect_pipelines.settings import get_settings

    settings = get_settings()
    host = api_host or settings.api_host
    port = api_port or settings.api_port
    supervisor = Supervisor()
    stop = {"asked": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = dict(os.environ)
    cli = [sys.executable, "-m", "prefect_pipelines.cli"]
    try:
        api_url = _api_url()
        if not api_url:
            api_url = f"http://{settings.prefect_host}:{settings.prefect_port}/api"
            print(f"starting a Prefect server on {api_url.removesuffix('/api')} (SQLite)", flush=True)
            prefect = supervisor.start(
                "prefect server", prefect_server_argv(settings.prefect_host, settings.prefect_port),
                env, stop_timeout=20,
            )
            _wait(lambda: wait_healthy(api_url, proc=prefect.popen), stop)
        env["PREFECT_API_URL"] = api_url
        # A server that asks for an auth string: our own processes send the same one.
        if env.get("PREFECT_SERVER_API_AUTH_STRING") and not env.get("PREFECT_API_AUTH_STRING"):
            env["PREFECT_API_AUTH_STRING"] = env["PREFECT_SERVER_API_AUTH_STRING"]
            os.environ["PREFECT_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        _prepare(api_url, settings.work_pool)
        worker = supervisor.start("worker", [*cli, "worker"], env, stop_timeout=40)
        _wait(lambda: _wait_worker(api_url, settings.work_pool, worker.popen), stop)
        facade = supervisor.start("facade", [*cli, "api", "--host", host, "--port", str(port)], env)
        _wait(lambda: _wait_http(f"http://{host}:{port}/healthz", facade.popen), stop)
        print(
            "prefect-pipelines is running\n"
            f"  Prefect UI and API  {api_url.removesuffix('/api')}  "
            f"(export PREFECT_API_URL={api_url})\n"
            f"  /v3 API             http://{host}:{port}/v3  (OpenAPI: http://{host}:{port}/docs)\n"
            f"  worker              pool {settings.work_pool!r}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop["asked"]:
            dead = supervisor.first_dead()
            if dead is not None:
                print(f"{dead.name} exited with code {dead.popen.returncode}; stopping", flush=True)
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, _Interrupted) as exc:
        if isinstance(exc, RuntimeError):
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        print("stopping...", flush=True)
        supervisor.stop_all()
        print("stopped", flush=True)


class _Interrupted(Exception):
    """Ctrl-C while starting up."""


def _wait(start: object, stop: dict[str, bool]) -> None:
    """Run a blocking wait, giving up early when a stop was asked for."""
    import threading

    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            start()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    while not done.wait(0.2):
        if stop["asked"]:
            raise _Interrupted()
    if errors:
        raise errors[0]


def _prepare(api_url: str, pool: str) -> None:
    """Create the work pool before anything uses it."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from prefect_pipelines.services.pools import ensure_work_pool

    async def run() -> None:
        async with get_client() as client:
            await ensure_work_pool(client, pool)

    updates: dict[Any, Any] = {PREFECT_API_URL: api_url}
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        updates[PREFECT_API_AUTH_STRING] = os.environ["PREFECT_API_AUTH_STRING"]
    with temporary_settings(updates):
        asyncio.run(run())


def _wait_worker(api_url: str, pool: str, proc: subprocess.Popen[bytes],
                 timeout: float = 90) -> None:
    """Wait until the worker has registered with its pool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode}")
        try:
            workers = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={},
                                 headers=_auth_headers(), timeout=5).json()
            if workers:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the worker did not register with pool {pool!r} within {timeout:.0f}s")


def _auth_headers() -> dict[str, str]:
    """What Prefect's client sends when PREFECT_API_AUTH_STRING is set."""
    import base64

    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the facade exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the facade did not answer at {url} within {timeout:.0f}s")

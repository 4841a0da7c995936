"""The embedded default: a Prefect server, a worker and the facade as child processes.

`prefect-pipelines server` uses this. A part that exits unasked is restarted, with
back-off, after what it left running is killed; one that keeps exiting stops everything.
Children are stopped in the order that lets each one finish cleanly: the facade, then the
worker (it may still report states), then the Prefect server.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_URL,
    get_current_settings,
    temporary_settings,
)

from prefect_pipelines.flows.executors import EXECUTOR_ENV, describe_executor, resolve_executor
from prefect_pipelines.services.pools import ensure_work_pool
from prefect_pipelines.settings import Settings, get_settings

HEALTH_TIMEOUT_SECONDS = 120
# A part that exits is restarted after 1, 2, 4, ... s; its fifth exit within a minute stops all.
RESTART_LIMIT = 5
RESTART_WINDOW_SECONDS = 60.0
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
_PR_SET_CHILD_SUBREAPER = 36


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
    """One supervised part: the command that runs it and its current process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    stop_timeout: float = 20
    log: Path | None = None
    # Restarts wait until `ready()` is true (`waits_for` says for what).
    ready: Callable[[], bool] | None = None
    waits_for: str = ""
    popen: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    waiting: bool = False

    def spawn(self) -> None:
        """Start the process in its own session (so Ctrl-C reaches only us)."""
        out = open(self.log, "ab") if self.log else None  # noqa: SIM115 - closed below
        try:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if out is not None:
                out.close()  # the child has its own copy

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout` seconds; what is left of its process
        group goes too."""
        popen = self.popen
        if popen is None or popen.returncode is not None:
            return
        try:
            os.kill(popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _wait_exited(popen, self.stop_timeout)
        _kill_group(popen.pid)  # the leader is a zombie at most: its pid is not reused yet
        popen.wait(timeout=10)


class CrashLoop(RuntimeError):
    """A part exited too often: the supervisor gives up."""


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Supervisor:
    """Starts parts, restarts those that exit unasked, stops them all in reverse order.

    A part that exits is restarted after a back-off that doubles with each exit within
    `window` seconds (`first_backoff`, then twice that, ..., at most `max_backoff`); its
    `restart_limit`-th exit within `window` raises `CrashLoop`. Before a restart, what the
    dead part left running is killed: its process group and, with `adopt_orphans` (Linux),
    the processes it started in sessions of their own (a step run by the process
    executor), which become ours when their parent dies.
    """

    children: list[Child] = field(default_factory=list)
    say: Callable[[str], None] = _say
    restart_limit: int = RESTART_LIMIT
    window: float = RESTART_WINDOW_SECONDS
    first_backoff: float = FIRST_BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    adopt_orphans: bool = False

    def __post_init__(self) -> None:
        if self.adopt_orphans:
            self.adopt_orphans = _become_subreaper()

    def start(self, name: str, argv: list[str], env: dict[str, str], *,
              log: Path | None = None, stop_timeout: float = 20,
              ready: Callable[[], bool] | None = None, waits_for: str = "") -> Child:
        """Start a part and supervise it."""
        child = Child(name, argv, env, stop_timeout, log, ready, waits_for)
        child.spawn()
        self.children.append(child)
        return child

    def check(self) -> None:
        """One round: clean up after parts that exited and plan their restart; restart
        those whose back-off is over.

        Raises:
            CrashLoop: a part exited `restart_limit` times within `window` seconds.
        """
        for child in self.children:
            if child.restart_at is None:
                if child.popen is not None and _has_exited(child.popen):
                    self._exited(child)
            elif time.monotonic() >= child.restart_at:
                self._restart(child)
        self._reap_orphans()

    def _exited(self, child: Child) -> None:
        assert child.popen is not None
        _kill_group(child.popen.pid)
        code = child.popen.wait()
        self._kill_orphans()
        self._count(child, f"exited with code {code}{_signal_name(code)}")

    def _count(self, child: Child, what: str) -> None:
        """Count an exit (`what` happened); plan the restart or give up."""
        now = time.monotonic()
        child.crashes.append(now)
        while now - child.crashes[0] > self.window:
            child.crashes.popleft()
        if len(child.crashes) >= self.restart_limit:
            raise CrashLoop(f"{child.name} {what} ({len(child.crashes)} exits within "
                            f"{self.window:g} s); stopping everything")
        delay = min(self.max_backoff, self.first_backoff * 2 ** (len(child.crashes) - 1))
        child.restart_at = now + delay
        self.say(f"{child.name} {what}; restarting it in {delay:g} s")

    def _restart(self, child: Child) -> None:
        if child.ready is not None and not child.ready():
            if not child.waiting:
                self.say(f"restarting {child.name} once {child.waits_for or 'it can'} answers")
                child.waiting = True
            return
        child.restart_at, child.waiting = None, False
        try:
            child.spawn()
        except OSError as exc:
            self._count(child, f"could not start ({exc.strerror or exc})")
            return
        self.say(f"{child.name} restarted")

    def stop_all(self) -> None:
        """Stop children, last started first; then whatever they left."""
        for child in reversed(self.children):
            child.stop()
        self._kill_orphans()
        deadline = time.monotonic() + 5
        while self._reap_orphans() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _part_pids(self) -> set[int]:
        return {child.popen.pid for child in self.children if child.popen is not None}

    def _kill_orphans(self) -> None:
        """Kill the adopted processes that belong to no running part (a dead part's)."""
        if not self.adopt_orphans:
            return
        running = {child.popen.pid for child in self.children
                   if child.popen is not None and child.popen.returncode is None}
        for pid in _children_of(os.getpid()) - self._part_pids():
            try:
                if os.getsid(pid) in running:
                    continue  # something of a part that still runs
                _kill_group(os.getpgid(pid))  # a group of another session than any part's
            except ProcessLookupError:
                continue

    def _reap_orphans(self) -> int:
        """Collect adopted processes that exited; how many adopted ones are left."""
        if not self.adopt_orphans:
            return 0
        left = 0
        for pid in _children_of(os.getpid()) - self._part_pids():
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            left += done == 0
        return left


def _has_exited(popen: subprocess.Popen[bytes]) -> bool:
    """Whether the process exited, leaving it unreaped (its pid, and so its process group
    id, cannot be reused until it is) where the platform allows."""
    if popen.returncode is not None:
        return True
    if not hasattr(os, "waitid"):
        return popen.poll() is not None
    try:
        return os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return popen.poll() is not None


def _wait_exited(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to `timeout` seconds for the process to exit (unreaped)."""
    deadline = time.monotonic() + timeout
    while not _has_exited(popen) and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(code: int) -> str:
    if code >= 0:
        return ""
    try:
        return f" ({signal.Signals(-code).name})"
    except ValueError:
        return ""


def _become_subreaper() -> bool:
    """Linux: make orphaned descendants our children instead of init's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_of(pid: int) -> set[int]:
    """The pids whose parent is `pid` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _api_url() -> str | None:
    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()


def serve(api_host: str | None = None, api_port: int | None = None) -> int:
    """Run the embedded default until Ctrl-C (SIGINT) or SIGTERM; return the exit code.

    Starts a Prefect server on SQLite unless PREFECT_API_URL points at one, then a
    worker on the project's work pool and the /v3 facade; restarts whichever exits.
    """
    settings = get_settings()
    host = api_host or settings.api_host
    port = api_port or settings.api_port
    supervisor = Supervisor(adopt_orphans=True)
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
            api_url = f"http://{_url_host(settings.prefect_host)}:{settings.prefect_port}/api"
            print(f"starting a Prefect server on {api_url.removesuffix('/api')} (SQLite)", flush=True)
            prefect = supervisor.start(
                "prefect server", prefect_server_argv(settings.prefect_host, settings.prefect_port),
                prefect_server_env(env, settings.prefect_host, settings.prefect_port),
                stop_timeout=20,
            )
            _wait(lambda: wait_healthy(api_url, proc=prefect.popen), stop)
        env["PREFECT_API_URL"] = api_url
        # A server that asks for an auth string: our own processes send the same one.
        if env.get("PREFECT_SERVER_API_AUTH_STRING") and not env.get("PREFECT_API_AUTH_STRING"):
            env["PREFECT_API_AUTH_STRING"] = env["PREFECT_SERVER_API_AUTH_STRING"]
            os.environ["PREFECT_API_AUTH_STRING"] = env["PREFECT_API_AUTH_STRING"]
        _prepare(api_url, settings.work_pool)
        # Chosen once: a restarted worker keeps it.
        executor, executor_note = _choose_executor(settings, stop)
        # The worker and the facade are restarted once Prefect answers (it may be what died).
        def prefect_up() -> bool:
            return _answers(f"{api_url}/health")

        worker = supervisor.start("worker", [*cli, "worker"], {**env, EXECUTOR_ENV: executor},
                                  stop_timeout=40, ready=prefect_up, waits_for="the Prefect server")
        _wait(lambda: _wait_worker(api_url, settings.work_pool, worker.popen), stop)
        facade = supervisor.start("facade", [*cli, "api", "--host", host, "--port", str(port)],
                                  env, ready=prefect_up, waits_for="the Prefect server")
        _wait(lambda: _wait_http(f"http://{_url_host(host)}:{port}/healthz", facade.popen), stop)
        print(
            "prefect-pipelines is running\n"
            f"  Prefect UI and API  {api_url.removesuffix('/api')}  "
            f"(export PREFECT_API_URL={api_url})\n"
            f"  /v3 API             http://{_url_host(host)}:{port}/v3  "
            f"(OpenAPI: http://{_url_host(host)}:{port}/docs)\n"
            f"  worker              pool {settings.work_pool!r}\n"
            f"  executor            {executor_note}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop["asked"]:
            supervisor.check()
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


def _choose_executor(settings: Settings, stop: dict[str, bool]) -> tuple[str, str]:
    """The worker's executor (`auto` resolved now) and what to say about it."""
    chosen: list[tuple[str, str]] = []

    def choose() -> None:
        choice = resolve_executor(settings)
        chosen.append((choice, describe_executor(settings, choice).removeprefix("executor: ")))

    _wait(choose, stop)
    return chosen[0]


def prefect_server_env(env: dict[str, str], host: str, port: int) -> dict[str, str]:
    """The environment of an embedded Prefect server on `host`:`port`: its settings say
    where it listens, and its UI reads from it (unless PREFECT_UI_API_URL is set)."""
    server_env = {**env, "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)}
    user_set = (any(env.get(name) for name in ("PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL"))
                or "api_url" in get_current_settings().server.ui.model_fields_set)  # a profile
    if not user_set:
        server_env["PREFECT_UI_API_URL"] = f"http://{_url_host(host)}:{port}/api"
    return server_env


def _url_host(host: str) -> str:
    """The host as it goes into a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class _Interrupted(Exception):
    """Ctrl-C while starting up."""


def _wait(start: object, stop: dict[str, bool]) -> None:
    """Run a blocking wait, giving up early when a stop was asked for."""
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

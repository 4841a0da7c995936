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

import httpx

HEALTH_TIMEOUT_SECONDS = 120


def prefect_server_argv(host: str, port: int) -> list[str]:
    """The command that starts a Prefect server (SQLite unless configured otherwise)."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port",
            str(port), "--analytics-off"]


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

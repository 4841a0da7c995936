"""Starting and stopping helper processes, and waiting for things to be true."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Call `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (
        f" (last error: {last_error!r})" if last_error else ""))


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies, so that
    a test run killed before its teardown (SIGKILL, a CI timeout) leaves no server behind.
    (Linux's PR_SET_PDEATHSIG; `runuser` passes the signal on to what it runs.)"""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the line above: go now
        os.kill(os.getpid(), signal.SIGTERM)


class Proc:
    """A background process with its output in a log file, stopped with `stop()`; it
    also stops when the test process dies."""

    def __init__(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, new_session: bool = True) -> None:
        self.argv = argv
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=new_session, preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 15, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process (then SIGKILL its group if it lingers); return its exit code."""
        if self.alive():
            try:
                os.kill(self.popen.pid, sig)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.popen.returncode

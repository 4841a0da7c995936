"""Stopping steps: cancellation of the run, abort by a failed sibling, and timeouts."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

StopReason = Literal["cancelled", "aborted", "timeout"]


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """Start a daemon thread that runs in a copy of the caller's context.

    Prefect keeps its settings and run context in context variables; a plain thread
    would see none of them (and, for one, no API URL).
    """
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


class StopToken:
    """Tells one running step to stop, and why.

    The first `stop()` wins; `finish()` marks the step done so that waiters return.
    """

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self.reason: StopReason | None = None
        self.detail = ""
        self._finished = False
        self._cond = threading.Condition()

    def stop(self, reason: StopReason, detail: str = "") -> None:
        """Ask the step to stop (ignored once it stopped or finished)."""
        with self._cond:
            if self.reason is None and not self._finished:
                self.reason = reason
                self.detail = detail
            self._cond.notify_all()

    def finish(self) -> None:
        """The step ended by itself; wake the waiters."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        """True once a stop was asked for."""
        return self.reason is not None

    def wait(self) -> StopReason | None:
        """Block until a stop is asked for, the deadline passes, or the step finishes.

        Returns:
            Why it must stop, or None when it finished first.
        """
        with self._cond:
            while self.reason is None and not self._finished:
                if self.deadline is None:
                    self._cond.wait()
                    continue
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    self.reason = "timeout"
                    break
                self._cond.wait(remaining)
            return self.reason


@dataclass
class RunControl:
    """What all steps of one execution share: the cancel flag and the live tokens."""

    cancelled: bool = False
    cancel_message: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: set[StopToken] = set()

    def register(self, token: StopToken) -> None:
        """Track a running step's token (a cancel that came first stops it at once)."""
        with self._lock:
            self._tokens.add(token)
            if self.cancelled:
                token.stop("cancelled", self.cancel_message)

    def unregister(self, token: StopToken) -> None:
        """Stop tracking a finished step."""
        with self._lock:
            self._tokens.discard(token)

    def cancel(self, message: str = "the run was cancelled") -> None:
        """Stop every running step, and every step that would start."""
        with self._lock:
            self.cancelled = True
            self.cancel_message = message
            tokens = list(self._tokens)
        for token in tokens:
            token.stop("cancelled", message)

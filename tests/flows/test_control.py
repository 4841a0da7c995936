"""Stop tokens: the first reason wins, deadlines become timeouts, finishing wakes waiters."""

from __future__ import annotations

import threading
import time

from prefect_pipelines.flows.control import RunControl, StopToken


def test_first_stop_wins() -> None:
    token = StopToken()
    token.stop("aborted", "a sibling failed")
    token.stop("cancelled")
    assert (token.reason, token.detail) == ("aborted", "a sibling failed")
    assert token.wait() == "aborted"


def test_deadline_becomes_timeout() -> None:
    token = StopToken(deadline=time.monotonic() + 0.05)
    assert token.wait() == "timeout"


def test_finish_wakes_the_waiter_without_a_reason() -> None:
    token = StopToken()
    threading.Timer(0.05, token.finish).start()
    assert token.wait() is None
    token.stop("cancelled")
    assert token.reason is None  # a finished step is not stopped afterwards


def test_cancel_reaches_running_and_later_steps() -> None:
    control = RunControl()
    running = StopToken()
    control.register(running)
    control.cancel("by the user")
    assert running.reason == "cancelled" and running.detail == "by the user"
    later = StopToken()
    control.register(later)
    assert later.reason == "cancelled"

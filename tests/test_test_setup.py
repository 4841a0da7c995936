"""The test setup's own promise: what it starts does not outlive it, even when the test
process is killed before its teardown (an interrupted or timed-out run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.procs import wait_for

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("as_user", [False, True], ids=["direct", "through runuser"])
def test_a_helper_process_stops_when_the_test_process_is_killed(tmp_path: Path, as_user: bool) -> None:
    if as_user and os.geteuid() != 0:
        pytest.skip("runuser needs root")
    argv = ["runuser", "-u", "nobody", "--", "sleep", "600"] if as_user else ["sleep", "600"]
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tests.support.procs import Proc
        proc = Proc({argv!r}, log=Path({str(tmp_path / 'child.log')!r}))
        print(proc.pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        sleeper = wait_for(lambda: _sleep_under(child), timeout=15, what="the sleep to start")
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not _alive(child) and not _alive(sleeper), timeout=15,
                 what="the helper process to stop with its parent")
    finally:
        parent.kill()


def _sleep_under(pid: int) -> int | None:
    """The `sleep 600` that `pid` is or runs."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        child, parent, *args = line.split()
        if args == ["sleep", "600"] and pid in (int(child), int(parent)):
            return int(child)
    return None

"""presence.py: a worker of this machine can tell for certain that another one is gone."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from prefect_pipelines.presence import Presence

ROOT = Path(__file__).resolve().parents[1] / "src"


def test_a_killed_workers_lock_is_free_a_live_ones_is_not_and_strangers_are_never_judged(
        tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from prefect_pipelines.presence import Presence
        Presence(Path({str(tmp_path)!r}), "host:111")
        print("held", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        me = Presence(tmp_path, "host:222")
        assert not me.gone("host:111")  # alive
        assert not me.gone("host:222")  # myself
        assert not me.gone("elsewhere:333")  # no file here: another machine's
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
        assert me.gone("host:111")
        assert me.gone("host:111")  # asking does not take it for good
        me.forget("host:111")
        assert not me.gone("host:111")
        me.close()
        assert not (tmp_path / ".workers" / "host:222.lock").exists()
    finally:
        other.kill()

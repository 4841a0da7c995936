"""The supervisor of `prefect-pipelines server`: parts that exit are restarted with back-off,
what they leave running is killed, a part that keeps exiting stops everything; and the
embedded Prefect server's UI reads from the port it runs on.

The first tests drive `Supervisor` with real short-lived processes; the slow ones run a
real `prefect-pipelines server` and kill its parts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_pipelines.embedded import CrashLoop, Child, Supervisor, prefect_server_env
from tests.support.api import create, definition, run, script_step, wait_state, new_project
from tests.support.docker_engine import containers_of
from tests.support.procs import Proc, free_port, wait_for
from tests.support.secret_scan import scan

CLI = [sys.executable, "-m", "prefect_pipelines.cli"]
PY = sys.executable


def _python(code: str) -> list[str]:
    return [PY, "-c", code]


def _supervise(supervisor: Supervisor, until: Any, timeout: float) -> None:
    """Run the supervisor's rounds (as `serve` does, but every 20 ms) until `until()`."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out supervising"
        supervisor.check()
        time.sleep(0.02)


def _starts(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class TestSupervisor:
    def test_a_part_that_exits_is_restarted_with_a_back_off_that_doubles(self, tmp_path: Path) -> None:
        starts = tmp_path / "starts"
        lines: list[str] = []
        supervisor = Supervisor(say=lines.append, first_backoff=0.2, max_backoff=0.8,
                                restart_limit=10)
        supervisor.start("part", _python(
            f"import sys, time; open({str(starts)!r}, 'a').write(f'{{time.time()}}\\n'); sys.exit(3)"), {})
        try:
            _supervise(supervisor, lambda: len(_starts(starts)) >= 5, timeout=30)
        finally:
            supervisor.stop_all()
        exits = [line for line in lines if "exited" in line]
        assert exits[:4] == [f"part exited with code 3; restarting it in {delay} s"
                             for delay in ("0.2", "0.4", "0.8", "0.8")], lines
        assert lines.count("part restarted") >= 4, lines
        at = _starts(starts)
        gaps = [later - earlier for earlier, later in zip(at, at[1:])]
        for gap, delay in zip(gaps, (0.2, 0.4, 0.8, 0.8)):
            assert delay <= gap < delay + 2, gaps

    def test_the_fifth_exit_within_the_window_stops_with_an_error_naming_the_part(
            self, tmp_path: Path) -> None:
        starts = tmp_path / "starts"
        lines: list[str] = []
        supervisor = Supervisor(say=lines.append, first_backoff=0.05)
        supervisor.start("facade", _python(
            f"import sys; open({str(starts)!r}, 'a').write('1\\n'); sys.exit(1)"), {})
        try:
            with pytest.raises(CrashLoop) as raised:
                _supervise(supervisor, lambda: False, timeout=30)
        finally:
            supervisor.stop_all()
        assert str(raised.value) == ("facade exited with code 1 (5 exits within 60 s); "
                                     "stopping everything")
        assert len(_starts(starts)) == 5
        assert len([line for line in lines if "restarting it in" in line]) == 4, lines

    def test_exits_further_apart_than_the_window_keep_being_restarted(self, tmp_path: Path) -> None:
        starts = tmp_path / "starts"
        lines: list[str] = []
        supervisor = Supervisor(say=lines.append, first_backoff=0.05, restart_limit=2, window=0.3)
        supervisor.start("worker", _python(
            f"import sys, time; open({str(starts)!r}, 'a').write('1\\n'); time.sleep(0.5); sys.exit(2)"), {})
        try:
            _supervise(supervisor, lambda: len(_starts(starts)) >= 5, timeout=30)
        finally:
            supervisor.stop_all()
        # Every exit is the only one in its window: the first back-off each time, no error.
        exits = [line for line in lines if "exited" in line]
        assert exits and set(exits) == {"worker exited with code 2; restarting it in 0.05 s"}, lines

    def test_a_restart_waits_until_what_the_part_needs_answers(self, tmp_path: Path) -> None:
        starts = tmp_path / "starts"
        lines: list[str] = []
        up = {"now": False}
        supervisor = Supervisor(say=lines.append, first_backoff=0.05)
        supervisor.start("worker", _python(
            f"import sys; open({str(starts)!r}, 'a').write('1\\n'); sys.exit(1)"), {},
            ready=lambda: up["now"], waits_for="the Prefect server")
        try:
            _supervise(supervisor, lambda: "restarting worker once the Prefect server answers" in lines,
                       timeout=30)
            for _ in range(20):
                supervisor.check()
                time.sleep(0.02)
            assert len(_starts(starts)) == 1
            up["now"] = True
            _supervise(supervisor, lambda: len(_starts(starts)) == 2, timeout=30)
        finally:
            supervisor.stop_all()
        assert lines.count("restarting worker once the Prefect server answers") == 1, lines

    def test_stop_all_stops_the_last_started_first_also_after_a_restart(self, tmp_path: Path) -> None:
        stopped = tmp_path / "stopped"
        lines: list[str] = []
        supervisor = Supervisor(say=lines.append, first_backoff=0.05)

        def part(name: str) -> Child:
            ready = tmp_path / f"{name}.ready"
            child = supervisor.start(name, _python(
                "import signal, sys, time\n"
                "def bye(*_):\n"
                f"    open({str(stopped)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, bye)\n"
                f"open({str(ready)!r}, 'a').write('1\\n')\n"
                "time.sleep(600)\n"), {})
            wait_for(lambda: len(_starts(ready)) == 1, timeout=30, what=f"{name} to start")
            return child

        prefect, _, _ = part("prefect server"), part("worker"), part("facade")
        try:
            first = prefect.popen
            assert first is not None
            os.kill(first.pid, signal.SIGKILL)
            ready = tmp_path / "prefect server.ready"
            _supervise(supervisor, lambda: len(_starts(ready)) == 2, timeout=30)
            assert prefect.popen is not first
        finally:
            supervisor.stop_all()
        assert "prefect server exited with code -9 (SIGKILL); restarting it in 0.05 s" in lines
        assert stopped.read_text().split("\n")[:3] == ["facade", "worker", "prefect server"]


# A supervisor that adopts orphans is a subreaper: not in the pytest process (it would
# adopt every orphan of the session), in a process of its own.
_ORPHANS_DRIVER = r"""
import json, os, signal, sys, time
from pathlib import Path
from prefect_pipelines.embedded import Supervisor

state = Path(sys.argv[1])
def pids(name):
    path = state / name
    return [int(p) for p in path.read_text().split()] if path.exists() else []
def run_until(supervisor, done):
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline
        supervisor.check()
        time.sleep(0.02)

supervisor = Supervisor(say=print, first_backoff=0.05, adopt_orphans=True)
# The doomed part starts a process in its own group and one in a session of its own (as
# the process executor does); the other part leaves an orphan of its own session.
doomed = supervisor.start("worker", [sys.executable, "-c", f'''
import os, subprocess, time
a = subprocess.Popen(["sleep", "600"])
b = subprocess.Popen(["sleep", "600"], start_new_session=True)
if not os.path.exists({str(state / "doomed")!r}):
    open({str(state / "doomed")!r}, "w").write(f"{{a.pid}} {{b.pid}}")
time.sleep(600)
'''], {})
supervisor.start("facade", [sys.executable, "-c", f'''
import subprocess, time
middle = subprocess.Popen(["sh", "-c", "sleep 600 & echo $! > {state / "kept"}"])
middle.wait()
time.sleep(600)
'''], {})
run_until(supervisor, lambda: len(pids("doomed")) == 2 and len(pids("kept")) == 1)
first = doomed.popen
os.kill(first.pid, signal.SIGKILL)
run_until(supervisor, lambda: doomed.popen is not first)
def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
report = {"doomed": [alive(pid) for pid in pids("doomed")], "kept": alive(pids("kept")[0])}
supervisor.stop_all()
report["kept_after_stop"] = alive(pids("kept")[0])
(state / "report.json").write_text(json.dumps(report))
"""


@pytest.mark.timeout(60)
def test_what_a_dead_part_started_is_killed_before_its_restart(tmp_path: Path) -> None:
    """A SIGKILL reaches only the part; the supervisor kills what it left: its process
    group and processes in sessions of their own. A live part's orphan stays until Ctrl-C."""
    log = tmp_path / "driver.log"
    try:
        with open(log, "wb") as out:  # not a pipe: a survivor would hold it open
            code = subprocess.run([PY, "-c", _ORPHANS_DRIVER, str(tmp_path)], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=50).returncode
        assert code == 0, log.read_text()
        report = json.loads((tmp_path / "report.json").read_text())
        assert report == {"doomed": [False, False], "kept": True, "kept_after_stop": False}, report
        assert "worker exited with code -9 (SIGKILL); restarting it in 0.05 s" in log.read_text()
    finally:
        for name in ("doomed", "kept"):
            for pid in _starts(tmp_path / name):
                if _alive(int(pid)):
                    os.kill(int(pid), signal.SIGKILL)


def test_without_adopting_orphans_the_dead_part_s_process_group_is_killed(tmp_path: Path) -> None:
    """Where orphans are not adopted, what the part started in its own group still goes."""
    pids = tmp_path / "pids"
    supervisor = Supervisor(say=lambda line: None, first_backoff=0.05)
    part = supervisor.start("worker", _python(
        "import os, subprocess, time\n"
        f"if not os.path.exists({str(pids)!r}):\n"
        f"    open({str(pids)!r}, 'w').write(str(subprocess.Popen(['sleep', '600']).pid))\n"
        "time.sleep(600)\n"), {})
    child = None
    try:
        wait_for(lambda: _starts(pids), timeout=30, what="the part's child")
        child = int(_starts(pids)[0])
        first = part.popen
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        _supervise(supervisor, lambda: part.popen is not first, timeout=30)
        wait_for(lambda: not _alive(child), timeout=5, what="the dead part's child to go")
    finally:
        supervisor.stop_all()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_ui_of_the_embedded_prefect_server_reads_from_its_own_host_and_port() -> None:
    from prefect.settings import PREFECT_UI_API_URL, temporary_settings

    env = prefect_server_env({"PATH": "/bin"}, "127.0.0.1", 4321)
    assert env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4321/api"
    assert (env["PREFECT_SERVER_API_HOST"], env["PREFECT_SERVER_API_PORT"]) == ("127.0.0.1", "4321")
    assert prefect_server_env({}, "::1", 4321)["PREFECT_UI_API_URL"] == "http://[::1]:4321/api"
    # Set by the user (environment, profile): theirs stays.
    assert "PREFECT_UI_API_URL" not in prefect_server_env(
        {"PREFECT_SERVER_UI_API_URL": "https://prefect.example/api"}, "127.0.0.1", 4321)
    with temporary_settings({PREFECT_UI_API_URL: "https://prefect.example/api"}):
        assert "PREFECT_UI_API_URL" not in prefect_server_env({}, "127.0.0.1", 4321)


# --- a real `prefect-pipelines server` ---------------------------------------------------


class Server:
    """A `prefect-pipelines server` process on free ports, with PREFECT_HOME of its own."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.prefect_port, self.api_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{self.prefect_port}/api"
        self.facade_url = f"http://127.0.0.1:{self.api_port}"
        environ = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        environ.update(PREFECT_HOME=str(tmp_path / "home"),
                       PREFECT_PIPELINES_PREFECT_PORT=str(self.prefect_port),
                       PREFECT_PIPELINES_API_PORT=str(self.api_port), **env)
        self.proc = Proc([*CLI, "server"], log=tmp_path / "server.log", env=environ)
        wait_for(lambda: "Press Ctrl-C to stop" in self.log() or not self.proc.alive(),
                 timeout=150, what="the server banner")
        assert self.proc.alive(), self.log()[-3000:]

    def log(self) -> str:
        return self.proc.log_text()

    def part(self, *words: str) -> int:
        """The pid of the server's child whose command line has `words`."""
        found = [pid for pid in _children(self.proc.pid) if all(w in _cmdline(pid) for w in words)]
        assert len(found) == 1, (words, found)
        return found[0]

    def client(self, user: str = "alice") -> httpx.Client:
        env = {**os.environ, "PREFECT_API_URL": self.api_url}
        token = subprocess.run([*CLI, "token", "create", "--user", user], env=env,
                               capture_output=True, text=True, check=True, timeout=120).stdout.strip()
        scan.add(token, f"the API token of {user} (embedded server)")
        return httpx.Client(base_url=self.facade_url, timeout=60,
                            headers={"Authorization": f"Bearer {token}"})

    def workers(self) -> list[dict[str, Any]]:
        return httpx.post(f"{self.api_url}/work_pools/pipelines/workers/filter", json={},
                          timeout=10).json()

    def answers(self) -> bool:
        try:
            return (httpx.get(f"{self.api_url}/health", timeout=5).json() is True
                    and httpx.get(f"{self.facade_url}/v3", timeout=5).status_code == 200)
        except (httpx.HTTPError, ValueError):
            return False

    def ctrl_c(self) -> int:
        """SIGINT; the exit code (every part must be gone)."""
        children = _children(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        self.proc.popen.wait(timeout=120)
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=15,
                 what="every part to exit")
        return self.proc.popen.returncode

    def close(self) -> None:
        self.proc.stop(timeout=60, sig=signal.SIGINT)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    return [int(child) for child, parent in (line.split() for line in out.splitlines())
            if int(parent) == pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path)
    try:
        yield started
    finally:
        started.close()


# A short silence, so that a busy machine (the CI run) has a wide margin before the
# deadlines below; the default (50 s) behaves the same, only later.
LOST_AFTER = {"PREFECT_PIPELINES_HEARTBEAT_SECONDS": "5", "PREFECT_PIPELINES_LOST_AFTER_SECONDS": "15"}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_killed_worker_is_restarted_and_the_run_it_held_fails_worker_lost(
        tmp_path: Path, docker_client: Any) -> None:
    long = f"long{uuid.uuid4().hex[:6]}"  # container labels are looked up on a shared engine
    flow_run_id = None
    server = Server(tmp_path, **LOST_AFTER)
    try:
        with server.client() as api:
            project = new_project(api, "c-emb")
            create(api, project, definition(long, [script_step("sleep 600")]))
            create(api, project, definition("quick", [script_step("echo fine")]))
            held = run(api, project, long)
            wait_state(api, project, held["id"], states=("running",), timeout=90)
            container = wait_for(lambda: docker_client.containers.list(
                filters={"label": f"io.prefect-pipelines.execution-id={held['id']}"}),
                timeout=60, what="the step's container")[0]
            flow_run_id = container.labels["io.prefect-pipelines.flow-run-id"]
            old_worker = server.part("prefect_pipelines.cli", "worker")
            workers_before = len(server.workers())

            os.kill(old_worker, signal.SIGKILL)
            killed_at = time.monotonic()

            wait_for(lambda: "worker exited with code -9 (SIGKILL); restarting it in 1 s"
                     in server.log(), timeout=15, what="the supervisor to say it restarts the worker")
            assert server.answers()  # the facade and the Prefect server carry on
            wait_for(lambda: "worker restarted" in server.log(), timeout=30, what="the restart")
            assert server.part("prefect_pipelines.cli", "worker") != old_worker
            wait_for(lambda: len(server.workers()) > workers_before, timeout=60,
                     what="the new worker to register")

            def left() -> float:  # generous: the silence is 15 s, Prefect's triggers may lag
                return max(1.0, 180 - (time.monotonic() - killed_at))

            lost = wait_state(api, project, held["id"], timeout=left())
            assert lost["state"] == "failed" and "worker lost" in lost["stateMessage"], lost
            # The restarted worker sees its predecessor's lock free (presence.py): it ends
            # the run without waiting for Prefect's automation (15 s of silence here).
            assert f"worker process ({socket.gethostname()}:{old_worker}) is gone" in lost["stateMessage"], lost
            wait_for(lambda: not containers_of(docker_client, flow_run_id), timeout=left(),
                     what="the lost run's container to be removed")

            done = wait_state(api, project, run(api, project, "quick")["id"], timeout=90)
            assert done["state"] == "success", done
            assert server.answers()
        assert server.ctrl_c() == 0, server.log()[-3000:]
    finally:
        for leftover in containers_of(docker_client, flow_run_id) if flow_run_id else []:
            leftover.remove(force=True)
        server.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_restarted_prefect_server_keeps_its_port_and_data_and_the_others_reconnect(
        server: Server, docker_client: Any) -> None:
    with server.client() as api:
        project = new_project(api, "c-emb")
        create(api, project, definition("kept", [script_step("echo $CICD_EXECUTION_SEQUENCE")]))
        assert wait_state(api, project, run(api, project, "kept")["id"])["state"] == "success"
        worker, facade = (server.part("prefect_pipelines.cli", "worker"),
                          server.part("prefect_pipelines.cli", "api"))
        os.kill(server.part("prefect_pipelines.prefect_server"), signal.SIGKILL)
        wait_for(lambda: "prefect server exited with code -9 (SIGKILL); restarting it in 1 s"
                 in server.log(), timeout=15, what="the supervisor to say Prefect is restarting")
        wait_for(server.answers, timeout=120, interval=0.5, what="Prefect to answer again")
        # Same data (the database), same worker and facade, which now talk to the new server.
        assert (worker, facade) == (server.part("prefect_pipelines.cli", "worker"),
                                    server.part("prefect_pipelines.cli", "api"))
        listed = api.get(f"/v3/projects/{project}/pipelines").json()["data"]
        assert [p["id"] for p in listed] == ["kept"]
        again = wait_state(api, project, run(api, project, "kept")["id"], timeout=120)
        assert again["state"] == "success" and again["run"] == 2, again
    assert server.ctrl_c() == 0, server.log()[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_part_that_keeps_crashing_stops_the_server_with_an_error(server: Server) -> None:
    """The facade is killed and its port taken: every restart exits at once (uvicorn:
    code 3)."""
    os.kill(server.part("prefect_pipelines.cli", "api"), signal.SIGKILL)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_for(lambda: taken.bind(("127.0.0.1", server.api_port)) is None, timeout=5,
                 interval=0.01, what="the facade's port to be free")
        taken.listen()
        server.proc.popen.wait(timeout=150)
    log = server.log()
    assert server.proc.popen.returncode == 1, log[-3000:]
    assert "facade exited with code -9 (SIGKILL); restarting it in 1 s" in log
    assert "facade exited with code 3; restarting it in 8 s" in log
    assert "error: facade exited with code 3 (5 exits within 60 s); stopping everything" in log
    assert log.rstrip().endswith("stopped")
    assert "Traceback" not in log.split("Press Ctrl-C to stop.", 1)[1]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_ui_of_a_server_on_another_port_reads_from_that_port(tmp_path: Path) -> None:
    started = Server(tmp_path, PREFECT_UI_ENABLED="true")
    try:
        base = f"http://127.0.0.1:{started.prefect_port}"
        settings = httpx.get(f"{base}/ui-settings", timeout=10).json()
        assert settings["api_url"] == f"{base}/api", settings
        assert httpx.get(base, timeout=10, follow_redirects=True).status_code == 200  # the UI
        # Prefect's banner says `export`, as the README does (not `prefect config set`,
        # which would change the user's profile for good).
        banner = started.log()
        assert f"export PREFECT_API_URL={base}/api" in banner, banner[:2000]
        assert "prefect config set" not in banner, banner[:2000]
    finally:
        started.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_executor_is_chosen_once_and_a_restarted_worker_keeps_it(tmp_path: Path) -> None:
    """`auto` with no engine answering: process, said in the summary, handed to the worker,
    and to the worker that replaces it."""
    no_engine = "unix:///nonexistent/docker.sock"
    started = Server(tmp_path, PREFECT_PIPELINES_EXECUTOR="auto",
                     PREFECT_PIPELINES_DOCKER_HOST=no_engine)
    try:
        summary = started.log().split("prefect-pipelines is running", 1)[1]
        assert (f"  executor            process (no docker engine answered at {no_engine}): "
                "steps run on this host as") in summary, summary
        first = started.part("prefect_pipelines.cli", "worker")
        assert _environ(first)["PREFECT_PIPELINES_EXECUTOR"] == "process"
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "worker restarted" in started.log(), timeout=30, what="the restart")
        again = started.part("prefect_pipelines.cli", "worker")
        assert again != first and _environ(again)["PREFECT_PIPELINES_EXECUTOR"] == "process"
        assert started.ctrl_c() == 0, started.log()[-3000:]
    finally:
        started.close()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)

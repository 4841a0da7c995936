"""The environment every figure runs in, started by the benchmark and stopped after it.

A docker engine (started if none answers), PostgreSQL and a Prefect server on it, the
prefect-pipelines worker and /v3 facade as separate processes (so their memory can be
read), and, on demand, a stock Prefect process worker on a pool of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.docker_engine import ensure_busybox, start_dockerd  # noqa: E402
from tests.support.postgres import Postgres  # noqa: E402
from tests.support.procs import Proc, free_port, wait_for  # noqa: E402

CLI = [sys.executable, "-m", "prefect_pipelines.cli"]


class ContainerEvents:
    """Times (engine clock, seconds) of container start and die events, by a label's value."""

    def __init__(self, client: docker.DockerClient, label: str) -> None:
        self.label = label
        self.creates: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}  # the first container's labels
        self.starts: dict[str, float] = {}
        self.dies: dict[str, float] = {}
        self.start_counts: dict[str, int] = {}
        self._stream = client.events(decode=True, filters={"type": "container", "label": label})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                value = (event.get("Actor", {}).get("Attributes", {}) or {}).get(self.label)
                if value is None:
                    continue
                at = event.get("timeNano", 0) / 1e9
                if event.get("status") == "create":
                    self.creates.setdefault(value, at)
                    self.labels.setdefault(value, dict(event["Actor"]["Attributes"]))
                elif event.get("status") == "start":
                    self.starts.setdefault(value, at)
                    self.start_counts[value] = self.start_counts.get(value, 0) + 1
                elif event.get("status") == "die":
                    self.dies[value] = at
        except Exception:  # noqa: BLE001 - the stream closes at the end
            pass

    def close(self) -> None:
        self._stream.close()


class MemorySampler:
    """Peak resident memory (MB) of some processes, sampled every 50 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = {name: 0.0 for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, pid in self.pids.items():
                rss = _rss_mb(pid)
                if rss > self.peak[name]:
                    self.peak[name] = rss


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds used so far by some processes (and their waited-for
    children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (the bench starts the only one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class BenchEnv:
    """Everything the figures need; a context manager."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="pp-bench-"))
        self.state.chmod(0o755)
        self.procs: list[Proc] = []
        self.dockerd: Proc | None = None

    # -- start and stop ---------------------------------------------------------------

    def __enter__(self) -> BenchEnv:
        self.dockerd = start_dockerd(self.state)
        self.docker = docker.from_env(timeout=120)
        ensure_busybox(self.docker)
        self.postgres = Postgres(self.state / "postgres")
        database = self.postgres.create_database("prefect")
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = {
            **os.environ,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.state / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_PIPELINES_DOCKER_NETWORK": "none",
            "PREFECT_PIPELINES_WORKSPACE_ROOT": str(self.state / "workspaces"),
        }
        os.environ.update({k: self.env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")})
        from prefect_pipelines.embedded import prefect_server_argv, wait_healthy

        server = self._start("prefect", prefect_server_argv("127.0.0.1", port),
                             {"PREFECT_SERVER_DATABASE_CONNECTION_URL": database})
        wait_healthy(self.api_url, timeout=180, proc=server.popen)
        self.prefect_server = server
        self.worker = self.start_worker("worker")
        self.facade_port = free_port()
        self.facade = self._start("facade", [*CLI, "api", "--port", str(self.facade_port)])
        self.facade_url = f"http://127.0.0.1:{self.facade_port}"
        wait_for(lambda: httpx.get(f"{self.facade_url}/healthz").status_code == 200, timeout=60,
                 what="the facade")
        self.token = subprocess.run([*CLI, "token", "create", "--user", "bench", "--admin"], env=self.env,
                                    capture_output=True, text=True, check=True).stdout.strip()
        self.api = httpx.Client(base_url=self.facade_url, timeout=300,
                                headers={"Authorization": f"Bearer {self.token}"})
        self.events = ContainerEvents(self.docker, "io.prefect-pipelines.flow-run-id")
        return self

    def start_worker(self, name: str) -> Proc:
        """Start a `prefect-pipelines worker` and wait until it polls."""
        proc = self._start(name, [*CLI, "worker", "--name", name])
        wait_for(lambda: "started" in proc.log_text(), timeout=60, what=f"the {name}")
        return proc

    def workers(self) -> list[Proc]:
        """The pipelines workers running now."""
        return [proc for proc in self.procs if "worker" in proc.argv and proc.alive()
                and "prefect" not in proc.argv[1:3]]

    def start_process(self, name: str, argv: list[str]) -> Proc:
        """Start a process in the environment (stopped with it)."""
        return self._start(name, argv)

    def _start(self, name: str, argv: list[str], extra: dict[str, str] | None = None) -> Proc:
        proc = Proc(argv, log=self.state / f"{name}.log", env={**self.env, **(extra or {})})
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc: object) -> None:
        self.events.close()
        self.api.close()
        for proc in reversed(self.procs):
            proc.stop(timeout=40)
        self.postgres.stop()
        if self.dockerd is not None:
            self.dockerd.stop(timeout=30)
        shutil.rmtree(self.state, ignore_errors=True)

    # -- helpers the figures share ----------------------------------------------------

    def prefect(self, work: Callable[[Any], Any]) -> Any:
        """Run `work(client)` with a Prefect client."""
        from prefect.client.orchestration import get_client

        async def run() -> Any:
            async with get_client() as client:
                return await work(client)

        return asyncio.run(run())

    def new_project(self) -> str:
        """A new project (the bench user owns it); its id."""
        response = self.api.post("/v3/projects", json={"clusterId": "c-bench", "name": "bench"})
        if response.status_code != 201:
            raise RuntimeError(f"creating a project: {response.text}")
        return response.json()["id"]

    def create_pipeline(self, project: str, name: str, stages: list[dict[str, Any]]) -> None:
        response = self.api.post(f"/v3/projects/{project}/pipelines",
                                 json={"name": name, "stages": stages})
        if response.status_code != 201:
            raise RuntimeError(f"creating {name}: {response.text}")

    def run(self, project: str, pipeline: str) -> tuple[dict[str, Any], float, int]:
        """Trigger a run as a client that honours 503 + Retry-After (the API's contract);
        (the execution, wall time when the accepting response arrived, 503s before it)."""
        deferred = 0
        while True:
            response = self.api.post(f"/v3/projects/{project}/pipelines/{pipeline}",
                                     params={"action": "run"})
            answered = time.time()
            if response.status_code != 503:
                break
            deferred += 1
            time.sleep(float(response.headers.get("Retry-After", "2")))
        if response.status_code != 200:
            raise RuntimeError(f"running {pipeline}: {response.text}")
        return response.json(), answered, deferred

    def wait_finished(self, project: str, execution_id: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = self.api.get(f"/v3/projects/{project}/pipelineexecutions/{execution_id}").json()
            if execution.get("state") in ("success", "failed", "aborted", "skipped"):
                return execution
            time.sleep(0.05)
        raise TimeoutError(f"{execution_id} did not finish in {timeout}s")

    def flow_run_id(self, project: str, execution_id: str) -> str:
        from prefect_pipelines.services.executions import read_execution

        async def find(client: Any) -> str:
            execution = await read_execution(client, project_id=project, execution_id=execution_id)
            return str(execution.flow_run.id)

        return self.prefect(find)

"""Restarts and load on the embedded default (Prefect on SQLite): a burst of runs that
loses nothing and never answers 500; the Prefect server restarted while a run is in its
step; the facade restarted. Nothing stored is lost, no run is left `running`."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefect_pipelines.embedded import prefect_server_argv, wait_healthy
from tests.support.api import (
    FINISHED,
    create,
    definition,
    new_project,
    script_step,
    step_log,
    wait_state,
)
from tests.support.procs import Proc, free_port
from tests.support.stack import Stack
from tests.support.webhooks import hooked_pipeline

pytestmark = pytest.mark.timeout(600)


class SqliteServer:
    """`prefect server start` on SQLite (the `server` command's default), restartable on the
    same port and database."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.proc: Proc | None = None

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items()
               if key != "PREFECT_SERVER_DATABASE_CONNECTION_URL"}
        env.update(PREFECT_HOME=str(self.state / "prefect-home"),
                   PREFECT_SERVER_LOGGING_LEVEL="WARNING")
        self.proc = Proc(prefect_server_argv("127.0.0.1", self.port),
                         log=self.state / "prefect-sqlite.log", env=env)
        wait_healthy(self.url, timeout=120, proc=self.proc.popen)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory, docker_client: Any):  # type: ignore[no-untyped-def]
    state = tmp_path_factory.mktemp("sqlite-stack")
    state.chmod(0o755)
    server = SqliteServer(state)
    server.start()
    stack = Stack(state, server.url)
    stack.worker("worker")
    port = free_port()
    facade, url = stack.facade("facade", port)
    try:
        yield {"server": server, "stack": stack, "facade": facade, "url": url, "port": port}
    finally:
        stack.close()
        server.stop()


def _run_politely(api: httpx.Client, project: str, pipeline: str) -> tuple[dict[str, Any], list[int]]:
    """The `run` action as a client that honours 503 + Retry-After; every status seen."""
    seen = []
    for _ in range(20):
        response = api.post(f"/v3/projects/{project}/pipelines/{pipeline}", params={"action": "run"})
        seen.append(response.status_code)
        if response.status_code == 503:
            assert "Retry-After" in response.headers, response.headers
            time.sleep(float(response.headers["Retry-After"]))
            continue
        assert response.status_code == 200, response.text
        return response.json(), seen
    raise AssertionError(f"run of {pipeline} still refused after 20 tries: {seen}")


def test_a_burst_on_sqlite_loses_nothing_and_never_answers_500(sqlite_stack) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = sqlite_stack["stack"]
    # No keep-alive: a retry after Retry-After must not reuse a connection that the server
    # closed meanwhile (that race would be the client's, not the facade's).
    with stack.client(sqlite_stack["url"], limits=httpx.Limits(max_keepalive_connections=0)) as api:
        project = new_project(api, "c-burst")
        pipelines = [f"burst{i}" for i in range(5)]
        for name in pipelines:
            create(api, project, definition(name, [script_step("echo $CICD_EXECUTION_SEQUENCE")]))
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda i: _run_politely(api, project, pipelines[i % 5]), range(50)))
        statuses = [status for _, seen in answers for status in seen]
        assert 500 not in statuses and set(statuses) <= {200, 503}, statuses
        ids = sorted(execution["id"] for execution, _ in answers)
        assert len(set(ids)) == 50, ids  # none twice
        for name in pipelines:  # gap-free per pipeline
            runs = sorted(execution["run"] for execution, _ in answers if execution["pipelineId"] == name)
            assert runs == list(range(1, 11)), (name, runs)
        for execution_id in ids:
            done = wait_state(api, project, execution_id, timeout=300)
            assert done["state"] == "success", done
        # A 503 created nothing: the project holds exactly the runs that were answered 200.
        listed = api.get(f"/v3/projects/{project}/pipelineexecutions", params={"limit": 100})
        assert sorted(e["id"] for e in listed.json()["data"]) == ids
        assert step_log(api, project, ids[0], 0, 0) == ids[0].rsplit("-", 1)[1]


@pytest.mark.slow
def test_a_burst_of_deliveries_on_sqlite_makes_one_run_per_delivery(sqlite_stack, fake_github) -> None:  # type: ignore[no-untyped-def]
    """80 signed deliveries at once, each redelivered until accepted (tests/faults/test_deliveries.py
    sends the same burst to PostgreSQL)."""
    from tests.faults.test_deliveries import BURST, check_burst

    stack: Stack = sqlite_stack["stack"]
    with stack.client(sqlite_stack["url"]) as api:
        hooked = hooked_pipeline(api, fake_github)
    check_burst(sqlite_stack["url"], sqlite_stack["server"].url, hooked, BURST, finish_timeout=480)


def test_the_prefect_server_restarted_mid_run_and_the_facade_restarted(
        sqlite_stack, fake_github) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = sqlite_stack["stack"]
    server: SqliteServer = sqlite_stack["server"]
    cluster = f"c-rs{uuid.uuid4().hex[:6]}"
    with stack.client(sqlite_stack["url"]) as api:
        project = new_project(api, "c-restart")
        # Something of every kind stored: a credential and its repositories, pipelines,
        # a finished execution with its log.
        client_id, client_secret = fake_github.add_app()
        user = fake_github.add_user(f"rs-{cluster}")
        fake_github.add_repo(user.login, "kept", branches={"main": {"a.txt": "a\n"}})
        made = api.post(f"/v3/clusters/{cluster}/clusterpipelines/{cluster}", params={"action": "authapp"},
                        json={"githubConfig": {"host": fake_github.host, "tls": False, "clientId": client_id,
                                               "clientSecret": client_secret},
                              "code": fake_github.new_code(client_id, user.login)})
        assert made.status_code == 200, made.text
        create(api, project, definition("done", [script_step("echo kept output")]))
        api.post(f"/v3/projects/{project}/pipelines/done", params={"action": "run"})
        assert wait_state(api, project, "done-1")["state"] == "success"
        create(api, project, definition("slow", [script_step("sleep 8; echo survived")]))
        api.post(f"/v3/projects/{project}/pipelines/slow", params={"action": "run"})
        wait_state(api, project, "slow-1", states=("running",), timeout=60)
        before = _snapshot(api, project)

        server.stop()  # the run is in its step
        time.sleep(2)
        server.start()

        after = wait_state(api, project, "slow-1", timeout=180)
        assert after["state"] in ("success", "failed"), after
        if after["state"] == "success":
            assert "survived" in step_log(api, project, "slow-1", 0, 0)
        else:
            assert after["stateMessage"], after
        assert _snapshot(api, project) == before
        assert step_log(api, project, "done-1", 0, 0) == "kept output"

    # The facade holds nothing: a new process on the same port answers the same.
    sqlite_stack["facade"].stop(timeout=30)
    stack.facade("facade-again", sqlite_stack["port"])
    with stack.client(sqlite_stack["url"]) as api:
        assert _snapshot(api, project) == before
        api.post(f"/v3/projects/{project}/pipelines/done", params={"action": "run"})
        assert wait_state(api, project, "done-2")["state"] == "success"


def _snapshot(api: httpx.Client, project: str) -> dict[str, Any]:
    """What a user has stored: pipelines, credentials and their repositories, finished runs."""
    def data(path: str, **params: str) -> list[dict[str, Any]]:
        response = api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    credentials = data("/v3/sourcecodecredentials")
    return {
        "pipelines": sorted(p["id"] for p in data(f"/v3/projects/{project}/pipelines")),
        "credentials": sorted(c["id"] for c in credentials),
        "repositories": sorted(r["url"] for c in credentials
                               for r in data("/v3/sourcecoderepositories", sourceCodeCredentialId=c["id"])),
        "finished": sorted((e["id"], e["state"]) for e in data(f"/v3/projects/{project}/pipelineexecutions")
                           if e["state"] in FINISHED and e["pipelineId"] == "done"),
    }

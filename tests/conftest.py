"""Session-wide real services: a docker engine, a Prefect server, a git server, a registry.

Everything listens on 127.0.0.1 and is started here when a test needs it (the Prefect
server as soon as collection shows one will), and torn down at the end of the session.
A docker engine that already answers is used as it is and left running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

STATE = Path(tempfile.mkdtemp(prefix="pp-tests-"))
STATE.chmod(0o755)  # the postgres user must reach its cluster below

# Settings for everything the tests start, before prefect is imported anywhere.
os.environ.pop("PREFECT_API_URL", None)
os.environ.update(
    PREFECT_HOME=str(STATE / "prefect-home"),
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_UI_ENABLED="false",
    PREFECT_SERVER_EPHEMERAL_ENABLED="false",
    PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.25",
    PREFECT_PIPELINES_DOCKER_NETWORK="none",
    PREFECT_PIPELINES_ALLOWED_GIT_SCHEMES="http,https,git",
    PREFECT_PIPELINES_WORKSPACE_ROOT=str(STATE / "workspaces"),
    PREFECT_PIPELINES_CANCEL_POLL_SECONDS="0.5",
)

from tests.support.procs import Proc, free_port  # noqa: E402

_prefect: dict[str, object] = {}


def _start_prefect_server() -> None:
    """A Prefect server on PostgreSQL, as a team runs it (SQLite is the `server` default,
    tested on its own): Prefect 3.8 on SQLite stalls for its 60 s busy timeout under the
    write load a test suite makes (see README, "SQLite and load")."""
    if "proc" in _prefect:
        return
    from prefect_pipelines.embedded import prefect_server_argv
    from tests.support.postgres import Postgres

    postgres = Postgres(STATE / "postgres")
    _prefect["postgres"] = postgres
    database_url = postgres.create_database("prefect")
    port = free_port()
    env = {**os.environ, "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url}
    _prefect["proc"] = Proc(prefect_server_argv("127.0.0.1", port), log=STATE / "prefect.log", env=env)
    _prefect["url"] = f"http://127.0.0.1:{port}/api"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Tests marked `last` run after all others."""
    last = [item for item in items if item.get_closest_marker("last")]
    items[:] = [item for item in items if not item.get_closest_marker("last")] + last


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the Prefect server early (it takes ~12 s) if any collected test needs it."""
    if any("prefect_api" in getattr(item, "fixturenames", ()) for item in session.items):
        _start_prefect_server()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of a real Prefect server (SQLite), set as PREFECT_API_URL for the session."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_pipelines.embedded import wait_healthy

    _start_prefect_server()
    proc: Proc = _prefect["proc"]  # type: ignore[assignment]
    url: str = _prefect["url"]  # type: ignore[assignment]
    try:
        wait_healthy(url, timeout=120, proc=proc.popen)
    except RuntimeError as exc:
        pytest.fail(f"{exc}\n{proc.log_text()[-3000:]}")
    os.environ["PREFECT_API_URL"] = url
    with temporary_settings({PREFECT_API_URL: url}):
        yield url


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    """A client of a real docker engine (started here if none answers), with busybox."""
    from tests.support.docker_engine import engine_client, ensure_busybox, start_dockerd

    started = start_dockerd(STATE)
    client = engine_client()
    assert client is not None
    ensure_busybox(client)
    yield client
    client.close()
    if started is not None:
        started.stop(timeout=30)


@pytest.fixture(scope="session")
def git_server():  # type: ignore[no-untyped-def]
    """A real git server over HTTP with an `app` repo (branches main and dev)."""
    from tests.support.gitserver import GitServer

    server = GitServer(STATE / "git")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_repo(git_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The `app` repository: branch -> commit, plus its URL under `url`."""
    commits = git_server.create_repo(
        "app",
        {
            "main": {
                "hello.txt": "hello from main\n",
                "Dockerfile": 'FROM busybox:latest\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n',
            },
            "dev": {"hello.txt": "hello from dev\n"},
        },
    )
    return {**commits, "url": git_server.repo_url("app")}


@pytest.fixture(scope="session")
def registry(docker_client):  # type: ignore[no-untyped-def]
    """A real registry on 127.0.0.1 that needs a login."""
    from tests.support.registry import Registry

    reg = Registry(STATE / "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def worker(prefect_api, docker_client):  # type: ignore[no-untyped-def]
    """A `prefect-pipelines worker` process on the `pipelines` pool."""
    import sys

    from tests.support.procs import wait_for

    proc = Proc([sys.executable, "-m", "prefect_pipelines.cli", "worker"],
                log=STATE / "worker.log", env=dict(os.environ))
    wait_for(lambda: "started" in proc.log_text() or not proc.alive(), timeout=60,
             what="the worker to start")
    assert proc.alive(), proc.log_text()[-3000:]
    yield proc
    proc.stop(timeout=40)


@pytest.fixture(scope="session")
def facade(prefect_api):  # type: ignore[no-untyped-def]
    """The /v3 facade served by uvicorn on a free loopback port (in this process)."""
    from tests.support.facade import Facade

    server = Facade()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tokens(facade):  # type: ignore[no-untyped-def]
    """API tokens of two users: alice, an admin (she sets up GitHub apps for the tests), and
    bob, who is not."""
    return {"alice": facade.create_token("alice", admin=True), "bob": facade.create_token("bob")}


@pytest.fixture(scope="session")
def api(facade, tokens):  # type: ignore[no-untyped-def]
    """An HTTP client of the facade, authenticated as alice."""
    import httpx

    with httpx.Client(base_url=facade.url, timeout=60,
                      headers={"Authorization": f"Bearer {tokens['alice']}"}) as client:
        yield client


@pytest.fixture(scope="session")
def bob_api(facade, tokens):  # type: ignore[no-untyped-def]
    """An HTTP client of the facade, authenticated as bob (not an admin)."""
    import httpx

    with httpx.Client(base_url=facade.url, timeout=60,
                      headers={"Authorization": f"Bearer {tokens['bob']}"}) as client:
        yield client


def _serving(fake):  # type: ignore[no-untyped-def]
    """A fake forge, serving on loopback until the end of the session."""
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_github():  # type: ignore[no-untyped-def]
    """A fake GitHub Enterprise on loopback (API, OAuth, and git over HTTP)."""
    from tests.fakes.github import FakeGitHub

    yield from _serving(FakeGitHub(STATE / "github-git"))


@pytest.fixture(scope="session")
def fake_gitlab():  # type: ignore[no-untyped-def]
    """A fake self-managed GitLab on loopback (API v4, OAuth, and git over HTTP)."""
    from tests.fakes.gitlab import FakeGitLab

    yield from _serving(FakeGitLab(STATE / "gitlab-git"))


@pytest.fixture(scope="session")
def fake_gitea():  # type: ignore[no-untyped-def]
    """A fake Gitea on loopback (API v1, OAuth, and git over HTTP)."""
    from tests.fakes.gitea import FakeGitea

    yield from _serving(FakeGitea(STATE / "gitea-git"))


@pytest.fixture(scope="session")
def fake_bitbucketcloud():  # type: ignore[no-untyped-def]
    """A fake Bitbucket Cloud on loopback (API 2.0, OAuth, and git over HTTP)."""
    from tests.fakes.bitbucketcloud import FakeBitbucketCloud

    yield from _serving(FakeBitbucketCloud(STATE / "bitbucketcloud-git"))


@pytest.fixture(scope="session")
def fake_bitbucketserver():  # type: ignore[no-untyped-def]
    """A fake Bitbucket Data Center on loopback (REST API, OAuth, and git over HTTP)."""
    from tests.fakes.bitbucketserver import FakeBitbucketServer

    yield from _serving(FakeBitbucketServer(STATE / "bitbucketserver-git"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    proc = _prefect.get("proc")
    if isinstance(proc, Proc):
        proc.stop()
    postgres = _prefect.get("postgres")
    if postgres is not None:
        postgres.stop()
    if exitstatus == 0:
        shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture
def short_lost_window(prefect_api: str) -> Iterator[int]:
    """The "worker lost" automations of the session's server with their shortest window
    (10 s, Prefect's minimum); afterwards the automations as they were (none if none)."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    from prefect_pipelines import vocabulary
    from prefect_pipelines.services import lost_runs

    names = (vocabulary.LOST_RUN_AUTOMATION, vocabulary.LOST_CANCEL_AUTOMATION)

    async def current() -> list[AutomationCore]:
        async with get_client() as client:
            found = [automation for name in names for automation in await client.read_automations_by_name(name)]
        return [AutomationCore.model_validate(automation.model_dump(include=set(AutomationCore.model_fields)))
                for automation in found]

    async def put(automations: list[AutomationCore]) -> None:
        async with get_client() as client:
            for name in names:
                for automation in await client.read_automations_by_name(name):
                    await client.delete_automation(automation.id)
            for automation in automations:
                await client.create_automation(automation)

    saved = asyncio.run(current())
    try:
        asyncio.run(put([lost_runs.lost_runs_automation(10), lost_runs.lost_cancels_automation(10)]))
        yield 10
    finally:
        asyncio.run(put(saved))

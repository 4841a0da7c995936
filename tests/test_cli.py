"""The `prefect-pipelines` command: exec and server, run as a user runs them."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun

from prefect_pipelines.vocabulary import ENTRYPOINT
from tests.support.procs import Proc, free_port, wait_for
from tests.support.runs import first_run_log_line

CLI = [sys.executable, "-m", "prefect_pipelines.cli"]


def run_cli(*args: str, timeout: float = 180, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def registry_login(registry):  # type: ignore[no-untyped-def]
    from prefect_docker.credentials import DockerRegistryCredentials

    name = f"cli-registry-{uuid.uuid4().hex[:8]}"
    DockerRegistryCredentials(username=registry.username, password=registry.password,
                              registry_url=registry.host).save(name)
    yield registry
    DockerRegistryCredentials.delete(name)


@pytest.mark.usefixtures("prefect_api")
class TestExec:
    def test_three_stages_clone_script_publish(self, tmp_path: Path, app_repo, registry_login,  # type: ignore[no-untyped-def]
                                               docker_client) -> None:
        registry = registry_login
        image = f"{registry.host}/cli/app-{uuid.uuid4().hex[:6]}"
        pipeline = tmp_path / "pipeline.yaml"
        pipeline.write_text(
            "stages:\n"
            "- name: clone\n"
            "  steps:\n"
            f"  - sourceCodeConfig: {{url: '{app_repo['url']}', branch: main}}\n"
            "- name: test\n"
            "  steps:\n"
            "  - runScriptConfig: {image: busybox, shellScript: 'cat hello.txt; echo commit=$CICD_GIT_COMMIT'}\n"
            "- name: publish\n"
            "  steps:\n"
            f"  - publishImageConfig: {{tag: '{image}:${{CICD_GIT_BRANCH}}'}}\n"
        )
        result = run_cli("exec", str(pipeline))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[test/0] hello from main" in result.stdout
        assert f"[test/0] commit={app_repo['main']}" in result.stdout
        assert "==> succeeded" in result.stdout
        # The pushed image runs, pulled back from the registry.
        docker_client.images.remove(f"{image}:main", force=True)
        docker_client.login(registry.username, registry.password, registry=registry.host)
        docker_client.images.pull(image, tag="main")
        out = docker_client.containers.run(f"{image}:main", remove=True, network_mode="none")
        assert out.decode().strip() == "hello from main"

    def test_failing_step_exits_non_zero_and_skips_later_stages(self, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
        pipeline = tmp_path / "fail.yaml"
        pipeline.write_text(
            "stages:\n"
            "- name: test\n"
            "  steps:\n"
            "  - runScriptConfig: {image: busybox, shellScript: 'echo oops; exit 4'}\n"
            "- name: deploy\n"
            "  steps:\n"
            "  - runScriptConfig: {image: busybox, shellScript: 'echo deploying'}\n"
        )
        result = run_cli("exec", str(pipeline))
        assert result.returncode == 1
        assert "[test/0] oops" in result.stdout
        assert "==> stage deploy skipped" in result.stdout
        assert "deploying" not in result.stdout
        assert "the script exited with code 4" in result.stderr

    def test_workspace_option_uses_a_working_copy(self, tmp_path: Path, app_repo, docker_client) -> None:  # type: ignore[no-untyped-def]
        work = tmp_path / "checkout"
        work.mkdir()
        (work / "hello.txt").write_text("local uncommitted change\n")
        pipeline = tmp_path / "p.yaml"
        pipeline.write_text(
            "stages:\n- name: ci\n  steps:\n"
            f"  - sourceCodeConfig: {{url: '{app_repo['url']}', branch: main}}\n"
            "  - runScriptConfig: {image: busybox, shellScript: 'cat hello.txt; echo built > out.txt'}\n"
        )
        result = run_cli("exec", str(pipeline), "--workspace", str(work))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "local uncommitted change" in result.stdout
        assert "no clone" in result.stdout
        assert (work / "out.txt").read_text() == "built\n"  # the workspace is kept

    def test_without_a_file_it_runs_the_checkout_s_own_rancher_pipeline(self, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                        app_repo, docker_client) -> None:
        """`exec` in a checkout runs its .rancher-pipeline.yml: the clone is implicit (the
        checkout is the source), `when` sees the checkout's branch and a manual event."""
        work = tmp_path / "app"
        subprocess.run(["git", "clone", "-q", "-b", "main", app_repo["url"], str(work)], check=True)
        (work / ".rancher-pipeline.yml").write_text(textwrap.dedent("""\
            stages:
            - name: Clone
              steps:
              - sourceCodeConfig: {}
            - name: test
              steps:
              - runScriptConfig: {image: busybox, shellScript: 'echo "on $CICD_GIT_BRANCH at $CICD_GIT_COMMIT CI=$CI"'}
              - runScriptConfig: {image: busybox, shellScript: 'echo dev only'}
                when: {branch: dev}
              - runScriptConfig: {image: busybox, shellScript: 'echo pushes only'}
                when: {event: push}
            """))
        result = run_cli("exec", cwd=work)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"on main at {app_repo['main']} CI=true" in result.stdout
        assert "no clone" in result.stdout  # the checkout is the source
        assert "[test/0] on main" in result.stdout  # what the steps print, prefixed
        assert "[test/1]" not in result.stdout and "[test/2]" not in result.stdout
        assert "test/1 skipped: when.branch (include ['dev']) does not match 'main'" in result.stdout

    def test_without_a_file_a_bad_or_missing_one_is_named(self, tmp_path: Path) -> None:
        result = run_cli("exec", "--workspace", str(tmp_path), timeout=60)
        assert result.returncode == 2
        assert f"no .rancher-pipeline.yml or .rancher-pipeline.yaml in {tmp_path}" in result.stderr
        (tmp_path / ".rancher-pipeline.yaml").write_text(
            "stages:\n- name: a\n  steps:\n  - runScriptConfig: {image: busybox}\n")
        result = run_cli("exec", "--workspace", str(tmp_path), timeout=60)
        assert result.returncode == 2
        assert ("error: .rancher-pipeline.yaml: stages[0].steps[0].runScriptConfig.shellScript: "
                "shellScript is required") in result.stderr
        assert "Traceback" not in result.stderr

    def test_invalid_file_names_the_field(self, tmp_path: Path) -> None:
        pipeline = tmp_path / "bad.yaml"
        pipeline.write_text("stages:\n- name: a\n  steps:\n  - runScriptConfig: {image: busybox}\n")
        result = run_cli("exec", str(pipeline), timeout=60)
        assert result.returncode == 2
        assert "stages[0].steps[0].runScriptConfig.shellScript: shellScript is required" in result.stderr
        assert "Traceback" not in result.stderr

    def test_missing_file(self, tmp_path: Path) -> None:
        result = run_cli("exec", str(tmp_path / "none.yaml"), timeout=60)
        assert result.returncode == 2
        assert "cannot read" in result.stderr and "Traceback" not in result.stderr

    def test_branch_required(self, tmp_path: Path, app_repo) -> None:  # type: ignore[no-untyped-def]
        pipeline = tmp_path / "p.yaml"
        pipeline.write_text(
            "stages:\n- name: ci\n  steps:\n"
            f"  - sourceCodeConfig: {{url: '{app_repo['url']}', branch: 'main|dev'}}\n"
        )
        result = run_cli("exec", str(pipeline))
        assert result.returncode == 1
        assert "does not name a single branch: give one" in result.stdout + result.stderr
        result = run_cli("exec", str(pipeline), "--branch", "dev")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_no_engine_means_the_process_executor_and_says_so(self, tmp_path: Path) -> None:
        """With `auto` and no engine answering, exec chooses process once, at its start,
        prints it, and the run's first log line says where its steps run."""
        no_engine = "unix:///nonexistent/docker.sock"
        pipeline_id = f"no-engine-{uuid.uuid4().hex[:8]}"
        pipeline = tmp_path / "p.yaml"
        pipeline.write_text("stages:\n- name: ci\n  steps:\n"
                            "  - runScriptConfig: {image: busybox, shellScript: 'echo on the host'}\n")
        env = {**os.environ, "PREFECT_PIPELINES_EXECUTOR": "auto",
               "PREFECT_PIPELINES_DOCKER_HOST": no_engine}
        result = subprocess.run([*CLI, "exec", str(pipeline), "--id", pipeline_id], env=env,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        user = getpass.getuser()
        assert result.stdout.splitlines()[0] == (
            f"executor: process (no docker engine answered at {no_engine}): "
            f"steps run on this host as {user}")
        assert "[ci/0] on the host" in result.stdout
        assert first_run_log_line(_exec_flow_run(pipeline_id)) == (
            f"executor process: steps run on the host {socket.gethostname()} as {user}; "
            "images are not used")


def _exec_flow_run(pipeline_id: str) -> UUID:
    """The flow run `exec --id pipeline_id` made (newest first among run-pipeline's)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["run-pipeline"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=50)
    found = [run.id for run in runs if run.parameters.get("pipeline_id") == pipeline_id]
    assert found, f"no flow run of {pipeline_id}"
    return found[0]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_server_starts_everything_and_stops_on_ctrl_c(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    """With nothing configured but an auth string for the Prefect API: a Prefect server on
    SQLite that refuses requests without it, a worker, the facade; Ctrl-C stops all."""
    from tests.support.secret_scan import scan

    prefect_port, api_port = free_port(), free_port()
    auth = f"admin:{uuid.uuid4().hex}"
    scan.add(auth, "the Prefect API auth string")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_PIPELINES_PREFECT_PORT=str(prefect_port),
               PREFECT_PIPELINES_API_PORT=str(api_port), PREFECT_SERVER_API_AUTH_STRING=auth)
    server = Proc([*CLI, "server"], log=tmp_path / "server.log", env=env)
    try:
        wait_for(lambda: "Press Ctrl-C to stop" in server.log_text(), timeout=150,
                 what="the server banner")
        api = f"http://127.0.0.1:{prefect_port}/api"
        assert httpx.get(f"{api}/health").json() is True
        assert httpx.post(f"{api}/work_pools/filter", json={}).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{api_port}/v3").status_code == 200
        assert (tmp_path / "home" / "prefect.db").exists()  # SQLite, in PREFECT_HOME
        # The worker has registered with the pool and runs a deployment's flow run. Prefect's
        # own client, as a user's `prefect deployment run` would: on SQLite the server answers
        # 503 when a write meets a locked database, and Prefect's client retries that.
        with SyncPrefectClient(api, auth_string=auth) as client:
            assert any(pool.name == "pipelines" for pool in client.read_work_pools())
            run = _run_a_pipeline(client)
        assert run.state is not None and run.state.is_completed(), run.state
        children = _descendants(server.pid)
        assert len(children) >= 3
        started = time.monotonic()
        server.send_signal(signal.SIGINT)
        server.popen.wait(timeout=90)
        assert server.popen.returncode == 0, server.log_text()[-2000:]
        assert time.monotonic() - started < 60
        assert "stopped" in server.log_text()
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=10,
                 what="every child to exit")
    finally:
        server.stop(timeout=30, sig=signal.SIGINT)


def _run_a_pipeline(client: SyncPrefectClient) -> FlowRun:

    deployment_id = client.create_deployment(
        flow_id=client.create_flow_from_name("run-pipeline"), name="c-1:p-1:smoke",
        entrypoint=ENTRYPOINT, work_pool_name="pipelines",
        parameters={"pipeline_id": "smoke", "project_id": "c-1:p-1", "pipeline": {
            "stages": [{"name": "s", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "echo hi"}}]}]}},
    )
    run_id = client.create_flow_run_from_deployment(deployment_id).id
    return wait_for(lambda: _final(client, run_id), timeout=90, interval=0.5,
                    what="the flow run to finish")


def _final(client: SyncPrefectClient, run_id: UUID) -> FlowRun | None:
    run = client.read_flow_run(run_id)
    return run if run.state is not None and run.state.is_final() else None


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(x) for x in line.split())
        parents.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"

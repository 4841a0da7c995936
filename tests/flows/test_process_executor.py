"""The process executor: scripts on the host, for machines with no docker engine."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefect_pipelines.flows.executors import describe_executor, engine_url, resolve_executor
from prefect_pipelines.flows.executors.docker import DockerExecutor, NoLogins
from prefect_pipelines.flows.executors.process import ProcessExecutor
from prefect_pipelines.flows.output import SecretMasker
from prefect_pipelines.flows.pipeline import select_executor
from prefect_pipelines.settings import Settings, get_settings
from tests.support.runs import first_run_log_line, run_definition, step_log


@pytest.fixture
def process_executor(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFECT_PIPELINES_EXECUTOR", "process")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("PREFECT_PIPELINES_EXECUTOR")
    get_settings.cache_clear()


@pytest.mark.usefixtures("prefect_api", "process_executor")
class TestProcessExecutor:
    def test_script_runs_on_the_host_in_the_workspace(self, app_repo) -> None:  # type: ignore[no-untyped-def]
        definition = {"stages": [{"name": "ci", "steps": [
            {"sourceCodeConfig": {"url": app_repo["url"], "branch": "main"}},
            {"runScriptConfig": {"image": "golang:1.8", "shellScript":
                                 'cat hello.txt; echo "foo=$FOO commit=$CICD_GIT_COMMIT"; test -z "$PREFECT_API_URL"',
                                 "env": ["FOO=bar"]}},
        ]}]}
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        assert first_run_log_line(flow_run_id) == (
            f"executor process: steps run on the host {socket.gethostname()} as "
            f"{getpass.getuser()}; images are not used")
        output = step_log(flow_run_id, 0, 1)
        assert "the image 'golang:1.8' is not used" in output
        assert "hello from main" in output
        assert f"foo=bar commit={app_repo['main']}" in output

    def test_entrypoint_and_command(self) -> None:
        definition = {"stages": [{"name": "ci", "steps": [{"runScriptConfig": {
            "image": "x", "isShell": False, "entrypoint": "printf", "command": ["%s-%s", "a b", "c"]}}]}]}
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        assert "a b-c" in step_log(flow_run_id, 0, 0)

    def test_failure_and_timeout(self) -> None:
        state, _ = run_definition({"stages": [{"name": "ci", "steps": [
            {"runScriptConfig": {"image": "x", "shellScript": "exit 7"}}]}]})
        assert state.is_failed() and "exited with code 7" in state.message
        state, _ = run_definition({"stages": [{"name": "ci", "steps": [
            {"runScriptConfig": {"image": "x", "shellScript": "sleep 60"}, "timeout": 0.03}]}]})
        assert state.is_failed() and "timed out" in state.message

    def test_publish_is_refused_clearly(self) -> None:
        state, flow_run_id = run_definition({"stages": [{"name": "ship", "steps": [
            {"publishImageConfig": {"tag": "x:1"}}]}]})
        assert state.is_failed()
        assert "publishImageConfig needs the docker executor" in state.message
        assert "publishImageConfig needs the docker executor" in step_log(flow_run_id, 0, 0)


NO_ENGINE = "unix:///nonexistent/docker.sock"


def test_auto_resolves_to_docker_whenever_an_engine_answers(docker_client) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(executor="auto")
    assert resolve_executor(settings) == "docker"
    assert describe_executor(settings, "docker") == f"executor: docker (engine {engine_url(None)})"
    executor = select_executor(settings, NoLogins())
    assert isinstance(executor, DockerExecutor)
    executor.close()


def test_auto_resolves_to_process_when_no_engine_answers() -> None:
    settings = Settings(executor="auto", docker_host=NO_ENGINE)
    assert resolve_executor(settings) == "process"
    assert describe_executor(settings, "process").startswith(
        f"executor: process (no docker engine answered at {NO_ENGINE}): steps run on this host as ")
    assert isinstance(select_executor(Settings(executor="process"), NoLogins()),
                      ProcessExecutor)


@pytest.mark.parametrize("choice", ["auto", "docker"])
def test_a_run_never_falls_back_to_the_host_by_itself(choice: str) -> None:
    from prefect_pipelines.flows.executors.base import ExecutorError

    with pytest.raises(ExecutorError, match=f"the docker engine does not answer at {NO_ENGINE}"):
        select_executor(Settings(executor=choice, docker_host=NO_ENGINE), NoLogins())


@pytest.mark.timeout(120)
def test_a_run_with_auto_and_no_engine_fails_and_runs_nothing_on_the_host(
        prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run nobody resolved the executor for (the flow called directly, as a stock Prefect
    worker runs it) with `auto` and no engine fails; its script never runs on the host."""
    monkeypatch.setenv("PREFECT_PIPELINES_EXECUTOR", "auto")
    monkeypatch.setenv("PREFECT_PIPELINES_DOCKER_HOST", NO_ENGINE)
    get_settings.cache_clear()
    marker = tmp_path / "ran-on-the-host"
    try:
        state, _ = run_definition({"stages": [{"name": "ci", "steps": [{"runScriptConfig": {
            "image": "busybox", "shellScript": f"touch {marker}"}}]}]})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert not marker.exists(), "the script ran on the host"
    assert state.is_failed(), state
    assert f"the docker engine does not answer at {NO_ENGINE}" in (state.message or "")


def test_masker() -> None:
    masker = SecretMasker(["s3cret-value", "ab"])
    assert masker("x s3cret-value y ab") == "x ******** y ab"  # too short to mask safely
    masker.add("multi\nline-secret")
    assert masker("got line-secret and multi") == "got ******** and ********"
    assert not SecretMasker()

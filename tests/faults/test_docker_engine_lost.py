"""The docker engine stops while a step runs: the step fails with a message that says so,
and the execution ends `failed` (it does not hang or stay `running`)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.api import create, definition, new_project, script_step, step_log, wait_state
from tests.support.docker_engine import ensure_busybox, start_private_dockerd
from tests.support.procs import wait_for
from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(300)


def test_the_engine_stopping_mid_step_fails_the_step_and_says_why(
        prefect_api: str, docker_client: Any, tmp_path: Path) -> None:
    dockerd, url = start_private_dockerd(tmp_path)
    stack = Stack(tmp_path, prefect_api, docker_host=url)
    engine = docker.DockerClient(base_url=url, timeout=60)
    try:
        ensure_busybox(engine)
        stack.worker("worker")
        _, facade = stack.facade("facade")
        with stack.client(facade) as api:
            project = new_project(api, "c-engine")
            create(api, project, definition("doomed", [script_step("echo started; sleep 120")],
                                            [script_step("echo never")]))
            api.post(f"/v3/projects/{project}/pipelines/doomed", params={"action": "run"})
            wait_for(lambda: "started" in step_log(api, project, "doomed-1", 0, 0), timeout=60,
                     what="the step to start")
            assert engine.containers.list(), "the step runs on the second engine"
            dockerd.stop(timeout=60, sig=signal.SIGTERM)

            done = wait_state(api, project, "doomed-1", timeout=90)
            assert done["state"] == "failed", done
            assert done["stages"][0]["steps"][0]["state"] == "failed"
            assert done["stages"][1]["steps"][0]["state"] == "skipped"
            log = step_log(api, project, "doomed-1", 0, 0)
            assert "docker engine" in log, log
            assert "docker engine" in done["stateMessage"], done
    finally:
        engine.close()
        stack.close()
        dockerd.stop(timeout=30)


def test_an_engine_gone_between_runs_fails_the_next_run_and_nothing_runs_on_the_host(
        prefect_api: str, docker_client: Any, tmp_path: Path) -> None:
    """A worker chose docker at its start; its engine then stops. The next run fails
    saying the engine does not answer, and its script never runs on the worker's host."""
    dockerd, url = start_private_dockerd(tmp_path)
    stack = Stack(tmp_path, prefect_api, docker_host=url)
    engine = docker.DockerClient(base_url=url, timeout=60)
    marker = tmp_path / "ran-on-the-host"
    try:
        ensure_busybox(engine)
        worker = stack.worker("worker")
        _, facade = stack.facade("facade")
        with stack.client(facade) as api:
            project = new_project(api, "c-gone")
            create(api, project, definition("first", [script_step("echo in a container")]))
            create(api, project, definition("second", [script_step(f"touch {marker}; echo ran")]))
            api.post(f"/v3/projects/{project}/pipelines/first", params={"action": "run"})
            assert wait_state(api, project, "first-1", timeout=90)["state"] == "success"
            dockerd.stop(timeout=60, sig=signal.SIGTERM)
            assert not dockerd.alive()

            api.post(f"/v3/projects/{project}/pipelines/second", params={"action": "run"})
            done = wait_state(api, project, "second-1", timeout=90)
            assert not marker.exists(), "the step ran on the worker's host"
            assert done["state"] == "failed", done
            assert f"the docker engine does not answer at {url}" in done["stateMessage"], done
        assert f"executor: docker (engine {url})" in worker.log_text()
    finally:
        engine.close()
        stack.close()
        dockerd.stop(timeout=30)

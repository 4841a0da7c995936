"""/v3 step logs: the output in order, the collection, the size limit, and following."""

from __future__ import annotations

import time

import httpx
import pytest

from prefect_pipelines.settings import Settings, get_settings
from tests.support.api import assert_error, create, definition, new_project, run, script_step, wait_state

pytestmark = pytest.mark.usefixtures("worker")


def test_a_step_log_holds_its_output_in_order(api: httpx.Client) -> None:
    project = new_project(api)
    create(api, project, definition("lines", [script_step("for i in 1 2 3 4 5; do echo line $i; done; echo err >&2")]))
    run(api, project, "lines")
    wait_state(api, project, "lines-1")
    log = api.get(f"/v3/projects/{project}/pipelineexecutionlogs/lines-1-0-0").json()
    assert log["type"] == "pipelineExecutionLog" and log["id"] == "lines-1-0-0"
    assert (log["projectId"], log["pipelineExecutionId"], log["stage"], log["step"]) == (project, "lines-1", 0, 0)
    assert log["message"] == "line 1\nline 2\nline 3\nline 4\nline 5\nerr"


def test_the_collection_lists_every_step_of_an_execution(api: httpx.Client) -> None:
    project = new_project(api)
    # Siblings of a failing step are aborted, so the failure gets a stage of its own.
    create(api, project, definition("many", [script_step("echo a"), script_step("echo b")],
                                    [script_step("exit 1")], [script_step("echo d")]))
    run(api, project, "many")
    wait_state(api, project, "many-1")
    logs = api.get(f"/v3/projects/{project}/pipelineexecutionlogs",
                   params={"pipelineExecutionId": "many-1"}).json()
    assert [(log["stage"], log["step"]) for log in logs["data"]] == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert [log["message"] for log in logs["data"][:2]] == ["a", "b"]
    assert "exited with code 1" in logs["data"][2]["message"]
    assert logs["data"][3]["message"] == ""  # skipped: no output, but present
    assert_error(api.get(f"/v3/projects/{project}/pipelineexecutionlogs"), 422,
                 field="pipelineExecutionId")
    assert_error(api.get(f"/v3/projects/{project}/pipelineexecutionlogs/many-1-5-0"), 404)
    assert_error(api.get(f"/v3/projects/{project}/pipelineexecutionlogs/many-9-0-0"), 404)


def test_a_log_over_the_limit_keeps_its_latest_section(api: httpx.Client, facade) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    create(api, project, definition("big", [script_step("i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done")]))
    run(api, project, "big")
    wait_state(api, project, "big-1")
    facade.app.dependency_overrides[get_settings] = lambda: Settings(log_limit_bytes=4096)
    try:
        message = api.get(f"/v3/projects/{project}/pipelineexecutionlogs/big-1-0-0").json()["message"]
    finally:
        facade.app.dependency_overrides.clear()
    head, _, body = message.partition("\n")
    total = sum(len(f"line-{i}\n") for i in range(3000))
    lines = body.split("\n")
    assert lines[-1] == "line-2999"
    assert lines[0].startswith("line-") and len(body.encode()) <= 4096  # cut at a line boundary
    kept = len(body.encode()) + 1
    assert head == f"[{total - kept} bytes of earlier output trimmed; showing the last {kept} of {total} bytes]"
    assert [int(line[5:]) for line in lines] == list(range(3000 - len(lines), 3000))


def test_follow_streams_while_the_step_runs(api: httpx.Client) -> None:
    project = new_project(api)
    create(api, project, definition("live", [script_step("echo first; sleep 4; echo second")]))
    run(api, project, "live")
    url = f"/v3/projects/{project}/pipelineexecutionlogs/live-1-0-0"
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    with api.stream("GET", url, params={"follow": "true"}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append((time.monotonic() - started, line[6:]))
            if line.startswith("event: end"):
                break
    texts = [text for _, text in seen]
    assert texts[:2] == ["first", "second"]
    first_at = next(at for at, text in seen if text == "first")
    second_at = next(at for at, text in seen if text == "second")
    assert second_at - first_at > 2  # "first" arrived while the step was still sleeping
    assert wait_state(api, project, "live-1")["state"] == "success"

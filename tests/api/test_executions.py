"""/v3 executions: their shape, states, filters, stop and rerun, and runs started outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from prefect_pipelines.vocabulary import LABEL_STEPS
from tests.support.api import (
    assert_error,
    create,
    definition,
    execution,
    new_project,
    run,
    script_step,
    step_log,
    wait_state,
)
from tests.support.docker_engine import containers_of
from tests.support.procs import wait_for
from tests.support.stack import flow_runs_of

pytestmark = pytest.mark.usefixtures("worker")


class TestShape:
    def test_a_successful_execution(self, api: httpx.Client, app_repo) -> None:  # type: ignore[no-untyped-def]
        project = new_project(api)
        body = definition(
            "shape",
            [{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main|dev"}},
             script_step("cat hello.txt")],
            [script_step("echo one"), script_step("echo two")],
        )
        create(api, project, body)
        started = run(api, project, "shape", branch="dev")
        assert started["stages"][0]["steps"][0]["state"] in ("waiting", "running", "success")
        done = wait_state(api, project, "shape-1")
        assert done["state"] == "success"
        assert done["id"] == "shape-1" and done["run"] == 1 and done["pipelineId"] == "shape"
        assert done["projectId"] == project and done["triggeredBy"] == "user"
        assert done["triggerUserId"] == "alice"
        assert done["pipeline"]["stages"] == body["stages"]
        assert done["commit"] == app_repo["dev"]
        assert done["started"].endswith("Z") and done["ended"] >= done["started"]
        assert [len(stage["steps"]) for stage in done["stages"]] == [2, 2]
        for stage in done["stages"]:
            assert stage["state"] == "success" and stage["started"] and stage["ended"]
            for step in stage["steps"]:
                assert step["state"] == "success" and step["started"] and step["ended"]
        assert done["actions"] == {"rerun": done["links"]["self"] + "?action=rerun"}
        assert "hello from dev" in step_log(api, project, "shape-1", 0, 1)

    def test_a_failed_execution_skips_later_stages(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("fails", [script_step("exit 2"), script_step("sleep 30")],
                                        [script_step("echo never")]))
        run(api, project, "fails")
        done = wait_state(api, project, "fails-1")
        assert done["state"] == "failed"
        first, second = done["stages"]
        assert first["state"] == "failed"
        assert [step["state"] for step in first["steps"]] == ["failed", "aborted"]
        assert second["state"] == "skipped"
        assert second["steps"] == [{"state": "skipped", "started": None, "ended": None}]
        pipeline = api.get(f"/v3/projects/{project}/pipelines/fails").json()
        assert pipeline["lastRunState"] == "failed"

    def test_a_finished_execution_reads_the_same_from_its_record_as_from_its_task_runs(
            self, api: httpx.Client) -> None:
        """A run records its steps on its flow run as it ends; the API reads a finished
        execution from that record, and a record it cannot trust (here: of an earlier
        attempt) sends it back to the task runs, with the same answer."""
        project = new_project(api)
        create(api, project, definition("record", [script_step("exit 2"), script_step("sleep 30")],
                                        [script_step("echo never")]))
        run(api, project, "record")
        from_record = wait_state(api, project, "record-1")
        [flow_run] = flow_runs_of(project)
        assert LABEL_STEPS in flow_run.labels, flow_run.labels
        assert [[s["state"] for s in stage["steps"]] for stage in from_record["stages"]] == \
            [["failed", "aborted"], ["skipped"]]
        listed = api.get(f"/v3/projects/{project}/pipelineexecutions").json()["data"]
        assert listed[0]["stages"] == from_record["stages"]

        stale = json.loads(flow_run.labels[LABEL_STEPS])
        stale.update(runCount=flow_run.run_count - 1, steps=[])
        _label(flow_run.id, {LABEL_STEPS: json.dumps(stale)})
        from_task_runs = execution(api, project, "record-1")
        assert from_task_runs["stages"] == from_record["stages"]
        assert from_task_runs == {**from_record, "links": from_task_runs["links"]}

    def test_waiting_steps_are_listed_while_running(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("slow", [script_step("sleep 4")], [script_step("true")]))
        run(api, project, "slow")
        running = wait_state(api, project, "slow-1", states=("running",))
        assert running["stages"][1]["steps"][0]["state"] == "waiting"
        assert running["ended"] is None
        assert wait_state(api, project, "slow-1")["state"] == "success"


class TestListing:
    def test_filters_order_and_pages(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("ok", [script_step("true")]))
        create(api, project, definition("bad", [script_step("false")]))
        for _ in range(3):
            run(api, project, "ok")
        run(api, project, "bad")
        for execution_id in ("ok-1", "ok-2", "ok-3", "bad-1"):
            wait_state(api, project, execution_id)
        url = f"/v3/projects/{project}/pipelineexecutions"
        everything = api.get(url).json()
        assert everything["resourceType"] == "pipelineExecution"
        assert [e["id"] for e in everything["data"]] == ["bad-1", "ok-3", "ok-2", "ok-1"]  # newest first
        only_ok = api.get(url, params={"pipelineId": "ok"}).json()
        assert [e["id"] for e in only_ok["data"]] == ["ok-3", "ok-2", "ok-1"]
        failed = api.get(url, params={"state": "failed"}).json()
        assert [e["id"] for e in failed["data"]] == ["bad-1"]
        assert api.get(url, params={"state": "running"}).json()["data"] == []
        page = api.get(url, params={"pipelineId": "ok", "limit": 2}).json()
        assert [e["id"] for e in page["data"]] == ["ok-3", "ok-2"] and page["pagination"]["total"] == 3
        rest = api.get(page["pagination"]["next"]).json()
        assert [e["id"] for e in rest["data"]] == ["ok-1"]
        assert_error(api.get(url, params={"pipelineId": "nope"}), 404)
        assert_error(api.get(url, params={"state": "done"}), 422, field="state")

    def test_a_pipeline_deleted_and_made_again_does_not_inherit_the_old_runs(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("again", [script_step("echo v1")]))
        run(api, project, "again")
        assert wait_state(api, project, "again-1")["state"] == "success"
        assert api.delete(f"/v3/projects/{project}/pipelines/again").status_code in (200, 204)
        body = definition("again", [script_step("echo v2")])
        create(api, project, body)
        url = f"/v3/projects/{project}/pipelineexecutions"
        assert_error(api.get(f"{url}/again-1"), 404)
        listed = api.get(url, params={"pipelineId": "again"}).json()
        assert listed["data"] == [] and listed["pagination"]["total"] == 0
        assert run(api, project, "again")["id"] == "again-1"
        done = wait_state(api, project, "again-1")
        assert done["pipeline"]["stages"] == body["stages"]
        assert [e["id"] for e in api.get(url, params={"pipelineId": "again"}).json()["data"]] == ["again-1"]


class TestActions:
    def test_stop_a_running_execution(self, api: httpx.Client, docker_client) -> None:  # type: ignore[no-untyped-def]
        project = new_project(api)
        create(api, project, definition("long", [script_step("sleep 120")], [script_step("true")]))
        run(api, project, "long")
        running = wait_state(api, project, "long-1", states=("running",))
        flow_run_id = wait_for(lambda: _flow_run_of_running_container(docker_client, "long-1"),
                               timeout=60, what="the step container")
        asked = time.monotonic()
        stopped = api.post(running["links"]["self"], params={"action": "stop"})
        assert stopped.status_code == 200, stopped.text
        done = wait_state(api, project, "long-1", timeout=60)
        assert done["state"] == "aborted"
        assert done["stages"][0]["steps"][0]["state"] == "aborted"
        assert done["stages"][1]["steps"][0]["state"] == "skipped"
        wait_for(lambda: containers_of(docker_client, flow_run_id) == [], timeout=15,
                 what="the containers to go")
        assert time.monotonic() - asked < 20
        body = assert_error(api.post(running["links"]["self"], params={"action": "stop"}), 404,
                            code="ActionNotAvailable")
        assert "finished" in body["message"]

    def test_stop_a_waiting_execution(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("queued", [script_step("sleep 60")]))
        # The project's quota is 2: the third run waits for a slot.
        for _ in range(3):
            run(api, project, "queued")
        third = wait_state(api, project, "queued-3", states=("queueing",))
        assert third["stages"][0]["steps"][0]["state"] == "waiting"
        response = api.post(third["links"]["self"], params={"action": "stop"})
        assert response.status_code == 200
        assert wait_state(api, project, "queued-3")["state"] == "aborted"
        for execution_id in ("queued-1", "queued-2"):
            api.post(f"/v3/projects/{project}/pipelineexecutions/{execution_id}", params={"action": "stop"})
            assert wait_state(api, project, execution_id)["state"] == "aborted"

    def test_rerun_uses_the_same_definition_and_branch(self, api: httpx.Client) -> None:
        project = new_project(api)
        body = definition("again", [script_step('echo "v1 on $CICD_GIT_BRANCH"')])
        create(api, project, body)
        run(api, project, "again", branch="topic")
        assert wait_state(api, project, "again-1")["state"] == "success"
        body["stages"][0]["steps"][0] = script_step('echo "v2"')
        api.put(f"/v3/projects/{project}/pipelines/again", json=body)
        rerun = api.post(f"/v3/projects/{project}/pipelineexecutions/again-1", params={"action": "rerun"})
        assert rerun.status_code == 200, rerun.text
        assert rerun.json()["id"] == "again-2" and rerun.json()["run"] == 2
        done = wait_state(api, project, "again-2")
        assert done["state"] == "success"
        assert "v1 on topic" in step_log(api, project, "again-2", 0, 0)
        run(api, project, "again")
        assert "v2" in step_log(api, project, wait_state(api, project, "again-3")["id"], 0, 0)

    def test_rerun_of_a_running_execution_is_refused(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("busy", [script_step("sleep 20")]))
        run(api, project, "busy")
        wait_state(api, project, "busy-1", states=("running",))
        assert_error(api.post(f"/v3/projects/{project}/pipelineexecutions/busy-1",
                              params={"action": "rerun"}), 404, code="ActionNotAvailable")
        api.post(f"/v3/projects/{project}/pipelineexecutions/busy-1", params={"action": "stop"})
        wait_state(api, project, "busy-1")

    def test_unknown_execution_and_action(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("x", [script_step("true")]))
        assert_error(api.get(f"/v3/projects/{project}/pipelineexecutions/x-9"), 404)
        assert_error(api.get(f"/v3/projects/{project}/pipelineexecutions/garbage"), 404)
        assert_error(api.post(f"/v3/projects/{project}/pipelineexecutions/x-1",
                              params={"action": "explode"}), 422, field="action")


def test_a_run_started_with_prefect_deployment_run_is_an_execution(api: httpx.Client) -> None:
    project = new_project(api)
    create(api, project, definition("cli", [script_step('echo "from the cli $CICD_EXECUTION_ID"')]))
    run(api, project, "cli")
    wait_state(api, project, "cli-1")
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", f"run-pipeline/{project}:cli"],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: _exists(api, project, "cli-2"), timeout=60, what="the CLI run to appear")
    done = wait_state(api, project, "cli-2", timeout=60)
    assert done["state"] == "success" and done["run"] == 2
    assert (done["triggeredBy"], done["triggerUserId"]) == ("prefect", None)  # nobody of the API
    assert done["stages"][0]["steps"][0]["state"] == "success"
    assert "from the cli cli-2" in step_log(api, project, "cli-2", 0, 0)
    listed = api.get(f"/v3/projects/{project}/pipelineexecutions", params={"pipelineId": "cli"}).json()
    assert [e["id"] for e in listed["data"]] == ["cli-2", "cli-1"]
    assert api.get(f"/v3/projects/{project}/pipelines/cli").json()["nextRun"] == 3


def _label(flow_run_id: Any, labels: dict[str, str]) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(flow_run_id, labels)


def _exists(api: httpx.Client, project: str, execution_id: str) -> bool:
    return api.get(f"/v3/projects/{project}/pipelineexecutions/{execution_id}").status_code == 200


def _flow_run_of_running_container(client, execution_id: str) -> str | None:  # type: ignore[no-untyped-def]
    for container in client.containers.list(filters={"label": f"io.prefect-pipelines.execution-id={execution_id}"}):
        return container.labels["io.prefect-pipelines.flow-run-id"]
    return None


def test_execution_helper_reads(api: httpx.Client) -> None:
    """`execution()` fails loudly on errors (guards the helpers the other tests lean on)."""
    with pytest.raises(AssertionError):
        execution(api, new_project(api), "none-1")


def test_the_prefect_ui_reads_like_the_pipeline(api: httpx.Client) -> None:
    """Task runs are named for people and each execution writes a Markdown artifact of its
    stages and steps (states, durations, links to the step logs on /v3), read back
    through Prefect's API; step output records name their step."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    project = new_project(api)
    create(api, project, definition("ui", [script_step("echo built | tr a-z A-Z")],
                                    [script_step("echo testing; exit 3"), script_step("sleep 30")],
                                    [script_step("echo never")]))
    done = wait_state(api, project, run(api, project, "ui")["id"])
    assert done["state"] == "failed", done
    flow_run = next(r for r in flow_runs_of(project) if r.name == done["id"])

    async def read() -> tuple[list[Any], list[Any], list[Any]]:
        async with get_client() as client:
            task_runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id])))
            artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
            records = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
            return task_runs, artifacts, records

    task_runs, artifacts, records = asyncio.run(read())
    assert sorted(t.name for t in task_runs) == [
        "stage0 / 1: busybox echo built | tr a-z A-Z",
        "stage1 / 1: busybox echo testing; exit 3",
        "stage1 / 2: busybox sleep 30",
    ]
    assert len(artifacts) == 1 and artifacts[0].type == "markdown", artifacts
    report = artifacts[0].data
    # Links go to PUBLIC_URL (the worker's setting; the facade here listens elsewhere).
    base = f"/v3/projects/{project}/pipelineexecutionlogs/{done['id']}"
    assert report.startswith(f"### Execution {done['id']}: failed"), report
    assert "stage 'stage1' failed: step stage1 / 1: the script exited with code 3" in report
    rows = [line for line in report.splitlines() if line.startswith("| stage")]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| stage0", "1: busybox echo built \\| tr a-z A-Z", "success"],
        ["| stage1", "1: busybox echo testing; exit 3", "failed"],
        ["| stage1", "2: busybox sleep 30", "aborted"],
        ["| stage2", "1: busybox echo never", "skipped"],
    ], report
    assert f"{base}-0-0)" in rows[0] and f"{base}-1-0)" in rows[1] and "[log](http" in rows[0]
    assert rows[3].rstrip().endswith("|  |")  # a skipped step has no log
    assert " s |" in rows[0]  # its duration
    output = {r.name for r in records if "output@" in r.name}
    assert {"stage0 / 1 output@0", "stage1 / 1 output@0"} <= output, output
    # No stray "NoneType: None" line ends a failed step's log.
    assert not any("NoneType: None" in r.message for r in records), [r.message for r in records]


def test_a_run_prefect_makes_is_named_for_its_number_from_its_first_log_line(api: httpx.Client) -> None:
    """A run made through Prefect (the UI's Run button, `prefect deployment run`, a cron
    schedule) gets Prefect's random name; it takes its run number before the engine logs
    anything, so even "Beginning flow run ..." names it `<pipeline>-<run>`."""
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    project = new_project(api)
    create(api, project, definition("named", [script_step("true")]))
    assert wait_state(api, project, run(api, project, "named")["id"])["state"] == "success"
    with get_client(sync_client=True) as client:
        assert isinstance(client, SyncPrefectClient)
        deployment = client.read_deployment_by_name(f"run-pipeline/{project}:named")
        made = client.create_flow_run_from_deployment(deployment.id)
        given = made.name  # Prefect's
        wait_for(lambda: (client.read_flow_run(made.id).state or made.state).is_final(), timeout=90,
                 what="the run to end")
        ended = client.read_flow_run(made.id)
        records = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[made.id])))
    assert ended.name == "named-2" and ended.state.is_completed(), (ended.name, ended.state)
    beginning = [r.message for r in records if r.message.startswith("Beginning flow run")]
    assert beginning == ["Beginning flow run 'named-2' for flow 'run-pipeline'"], beginning
    assert not any(given in r.message for r in records), [r.message for r in records]
    made_through_prefect = wait_state(api, project, "named-2")
    assert made_through_prefect["state"] == "success"
    # Nobody of the API started it: it says so, with no user.
    assert (made_through_prefect["triggeredBy"], made_through_prefect["triggerUserId"],
            made_through_prefect["event"]) == ("prefect", None, "manual")

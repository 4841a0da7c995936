"""Rancher's own Python client (rancher/client-python, the one Rancher's integration
tests use) drives the /v3 API through Norman's discovery alone: it loads the schemas the
root names, then creates, lists, changes and deletes, runs actions, and reads executions
and their logs, knowing nothing of this API but what the schemas say."""

from __future__ import annotations

import time

import pytest
import rancher

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def clients(facade, tokens, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A client of /v3 and one of a new project's schemas, both as alice."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the client may cache schemas under ~
    top = rancher.Client(url=f"{facade.url}/v3", token=tokens["alice"])
    project = top.create_project(name="from rancher's client", clusterId="c-rancher")
    assert project.id.startswith("c-rancher:p-") and project.type == "project"
    return top, rancher.Client(url=project.links.schemas, token=tokens["alice"]), project


def wait_finished(client, execution_id: str, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        current = client.by_id_pipelineExecution(execution_id)
        if current is not None and current.state in ("success", "failed", "aborted", "skipped"):
            return current
        assert time.monotonic() < deadline, f"{execution_id} still {current and current.state}"
        time.sleep(0.3)


def test_the_client_loads_the_schemas_and_binds_every_type(clients) -> None:  # type: ignore[no-untyped-def]
    top, client, project = clients
    assert {"project", "projectRoleTemplateBinding", "notifier", "sourceCodeCredential",
            "sourceCodeRepository"} <= set(top.schema.types)
    assert {"pipeline", "pipelineExecution", "pipelineExecutionLog", "secret",
            "dockerCredential"} <= set(client.schema.types)
    pipeline = client.schema.types["pipeline"]
    assert pipeline.creatable and pipeline.updatable and pipeline.deletable and pipeline.listable
    assert not client.schema.types["pipelineExecution"].creatable
    assert pipeline.resourceFields.name.required is True
    assert pipeline.resourceActions.run.output == "pipelineExecution"
    assert top.schema.types["smtpConfigIn"].resourceFields.password.type == "password"
    assert [p.id for p in top.list_project(name=None) if p.id == project.id] == [project.id]


def test_create_list_update_run_stop_rerun_logs_and_delete(clients) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = clients
    stages = [{"name": "build", "steps": [{"runScriptConfig": {
        "image": "busybox", "shellScript": "echo hello from $CICD_EXECUTION_ID"}}]}]
    made = client.create_pipeline(name="hello", stages=stages, timeout=5)
    assert made.name == "hello" and made.state == "active"
    assert [p.name for p in client.list_pipeline(name="hello")] == ["hello"]
    changed = client.update(made, name="hello", stages=stages, timeout=7)
    assert changed.timeout == 7

    started = changed.run()
    assert started.type == "pipelineExecution"
    done = wait_finished(client, started.id)
    assert done.state == "success", done.stateMessage
    logs = client.list_pipelineExecutionLog(pipelineExecutionId=done.id)
    assert [log.message.strip() for log in logs] == [f"hello from {done.id}"]

    again = done.rerun()
    assert wait_finished(client, again.id).run == 2

    slow = client.create_pipeline(name="slow", stages=[{"name": "s", "steps": [{"runScriptConfig": {
        "image": "busybox", "shellScript": "sleep 60"}}]}])
    running = slow.run()
    deadline = time.monotonic() + 60
    while client.by_id_pipelineExecution(running.id).state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    client.by_id_pipelineExecution(running.id).stop()
    assert wait_finished(client, running.id).state == "aborted"

    # Errors are Norman's, as the client reads them.
    with pytest.raises(rancher.ApiError) as caught:
        client.create_pipeline(name="hello", stages=stages)
    assert (caught.value.error.status, caught.value.error.code) == (422, "NotUnique")
    assert client.by_id_pipeline("ghost") is None  # a 404, as the client expects it

    client.delete(client.by_id_pipeline("slow"))
    client.delete(client.by_id_pipeline("hello"))
    assert [p.name for p in client.list_pipeline()] == []

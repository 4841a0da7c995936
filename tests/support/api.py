"""Helpers for tests of the /v3 API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

FINISHED = ("success", "failed", "skipped", "aborted")


def new_project(api: httpx.Client, cluster: str = "c-test", **fields: Any) -> str:
    """A new project of the caller (its owner), so tests do not see each other's pipelines."""
    response = api.post("/v3/projects", json={"clusterId": cluster,
                                              "name": f"test-{uuid.uuid4().hex[:6]}", **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def script_step(text: str, **extra: Any) -> dict[str, Any]:
    return {"runScriptConfig": {"image": "busybox", "shellScript": text, **extra}}


def definition(name: str, *stages: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"name": name,
            "stages": [{"name": f"stage{i}", "steps": steps} for i, steps in enumerate(stages)],
            **top}


def create(api: httpx.Client, project: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def run(api: httpx.Client, project: str, pipeline: str, branch: str | None = None) -> dict[str, Any]:
    body = {"branch": branch} if branch else None
    response = api.post(f"/v3/projects/{project}/pipelines/{pipeline}", params={"action": "run"},
                        json=body)
    assert response.status_code == 200, response.text
    return response.json()


def execution(api: httpx.Client, project: str, execution_id: str) -> dict[str, Any]:
    response = api.get(f"/v3/projects/{project}/pipelineexecutions/{execution_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_state(api: httpx.Client, project: str, execution_id: str, states: tuple[str, ...] = FINISHED,
               timeout: float = 90) -> dict[str, Any]:
    """Poll an execution until its state is one of `states` (one that does not exist yet,
    a webhook delivery's, is waited for too)."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"/v3/projects/{project}/pipelineexecutions/{execution_id}")
        assert response.status_code in (200, 404), response.text
        current = response.json() if response.status_code == 200 else {"state": "not made yet"}
        if current["state"] in states:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} still {current['state']} after {timeout}s")
        time.sleep(0.3)


def step_log(api: httpx.Client, project: str, execution_id: str, stage: int, step: int) -> str:
    response = api.get(f"/v3/projects/{project}/pipelineexecutionlogs/{execution_id}-{stage}-{step}")
    assert response.status_code == 200, response.text
    return response.json()["message"]


def assert_error(response: httpx.Response, status: int, field: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    """The response is Norman's error shape with this status (and field, and code)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["status"] == status
    assert body["message"] and "Traceback" not in body["message"]
    if field is not None:
        assert body.get("fieldName") == field, body
    if code is not None:
        assert body["code"] == code, body
    return body

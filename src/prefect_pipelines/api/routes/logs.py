"""Routes of step logs: /v3/projects/{projectId}/pipelineexecutionlogs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from prefect_pipelines.api import norman
from prefect_pipelines.api.deps import (
    AppSettings,
    Client,
    LogId,
    Project,
    User,
    strict_query,
)
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    PipelineExecutionLog,
    PipelineExecutionLogCollection,
    shape,
)
from prefect_pipelines.errors import InvalidInputError
from prefect_pipelines.services import logs as service
from prefect_pipelines.vocabulary import EXECUTION_ID_PATTERN

router = APIRouter(prefix="/v3/projects/{project_id}/pipelineexecutionlogs",
                   tags=["pipelineexecutionlogs"], responses=ERROR_RESPONSES)

# One server-sent event (OpenAPI 3.1 has no `itemSchema`; a `text/event-stream` schema
# describes each event, as schemathesis reads it).
_SSE = {"content": {"text/event-stream": {"schema": {
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["log", "end"],
                  "description": "log: a record of the step's output; end: the step is over."},
        "data": {"type": "string",
                 "description": "log: the output's lines; end: JSON {stage, step}."},
    }}}},
    "description": "With follow=true: the log as server-sent events."}


def log_resource(request: Request, project_id: str, execution_id: str, stage: int, step: int,
                 message: str) -> dict[str, Any]:
    """A step log in Norman's shape."""
    log_id = f"{execution_id}-{stage}-{step}"
    url = f"{norman.base_url(request)}/v3/projects/{project_id}/pipelineexecutionlogs/{log_id}"
    return norman.resource(
        url, "pipelineExecutionLog",
        {"id": log_id, "projectId": project_id, "pipelineExecutionId": execution_id,
         "stage": stage, "step": step, "message": message},
        editable=False, links={"follow": f"{url}?follow=true"},
    )


@router.get("", response_model=PipelineExecutionLogCollection,
            dependencies=[strict_query("pipelineExecutionId")])
async def list_logs(
    request: Request, project_id: Project, client: Client, user: User, settings: AppSettings,
    pipelineExecutionId: str = Query(  # noqa: N803
        description="The execution whose step logs to list (required: logs are listed per "
        "execution).", json_schema_extra=shape(EXECUTION_ID_PATTERN)),
) -> dict[str, Any]:
    """The logs of every step of one execution."""
    if not pipelineExecutionId:
        raise InvalidInputError("give pipelineExecutionId: logs are listed per execution",
                                field_name="pipelineExecutionId", code="MissingRequired")
    logs = await service.execution_logs(client, project_id, pipelineExecutionId,
                                        settings.log_limit_bytes)
    data = [log_resource(request, project_id, pipelineExecutionId, i, j, log.text())
            for i, j, log in logs]
    return norman.collection(request, "pipelineExecutionLog", data, limit=len(data) or 1,
                             offset=0, total=len(data), filters=filters_of("pipelineExecutionLog"))


@router.get("/{log_id}", response_model=PipelineExecutionLog, responses={200: _SSE},
            dependencies=[strict_query("follow")])
async def read_log(
    request: Request, project_id: Project, log_id: LogId, client: Client, user: User,
    settings: AppSettings,
    follow: bool = Query(default=False, description="Stream the log until the step ends."),
) -> Any:
    """A step's output `<executionId>-<stage>-<step>` (0-based); follow=true streams it."""
    found = await service.find_step(client, project_id, log_id)
    if follow:
        return StreamingResponse(_events(service.follow_step(client, found), found),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    log = await service.read_step_log(client, found.task_run.id if found.task_run else None,
                                      settings.log_limit_bytes)
    return log_resource(request, project_id, found.execution_id, found.stage, found.step, log.text())


async def _events(messages: AsyncIterator[str], found: service.StepOfRun) -> AsyncIterator[bytes]:
    """The records as server-sent events: `log` for each, `end` when the step is over."""
    async for message in messages:
        data = "\n".join(f"data: {line}" for line in message.split("\n"))
        yield f"event: log\n{data}\n\n".encode()
    yield f"event: end\ndata: {json.dumps({'stage': found.stage, 'step': found.step})}\n\n".encode()

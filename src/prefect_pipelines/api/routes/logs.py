"""Routes of step logs: /v3/projects/{projectId}/pipelineexecutionlogs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from prefect.client.schemas.objects import TaskRun

from prefect_pipelines.api import norman
from prefect_pipelines.api.deps import AppSettings, Client, Project, User, strict_query
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    PipelineExecutionLog,
    PipelineExecutionLogCollection,
)
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services import executions as executions_service
from prefect_pipelines.services import logs as service
from prefect_pipelines.translator.executions import parse_log_id, step_positions

router = APIRouter(prefix="/v3/projects/{project_id}/pipelineexecutionlogs",
                   tags=["pipelineexecutionlogs"], responses=ERROR_RESPONSES)

_SSE = {"content": {"text/event-stream": {"schema": {"type": "string"}}},
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
    pipelineExecutionId: str | None = Query(  # noqa: N803
        default=None, description="The execution whose step logs to list (required)."),
) -> dict[str, Any]:
    """The logs of every step of one execution."""
    if not pipelineExecutionId:
        raise InvalidInputError("give pipelineExecutionId: logs are listed per execution",
                                field_name="pipelineExecutionId", code="MissingRequired")
    record = await executions_service.read_execution(client, project_id=project_id,
                                                     execution_id=pipelineExecutionId, task_runs=True)
    positions = step_positions(record.task_runs or [])
    stages = (record.flow_run.parameters or {}).get("pipeline", {}).get("stages") or []
    places = [(i, j) for i, stage in enumerate(stages) for j, _ in enumerate(stage.get("steps") or [])]
    logs = await asyncio.gather(*(
        service.read_step_log(client, getattr(positions.get((i, j)), "id", None),
                              settings.log_limit_bytes)
        for i, j in places
    ))
    data = [log_resource(request, project_id, pipelineExecutionId, i, j, log.text())
            for (i, j), log in zip(places, logs, strict=True)]
    return norman.collection(request, "pipelineExecutionLog", data, limit=len(data) or 1,
                             offset=0, total=len(data))


@router.get("/{log_id}", response_model=PipelineExecutionLog, responses={200: _SSE},
            dependencies=[strict_query("follow")])
async def read_log(
    request: Request, project_id: Project, log_id: str, client: Client, user: User,
    settings: AppSettings,
    follow: bool = Query(default=False, description="Stream the log until the step ends."),
) -> Any:
    """A step's output `<executionId>-<stage>-<step>` (0-based); follow=true streams it."""
    parsed = parse_log_id(log_id)
    if parsed is None:
        raise NotFoundError(f"log {log_id!r} not found: expected <executionId>-<stage>-<step>")
    pipeline_id, run, stage, step = parsed
    execution_id = f"{pipeline_id}-{run}"
    execution = await executions_service.read_execution(client, project_id=project_id,
                                                        execution_id=execution_id, task_runs=True)
    flow_run = execution.flow_run
    stages = (flow_run.parameters or {}).get("pipeline", {}).get("stages") or []
    if stage >= len(stages) or step >= len(stages[stage].get("steps") or []):
        raise NotFoundError(f"execution {execution_id} has no step {stage}-{step}")
    if follow:
        return StreamingResponse(_follow(client, flow_run.id, stage, step),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    task_run = step_positions(execution.task_runs or []).get((stage, step))
    log = await service.read_step_log(client, task_run.id if task_run else None,
                                      settings.log_limit_bytes)
    return log_resource(request, project_id, execution_id, stage, step, log.text())


async def _follow(client: Client, flow_run_id: Any, stage: int, step: int) -> AsyncIterator[bytes]:
    async def is_over(task_run: TaskRun | None) -> bool:
        if task_run is not None and task_run.state is not None:
            return task_run.state.is_final()
        flow_run = await client.read_flow_run(flow_run_id)
        return flow_run.state is not None and flow_run.state.is_final()

    async for message in service.follow_step_log(client, flow_run_id, stage, step, is_over=is_over):
        data = "\n".join(f"data: {line}" for line in message.split("\n"))
        yield f"event: log\n{data}\n\n".encode()
    yield f"event: end\ndata: {json.dumps({'stage': stage, 'step': step})}\n\n".encode()

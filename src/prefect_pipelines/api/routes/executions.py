"""Routes of executions: /v3/projects/{projectId}/pipelineexecutions."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from prefect_pipelines.api import norman
from prefect_pipelines.api.body import no_body
from prefect_pipelines.api.deps import (
    AppSettings,
    Client,
    ExecutionId,
    Limit,
    Marker,
    Project,
    User,
    strict_query,
)
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    PipelineExecution,
    PipelineExecutionCollection,
    State,
    shape,
)
from prefect_pipelines.services import executions as service
from prefect_pipelines.vocabulary import FINISHED, NAME_PATTERN

router = APIRouter(prefix="/v3/projects/{project_id}/pipelineexecutions",
                   tags=["pipelineexecutions"], responses=ERROR_RESPONSES)


def execution_resource(request: Request, record: service.ExecutionRecord) -> dict[str, Any]:
    """An execution in Norman's shape, with the actions its state allows."""
    fields = record.fields()
    base = norman.base_url(request)
    url = f"{base}/v3/projects/{record.project_id}/pipelineexecutions/{fields['id']}"
    actions = ["rerun"] if fields["state"] in FINISHED else ["stop"]
    return norman.resource(
        url, "pipelineExecution", fields, actions=actions, editable=False,
        links={"pipeline": f"{base}/v3/projects/{record.project_id}/pipelines/{record.pipeline_id}",
               "logs": f"{base}/v3/projects/{record.project_id}/pipelineexecutionlogs"
                       f"?pipelineExecutionId={fields['id']}"},
    )


@router.get("", response_model=PipelineExecutionCollection,
            dependencies=[strict_query("pipelineId", "state", "limit", "marker", "sort", "order")])
async def list_executions(
    request: Request, project_id: Project, client: Client, user: User,
    pipelineId: str | None = Query(default=None, description="Only this pipeline's executions.",  # noqa: N803
                                   json_schema_extra=shape(NAME_PATTERN)),
    state: State | None = Query(default=None),
    limit: Limit = None,
    marker: Marker = None,
    sort: Literal["created"] | None = Query(default=None, description="By when it was made "
                                            "(the default)."),
    order: Literal["asc", "desc"] | None = Query(default=None, description="desc (default: "
                                                 "newest first) or asc."),
) -> dict[str, Any]:
    """List executions, newest first (`order=asc`: oldest first)."""
    size, offset = norman.page(limit, marker)
    sorting = norman.Sort(("created",), sort, order, default_order="desc")
    records, total = await service.list_executions(
        client, project_id=project_id, pipeline_id=pipelineId, state=state, limit=size,
        offset=offset, oldest_first=not sorting.descending,
    )
    data = [execution_resource(request, record) for record in records]
    return norman.collection(request, "pipelineExecution", data, limit=size, offset=offset,
                             total=total, filters=filters_of("pipelineExecution"), sort=sorting)


@router.get("/{execution_id}", response_model=PipelineExecution, dependencies=[strict_query()])
async def read_execution(request: Request, project_id: Project, execution_id: ExecutionId,
                         client: Client, user: User) -> dict[str, Any]:
    """Read an execution `<pipelineId>-<run>` with its stages and steps."""
    record = await service.read_execution(client, project_id=project_id, execution_id=execution_id)
    return execution_resource(request, record)


@router.post("/{execution_id}", response_model=PipelineExecution,
             dependencies=[strict_query("action")])
async def execution_action(
    request: Request, project_id: Project, execution_id: ExecutionId, client: Client, user: User,
    settings: AppSettings,
    action: Literal["stop", "rerun"] = Query(description="The action."),
) -> dict[str, Any]:
    """`stop` a waiting or running execution; `rerun` a finished one (returns the new one).
    Neither takes input: no body, or `{}`."""
    await no_body(request, settings, action)
    if action == "stop":
        record = await service.stop_execution(client, project_id=project_id,
                                              execution_id=execution_id)
    else:
        record = await service.rerun_execution(client, project_id=project_id,
                                               execution_id=execution_id, user_id=user)
    return execution_resource(request, record)

"""The webhook receiver of every forge: POST /hooks?pipelineId=<projectId>:<pipelineId> (no token)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from prefect_pipelines.api.body import read_body
from prefect_pipelines.api.deps import AppSettings, Client, strict_query
from prefect_pipelines.api.schemas import ERROR_RESPONSES, HookAnswer
from prefect_pipelines.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from prefect_pipelines.services import deliveries, webhooks
from prefect_pipelines.services.projects import check_project_id

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)
MAX_DELIVERY_BYTES = 25 << 20  # GitHub caps payloads at 25 MB (the largest of the forges)
# Longest a delivery waits on Prefect before it is answered 503: GitHub gives up at 10 s
# (GitLab and Gitea wait longer).
# A record made just as the wait ran out is still run (the sweep finds it), and its
# redelivery is answered "queued already".
ANSWER_SECONDS = 6.0


def _answer(message: str, execution_id: str | None = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"type": "hookResult", "message": message, "executionId": execution_id},
                        status_code=status)


@router.post("/hooks", response_model=HookAnswer, dependencies=[strict_query("pipelineId")],
             responses={202: {"model": HookAnswer, "description": "Recorded: the run is made "
                              "from the record (a new delivery, or a redelivery of one waiting)"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}}}}})
async def receive_delivery(
    request: Request, client: Client, settings: AppSettings,
    pipelineId: str = Query(description="<clusterId>:<projectId>:<pipelineId>"),  # noqa: N803
) -> Any:
    """A forge's delivery: runs the pipeline on a signed push, tag or pull (merge) request it builds.

    Such a delivery is recorded and answered 202; its run is made from the record (in
    arrival order per pipeline). A redelivery runs nothing more: 202 while it waits, 200
    with the execution once its run exists."""
    project_id, _, pipeline_id = pipelineId.rpartition(":")
    try:
        check_project_id(project_id)
    except InvalidInputError:
        raise NotFoundError(f"pipeline {pipelineId!r} not found") from None
    body = await read_body(request, MAX_DELIVERY_BYTES)
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            return await _receive(request, client, project_id, pipeline_id, body)
    except TimeoutError:
        raise ServiceUnavailableError(
            "Prefect is busy or unreachable; redeliver (a redelivery never runs twice)",
            retry_after=5) from None


async def _receive(request: Request, client: Any, project_id: str, pipeline_id: str,
                   body: bytes) -> JSONResponse:
    # A burst to one pipeline reads its token and deployment once a second, not per delivery.
    pipeline = await request.app.state.receivers.get(
        (project_id, pipeline_id), lambda: webhooks.receiver(client, project_id, pipeline_id))
    access = request.app.state.access
    receipt = await deliveries.receive(
        client, pipeline, project_id=project_id, pipeline_id=pipeline_id, headers=request.headers,
        body=body, may_run=lambda user: access.may_run(client, project_id, user),
        dispatcher=request.app.state.deliveries)
    return _answer(receipt.message, receipt.execution_id, receipt.status)

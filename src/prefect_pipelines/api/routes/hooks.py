"""The GitHub webhook receiver: POST /hooks?pipelineId=<projectId>:<pipelineId> (no token)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from prefect_pipelines.api.body import read_body
from prefect_pipelines.api.deps import AppSettings, Client, strict_query
from prefect_pipelines.api.schemas import ERROR_RESPONSES, HookAnswer
from prefect_pipelines.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from prefect_pipelines.services import deliveries, webhooks
from prefect_pipelines.services.projects import check_project_id, refused_run
from prefect_pipelines.translator.mapping import creator_of

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)
MAX_DELIVERY_BYTES = 25 << 20  # GitHub caps payloads at 25 MB
# Longest a delivery waits on Prefect before it is answered 503: GitHub gives up at 10 s.
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
    """A GitHub delivery: runs the pipeline on a signed push or pull request it builds.

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
    webhooks.verify_signature(pipeline.token, body, request.headers.get("x-hub-signature-256"))
    event = request.headers.get("x-github-event")
    if not event:
        raise InvalidInputError("the delivery has no X-GitHub-Event header", field_name="X-GitHub-Event")
    deployment = pipeline.deployment
    try:
        delivery = webhooks.parse_delivery(event, body)
        definition = (deployment.parameters or {}).get("pipeline") or {}
        if deployment.paused:
            raise webhooks.Skip("the pipeline is inactive")
        if not definition.get("triggerWebhook"):
            raise webhooks.Skip("the pipeline's webhook trigger is off")
        webhooks.check_branch(definition, delivery)
    except webhooks.Skip as skip:
        return _answer(str(skip))
    creator = creator_of(deployment.tags)
    if not await request.app.state.access.may_run(client, project_id, creator):
        raise PermissionDeniedError(refused_run(project_id, creator))
    delivery_id = request.headers.get("x-github-delivery") or ""
    if not delivery_id:
        raise InvalidInputError("the delivery has no X-GitHub-Delivery header",
                                field_name="X-GitHub-Delivery")
    dispatcher = request.app.state.deliveries
    outcome, item = await deliveries.record(
        client, deployment=deployment, project_id=project_id, pipeline_id=pipeline_id,
        delivery_id=delivery_id, branch=delivery.branch, trigger=delivery.trigger(),
        owner=dispatcher.owner)
    if item is not None:
        dispatcher.submit(item)
    if outcome.status == "handled":
        return _answer(f"delivery {delivery_id} was handled already: execution "
                       f"{outcome.execution_id}", outcome.execution_id)
    if outcome.status == "queued already":
        return _answer(f"delivery {delivery_id} is queued already", status=202)
    return _answer(f"accepted {delivery.event} of {delivery.branch}: queued to run", status=202)

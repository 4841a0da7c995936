"""The GitHub webhook receiver: POST /hooks?pipelineId=<projectId>:<pipelineId> (no token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from prefect_pipelines.api.body import read_body
from prefect_pipelines.api.deps import AppSettings, Client, strict_query
from prefect_pipelines.api.schemas import ERROR_RESPONSES, HookAnswer
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services import webhooks
from prefect_pipelines.services.pipelines import check_project_id, read_deployment, start_execution
from prefect_pipelines.translator.mapping import execution_name

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)
MAX_DELIVERY_BYTES = 25 << 20  # GitHub caps payloads at 25 MB


def _answer(message: str, execution_id: str | None = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"type": "hookResult", "message": message, "executionId": execution_id},
                        status_code=status)


@router.post("/hooks", response_model=HookAnswer, dependencies=[strict_query("pipelineId")],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}}}}})
async def receive_delivery(
    request: Request, client: Client, settings: AppSettings,
    pipelineId: str = Query(description="<clusterId>:<projectId>:<pipelineId>"),  # noqa: N803
) -> Any:
    """A GitHub delivery: runs the pipeline on a signed push or pull request it builds."""
    project_id, _, pipeline_id = pipelineId.rpartition(":")
    try:
        check_project_id(project_id)
    except InvalidInputError:
        raise NotFoundError(f"pipeline {pipelineId!r} not found") from None
    body = await read_body(request, MAX_DELIVERY_BYTES)
    secrets = await webhooks.load_secrets(client, project_id, pipeline_id)
    webhooks.verify_signature(secrets.token.get_secret_value(), body,
                              request.headers.get("x-hub-signature-256"))
    event = request.headers.get("x-github-event")
    if not event:
        raise InvalidInputError("the delivery has no X-GitHub-Event header", field_name="X-GitHub-Event")
    try:
        delivery = webhooks.parse_delivery(event, body)
        deployment = await read_deployment(client, project_id, pipeline_id)
        definition = (deployment.parameters or {}).get("pipeline") or {}
        if deployment.paused:
            raise webhooks.Skip("the pipeline is inactive")
        if not definition.get("triggerWebhook"):
            raise webhooks.Skip("the pipeline's webhook trigger is off")
        webhooks.check_branch(definition, delivery)
    except webhooks.Skip as skip:
        return _answer(str(skip))
    delivery_id = request.headers.get("x-github-delivery") or ""
    if not delivery_id:
        raise InvalidInputError("the delivery has no X-GitHub-Delivery header",
                                field_name="X-GitHub-Delivery")
    if not await webhooks.claim_delivery(client, deployment.id, delivery_id):
        return _answer(f"delivery {delivery_id} was handled already")
    flow_run = await start_execution(
        client, deployment=deployment, pipeline_id=pipeline_id, branch=delivery.branch,
        trigger={"triggeredBy": "webhook", "event": delivery.event, "commit": delivery.commit,
                 "ref": delivery.ref, "message": delivery.message, "author": delivery.author,
                 "htmlLink": delivery.html_link},
    )
    run = int(flow_run.name.rpartition("-")[2])
    return _answer(f"started {delivery.event} of {delivery.branch}",
                   execution_name(pipeline_id, run), status=201)

"""Routes of pipelines: /v3/projects/{projectId}/pipelines."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from prefect_pipelines.api import norman
from prefect_pipelines.api.badge import badge_svg
from prefect_pipelines.api.body import (
    YAML_TYPES,
    no_body,
    read_body,
    read_definition,
    read_document,
)
from prefect_pipelines.api.deps import (
    AppSettings,
    Client,
    ItemName,
    Limit,
    Marker,
    Project,
    ProjectId,
    User,
    strict_query,
)
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.routes.executions import execution_resource
from prefect_pipelines.api.schemas import (
    BRANCH,
    ERROR_RESPONSES,
    PipelineCollection,
    PipelineExecution,
    PipelineIn,
    RepositoryBranches,
    RepositoryCommit,
    RepositoryConfigs,
    RunInput,
    body_of,
)
from prefect_pipelines.api.schemas import Pipeline as PipelineModel
from prefect_pipelines.errors import (
    ActionNotAvailableError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from prefect_pipelines.services import caches, repository
from prefect_pipelines.services import pipelines as service
from prefect_pipelines.services.executions import ExecutionRecord, last_finished
from prefect_pipelines.services.projects import check_clone_credential, check_project_id
from prefect_pipelines.translator import PipelineSpecError, validate_branch_name
from prefect_pipelines.translator.executions import flow_run_state
from prefect_pipelines.translator.spec import run_variables
from prefect_pipelines.translator.yaml_io import dump_yaml

router = APIRouter(prefix="/v3/projects/{project_id}/pipelines", tags=["pipelines"],
                   responses=ERROR_RESPONSES)

_BODY = body_of(PipelineIn, yaml=True)
# A YAML document whose content is the definition (a mapping, as a client that reads YAML sees it).
_YAML = {"content": {"application/yaml": {"schema": {
    "type": "object", "description": "The pipeline's definition, in the fields POST takes."}}}}


def _self_url(request: Request, project_id: str, pipeline_id: str) -> str:
    return f"{norman.base_url(request)}/v3/projects/{project_id}/pipelines/{pipeline_id}"


def pipeline_resource(request: Request, record: service.PipelineRecord) -> dict[str, Any]:
    """A pipeline in Norman's shape, with the actions its state allows."""
    url = _self_url(request, record.project_id, record.pipeline_id)
    actions = ["run", "deactivate" if record.active else "activate", "clearcache"]
    links = {"executions": f"{norman.base_url(request)}/v3/projects/{record.project_id}"
                           f"/pipelineexecutions?pipelineId={record.pipeline_id}"}
    if not record.from_repository:  # a stored definition can be viewed and exported
        links = {"view": f"{url}/view", "export": f"{url}/export", **links}
    else:  # one read from its repository: the repository's branches and files
        links = {"branches": f"{url}/branches", "configs": f"{url}/configs",
                 "yaml": f"{url}/yaml", **links}
    return norman.resource(url, "pipeline", {"id": record.pipeline_id, **record.fields()},
                           actions=actions, links=links)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PipelineModel,
             openapi_extra=_BODY, dependencies=[strict_query()])
async def create_pipeline(request: Request, project_id: Project, client: Client, user: User,
                          settings: AppSettings) -> dict[str, Any]:
    """Create a pipeline (JSON, or the YAML that `export` gives)."""
    config = await read_definition(request, settings, project_id)
    record = await service.create_pipeline(client, project_id=project_id, config=config,
                                           creator_id=user, settings=settings)
    return pipeline_resource(request, record)


@router.get("", response_model=PipelineCollection,
            dependencies=[strict_query("name", "name_ne", "name_prefix", "state", "state_ne",
                                       "limit", "marker", "sort", "order")])
async def list_pipelines(
    request: Request, project_id: Project, client: Client, user: User,
    name: str | None = Query(default=None, description="Only the pipeline of this name."),
    name_ne: str | None = Query(default=None, description="All but the pipeline of this name."),
    name_prefix: str | None = Query(default=None, description="Only pipelines whose name "
                                    "starts so."),
    state: Literal["active", "inactive"] | None = Query(default=None),
    state_ne: Literal["active", "inactive"] | None = Query(default=None, description="All "
                                                             "but those in this state."),
    limit: Limit = None,
    marker: Marker = None,
    sort: Literal["name"] | None = Query(default=None, description="By name (the default)."),
    order: Literal["asc", "desc"] | None = Query(default=None, description="asc (default) or desc."),
) -> dict[str, Any]:
    """List the project's pipelines."""
    size, offset = norman.page(limit, marker)
    sorting = norman.Sort(("name",), sort, order)
    where = service.PipelineFilter(name=name, name_ne=name_ne, name_prefix=name_prefix,
                                   state=state, state_ne=state_ne)
    records, total = await service.list_pipelines(client, project_id=project_id, where=where,
                                                  limit=size, offset=offset,
                                                  descending=sorting.descending)
    data = [pipeline_resource(request, record) for record in records]
    return norman.collection(request, "pipeline", data, limit=size, offset=offset, total=total,
                             filters=filters_of("pipeline"), sort=sorting)


@router.get("/{pipeline_id}", response_model=PipelineModel, dependencies=[strict_query()])
async def read_pipeline(request: Request, project_id: Project, pipeline_id: ItemName, client: Client,
                        user: User) -> dict[str, Any]:
    """Read a pipeline."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    return await _with_caches(client, pipeline_resource(request, record))


async def _with_caches(client: Client, resource: dict[str, Any]) -> dict[str, Any]:
    """A pipeline's resource with its caches (`caches`, `cacheSize` in bytes)."""
    records = await caches.caches_of(client, resource["projectId"], resource["id"])
    shown = [{field: record.get(field) for field in ("path", "key", "size", "saved", "execution")}
             for record in records]
    return {**resource, "caches": shown, "cacheSize": sum(int(item["size"] or 0) for item in shown)}


_BADGE = {200: {"description": "An SVG badge of the last finished run's state.",
                "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
          304: {"description": "The badge the client has (If-None-Match) is current."}}


@router.get("/{pipeline_id}/badge.svg", response_class=Response, responses=_BADGE,
            dependencies=[strict_query("branch")])
async def pipeline_badge(request: Request, project_id: ProjectId, pipeline_id: ItemName, client: Client,
                         branch: str | None = Query(default=None, json_schema_extra=BRANCH, description="Only runs of "
                                                    "this branch (default: any).")) -> Response:
    """A Shields-style badge of the pipeline's last finished run (`build | success`).
    Without a token only when the pipeline sets `publicBadge: true`."""
    anonymous = "authorization" not in request.headers
    hidden = UnauthorizedError("send Authorization: Bearer <token>: this pipeline's badge is "
                               "not public (publicBadge)")
    try:
        record = await service.read_pipeline(client, project_id=check_project_id(project_id),
                                             pipeline_id=pipeline_id)
    except (NotFoundError, InvalidInputError):
        if anonymous:  # a badge nobody made public says nothing, not even that it exists
            raise hidden from None
        raise
    public = record.definition.get("publicBadge") is True
    if anonymous and not public:
        raise hidden
    last = await last_finished(client, record.deployment.id, branch=_branch(branch, required=False))
    svg = badge_svg("build", flow_run_state(last) if last is not None else "unknown")
    etag = f'"{hashlib.sha256(svg.encode()).hexdigest()[:20]}"'
    headers = {"ETag": etag, "Cache-Control": f"{'public' if public else 'private'}, max-age=30"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(svg, media_type="image/svg+xml", headers=headers)


@router.put("/{pipeline_id}", response_model=PipelineModel, openapi_extra=_BODY,
            dependencies=[strict_query()])
async def update_pipeline(request: Request, project_id: Project, pipeline_id: ItemName,
                          client: Client, user: User, settings: AppSettings) -> dict[str, Any]:
    """Replace a pipeline's definition and triggers."""
    config = await read_definition(request, settings, project_id)
    record = await service.update_pipeline(client, project_id=project_id, pipeline_id=pipeline_id,
                                           config=config, user_id=user, settings=settings)
    request.app.state.receivers.forget((project_id, pipeline_id))
    return pipeline_resource(request, record)


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, dependencies=[strict_query()])
async def delete_pipeline(request: Request, project_id: Project, pipeline_id: ItemName,
                          client: Client, user: User) -> Response:
    """Delete a pipeline (its executions go with it)."""
    await service.delete_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    request.app.state.receivers.forget((project_id, pipeline_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{pipeline_id}", response_model=PipelineModel | PipelineExecution,
             dependencies=[strict_query("action")],
             openapi_extra=body_of(RunInput, required=False))
async def pipeline_action(
    request: Request, project_id: Project, pipeline_id: ItemName, client: Client, user: User,
    settings: AppSettings,
    action: Literal["run", "activate", "deactivate", "clearcache"] = Query(description="The action."),
) -> dict[str, Any]:
    """Run an action: `run` ({branch?}; returns the new execution), `activate`,
    `deactivate`, `clearcache` (its next runs restore no cache)."""
    if action != "run":
        await no_body(request, settings, action)
    if action == "clearcache":
        record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
        await caches.clear_caches(client, project_id, pipeline_id)
        return await _with_caches(client, pipeline_resource(request, record))
    if action == "run":
        body = await read_document(request, settings, allow_empty=True)
        run_input = _run_input(body)
        deployment = await service.read_deployment(client, project_id, pipeline_id)
        await check_clone_credential(client, project_id, deployment)
        flow_run = await service.start_execution(
            client, deployment=deployment, pipeline_id=pipeline_id, branch=run_input.branch,
            trigger={"triggeredBy": "user", "userId": user}, env=run_input.env,
        )
        return execution_resource(request, ExecutionRecord(flow_run, [], project_id, pipeline_id))
    record = await service.set_active(client, project_id=project_id, pipeline_id=pipeline_id,
                                      active=(action == "activate"))
    request.app.state.receivers.forget((project_id, pipeline_id))
    return pipeline_resource(request, record)


def _run_input(body: Any) -> RunInput:
    if body is None:
        return RunInput()
    if not isinstance(body, dict):
        raise InvalidInputError("the run input must be an object like {\"branch\": \"main\"}")
    unknown = sorted(set(body) - {"branch", "env"})
    if unknown:
        raise InvalidInputError(f"{unknown[0]} is not a known field", field_name=unknown[0])
    branch = body.get("branch")
    if branch is not None and not isinstance(branch, str):
        raise InvalidInputError("branch must be a string", field_name="branch")
    try:
        env = run_variables(body.get("env"))
    except PipelineSpecError as exc:
        raise InvalidInputError(exc.message, field_name=exc.path) from None
    return RunInput(branch=branch or None, env=env or None)


def _definition_yaml(record: service.PipelineRecord) -> str:
    if record.from_repository:
        raise ActionNotAvailableError(
            f"pipeline {record.pipeline_id} is read from {record.fields()['repositoryUrl']}: its "
            "definition is the repository's pipeline file, not stored here")
    fields = record.fields()
    document: dict[str, Any] = {"name": record.pipeline_id, "stages": fields["stages"],
                                "timeout": fields["timeout"]}
    for key in ("triggerCronExpression", "triggerCronTimezone"):
        if fields[key]:
            document[key] = fields[key]
    if fields["triggerWebhook"]:
        document["triggerWebhook"] = True
    else:
        document.update({key: True for key in ("triggerWebhookPush", "triggerWebhookPr",
                                                "triggerWebhookTag") if fields[key]})
    if fields["branch"]:
        document["branch"] = fields["branch"]
    return dump_yaml(document)


@router.get("/{pipeline_id}/view", response_class=PlainTextResponse,
            responses={200: _YAML}, dependencies=[strict_query()])
async def view_pipeline(project_id: Project, pipeline_id: ItemName, client: Client, user: User
                        ) -> PlainTextResponse:
    """The definition as YAML text."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    return PlainTextResponse(_definition_yaml(record), media_type="application/yaml")


@router.get("/{pipeline_id}/export", response_class=PlainTextResponse,
            responses={200: _YAML}, dependencies=[strict_query()])
async def export_pipeline(project_id: Project, pipeline_id: ItemName, client: Client, user: User
                          ) -> PlainTextResponse:
    """The definition as a YAML attachment, ready to POST to a pipelines collection."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    return PlainTextResponse(
        _definition_yaml(record), media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{pipeline_id}.yaml"'},
    )



# -- the repository of a pipeline read from it (Rancher 2.1+'s links) -----------------------

_FILE = {"content": {"application/yaml": {"schema": {
    "type": "object", "description": "The repository's pipeline file at the branch's head."}}}}
_FILE_BODY = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "object", "description": "A pipeline file."}}}}}


def _branch(branch: str | None, *, required: bool) -> str | None:
    if branch is None or branch == "":
        if required:
            raise InvalidInputError("give ?branch=", field_name="branch", code="MissingRequired")
        return None
    try:
        return validate_branch_name(branch)
    except PipelineSpecError as exc:
        raise InvalidInputError(exc.message, field_name="branch") from None


@router.get("/{pipeline_id}/branches", response_model=RepositoryBranches,
            dependencies=[strict_query()])
async def pipeline_branches(project_id: Project, pipeline_id: ItemName, client: Client, user: User,
                            settings: AppSettings) -> dict[str, Any]:
    """The branches of a pipeline's repository (a pipeline read from it)."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    return {"branches": await repository.pipeline_branches(client, record, settings)}


@router.get("/{pipeline_id}/configs", response_model=RepositoryConfigs,
            dependencies=[strict_query("branch")])
async def pipeline_configs(
    project_id: Project, pipeline_id: ItemName, client: Client, user: User, settings: AppSettings,
    branch: str | None = Query(default=None, json_schema_extra=BRANCH, description="One branch (default: every branch)."),
) -> dict[str, Any]:
    """Per branch: the definition its pipeline file describes, or why there is none."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    found = await repository.pipeline_configs(client, record, settings, _branch(branch, required=False))
    return {"configs": found}


@router.get("/{pipeline_id}/yaml", response_class=PlainTextResponse, responses={200: _FILE},
            dependencies=[strict_query("branch")])
async def read_pipeline_file(
    project_id: Project, pipeline_id: ItemName, client: Client, user: User, settings: AppSettings,
    branch: str | None = Query(default=None, json_schema_extra=BRANCH, description="The branch (required)."),
) -> PlainTextResponse:
    """The pipeline file of a branch, as the repository holds it."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    name, content, commit = await repository.pipeline_file(
        client, record, settings, _branch(branch, required=True) or "")
    return PlainTextResponse(content.decode(errors="replace"), media_type="application/yaml",
                             headers={"X-Pipeline-File": name, "X-Commit": commit})


@router.put("/{pipeline_id}/yaml", response_model=RepositoryCommit, openapi_extra=_FILE_BODY,
            dependencies=[strict_query("branch")])
async def write_pipeline_file(
    request: Request, project_id: Project, pipeline_id: ItemName, client: Client, user: User,
    settings: AppSettings,
    branch: str | None = Query(default=None, json_schema_extra=BRANCH, description="The branch to commit to (required)."),
) -> dict[str, Any]:
    """Validate a pipeline file and commit it to the branch with your credential (the
    pipeline's must be yours): the next run of that branch runs it."""
    record = await service.read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    target = _branch(branch, required=True) or ""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in YAML_TYPES | {"text/plain"}:
        raise UnsupportedMediaTypeError(f"Content-Type {media!r} is not accepted: send the file as "
                                        "application/yaml")
    content = await read_body(request, settings.max_pipeline_bytes)
    name, commit = await repository.save_pipeline_file(client, record, settings, target, content, user)
    return {"branch": target, "file": name, "commit": commit}

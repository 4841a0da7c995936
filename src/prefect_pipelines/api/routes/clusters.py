"""Routes of cluster pipelines: /v3/clusters/{clusterId}/clusterpipelines."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, status

from prefect_pipelines.api import norman
from prefect_pipelines.api.body import no_body, parse_model, read_document
from prefect_pipelines.api.deps import AppSettings, Client, ClusterId, User, strict_query
from prefect_pipelines.api.routes.sourcecode import credential_resource
from prefect_pipelines.api.schemas import (
    CONFIG_IN,
    ERROR_RESPONSES,
    AuthAppInput,
    AuthUserInput,
    ClusterPipeline,
    ClusterPipelineCollection,
    ClusterPipelineCreate,
    ClusterPipelineIn,
    RevokeAppInput,
    SourceCodeCredential,
    body_of,
)
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services import clusters as service

router = APIRouter(prefix="/v3/clusters/{cluster_id}/clusterpipelines", tags=["clusterpipelines"],
                   responses=ERROR_RESPONSES)

_ACTION_BODY = body_of(AuthAppInput, AuthUserInput, RevokeAppInput, required=False)
_CREATE_BODY = body_of(ClusterPipelineCreate)
_BODY = body_of(ClusterPipelineIn)


def cluster_resource(request: Request, record: service.ClusterRecord) -> dict[str, Any]:
    url = f"{norman.base_url(request)}/v3/clusters/{record.cluster_id}/clusterpipelines/{record.cluster_id}"
    actions = ["authapp", "authuser", "destroy" if record.deploy else "deploy", "revokeapp"]
    return norman.resource(url, "clusterPipeline", record.fields(), actions=actions)


def _configs(body: Any, *, need_secret: bool) -> dict[str, service.ForgeConfigInput]:
    return service.parse_configs(body.model_dump(exclude_none=True), need_secret=need_secret)


def _check_path(cluster_id: str, body_cluster: str | None) -> str:
    service.check_cluster_id(cluster_id)
    if body_cluster is not None and body_cluster != cluster_id:
        raise InvalidInputError(f"clusterId {body_cluster!r} does not match the path ({cluster_id})",
                                field_name="clusterId")
    return cluster_id


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClusterPipeline,
             openapi_extra=_CREATE_BODY, dependencies=[strict_query()])
async def create_cluster_pipeline(request: Request, cluster_id: ClusterId, client: Client, user: User,
                                  settings: AppSettings) -> dict[str, Any]:
    """Create a cluster's pipeline settings (the forges' OAuth apps, deploy)."""
    body = parse_model(ClusterPipelineCreate, await read_document(request, settings))
    _check_path(cluster_id, body.clusterId)
    record = await service.save_cluster(client, cluster_id, deploy=body.deploy or False,
                                        configs=_configs(body, need_secret=True),
                                        settings=settings, exists=False)
    return cluster_resource(request, record)


@router.get("", response_model=ClusterPipelineCollection, dependencies=[strict_query()])
async def list_cluster_pipelines(request: Request, cluster_id: ClusterId, client: Client, user: User
                                 ) -> dict[str, Any]:
    """The cluster's pipeline settings (none until created)."""
    data = [cluster_resource(request, record) for record in await service.list_clusters(client, cluster_id)]
    return norman.collection(request, "clusterPipeline", data, limit=1, offset=0, total=len(data))


@router.get("/{pipeline_id}", response_model=ClusterPipeline, dependencies=[strict_query()])
async def read_cluster_pipeline(request: Request, cluster_id: ClusterId, pipeline_id: ClusterId,
                                client: Client, user: User) -> dict[str, Any]:
    """Read the cluster's pipeline settings (its id is the cluster id)."""
    _same(cluster_id, pipeline_id)
    return cluster_resource(request, await service.read_cluster(client, cluster_id))


@router.put("/{pipeline_id}", response_model=ClusterPipeline, openapi_extra=_BODY,
            dependencies=[strict_query()])
async def update_cluster_pipeline(request: Request, cluster_id: ClusterId, pipeline_id: ClusterId,
                                  client: Client, user: User, settings: AppSettings) -> dict[str, Any]:
    """Update the cluster's settings (omit clientSecret to keep the stored one; a forge
    left out keeps its app)."""
    _same(cluster_id, pipeline_id)
    body = parse_model(ClusterPipelineIn, await read_document(request, settings))
    _check_path(cluster_id, body.clusterId)
    record = await service.save_cluster(client, cluster_id, deploy=body.deploy,
                                        configs=_configs(body, need_secret=False),
                                        settings=settings, exists=True)
    return cluster_resource(request, record)


def _same(cluster_id: str, pipeline_id: str) -> None:
    service.check_cluster_id(cluster_id)
    if pipeline_id != cluster_id:
        raise NotFoundError(f"cluster pipeline {pipeline_id!r} not found in cluster {cluster_id}")


@router.post("/{pipeline_id}", response_model=ClusterPipeline | SourceCodeCredential,
             openapi_extra=_ACTION_BODY, dependencies=[strict_query("action")])
async def cluster_pipeline_action(
    request: Request, cluster_id: ClusterId, pipeline_id: ClusterId, client: Client, user: User,
    settings: AppSettings,
    action: Literal["authapp", "authuser", "deploy", "destroy", "revokeapp"] = Query(),
) -> dict[str, Any]:
    """`authapp` {<kind>Config, code}; `authuser` {sourceCodeType, code} (returns the new
    credential); `deploy` / `destroy` (the cluster's work pool); `revokeapp`
    {sourceCodeType} (forget that forge's app). sourceCodeType defaults to github."""
    _same(cluster_id, pipeline_id)
    if action == "authapp":
        data = await read_document(request, settings)
        if isinstance(data, dict) and not any(name.endswith("Config") for name in data):
            # Rancher's flat authAppInput: a GitHub app's fields beside the code.
            data = {"code": data.get("code"), "githubConfig": {
                k: v for k, v in data.items() if k not in ("code", "sourceCodeType")}}
        body = parse_model(AuthAppInput, data)
        configs = _configs(body, need_secret=False)
        if len(configs) != 1:
            raise InvalidInputError(
                f"authapp takes the config of one forge: one of {', '.join(CONFIG_IN)}",
                field_name=next(iter(configs), "githubConfig") if configs else "githubConfig")
        [config] = configs.values()
        record, _ = await service.authapp(client, cluster_id, config=config, code=body.code,
                                          user_id=user, settings=settings)
        return cluster_resource(request, record)
    if action == "authuser":
        given = parse_model(AuthUserInput, await read_document(request, settings))
        credential = await service.authuser(client, cluster_id, kind=given.sourceCodeType,
                                            code=given.code, user_id=user)
        return credential_resource(request, credential)
    if action in ("deploy", "destroy"):
        await no_body(request, settings, action)
        record = await service.deploy_cluster(client, cluster_id, action == "deploy", settings)
        return cluster_resource(request, record)
    data = await read_document(request, settings) if (await request.body()).strip() else {}
    kind = parse_model(RevokeAppInput, data).sourceCodeType
    return cluster_resource(request, await service.revoke_app(client, cluster_id, kind, settings))

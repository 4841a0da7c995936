"""Routes of notifiers: /v3/notifiers (Rancher's). Admins make them; anyone with a
token lists them, to name them in a pipeline's `notification`; secrets are write-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from prefect_pipelines.api import norman
from prefect_pipelines.api.body import parse_model, read_document
from prefect_pipelines.api.deps import AppSettings, Client, NotifierId, User, strict_query
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    Notifier,
    NotifierCollection,
    NotifierCreate,
    NotifierIn,
    body_of,
)
from prefect_pipelines.errors import InvalidInputError
from prefect_pipelines.services import notifiers as service
from prefect_pipelines.services.projects import check_cluster_id

router = APIRouter(prefix="/v3/notifiers", tags=["notifiers"], responses=ERROR_RESPONSES)
_CREATE_BODY = body_of(NotifierCreate)
_BODY = body_of(NotifierIn)


def notifier_resource(request: Request, info: service.NotifierInfo) -> dict[str, Any]:
    url = f"{norman.base_url(request)}/v3/notifiers/{info.id}"
    return norman.resource(url, "notifier", {
        "id": info.id, "clusterId": info.cluster_id, "name": info.name,
        "creatorId": info.creator_id, "created": info.created,
        service.CONFIG_FIELDS[info.kind]: info.config,
    })


def _kind(body: NotifierIn) -> tuple[str, dict[str, Any]]:
    given = [(kind, getattr(body, field)) for kind, field in service.CONFIG_FIELDS.items()
             if getattr(body, field) is not None]
    if len(given) != 1:
        names = ", ".join(service.CONFIG_FIELDS.values())
        raise InvalidInputError(f"give exactly one of {names}", field_name=(
            given[1][0] + "Config" if len(given) > 1 else "slackConfig"),
            code="MissingRequired" if not given else None)
    kind, config = given[0]
    return kind, config.model_dump(exclude_none=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Notifier,
             openapi_extra=_CREATE_BODY, dependencies=[strict_query()])
async def create_notifier(request: Request, client: Client, user: User,
                          settings: AppSettings) -> dict[str, Any]:
    """Create a notifier `{name, clusterId, <kind>Config}` (admins)."""
    body = parse_model(NotifierCreate, await read_document(request, settings))
    if not body.name or not body.name.strip():
        raise InvalidInputError("name is required", field_name="name", code="MissingRequired")
    cluster = body.clusterId or "local"
    check_cluster_id(cluster)
    kind, config = _kind(body)
    info = await service.create_notifier(client, cluster_id=cluster, name=body.name, kind=kind,
                                         config=config, creator_id=user)
    return notifier_resource(request, info)


@router.get("", response_model=NotifierCollection, dependencies=[strict_query("clusterId")])
async def list_notifiers(request: Request, client: Client, user: User,
                         clusterId: str | None = Query(default=None)) -> dict[str, Any]:  # noqa: N803
    """The notifiers (of `clusterId`): ids to name in a pipeline's notification."""
    data = [notifier_resource(request, info)
            for info in await service.list_notifiers(client, clusterId)]
    return norman.collection(request, "notifier", data, limit=len(data) or 1, offset=0,
                             total=len(data), filters=filters_of("notifier"))


@router.get("/{notifier_id}", response_model=Notifier, dependencies=[strict_query()])
async def read_notifier(request: Request, notifier_id: NotifierId, client: Client, user: User) -> dict[str, Any]:
    """One notifier (its secrets are never shown)."""
    return notifier_resource(request, await service.read_notifier(client, notifier_id))


@router.put("/{notifier_id}", response_model=Notifier, openapi_extra=_BODY,
            dependencies=[strict_query()])
async def update_notifier(request: Request, notifier_id: NotifierId, client: Client, user: User,
                          settings: AppSettings) -> dict[str, Any]:
    """Replace a notifier's settings (admins; a secret left out keeps the stored one)."""
    body = parse_model(NotifierIn, await read_document(request, settings))
    current = await service.read_notifier(client, notifier_id)
    if body.clusterId is not None and body.clusterId != current.cluster_id:
        raise InvalidInputError("a notifier cannot move to another cluster", field_name="clusterId")
    if body.name is not None and not body.name.strip():
        raise InvalidInputError("name must not be empty", field_name="name")
    kind, config = _kind(body)
    info = await service.update_notifier(client, notifier_id, name=body.name, kind=kind,
                                         config=config)
    return notifier_resource(request, info)


@router.delete("/{notifier_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               dependencies=[strict_query()])
async def delete_notifier(notifier_id: NotifierId, client: Client, user: User) -> Response:
    """Delete a notifier (admins): pipelines that name it log that it is gone."""
    await service.delete_notifier(client, notifier_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

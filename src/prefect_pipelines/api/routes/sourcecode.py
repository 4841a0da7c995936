"""Routes of source code credentials and repositories (each user sees only their own)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from prefect_pipelines.api import norman
from prefect_pipelines.api.body import no_body
from prefect_pipelines.api.deps import AppSettings, Client, User, strict_query
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    SourceCodeCredential,
    SourceCodeCredentialCollection,
    SourceCodeRepository,
    SourceCodeRepositoryCollection,
)
from prefect_pipelines.services import sourcecode as service

credentials = APIRouter(prefix="/v3/sourcecodecredentials", tags=["sourcecodecredentials"],
                        responses=ERROR_RESPONSES)
repositories = APIRouter(prefix="/v3/sourcecoderepositories", tags=["sourcecoderepositories"],
                         responses=ERROR_RESPONSES)


def credential_resource(request: Request, record: service.CredentialRecord) -> dict[str, Any]:
    """A credential: never its token."""
    base = norman.base_url(request)
    url = f"{base}/v3/sourcecodecredentials/{record.id}"
    return norman.resource(
        url, "sourceCodeCredential", {**record.fields(), "creatorId": record.user_id},
        actions=["refreshrepos"], editable=False,
        links={"remove": url, "repos": f"{base}/v3/sourcecoderepositories?sourceCodeCredentialId={record.id}",
               "avatar": record.avatar_url, "profile": record.html_url},
    )


def repository_resource(request: Request, repository: dict[str, Any]) -> dict[str, Any]:
    base = norman.base_url(request)
    fields = {key: repository[key] for key in (
        "id", "clusterId", "kind", "userId", "sourceCodeCredentialId", "url", "permissions",
        "language", "defaultBranch")}
    fields["creatorId"] = repository["userId"]
    url = f"{base}/v3/sourcecoderepositories/{repository['id']}"
    return norman.resource(url, "sourceCodeRepository", fields, editable=False, links={
        "sourceCodeCredential": f"{base}/v3/sourcecodecredentials/{repository['sourceCodeCredentialId']}",
        "html": repository.get("htmlUrl", ""),
    })


@credentials.get("", response_model=SourceCodeCredentialCollection,
                 dependencies=[strict_query("creatorId")])
async def list_credentials(request: Request, client: Client, user: User,
                           creatorId: str | None = Query(default=None)) -> dict[str, Any]:  # noqa: N803
    """The caller's linked forge accounts."""
    records = await service.list_credentials(client, user_id=user, creator_id=creatorId)
    data = [credential_resource(request, record) for record in records]
    return norman.collection(request, "sourceCodeCredential", data, limit=len(data) or 1,
                             offset=0, total=len(data), filters=filters_of("sourceCodeCredential"))


@credentials.get("/{credential_id}", response_model=SourceCodeCredential,
                 dependencies=[strict_query()])
async def read_credential(request: Request, credential_id: str, client: Client, user: User
                          ) -> dict[str, Any]:
    """One of the caller's credentials."""
    record = await service.read_credential(client, user_id=user, identifier=credential_id)
    return credential_resource(request, record)


@credentials.delete("/{credential_id}", status_code=status.HTTP_204_NO_CONTENT,
                    response_class=Response, dependencies=[strict_query()])
async def delete_credential(credential_id: str, client: Client, user: User) -> Response:
    """Forget a linked account (its token and repository list)."""
    await service.delete_credential(client, user_id=user, identifier=credential_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@credentials.post("/{credential_id}", response_model=SourceCodeRepositoryCollection,
                  dependencies=[strict_query("action")])
async def credential_action(request: Request, credential_id: str, client: Client, user: User,
                            settings: AppSettings,
                            action: Literal["refreshrepos"] = Query()) -> dict[str, Any]:
    """`refreshrepos`: list the account's repositories from its forge again (no input:
    no body, or `{}`)."""
    await no_body(request, settings, action)
    found = await service.refresh_repositories(client, user_id=user, identifier=credential_id)
    data = [repository_resource(request, repository) for repository in found]
    return norman.collection(request, "sourceCodeRepository", data, limit=len(data) or 1,
                             offset=0, total=len(data))


@repositories.get("", response_model=SourceCodeRepositoryCollection,
                  dependencies=[strict_query("creatorId", "sourceCodeCredentialId")])
async def list_repositories(
    request: Request, client: Client, user: User,
    creatorId: str | None = Query(default=None),  # noqa: N803
    sourceCodeCredentialId: str | None = Query(default=None),  # noqa: N803
) -> dict[str, Any]:
    """The repositories of the caller's credentials, as last listed from their forges."""
    found = await service.list_repositories(client, user_id=user, creator_id=creatorId,
                                            credential=sourceCodeCredentialId)
    data = [repository_resource(request, repository) for repository in found]
    return norman.collection(request, "sourceCodeRepository", data, limit=len(data) or 1,
                             offset=0, total=len(data), filters=filters_of("sourceCodeRepository"))


@repositories.get("/{repository_id}", response_model=SourceCodeRepository,
                  dependencies=[strict_query()])
async def read_repository(request: Request, repository_id: str, client: Client, user: User
                          ) -> dict[str, Any]:
    """One repository of the caller's."""
    return repository_resource(request, await service.read_repository(client, user_id=user,
                                                                       identifier=repository_id))

"""Routes of projects, their members, secrets and registry logins: /v3/projects,
/v3/projectroletemplatebindings, /v3/projects/{id}/secrets, /v3/projects/{id}/dockercredentials."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from prefect_pipelines.api import norman
from prefect_pipelines.api.access import Need, caller, require
from prefect_pipelines.api.body import parse_model, read_document
from prefect_pipelines.api.deps import AppSettings, Client, ItemName, Project, strict_query
from prefect_pipelines.api.discovery import filters_of
from prefect_pipelines.api.schemas import (
    ERROR_RESPONSES,
    BindingIn,
    DockerCredentialCollection,
    DockerCredentialCreate,
    DockerCredentialIn,
    ProjectCollection,
    ProjectCreate,
    ProjectIn,
    ProjectRoleTemplateBinding,
    ProjectRoleTemplateBindingCollection,
    ProjectSecretCollection,
    SecretCreate,
    SecretIn,
    body_of,
)
from prefect_pipelines.api.schemas import DockerCredential as DockerCredentialModel
from prefect_pipelines.api.schemas import Project as ProjectModel
from prefect_pipelines.api.schemas import ProjectSecret as ProjectSecretModel
from prefect_pipelines.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from prefect_pipelines.services import dockercredentials as docker_service
from prefect_pipelines.services import pipelines as pipeline_service
from prefect_pipelines.services import projects as service
from prefect_pipelines.services import secrets as secret_service

router = APIRouter(prefix="/v3/projects", tags=["projects"], responses=ERROR_RESPONSES)
bindings = APIRouter(prefix="/v3/projectroletemplatebindings", tags=["projectroletemplatebindings"],
                     responses=ERROR_RESPONSES)
_CREATE_BODY = body_of(ProjectCreate)
_BODY = body_of(ProjectIn)
_BINDING_BODY = body_of(BindingIn)


def project_resource(request: Request, project: service.Project) -> dict[str, Any]:
    base = f"{norman.base_url(request)}/v3/projects/{project.id}"
    return norman.resource(base, "project", {
        "id": project.id, "clusterId": project.cluster_id, "name": project.name,
        "description": project.description, "creatorId": project.creator_id,
        "created": project.created, "settings": project.settings,
    }, links={name: f"{base}/{name}" for name in (
        "pipelines", "pipelineexecutions", "pipelineexecutionlogs", "secrets",
        "dockercredentials", "schemas")} | {
        "projectroletemplatebindings":
            f"{norman.base_url(request)}/v3/projectroletemplatebindings?projectId={project.id}"})


def binding_resource(request: Request, binding: service.Binding) -> dict[str, Any]:
    url = f"{norman.base_url(request)}/v3/projectroletemplatebindings/{binding.id}"
    return norman.resource(url, "projectRoleTemplateBinding", {
        "id": binding.id, "projectId": binding.project_id, "userId": binding.user_id,
        "roleTemplateId": binding.role, "created": binding.created,
    }, links={"project": f"{norman.base_url(request)}/v3/projects/{binding.project_id}"})


def _settings(body: ProjectIn, request: Request, admin: bool) -> dict[str, Any] | None:
    if body.settings is None:
        return None
    settings = body.settings.model_dump(exclude_none=True)
    if "allowPrivileged" in settings and not admin:
        raise PermissionDeniedError("only an admin may change allowPrivileged")
    return settings


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectModel,
             openapi_extra=_CREATE_BODY, dependencies=[strict_query()])
async def create_project(request: Request, client: Client, settings: AppSettings) -> dict[str, Any]:
    """Create a project `{clusterId, name, description}`; the caller becomes its owner."""
    who = await caller(request)
    body = parse_model(ProjectCreate, await read_document(request, settings))
    project_settings = _settings(body, request, who.admin)  # refused before anything is made
    project = await service.create_project(
        client, cluster_id=body.clusterId or "local", name=body.name,
        description=body.description or "", creator_id=who.user_id)
    if project_settings:
        project = await service.update_project(client, project, name=None, description=None,
                                               settings=project_settings)
    return project_resource(request, project)


@router.get("", response_model=ProjectCollection, dependencies=[strict_query()])
async def list_projects(request: Request, client: Client) -> dict[str, Any]:
    """The projects the caller holds a role in (every project for an admin)."""
    who = await caller(request)
    found = await service.projects_of(client, who.user_id, admin=who.admin)
    data = [project_resource(request, project) for project in found]
    return norman.collection(request, "project", data, limit=len(data) or 1, offset=0,
                             total=len(data))


async def _project(client: Any, project_id: str) -> service.Project:
    project = await service.read_project(client, project_id)
    if project is None:
        raise NotFoundError(f"project {project_id!r} not found")
    return project


@router.get("/{project_id}", response_model=ProjectModel, dependencies=[strict_query()])
async def read_project(request: Request, project_id: Project, client: Client) -> dict[str, Any]:
    """One project."""
    return project_resource(request, await _project(client, project_id))


@router.put("/{project_id}", response_model=ProjectModel, openapi_extra=_BODY,
            dependencies=[strict_query()])
async def update_project(request: Request, project_id: Project, client: Client,
                         settings: AppSettings) -> dict[str, Any]:
    """Change a project's name, description or settings (owners; allowPrivileged: admins)."""
    who = await caller(request)
    body = parse_model(ProjectIn, await read_document(request, settings))
    project = await _project(client, project_id)
    if body.clusterId is not None and body.clusterId != project.cluster_id:
        raise InvalidInputError("a project's clusterId cannot change", field_name="clusterId")
    changed = _settings(body, request, who.admin)
    project = await service.update_project(client, project, name=body.name,
                                           description=body.description, settings=changed)
    if changed and "executorQuota" in changed:
        await pipeline_service.apply_quota(client, project_id, settings)
    return project_resource(request, project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               dependencies=[strict_query()])
async def delete_project(request: Request, project_id: Project, client: Client) -> Response:
    """Delete a project that holds no pipelines (owners)."""
    project = await _project(client, project_id)
    _, count = await pipeline_service.list_pipelines(client, project_id=project_id, limit=1, offset=0)
    for binding in await service.delete_project(client, project, pipelines=count):
        request.app.state.access.forget(project_id, binding.user_id)
    # What it kept goes with it: a project made later under the same id starts empty.
    await secret_service.SECRETS.delete_all(client, project_id)
    await docker_service.DOCKER_CREDENTIALS.delete_all(client, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- role bindings -------------------------------------------------------------------------

@bindings.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectRoleTemplateBinding,
               openapi_extra=_BINDING_BODY, dependencies=[strict_query()])
async def create_binding(request: Request, client: Client, settings: AppSettings) -> dict[str, Any]:
    """Give a user a role in a project (owners and admins)."""
    body = parse_model(BindingIn, await read_document(request, settings))
    await require(request, body.projectId, Need.OWNER)
    binding = await service.grant(client, body.projectId, body.userId, body.roleTemplateId)
    return binding_resource(request, binding)


@bindings.get("", response_model=ProjectRoleTemplateBindingCollection,
              dependencies=[strict_query("projectId", "userId")])
async def list_bindings(request: Request, client: Client,
                        projectId: str | None = Query(default=None),  # noqa: N803
                        userId: str | None = Query(default=None)) -> dict[str, Any]:  # noqa: N803
    """Bindings of the projects the caller holds a role in, by project and user."""
    who = await caller(request)
    if projectId is not None:
        await require(request, projectId, Need.READ)
        found = await service.bindings(client, project_id=projectId, user_id=userId)
    elif who.admin:
        found = await service.bindings(client, user_id=userId)
    else:
        visible = {b.project_id for b in await service.bindings(client, user_id=who.user_id)}
        found = [b for project_id in sorted(visible)
                 for b in await service.bindings(client, project_id=project_id, user_id=userId)]
    data = [binding_resource(request, binding) for binding in found]
    return norman.collection(request, "projectRoleTemplateBinding", data, limit=len(data) or 1,
                             offset=0, total=len(data), filters=filters_of("projectRoleTemplateBinding"))


@bindings.get("/{binding_id}", response_model=ProjectRoleTemplateBinding,
              dependencies=[strict_query()])
async def read_binding(request: Request, binding_id: str, client: Client) -> dict[str, Any]:
    """One binding."""
    project_id, _ = service.split_binding_id(binding_id)
    await require(request, project_id, Need.READ)
    return binding_resource(request, await service.read_binding(client, binding_id))


@bindings.delete("/{binding_id}", status_code=status.HTTP_204_NO_CONTENT,
                 response_class=Response, dependencies=[strict_query()])
async def delete_binding(request: Request, binding_id: str, client: Client) -> Response:
    """Remove a user's role (owners and admins; the last owner stays)."""
    project_id, _ = service.split_binding_id(binding_id)
    await require(request, project_id, Need.OWNER)
    binding = await service.read_binding(client, binding_id)
    await service.remove_binding(client, binding)
    request.app.state.access.forget(binding.project_id, binding.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- project secrets -----------------------------------------------------------------------

secrets = APIRouter(prefix="/v3/projects/{project_id}/secrets", tags=["secrets"],
                    responses=ERROR_RESPONSES)
_NEW_SECRET_BODY = body_of(SecretCreate)
_SECRET_BODY = body_of(SecretIn)


def secret_resource(request: Request, info: secret_service.SecretInfo) -> dict[str, Any]:
    url = f"{norman.base_url(request)}/v3/projects/{info.project_id}/secrets/{info.name}"
    return norman.resource(url, "projectSecret", {
        "id": info.name, "projectId": info.project_id, "name": info.name, "keys": info.keys})


@secrets.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectSecretModel,
              openapi_extra=_NEW_SECRET_BODY, dependencies=[strict_query()])
async def create_secret(request: Request, project_id: Project, client: Client,
                        settings: AppSettings) -> dict[str, Any]:
    """A secret `{name, data: {KEY: value}}` for the project's `envFrom`; values are never shown."""
    body = parse_model(SecretCreate, await read_document(request, settings))
    info = await secret_service.put_secret(client, project_id, body.name, body.data, create=True)
    return secret_resource(request, info)


@secrets.get("", response_model=ProjectSecretCollection, dependencies=[strict_query()])
async def list_secrets(request: Request, project_id: Project, client: Client) -> dict[str, Any]:
    """The project's secrets: names and keys."""
    data = [secret_resource(request, info) for info in await secret_service.list_secrets(client, project_id)]
    return norman.collection(request, "projectSecret", data, limit=len(data) or 1, offset=0,
                             total=len(data))


@secrets.get("/{name}", response_model=ProjectSecretModel, dependencies=[strict_query()])
async def read_secret(request: Request, project_id: Project, name: ItemName, client: Client) -> dict[str, Any]:
    """One secret: its name and keys."""
    return secret_resource(request, await secret_service.read_secret(client, project_id, name))


@secrets.put("/{name}", response_model=ProjectSecretModel, openapi_extra=_SECRET_BODY,
             dependencies=[strict_query()])
async def update_secret(request: Request, project_id: Project, name: ItemName, client: Client,
                        settings: AppSettings) -> dict[str, Any]:
    """Replace a secret's values."""
    body = parse_model(SecretIn, await read_document(request, settings))
    if body.name is not None and body.name != name:
        raise InvalidInputError("a secret cannot be renamed", field_name="name")
    info = await secret_service.put_secret(client, project_id, name, body.data, create=False)
    return secret_resource(request, info)


@secrets.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
                dependencies=[strict_query()])
async def delete_secret(project_id: Project, name: ItemName, client: Client) -> Response:
    """Delete a secret (pipelines that name it fail at their step until it exists again)."""
    await secret_service.delete_secret(client, project_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- project docker credentials --------------------------------------------------------------

dockercredentials = APIRouter(prefix="/v3/projects/{project_id}/dockercredentials",
                              tags=["dockercredentials"], responses=ERROR_RESPONSES)
_NEW_DOCKER_BODY = body_of(DockerCredentialCreate)
_DOCKER_BODY = body_of(DockerCredentialIn)


def docker_resource(request: Request, info: docker_service.DockerCredentialInfo) -> dict[str, Any]:
    url = f"{norman.base_url(request)}/v3/projects/{info.project_id}/dockercredentials/{info.name}"
    return norman.resource(url, "dockerCredential", {
        "id": info.name, "projectId": info.project_id, "name": info.name,
        "registries": {host: {"username": username} for host, username in sorted(info.registries.items())}})


def _logins(body: DockerCredentialIn) -> dict[str, dict[str, str | None]]:
    return {host: login.model_dump() for host, login in body.registries.items()}


@dockercredentials.post("", status_code=status.HTTP_201_CREATED, response_model=DockerCredentialModel,
                        openapi_extra=_NEW_DOCKER_BODY, dependencies=[strict_query()])
async def create_docker_credential(request: Request, project_id: Project, client: Client,
                                   settings: AppSettings) -> dict[str, Any]:
    """Registry logins `{name, registries: {host: {username, password}}}` that the
    project's steps pull and push with; passwords are never shown."""
    body = parse_model(DockerCredentialCreate, await read_document(request, settings))
    info = await docker_service.put_credential(client, project_id, body.name, _logins(body), create=True)
    return docker_resource(request, info)


@dockercredentials.get("", response_model=DockerCredentialCollection, dependencies=[strict_query()])
async def list_docker_credentials(request: Request, project_id: Project, client: Client) -> dict[str, Any]:
    """The project's docker credentials: names, registries and usernames."""
    data = [docker_resource(request, info)
            for info in await docker_service.list_credentials(client, project_id)]
    return norman.collection(request, "dockerCredential", data, limit=len(data) or 1, offset=0,
                             total=len(data))


@dockercredentials.get("/{name}", response_model=DockerCredentialModel, dependencies=[strict_query()])
async def read_docker_credential(request: Request, project_id: Project, name: ItemName,
                                 client: Client) -> dict[str, Any]:
    """One docker credential: its registries and usernames."""
    return docker_resource(request, await docker_service.read_credential(client, project_id, name))


@dockercredentials.put("/{name}", response_model=DockerCredentialModel, openapi_extra=_DOCKER_BODY,
                       dependencies=[strict_query()])
async def update_docker_credential(request: Request, project_id: Project, name: ItemName, client: Client,
                                   settings: AppSettings) -> dict[str, Any]:
    """Replace a docker credential's logins (a login without a password keeps the stored one)."""
    body = parse_model(DockerCredentialIn, await read_document(request, settings))
    if body.name is not None and body.name != name:
        raise InvalidInputError("a docker credential cannot be renamed", field_name="name")
    info = await docker_service.put_credential(client, project_id, name, _logins(body), create=False)
    return docker_resource(request, info)


@dockercredentials.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
                          dependencies=[strict_query()])
async def delete_docker_credential(project_id: Project, name: ItemName, client: Client) -> Response:
    """Delete a docker credential (the project's pulls and pushes then go without its logins)."""
    await docker_service.delete_credential(client, project_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

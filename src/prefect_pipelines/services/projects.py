"""Projects, their members and admins: who may read, change or run what.

A project is a `PipelinesProject` block document `project--<cluster>--<project>`; a
member's role is a `ProjectRoleBinding` document `binding--<cluster>--<project>--<digest
of the user id>`, one per project and user, so the unique block name makes a grant
atomic. A user is an admin when their `PipelinesUser` document says so. Projects that
hold pipelines from before projects existed are adopted (`adopt`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterTags,
    FlowFilter,
    FlowFilterName,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from prefect_pipelines.blocks import PipelinesProject, PipelinesUser, ProjectRoleBinding
from prefect_pipelines.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NotUniqueError,
    PermissionDeniedError,
)
from prefect_pipelines.services.dockercredentials import adopt_operator_logins, registry_host
from prefect_pipelines.services.documents import block_ids, find_documents
from prefect_pipelines.services.secrets import put_secret
from prefect_pipelines.services.tokens import check_user_id
from prefect_pipelines.translator.errors import ImageTagError, PipelineSpecError
from prefect_pipelines.translator.mapping import StoredDefinition, creator_of
from prefect_pipelines.translator.plan import split_reference
from prefect_pipelines.translator.quantities import cpu_quantity, memory_quantity
from prefect_pipelines.translator.spec import check_requests
from prefect_pipelines.vocabulary import (
    CLUSTER_ID_PATTERN,
    FLOW_NAME,
    MAX_ID,
    PROJECT_ID_PATTERN,
    TAG_PROJECT,
    split_deployment_name,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_log = logging.getLogger(__name__)
# Rancher's built-in project roles, weakest first.
ROLES = ("read-only", "project-member", "project-owner")
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
_CLUSTER = re.compile(CLUSTER_ID_PATTERN)
_PROJECT = re.compile(PROJECT_ID_PATTERN)
_ID_CHARS = string.ascii_lowercase + string.digits
_PAGE = 200
_odd: set[str] = set()
MAX_QUOTA = 100_000
SETTINGS = {"executorQuota": int, "cpuRequest": str, "cpuLimit": str, "memoryRequest": str,
            "memoryLimit": str, "allowPrivileged": bool}
_QUANTITIES = {"cpuRequest": cpu_quantity, "cpuLimit": cpu_quantity,
               "memoryRequest": memory_quantity, "memoryLimit": memory_quantity}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_project_id(project_id: str) -> str:
    """A project id is `<clusterId>:<projectId>`, each lowercase letters, digits, dashes."""
    if not _PROJECT.fullmatch(project_id):
        raise InvalidInputError(
            f"{project_id!r} is not a project id: expected <clusterId>:<projectId>, "
            "each of lowercase letters, digits and single dashes",
            field_name="projectId",
        )
    return project_id


def check_cluster_id(cluster_id: str) -> str:
    """A cluster id is lowercase letters, digits and single dashes, at most 63 of them."""
    if not _CLUSTER.fullmatch(cluster_id) or len(cluster_id) > MAX_ID:
        raise InvalidInputError(f"{cluster_id!r} is not a cluster id: lowercase letters, "
                                f"digits and single dashes, at most {MAX_ID}",
                                field_name="clusterId")
    return cluster_id


def at_least(role: str | None, wanted: str) -> bool:
    """Whether `role` grants what `wanted` does (owner > member > read-only)."""
    return role is not None and _RANK.get(role, 0) >= _RANK[wanted]


def _project_block(project_id: str) -> str:
    cluster, _, project = project_id.partition(":")
    return f"project--{cluster}--{project}"


def _user_digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


def _binding_block(project_id: str, user_id: str) -> str:
    return f"binding--{_project_block(project_id)[len('project--'):]}--{_user_digest(user_id)}"


def _user_block(user_id: str) -> str:
    return f"user--{_user_digest(user_id)}"


async def _create(client: PrefectClient, block: type[Block], name: str, data: dict[str, Any]) -> None:
    """Create a block document; ObjectAlreadyExists when the name is taken."""
    type_id, schema_id = await block_ids(client, block)
    await client.create_block_document(BlockDocumentCreate(
        name=name, data=data, block_type_id=type_id, block_schema_id=schema_id))


async def _read(client: PrefectClient, block: type[Block], name: str) -> tuple[Any, dict[str, Any]] | None:
    """(document id, data) of a block document, None when there is none."""
    try:
        document = await client.read_block_document_by_name(name, block.get_block_type_slug())
    except ObjectNotFound:
        return None
    return document.id, dict(document.data)


async def _list(client: PrefectClient, block: type[Block], contains: str) -> list[tuple[Any, dict[str, Any]]]:
    """(id, data) of every document of a block type whose name contains `contains`."""
    return [(document["id"], document["data"]) for document in await find_documents(client, block, contains)]


# -- projects ------------------------------------------------------------------------------

@dataclass
class Project:
    """A project as the /v3 API shows it."""

    id: str
    name: str
    description: str = ""
    creator_id: str = ""
    created: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster_id(self) -> str:
        return self.id.partition(":")[0]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Project:
        return cls(id=data["project_id"], name=data.get("name") or data["project_id"],
                   description=data.get("description") or "", creator_id=data.get("creator_id") or "",
                   created=data.get("created") or "", settings=dict(data.get("settings") or {}))

    def data(self) -> dict[str, Any]:
        return {"project_id": self.id, "name": self.name, "description": self.description,
                "creator_id": self.creator_id, "created": self.created, "settings": self.settings}


def check_settings(settings: Any) -> dict[str, Any]:
    """Project settings: known keys of the right types (a 422 naming the key otherwise)."""
    if not isinstance(settings, dict):
        raise InvalidInputError("settings must be an object", field_name="settings")
    for key, value in settings.items():
        kind = SETTINGS.get(key)
        if kind is None:
            raise InvalidInputError(f"unknown setting {key!r}; known: {', '.join(SETTINGS)}",
                                    field_name=f"settings.{key}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidInputError(f"settings.{key} must be a {kind.__name__}",
                                    field_name=f"settings.{key}")
        if key == "executorQuota" and not -MAX_QUOTA <= value <= MAX_QUOTA:
            # Prefect stores a queue's limit as a 32-bit integer (PostgreSQL refused a
            # larger one with a 500); far more executions than any project runs at once.
            raise InvalidInputError(
                f"settings.executorQuota must be between {-MAX_QUOTA} and {MAX_QUOTA} "
                "(0 or less: no limit)", field_name="settings.executorQuota")
        if key in _QUANTITIES:
            try:
                _QUANTITIES[key](value)
            except PipelineSpecError as exc:
                raise InvalidInputError(f"settings.{key}: {exc.message}",
                                        field_name=f"settings.{key}") from None
    return dict(settings)


def check_step_defaults(settings: dict[str, Any]) -> None:
    """A project's requests are not over its limits (its settings as they will be)."""
    try:
        check_requests(settings.get("cpuRequest"), settings.get("cpuLimit"),
                       settings.get("memoryRequest"), settings.get("memoryLimit"))
    except PipelineSpecError as exc:
        raise InvalidInputError(f"settings.{exc.path}: {exc.message}",
                                field_name=f"settings.{exc.path}") from None


async def create_project(client: PrefectClient, *, cluster_id: str, name: str,
                         description: str, creator_id: str) -> Project:
    """A new project `<clusterId>:p-<5 letters or digits>`; its creator is its owner."""
    check_cluster_id(cluster_id)
    if not name.strip():
        raise InvalidInputError("name is required", field_name="name")
    for _ in range(20):
        project = Project(id=f"{cluster_id}:p-{''.join(secrets.choice(_ID_CHARS) for _ in range(5))}",
                          name=name, description=description, creator_id=creator_id, created=_now())
        try:
            await _create(client, PipelinesProject, _project_block(project.id), project.data())
            break
        except ObjectAlreadyExists:
            continue
    else:  # pragma: no cover - 36^5 ids
        raise ConflictError("no free project id; try again")
    await grant(client, project.id, creator_id, "project-owner")
    return project


async def read_project(client: PrefectClient, project_id: str) -> Project | None:
    found = await _read(client, PipelinesProject, _project_block(project_id))
    return Project.from_data(found[1]) if found else None


async def projects_of(client: PrefectClient, user_id: str, *, admin: bool) -> list[Project]:
    """The projects a user holds a role in (every project for an admin)."""
    documents = await _list(client, PipelinesProject, "project--")
    projects = [Project.from_data(data) for _, data in documents]
    if admin:
        return projects
    mine = {binding.project_id for binding in await bindings(client, user_id=user_id)}
    return [project for project in projects if project.id in mine]


async def update_project(client: PrefectClient, project: Project, *, name: str | None,
                         description: str | None, settings: dict[str, Any] | None) -> Project:
    if name is not None:
        if not name.strip():
            raise InvalidInputError("name is required", field_name="name")
        project.name = name
    if description is not None:
        project.description = description
    if settings is not None:
        merged = {**project.settings, **check_settings(settings)}
        check_step_defaults(merged)
        project.settings = merged
    found = await _read(client, PipelinesProject, _project_block(project.id))
    if found is None:
        raise NotFoundError(f"project {project.id!r} not found")
    await client.update_block_document(found[0], BlockDocumentUpdate(data=project.data()))
    return project


async def delete_project(client: PrefectClient, project: Project, *, pipelines: int) -> list[Binding]:
    """Delete a project, then its bindings (409 while it holds pipelines); the bindings
    removed. Its record goes first: a role in a project without one grants nothing."""
    if pipelines:
        raise ConflictError(f"project {project.id} still has {pipelines} pipeline(s): delete them first")
    await _delete(client, PipelinesProject, _project_block(project.id))
    removed = await bindings(client, project_id=project.id)
    for binding in removed:
        await _delete(client, ProjectRoleBinding, _binding_block(project.id, binding.user_id))
    return removed


async def _delete(client: PrefectClient, block: type[Block], name: str) -> None:
    found = await _read(client, block, name)
    if found is not None:
        try:
            await client.delete_block_document(found[0])
        except ObjectNotFound:
            pass


# -- role bindings -------------------------------------------------------------------------

@dataclass
class Binding:
    """A user's role in a project; its id is `<projectId>:<digest of the user>`."""

    project_id: str
    user_id: str
    role: str
    created: str = ""

    @property
    def id(self) -> str:
        return f"{self.project_id}:{_user_digest(self.user_id)}"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInputError(f"{role!r} is not a role: one of {', '.join(ROLES)}",
                                field_name="roleTemplateId")
    return role


async def grant(client: PrefectClient, project_id: str, user_id: str, role: str) -> Binding:
    """Give a user a role in a project (409 when they hold one already: remove it first)."""
    check_user_id(user_id)
    binding = Binding(project_id, user_id, check_role(role), _now())
    try:
        await _create(client, ProjectRoleBinding, _binding_block(project_id, user_id),
                      {"project_id": project_id, "user_id": user_id, "role": role,
                       "created": binding.created})
    except ObjectAlreadyExists:
        raise NotUniqueError(f"{user_id} holds a role in {project_id} already; remove that "
                            "binding first", field_name="userId") from None
    return binding


async def role_of(client: PrefectClient, project_id: str, user_id: str) -> str | None:
    found = await _read(client, ProjectRoleBinding, _binding_block(project_id, user_id))
    return found[1].get("role") if found else None


async def bindings(client: PrefectClient, *, project_id: str | None = None,
                   user_id: str | None = None) -> list[Binding]:
    """Bindings of a project, of a user, or of both."""
    if project_id is not None and user_id is not None:
        role = await role_of(client, project_id, user_id)
        return [Binding(project_id, user_id, role)] if role else []
    if project_id is not None:
        contains = f"binding--{_project_block(project_id)[len('project--'):]}--"
    elif user_id is not None:
        contains = f"--{_user_digest(user_id)}"
    else:
        contains = "binding--"
    found = [Binding(data["project_id"], data["user_id"], data["role"], data.get("created") or "")
             for _, data in await _list(client, ProjectRoleBinding, contains)]
    return [b for b in found if (project_id is None or b.project_id == project_id)
            and (user_id is None or b.user_id == user_id)]


def split_binding_id(binding_id: str) -> tuple[str, str]:
    """(project id, user digest) of a binding id (404 when it is not one)."""
    project_id, _, digest = binding_id.rpartition(":")
    if ":" not in project_id or not re.fullmatch(r"[0-9a-f]{16}", digest):
        raise NotFoundError(f"binding {binding_id!r} not found")
    return project_id, digest


async def read_binding(client: PrefectClient, binding_id: str) -> Binding:
    project_id, digest = split_binding_id(binding_id)
    for binding in await bindings(client, project_id=project_id):
        if _user_digest(binding.user_id) == digest:
            return binding
    raise NotFoundError(f"binding {binding_id!r} not found")


async def remove_binding(client: PrefectClient, binding: Binding) -> None:
    """Remove a binding; the last owner of a project stays (409)."""
    if binding.role == "project-owner":
        owners = [b for b in await bindings(client, project_id=binding.project_id)
                  if b.role == "project-owner"]
        if len(owners) <= 1:
            raise ConflictError(f"{binding.user_id} is the last owner of {binding.project_id}: "
                                "make another owner first")
    await _delete(client, ProjectRoleBinding, _binding_block(binding.project_id, binding.user_id))
    if binding.role == "project-owner" and not [
            b for b in await bindings(client, project_id=binding.project_id) if b.role == "project-owner"]:
        # Another owner was removed at the same moment: this one stays.
        await grant(client, binding.project_id, binding.user_id, binding.role)
        raise ConflictError(f"{binding.user_id} is the last owner of {binding.project_id}: "
                            "make another owner first")


# -- users ---------------------------------------------------------------------------------

async def may_run(client: PrefectClient, project_id: str, user_id: str) -> bool:
    """`AccessCache.may_run` without a cache (a run checks once)."""
    return await AccessCache(0).may_run(client, project_id, user_id)


def refused_run(project_id: str, user_id: str, *, credential: bool = False) -> str:
    """Why a run of a pipeline is refused: a webhook or cron run acts for the pipeline's
    creator; any run of a pipeline that clones with a credential uses the creator's."""
    who = f"the pipeline's creator {user_id or '(unknown)'} no longer holds project-member or more in {project_id}"
    if credential:
        return (f"{who}, and it clones with their source code credential: its runs are refused "
                "until a member saves it with their own credential (and so becomes its creator)")
    return (f"{who}: its webhook and cron runs are refused (a member who changes its "
            "repository or credential becomes its creator)")


async def check_clone_credential(client: PrefectClient, project_id: str, deployment: Any,
                                 definition: dict[str, Any] | None = None) -> None:
    """A run that clones with a source code credential uses the pipeline creator's: it is
    refused (403, saying why) once the creator no longer holds project-member or more.

    Raises:
        PermissionDeniedError: the creator may no longer run it.
    """
    stored = StoredDefinition(definition) if definition is not None else StoredDefinition.of(deployment.parameters)
    if not stored.repository[1]:
        return
    creator = creator_of(deployment.tags)
    if not await may_run(client, project_id, creator):
        raise PermissionDeniedError(refused_run(project_id, creator, credential=True))


async def is_admin(client: PrefectClient, user_id: str) -> bool:
    found = await _read(client, PipelinesUser, _user_block(user_id))
    return bool(found and found[1].get("admin"))


async def set_admin(client: PrefectClient, user_id: str, admin: bool) -> None:
    check_user_id(user_id)
    found = await _read(client, PipelinesUser, _user_block(user_id))
    data = {"user_id": user_id, "admin": admin}
    if found is None:
        try:
            await _create(client, PipelinesUser, _user_block(user_id), data)
            return
        except ObjectAlreadyExists:
            found = await _read(client, PipelinesUser, _user_block(user_id))
    assert found is not None
    await client.update_block_document(found[0], BlockDocumentUpdate(data=data))


async def admins(client: PrefectClient) -> set[str]:
    return {data["user_id"] for _, data in await _list(client, PipelinesUser, "user--")
            if data.get("admin")}


class AccessCache:
    """Roles and admin flags a facade has read, trusted for `seconds` (only what grants:
    a new grant works at once, a removed one stops within `seconds`)."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self._roles: TTLCache[tuple[str, str], str] | None = TTLCache(size, seconds) if seconds > 0 else None
        self._admins: TTLCache[str, bool] | None = TTLCache(size, seconds) if seconds > 0 else None

    async def role(self, client: PrefectClient, project_id: str, user_id: str) -> str | None:
        """The user's role in the project (None: none, or the project is gone)."""
        key = (project_id, user_id)
        known = self._roles.get(key) if self._roles is not None else None
        if known is not None:
            return known
        role = await role_of(client, project_id, user_id)
        if role is not None and await read_project(client, project_id) is None:
            role = None  # a binding left by a deleted project grants nothing
        if role is not None and self._roles is not None:
            self._roles[key] = role
        return role

    async def admin(self, client: PrefectClient, user_id: str) -> bool:
        if self._admins is not None and self._admins.get(user_id):
            return True
        admin = await is_admin(client, user_id)
        if admin and self._admins is not None:
            self._admins[user_id] = True
        return admin

    async def may_run(self, client: PrefectClient, project_id: str, user_id: str) -> bool:
        """Whether `user_id` may run pipelines of the project (member or more, or admin):
        webhook and cron runs act for their pipeline's creator. A pipeline with no creator
        was made through Prefect (`prefect deploy`), by an operator: it may run."""
        if not user_id:
            return True
        return (at_least(await self.role(client, project_id, user_id), "project-member")
                or await self.admin(client, user_id))

    def forget(self, project_id: str, user_id: str) -> None:
        if self._roles is not None:
            self._roles.pop((project_id, user_id), None)


# -- adoption ------------------------------------------------------------------------------

async def adopt(client: PrefectClient, project_id: str | None = None) -> list[str]:
    """Make a project record for every project (or for `project_id`) that holds pipelines
    but has none (made before projects existed, or by `prefect deploy`), its id kept, each
    of its pipelines' creators an owner; the ids adopted. Safe to run in several facades
    at once."""
    by_project: dict[str, set[str]] = {}
    sources: dict[str, set[str]] = {}
    registries: dict[str, set[str]] = {}
    offset = 0
    tags = DeploymentFilter(tags=DeploymentFilterTags(all_=[f"{TAG_PROJECT}{project_id}"])) if project_id else None
    while True:
        page = await client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                                             deployment_filter=tags, offset=offset, limit=_PAGE)
        offset += len(page)
        for deployment in page:
            names = split_deployment_name(deployment.name)
            if names is None or f"{TAG_PROJECT}{names[0]}" not in deployment.tags:
                continue
            try:
                check_project_id(names[0])
            except InvalidInputError:
                if names[0] not in _odd:
                    _odd.add(names[0])
                    _log.warning("not adopting %r: not a project id", names[0])
                continue
            creators = by_project.setdefault(names[0], set())
            creators.update(tag.partition(":")[2] for tag in deployment.tags
                            if tag.startswith("creator:") and tag.partition(":")[2])
            sources.setdefault(names[0], set()).update(StoredDefinition.of(deployment.parameters).secret_names())
            registries.setdefault(names[0], set()).update(_registry_hosts(StoredDefinition.of(deployment.parameters)))
        if len(page) < _PAGE:
            break
    adopted = []
    for found, creators in sorted(by_project.items()):
        if project_id is not None and found != project_id:
            continue
        if await read_project(client, found) is not None:
            continue
        project = Project(id=found, name=found.partition(":")[2], created=_now(),
                          description="adopted: its pipelines were made before it existed",
                          creator_id=min(creators) if creators else "")
        try:
            await _create(client, PipelinesProject, _project_block(found), project.data())
        except ObjectAlreadyExists:
            continue  # another facade adopts it
        for creator in sorted(creators):
            try:
                await grant(client, found, creator, "project-owner")
            except (NotUniqueError, InvalidInputError):
                pass
        for name in sorted(sources.get(found, ())):
            await _adopt_secret(client, found, name)
        await _adopt_registry_logins(client, found, registries.get(found, set()))
        adopted.append(found)
        _log.warning("adopted project %s (owners: %s)", found, ", ".join(sorted(creators)) or "none")
    return adopted


def _registry_hosts(definition: StoredDefinition) -> set[str]:
    """The registries a stored definition's images and publish tags name (Docker Hub
    included; a reference its variables make is not guessed at)."""
    hosts = set()
    for reference in definition.references():
        if "$" in reference:
            continue
        try:
            hosts.add(registry_host(split_reference(reference)[0] or "docker.io"))
        except ImageTagError:
            continue
    return hosts


async def _adopt_registry_logins(client: PrefectClient, project_id: str, hosts: set[str]) -> None:
    try:
        copied = await adopt_operator_logins(client, project_id, hosts)
    except (NotUniqueError, InvalidInputError) as exc:
        _log.warning("could not copy registry logins into adopted project %s: %s", project_id, exc)
        return
    if copied:
        _log.warning("adopted project %s: copied the registry logins of %s", project_id, ", ".join(copied))


async def _adopt_secret(client: PrefectClient, project_id: str, name: str) -> None:
    """Copy the Prefect Secret block an adopted pipeline's `envFrom` names into its
    project's secrets (a plain value as key `value`), so the pipeline keeps working,
    scoped to its project from then on."""
    try:
        value = (await Secret.aload(name, client=client)).get()
    except (ValueError, ObjectNotFound):
        _log.warning("adopted project %s names a secret %r that does not exist", project_id, name)
        return
    data = ({key: v if isinstance(v, str) else json.dumps(v) for key, v in value.items()}
            if isinstance(value, dict) else {"value": value if isinstance(value, str) else json.dumps(value)})
    try:
        await put_secret(client, project_id, name, data, create=True)
    except (NotUniqueError, InvalidInputError) as exc:
        _log.warning("could not copy secret %r into adopted project %s: %s", name, project_id, exc)

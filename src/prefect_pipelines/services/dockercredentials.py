"""Project docker credentials: the registry logins a project's steps pull and push with.

Rancher's shape, `{"name", "registries": {"reg.example.com": {"username", "password"}}}`;
the password is write-only (a change that leaves it out keeps the stored one). Each is a
`ProjectDockerCredential` block (services/project_items.py): usernames plain, passwords a
secret field.

A run of a project's pipeline logs in with its own project's logins only. A registry
that any project keeps a login for counts as private: a step's image from it is pulled
with the run's own login every time, even when the engine has it already, so an image
that one project pulled is never run by a project that the registry would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from prefect.exceptions import ObjectNotFound
from prefect_docker.credentials import DockerRegistryCredentials

from prefect_pipelines.blocks import ProjectDockerCredential
from prefect_pipelines.errors import InvalidInputError, NotUniqueError
from prefect_pipelines.services.documents import find_documents
from prefect_pipelines.services.project_items import ProjectItems
from prefect_pipelines.vocabulary import REGISTRY_HOST_PATTERN

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

DOCKER_CREDENTIALS = ProjectItems(ProjectDockerCredential, "dockercredential", "docker credential")
DOCKER_HUB = "docker.io"
_DOCKER_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HOST = re.compile(REGISTRY_HOST_PATTERN)
MAX_FIELD = 1024


@dataclass
class DockerCredentialInfo:
    """What the API shows: the name and, per registry, the username (never the password)."""

    project_id: str
    name: str
    registries: dict[str, str]


def registry_host(url: str) -> str:
    """`https://reg.example.com:5000/` -> `reg.example.com:5000`; Docker Hub -> docker.io."""
    try:
        host = urlsplit(url if "://" in url else f"//{url}").netloc or url
    except ValueError:  # an unbalanced [ or ] (urllib's IPv6 check): not a host, as given
        host = url
    host = host.rstrip("/").lower()
    return DOCKER_HUB if host in _DOCKER_HUB_NAMES else host


def server_address(host: str) -> str:
    """What the engine's login is told the registry is."""
    return "https://index.docker.io/v1/" if host == DOCKER_HUB else host


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise InvalidInputError(f"{field} must be a non-empty string (at most {MAX_FIELD} "
                                "characters)", field_name=field)
    return value


def check_registries(registries: Any, kept: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """host -> (username, password) from the body's `registries`; a login whose password
    is left out keeps the one in `kept` (the stored credential's) for that host."""
    if not isinstance(registries, dict) or not registries:
        raise InvalidInputError("registries must be an object of at least one "
                                "host: {username, password}", field_name="registries")
    logins: dict[str, tuple[str, str]] = {}
    for given, login in registries.items():
        field = f"registries.{given}"
        host = registry_host(given) if isinstance(given, str) else ""
        if not _HOST.fullmatch(host):
            raise InvalidInputError(f"{given!r} is not a registry host (a host name or address, "
                                    "with an optional :port)", field_name=field)
        if host in logins:
            raise InvalidInputError(f"registry {host} is given twice", field_name=field)
        if not isinstance(login, dict) or set(login) - {"username", "password"}:
            raise InvalidInputError(f"{field} must be an object of username and password",
                                    field_name=field)
        username = _text(login.get("username"), f"{field}.username")
        password = login.get("password")
        if password is None and host in kept:
            password = kept[host][1]
        logins[host] = (username, _text(password, f"{field}.password"))
    return logins


async def put_credential(client: PrefectClient, project_id: str, name: str, registries: Any, *,
                         create: bool) -> DockerCredentialInfo:
    """Create (422 NotUnique when the name is taken) or replace (404 when missing) a docker
    credential; NotUnique when another credential of the project has a login for one of its
    registries (a registry has one login per project)."""
    DOCKER_CREDENTIALS.check_name(name)
    kept = {} if create else _logins_of(await DOCKER_CREDENTIALS.load(client, project_id, name))
    logins = check_registries(registries, kept)
    for other in await DOCKER_CREDENTIALS.documents(client, project_id):
        if other.get("name") == name:
            continue
        for host in sorted(set(logins) & set(other.get("usernames") or {})):
            raise NotUniqueError(f"docker credential {other.get('name')!r} of project {project_id} "
                                f"has a login for {host} already", field_name=f"registries.{host}")
    block = ProjectDockerCredential(
        project_id=project_id, name=name,
        usernames={host: username for host, (username, _) in logins.items()},
        passwords={host: password for host, (_, password) in logins.items()})
    await DOCKER_CREDENTIALS.save(client, project_id, name, block, create=create)
    return DockerCredentialInfo(project_id, name, dict(block.usernames))


def _logins_of(block: ProjectDockerCredential) -> dict[str, tuple[str, str]]:
    passwords = block.passwords.get_secret_value()
    return {host: (username, str(passwords.get(host, ""))) for host, username in block.usernames.items()}


async def list_credentials(client: PrefectClient, project_id: str) -> list[DockerCredentialInfo]:
    return [DockerCredentialInfo(project_id, data.get("name", ""), dict(data.get("usernames") or {}))
            for data in await DOCKER_CREDENTIALS.documents(client, project_id)]


async def read_credential(client: PrefectClient, project_id: str, name: str) -> DockerCredentialInfo:
    block = await DOCKER_CREDENTIALS.load(client, project_id, name)
    return DockerCredentialInfo(project_id, name, dict(block.usernames))


async def delete_credential(client: PrefectClient, project_id: str, name: str) -> None:
    await DOCKER_CREDENTIALS.delete(client, project_id, name)


async def registry_logins(client: PrefectClient, project_id: str) -> dict[str, dict[str, str]]:
    """host -> the engine's auth config, from the project's docker credentials (for a
    run of that project only; never for an answer)."""
    logins: dict[str, dict[str, str]] = {}
    for data in await DOCKER_CREDENTIALS.documents(client, project_id, include_secrets=True):
        passwords = data.get("passwords") or {}
        for host, username in (data.get("usernames") or {}).items():
            logins.setdefault(host, {"username": username, "password": str(passwords.get(host, "")),
                                     "serveraddress": server_address(host)})
    return logins


async def private_registries(client: PrefectClient) -> set[str]:
    """Every registry host some project keeps a login for (usernames only are read)."""
    prefix = f"{DOCKER_CREDENTIALS.kind}--"
    return {host for doc in await find_documents(client, ProjectDockerCredential, prefix,
                                                 include_secrets=False)
            if doc["name"].startswith(prefix) for host in (doc["data"].get("usernames") or {})}


async def operator_logins(client: PrefectClient, *, include_secrets: bool) -> dict[str, dict[str, str]]:
    """host -> auth config of every global prefect-docker `DockerRegistryCredentials`
    block, an operator's (passwords only when asked for): `exec` runs log in with them,
    and adoption copies the ones a project's pipelines need."""
    try:
        documents = await client.read_block_documents_by_type(
            DockerRegistryCredentials.get_block_type_slug(), include_secrets=include_secrets)
    except ObjectNotFound:
        return {}
    logins: dict[str, dict[str, str]] = {}
    for document in documents:
        try:
            block = DockerRegistryCredentials.model_validate(document.data)
        except ValueError:
            continue  # not a login this version of prefect-docker reads
        if not block.registry_url or not block.username:
            continue
        logins[registry_host(block.registry_url)] = {
            "username": block.username,
            "password": block.password.get_secret_value() if include_secrets else "",
            "serveraddress": block.registry_url,
        }
    return logins


async def adopt_operator_logins(client: PrefectClient, project_id: str, hosts: set[str]) -> list[str]:
    """Copy the operator's logins for `hosts` (the registries an adopted project's
    pipelines pull from or push to) into its docker credential `adopted`, so its
    pipelines keep working, scoped to it from then on; the hosts copied."""
    found = await operator_logins(client, include_secrets=True)
    wanted = {host: {"username": found[host]["username"], "password": found[host]["password"]}
              for host in sorted(hosts) if host in found}
    if wanted:
        await put_credential(client, project_id, "adopted", wanted, create=True)
    return sorted(wanted)

"""Source code credentials (a user's linked GitHub account) and their repositories.

A credential is a block holding the user's token; the repositories are a cache block per
credential, filled from GitHub when the account is linked and on `refreshrepos`. A user
sees, refreshes and deletes only their own; another user's look the same as missing ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import SourceCodeCredential, SourceCodeRepositoryCache
from prefect_pipelines.errors import NotFoundError, PermissionDeniedError
from prefect_pipelines.services import github
from prefect_pipelines.vocabulary import block_slug, credential_block_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_ID_PART = re.compile(r"[^A-Za-z0-9._-]+")


def credential_id(cluster_id: str, user_id: str, login: str) -> str:
    """`<clusterId>-<userId>-github-<login>`."""
    return block_slug(f"{cluster_id}-{user_id}-github-{login}")


def repositories_block_name(credential: str) -> str:
    return f"repos-{block_slug(credential)}"


@dataclass
class CredentialRecord:
    """A credential without its token."""

    id: str
    cluster_id: str
    user_id: str
    login_name: str
    display_name: str
    avatar_url: str
    html_url: str
    api_url: str

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "clusterId": self.cluster_id, "kind": "github",
                "userId": self.user_id, "name": self.display_name, "loginName": self.login_name}


def _record(data: dict[str, Any]) -> CredentialRecord:
    return CredentialRecord(
        id=str(data.get("credential_id", "")), cluster_id=str(data.get("cluster_id", "")),
        user_id=str(data.get("user_id", "")), login_name=str(data.get("login_name", "")),
        display_name=str(data.get("display_name", "")), avatar_url=str(data.get("avatar_url", "")),
        html_url=str(data.get("html_url", "")), api_url=str(data.get("api_url", "")),
    )


async def link_account(client: PrefectClient, *, cluster_id: str, user_id: str, api_url: str,
                       client_id: str, client_secret: str, code: str) -> CredentialRecord:
    """Trade an OAuth code for a token, save the user's credential and list its repositories.

    Nothing is saved unless GitHub accepted the code and answered for the user.
    """
    token = await github.exchange_code(api_url=api_url, client_id=client_id,
                                       client_secret=client_secret, code=code)
    return await save_credential(client, cluster_id=cluster_id, user_id=user_id,
                                 api_url=api_url, token=token)


async def save_credential(client: PrefectClient, *, cluster_id: str, user_id: str, api_url: str,
                          token: str) -> CredentialRecord:
    """Save (or replace) the credential of a token, and fill its repository cache."""
    user = await github.read_user(api_url=api_url, token=token)
    repositories = await github.list_repositories(api_url=api_url, token=token)
    identifier = credential_id(cluster_id, user_id, user.login)
    await SourceCodeCredential(
        credential_id=identifier, cluster_id=cluster_id, user_id=user_id, kind="github",
        login_name=user.login, display_name=user.name, avatar_url=user.avatar_url,
        html_url=user.html_url, api_url=api_url, access_token=token,
    ).asave(credential_block_name(identifier), overwrite=True, client=client)
    await _save_repositories(client, identifier, user_id, cluster_id, repositories)
    return CredentialRecord(id=identifier, cluster_id=cluster_id, user_id=user_id,
                            login_name=user.login, display_name=user.name,
                            avatar_url=user.avatar_url, html_url=user.html_url, api_url=api_url)


async def _save_repositories(client: PrefectClient, identifier: str, user_id: str,
                             cluster_id: str, repositories: list[dict[str, Any]]) -> None:
    shown = [{
        **repo,
        "id": _ID_PART.sub("-", f"{identifier}-{repo['fullName'].replace('/', '-')}"),
        "clusterId": cluster_id,
        "kind": "github",
        "userId": user_id,
        "sourceCodeCredentialId": identifier,
    } for repo in repositories]
    await SourceCodeRepositoryCache(credential_id=identifier, user_id=user_id,
                                    repositories=shown).asave(
        repositories_block_name(identifier), overwrite=True, client=client)


async def _all_credentials(client: PrefectClient) -> list[CredentialRecord]:
    try:
        documents = await client.read_block_documents_by_type(
            SourceCodeCredential.get_block_type_slug(), include_secrets=False)
    except ObjectNotFound:
        return []
    return [_record(document.data) for document in documents]


async def list_credentials(client: PrefectClient, *, user_id: str,
                           creator_id: str | None = None) -> list[CredentialRecord]:
    """The caller's credentials (a creatorId filter for someone else gives none)."""
    if creator_id is not None and creator_id != user_id:
        return []
    return sorted((c for c in await _all_credentials(client) if c.user_id == user_id),
                  key=lambda c: c.id)


async def read_credential(client: PrefectClient, *, user_id: str, identifier: str
                          ) -> CredentialRecord:
    """One of the caller's credentials.

    Raises:
        NotFoundError: it does not exist, or it is someone else's.
    """
    try:
        document = await client.read_block_document_by_name(
            credential_block_name(identifier), SourceCodeCredential.get_block_type_slug(),
            include_secrets=False)
    except ObjectNotFound:
        raise NotFoundError(f"source code credential {identifier!r} not found") from None
    record = _record(document.data)
    if record.user_id != user_id:
        raise NotFoundError(f"source code credential {identifier!r} not found")
    return record


async def credential_token(client: PrefectClient, identifier: str) -> tuple[CredentialRecord, str]:
    """A credential and its token (for the server's own calls to GitHub, never returned)."""
    try:
        block = await SourceCodeCredential.aload(credential_block_name(identifier), client=client)
    except (ValueError, ObjectNotFound):
        raise NotFoundError(f"source code credential {identifier!r} not found") from None
    record = _record(block.model_dump())
    return record, block.access_token.get_secret_value()


async def check_owner(client: PrefectClient, *, user_id: str, identifier: str) -> CredentialRecord:
    """The caller may use this credential in a pipeline: it is theirs.

    Raises:
        PermissionDeniedError: it is someone else's (or does not exist).
    """
    try:
        return await read_credential(client, user_id=user_id, identifier=identifier)
    except NotFoundError:
        raise PermissionDeniedError(
            f"source code credential {identifier!r} is not one of yours; link your own "
            "GitHub account (authuser) and use its credential",
        ) from None


async def delete_credential(client: PrefectClient, *, user_id: str, identifier: str) -> None:
    """Delete a credential of the caller and its repository cache."""
    await read_credential(client, user_id=user_id, identifier=identifier)
    for name, slug in ((credential_block_name(identifier), SourceCodeCredential.get_block_type_slug()),
                       (repositories_block_name(identifier), SourceCodeRepositoryCache.get_block_type_slug())):
        try:
            document = await client.read_block_document_by_name(name, slug)
            await client.delete_block_document(document.id)
        except ObjectNotFound:
            pass


async def refresh_repositories(client: PrefectClient, *, user_id: str, identifier: str
                               ) -> list[dict[str, Any]]:
    """List a credential's repositories from GitHub again; return them."""
    await read_credential(client, user_id=user_id, identifier=identifier)
    record, token = await credential_token(client, identifier)
    repositories = await github.list_repositories(api_url=record.api_url, token=token)
    await _save_repositories(client, identifier, user_id, record.cluster_id, repositories)
    return await list_repositories(client, user_id=user_id, credential=identifier)


async def list_repositories(client: PrefectClient, *, user_id: str, creator_id: str | None = None,
                            credential: str | None = None) -> list[dict[str, Any]]:
    """The cached repositories of the caller's credentials."""
    if creator_id is not None and creator_id != user_id:
        return []
    credentials = await list_credentials(client, user_id=user_id)
    out: list[dict[str, Any]] = []
    for record in credentials:
        if credential is not None and record.id != credential:
            continue
        try:
            block = await SourceCodeRepositoryCache.aload(repositories_block_name(record.id),
                                                          client=client)
        except (ValueError, ObjectNotFound):
            continue
        out.extend(block.repositories)
    return out


async def read_repository(client: PrefectClient, *, user_id: str, identifier: str) -> dict[str, Any]:
    """One cached repository of the caller."""
    for repository in await list_repositories(client, user_id=user_id):
        if repository.get("id") == identifier:
            return repository
    raise NotFoundError(f"source code repository {identifier!r} not found")

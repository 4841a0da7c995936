"""Source code credentials (a user's linked forge account) and their repositories.

A credential is a block holding the user's token; the repositories are a cache block per
credential, filled from the forge when the account is linked and on `refreshrepos`. A user
sees, refreshes and deletes only their own; another user's look the same as missing ones.
A token that expires is refreshed before it is used (`usable_token`), with the cluster's
app on that forge; a refresh the forge refuses marks the credential as needing a new link.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import SourceCodeCredential, SourceCodeRepositoryCache
from prefect_pipelines.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from prefect_pipelines.forges import Forge, OAuthApp, Repository, Token, forge_for
from prefect_pipelines.services.forge_apps import load_app
from prefect_pipelines.vocabulary import block_slug, credential_block_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_ID_PART = re.compile(r"[^A-Za-z0-9._-]+")
_log = logging.getLogger(__name__)
REFRESH_AHEAD = 300  # seconds: a token this close to expiring is refreshed first
_refreshing: dict[str, asyncio.Lock] = {}


def credential_id(cluster_id: str, user_id: str, kind: str, login: str) -> str:
    """`<clusterId>-<userId>-<kind>-<login>`."""
    return block_slug(f"{cluster_id}-{user_id}-{kind}-{login}")


def repositories_block_name(credential: str) -> str:
    return f"repos-{block_slug(credential)}"


@dataclass
class CredentialRecord:
    """A credential without its token."""

    id: str
    cluster_id: str
    user_id: str
    kind: str
    login_name: str
    display_name: str
    avatar_url: str
    html_url: str
    api_url: str
    needs_relink: str = ""

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "clusterId": self.cluster_id, "kind": self.kind,
                "userId": self.user_id, "name": self.display_name, "loginName": self.login_name,
                "state": "relink" if self.needs_relink else "active",
                "transitioning": "error" if self.needs_relink else "no",
                "transitioningMessage": self.needs_relink}

    @property
    def forge(self) -> Forge:
        return forge_for(self.kind, self.api_url)


def _record(data: dict[str, Any]) -> CredentialRecord:
    return CredentialRecord(
        id=str(data.get("credential_id", "")), cluster_id=str(data.get("cluster_id", "")),
        user_id=str(data.get("user_id", "")), kind=str(data.get("kind") or "github"),
        login_name=str(data.get("login_name", "")),
        display_name=str(data.get("display_name", "")), avatar_url=str(data.get("avatar_url", "")),
        html_url=str(data.get("html_url", "")), api_url=str(data.get("api_url", "")),
        needs_relink=str(data.get("needs_relink") or ""),
    )


async def link_account(client: PrefectClient, *, cluster_id: str, user_id: str, forge: Forge,
                       app: OAuthApp, code: str) -> CredentialRecord:
    """Trade an OAuth code for a token, save the user's credential and list its repositories.

    Nothing is saved unless the forge accepted the code and answered for the user.
    """
    token = await forge.exchange_code(app, code)
    return await save_credential(client, cluster_id=cluster_id, user_id=user_id, forge=forge,
                                 token=token)


async def save_credential(client: PrefectClient, *, cluster_id: str, user_id: str, forge: Forge,
                          token: Token) -> CredentialRecord:
    """Save (or replace) the credential of a token, and fill its repository cache."""
    user = await forge.user(token.access)
    repositories = await forge.repositories(token.access)
    identifier = credential_id(cluster_id, user_id, forge.kind, user.login)
    await SourceCodeCredential(
        credential_id=identifier, cluster_id=cluster_id, user_id=user_id, kind=forge.kind,
        login_name=user.login, display_name=user.name, avatar_url=user.avatar_url,
        html_url=user.html_url, api_url=forge.api_url, access_token=token.access,
        refresh_token=token.refresh, expires_at=token.expires_at,
    ).asave(credential_block_name(identifier), overwrite=True, client=client)
    await _save_repositories(client, identifier, user_id, cluster_id, forge.kind, repositories)
    return CredentialRecord(id=identifier, cluster_id=cluster_id, user_id=user_id, kind=forge.kind,
                            login_name=user.login, display_name=user.name,
                            avatar_url=user.avatar_url, html_url=user.html_url,
                            api_url=forge.api_url)


async def _save_repositories(client: PrefectClient, identifier: str, user_id: str,
                             cluster_id: str, kind: str, repositories: list[Repository]) -> None:
    shown = [{
        **repo.fields(),
        "id": _ID_PART.sub("-", f"{identifier}-{repo.full_name.replace('/', '-')}"),
        "clusterId": cluster_id,
        "kind": kind,
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


async def _load_block(client: PrefectClient, identifier: str) -> SourceCodeCredential:
    try:
        return await SourceCodeCredential.aload(credential_block_name(identifier), client=client)
    except (ValueError, ObjectNotFound):
        raise NotFoundError(f"source code credential {identifier!r} not found") from None


async def credential_record(client: PrefectClient, identifier: str) -> CredentialRecord:
    """Any user's credential, without its token (NotFoundError: no such credential)."""
    return _record((await _load_block(client, identifier)).model_dump())


async def usable_token(client: PrefectClient, identifier: str) -> tuple[CredentialRecord, str]:
    """A credential and a token that works now (for the server's own calls to the forge
    and the run's clone; never returned to a user). An expiring token is refreshed first.

    Raises:
        NotFoundError: no such credential.
        InvalidInputError: the credential needs a new link (its refresh was refused).
    """
    block = await _load_block(client, identifier)
    record = _record(block.model_dump())
    if not record.forge.token_expires or not _token(block).expires_within(REFRESH_AHEAD):
        return record, block.access_token.get_secret_value()
    if record.needs_relink:
        raise _relink(record, record.needs_relink)
    async with _refreshing.setdefault(identifier, asyncio.Lock()):
        return await _refresh(client, identifier)


def _token(block: SourceCodeCredential) -> Token:
    return Token(block.access_token.get_secret_value(), block.refresh_token.get_secret_value(),
                 block.expires_at)


def _relink(record: CredentialRecord, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"source code credential {record.id} needs a new link: {why}; link the "
        f"{record.forge.title} account again (authuser)", field_name="sourceCodeCredentialId")


async def _refresh(client: PrefectClient, identifier: str) -> tuple[CredentialRecord, str]:
    block = await _load_block(client, identifier)  # another refresher may have been first
    record = _record(block.model_dump())
    token = _token(block)
    if not token.expires_within(REFRESH_AHEAD):
        return record, token.access
    app = await load_app(client, record.cluster_id, record.kind)
    why = ""
    if app is None:
        why = f"cluster {record.cluster_id} has no {record.forge.title} app to refresh it with"
    else:
        try:
            token = await record.forge.refresh(app, token)
        except InvalidInputError as exc:
            again = await _load_block(client, identifier)
            if again.access_token.get_secret_value() != token.access:  # refreshed elsewhere
                return _record(again.model_dump()), again.access_token.get_secret_value()
            why = f"{record.forge.title} refused to refresh its token ({exc.message})"
    if why:
        block.needs_relink = why
        await block.asave(credential_block_name(identifier), overwrite=True, client=client)
        _log.warning("credential %s needs a new link: %s", identifier, why)
        raise _relink(record, why)
    await SourceCodeCredential(**{**block.model_dump(), "access_token": token.access,
                                  "refresh_token": token.refresh, "expires_at": token.expires_at,
                                  "needs_relink": ""}
                               ).asave(credential_block_name(identifier), overwrite=True, client=client)
    return record, token.access


async def clone_header(client: PrefectClient, identifier: str) -> tuple[str, str]:
    """(token, the Authorization header git clones with) of a credential."""
    record, token = await usable_token(client, identifier)
    return token, record.forge.clone_header(token)


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
            "account (authuser) and use its credential",
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
    """List a credential's repositories from its forge again; return them."""
    await read_credential(client, user_id=user_id, identifier=identifier)
    record, token = await usable_token(client, identifier)
    repositories = await record.forge.repositories(token)
    await _save_repositories(client, identifier, user_id, record.cluster_id, record.kind,
                             repositories)
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

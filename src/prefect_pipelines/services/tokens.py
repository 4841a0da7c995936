"""/v3 API tokens: random secrets of which only a SHA-256 is stored, in a Prefect block."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cachetools import TTLCache
from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import ApiToken
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.vocabulary import USER_ID_PATTERN

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

TOKEN_PREFIX = "ppt_"
_USER = re.compile(USER_ID_PATTERN)


def token_hash(token: str) -> str:
    """The SHA-256 of a token, hex."""
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def block_name(digest: str) -> str:
    """The block document of a token: named after (part of) its hash."""
    return f"api-token-{digest[:40]}"


def check_user_id(user_id: str) -> str:
    """A user id: letters, digits and `._@-`, up to 128 characters."""
    if not _USER.fullmatch(user_id):
        raise InvalidInputError(
            f"{user_id!r} is not a user id: use letters, digits and . _ @ -", field_name="user"
        )
    return user_id


@dataclass
class TokenInfo:
    """What is stored of a token."""

    user_id: str
    created: str
    digest_prefix: str


async def create_token(client: PrefectClient, user_id: str) -> str:
    """Make a token for `user_id` and store its hash; return the token (shown once)."""
    check_user_id(user_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    await ApiToken(user_id=user_id, token_hash=digest, created=created).asave(
        block_name(digest), client=client
    )
    return token


async def user_for_token(client: PrefectClient, token: str) -> str | None:
    """The user a token stands for, or None when it is unknown or revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = token_hash(token)
    try:
        document = await client.read_block_document_by_name(
            block_name(digest), ApiToken.get_block_type_slug()
        )
    except ObjectNotFound:
        return None
    data = document.data
    if not secrets.compare_digest(str(data.get("token_hash", "")), digest):
        return None
    return str(data.get("user_id") or "") or None


class TokenCache:
    """Tokens a facade has checked, trusted for `seconds` (by hash; unknown tokens are
    never remembered, so a new token works at once and a revoked one within `seconds`)."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self._known: TTLCache[str, str] | None = TTLCache(size, seconds) if seconds > 0 else None

    async def user(self, client: PrefectClient, token: str) -> str | None:
        """The user a token stands for, or None when it is unknown or revoked."""
        if self._known is None:
            return await user_for_token(client, token)
        digest = token_hash(token)
        user = self._known.get(digest)
        if user is None:
            user = await user_for_token(client, token)
            if user is not None:
                self._known[digest] = user
        return user


async def list_tokens(client: PrefectClient, user_id: str | None = None) -> list[TokenInfo]:
    """The tokens stored, optionally of one user (never the tokens themselves)."""
    try:
        documents = await client.read_block_documents_by_type(ApiToken.get_block_type_slug())
    except ObjectNotFound:
        return []
    out = []
    for document in documents:
        data = document.data
        if user_id is None or data.get("user_id") == user_id:
            out.append(TokenInfo(str(data.get("user_id")), str(data.get("created", "")),
                                 str(data.get("token_hash", ""))[:12]))
    return out


async def revoke_token(client: PrefectClient, token: str) -> str:
    """Delete a token; return the user it stood for.

    Raises:
        NotFoundError: the token is unknown.
    """
    digest = token_hash(token)
    try:
        document = await client.read_block_document_by_name(
            block_name(digest), ApiToken.get_block_type_slug()
        )
    except ObjectNotFound:
        raise NotFoundError("no such token") from None
    await client.delete_block_document(document.id)
    return str(document.data.get("user_id", ""))


async def revoke_user_tokens(client: PrefectClient, user_id: str) -> int:
    """Delete every token of a user; return how many there were."""
    try:
        documents = await client.read_block_documents_by_type(ApiToken.get_block_type_slug())
    except ObjectNotFound:
        return 0
    removed = 0
    for document in documents:
        if document.data.get("user_id") == user_id:
            await client.delete_block_document(document.id)
            removed += 1
    return removed

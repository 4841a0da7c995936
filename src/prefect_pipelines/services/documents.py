"""Block documents of this project's own block types: their type and schema ids
(registered once per Prefect API), and listing them by a part of their name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.blocks.core import Block

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_PAGE = 200
_registered: dict[tuple[str, str], tuple[UUID, UUID]] = {}


async def block_ids(client: PrefectClient, block: type[Block]) -> tuple[UUID, UUID]:
    """(block type id, block schema id) of `block`, registered once per API."""
    key = (str(client.api_url), block.get_block_type_slug())
    if key not in _registered:
        await block.aregister_type_and_schema(client=client)
        _registered[key] = (block._block_type_id, block._block_schema_id)  # type: ignore[assignment]
    return _registered[key]


async def find_documents(client: PrefectClient, block: type[Block], contains: str, *,
                         include_secrets: bool = True) -> list[dict[str, Any]]:
    """Every (named) document of `block`'s type whose name contains `contains`, by name,
    as Prefect's API answers them (`id`, `name`, `data`, ...)."""
    found: list[dict[str, Any]] = []
    while True:
        response = await client.request("POST", "/block_documents/filter", json={
            "block_documents": {"name": {"like_": contains}},
            "block_types": {"slug": {"any_": [block.get_block_type_slug()]}},
            "include_secrets": include_secrets, "sort": "NAME_ASC", "offset": len(found),
            "limit": _PAGE})
        page = response.json()
        found.extend(page)
        if len(page) < _PAGE:
            return found

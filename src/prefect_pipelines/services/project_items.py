"""Named things a project keeps in Prefect blocks (its secrets, its docker credentials).

Each is a block document `<kind>--<cluster>--<project>--<name>`: the name joins the item
to its project, so no name given through the API reaches another project's items. The
block also holds its project id, checked on every read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound

from prefect_pipelines.errors import InvalidInputError, NotFoundError, NotUniqueError
from prefect_pipelines.services.documents import find_documents
from prefect_pipelines.translator.spec import is_pipeline_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

B = TypeVar("B", bound=Block)


class ProjectItems(Generic[B]):
    """The items of one kind: `kind` names their blocks, `noun` is what errors call one."""

    def __init__(self, block: type[B], kind: str, noun: str) -> None:
        self.block, self.kind, self.noun = block, kind, noun

    def block_name(self, project_id: str, name: str) -> str:
        cluster, _, project = project_id.partition(":")
        return f"{self.kind}--{cluster}--{project}--{name}"

    def check_name(self, name: Any) -> str:
        if not isinstance(name, str) or not is_pipeline_name(name):
            raise InvalidInputError(f"{name!r} is not a {self.noun} name: use 1-63 lowercase "
                                    "letters, digits and dashes", field_name="name")
        return name

    def missing(self, project_id: str, name: str) -> NotFoundError:
        return NotFoundError(f"{self.noun} {name!r} not found in project {project_id}")

    async def exists(self, client: PrefectClient, project_id: str, name: str) -> bool:
        try:
            await client.read_block_document_by_name(self.block_name(project_id, name),
                                                     self.block.get_block_type_slug(),
                                                     include_secrets=False)
            return True
        except ObjectNotFound:
            return False

    async def load(self, client: PrefectClient, project_id: str, name: str) -> B:
        """The item with its secret values (for a run, or to keep a value a change omits).

        Raises:
            NotFoundError: the project has no such item.
        """
        if not is_pipeline_name(name):
            raise self.missing(project_id, name)
        try:
            block = await self.block.aload(self.block_name(project_id, name), client=client)
        except (ValueError, ObjectNotFound):
            raise self.missing(project_id, name) from None
        if getattr(block, "project_id", None) != project_id:  # pragma: no cover - the name holds it
            raise self.missing(project_id, name)
        return block

    async def documents(self, client: PrefectClient, project_id: str, *,
                        include_secrets: bool = False) -> list[dict[str, Any]]:
        """The data of every item of the project, by name."""
        prefix = self.block_name(project_id, "")
        return [doc["data"] for doc in await find_documents(client, self.block, prefix,
                                                             include_secrets=include_secrets)
                if doc["name"].startswith(prefix) and doc["data"].get("project_id") == project_id]

    async def save(self, client: PrefectClient, project_id: str, name: str, block: B, *,
                   create: bool) -> None:
        """Create (422 NotUnique when the name is taken) or replace (404 when missing) an item."""
        exists = await self.exists(client, project_id, name)
        if create and exists:
            raise NotUniqueError(f"project {project_id} has a {self.noun} {name!r} already",
                                field_name="name")
        if not create and not exists:
            raise self.missing(project_id, name)
        await block.asave(self.block_name(project_id, name), overwrite=True, client=client)

    async def delete(self, client: PrefectClient, project_id: str, name: str) -> None:
        if not is_pipeline_name(name):
            raise self.missing(project_id, name)
        try:
            document = await client.read_block_document_by_name(
                self.block_name(project_id, name), self.block.get_block_type_slug(),
                include_secrets=False)
            await client.delete_block_document(document.id)
        except ObjectNotFound:
            raise self.missing(project_id, name) from None

    async def delete_all(self, client: PrefectClient, project_id: str) -> int:
        """Delete every item of the project (the project is going); how many went."""
        gone = 0
        for data in await self.documents(client, project_id):
            try:
                await self.delete(client, project_id, data.get("name", ""))
                gone += 1
            except NotFoundError:
                pass
        return gone

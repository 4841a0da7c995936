"""Run numbers: unique and gap-free per pipeline, with Prefect as the only store.

A run number is taken by creating an anonymous block document named
`run-<deployment id>-<number, 9 digits>`. Prefect's database has a unique index on block
document names (per block type), so when two triggers race for the same number exactly
one creation succeeds; the other gets 409 and tries the next number. This works the same
across any number of facades and workers, and for runs Prefect starts by itself (cron, the
UI, `prefect deployment run`): those take their number when the flow starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from prefect.client.schemas.actions import BlockDocumentCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from prefect_pipelines.blocks import RunNumberClaim
from prefect_pipelines.errors import ServiceUnavailableError
from prefect_pipelines.services.documents import block_ids

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

CLAIM_SLUG = RunNumberClaim.get_block_type_slug()
_MAX_ATTEMPTS = 1000


def claim_prefix(deployment_id: UUID | str) -> str:
    """The name prefix shared by every claim of one pipeline."""
    return f"run-{deployment_id}-"


def claim_name(deployment_id: UUID | str, number: int) -> str:
    """The block document name of run `number` of a pipeline."""
    return f"{claim_prefix(deployment_id)}{number:09d}"


async def claim_block_ids(client: PrefectClient) -> tuple[UUID, UUID]:
    """(block type id, block schema id) of claims, registered once per API."""
    return await block_ids(client, RunNumberClaim)


async def highest_run(client: PrefectClient, deployment_id: UUID | str) -> int:
    """The highest run number taken for a pipeline, 0 when none is."""
    response = await client.request(
        "POST", "/block_documents/filter",
        json={
            "block_documents": {
                "name": {"like_": claim_prefix(deployment_id)},
                "is_anonymous": {"eq_": True},
            },
            "block_types": {"slug": {"any_": [CLAIM_SLUG]}},
            "sort": "NAME_DESC",
            "limit": 1,
        },
    )
    response.raise_for_status()
    documents = response.json()
    if not documents:
        return 0
    return int(documents[0]["name"].rsplit("-", 1)[1])


async def claim_run_number(
    client: PrefectClient, deployment_id: UUID | str, *, flow_run_id: str = "",
    start: int | None = None,
) -> int:
    """Take the next free run number of a pipeline.

    Args:
        start: the number to try first (a caller that just took n passes n + 1 and saves
            a query); by default one above the highest taken.

    Returns:
        The number, unique for this pipeline, one above the highest taken when no
        other trigger raced for it.
    """
    type_id, schema_id = await claim_block_ids(client)
    number = start if start is not None else await highest_run(client, deployment_id) + 1
    for _ in range(_MAX_ATTEMPTS):
        try:
            await client.create_block_document(
                BlockDocumentCreate(
                    name=claim_name(deployment_id, number),
                    data={"flow_run_id": flow_run_id},
                    block_type_id=type_id,
                    block_schema_id=schema_id,
                    is_anonymous=True,
                )
            )
            return number
        except ObjectAlreadyExists:
            number += 1
    raise ServiceUnavailableError(f"could not take a run number after {_MAX_ATTEMPTS} attempts: "
                                  "too many triggers of this pipeline at once; retry")


class RunNumbers:
    """Takes run numbers for one process, remembering each pipeline's next number.

    A burst of triggers then costs one request per run instead of a race of conflicting
    ones; across processes the unique claim names still decide. Callers serialize their
    calls per pipeline (see `services.pipelines.start_execution`).
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    async def take(self, client: PrefectClient, deployment_id: UUID | str) -> int:
        """The next run number of a pipeline."""
        key = str(deployment_id)
        number = await claim_run_number(client, deployment_id, start=self._next.get(key))
        self._next[key] = number + 1
        return number

    async def give_back(self, client: PrefectClient, deployment_id: UUID | str,
                        number: int) -> None:
        """Release a number whose run could not be created (the next take looks again)."""
        await release_run_number(client, deployment_id, number)
        self._next.pop(str(deployment_id), None)


async def release_run_number(
    client: PrefectClient, deployment_id: UUID | str, number: int
) -> None:
    """Give a number back (its run could not be created); best effort."""
    try:
        document = await client.read_block_document_by_name(
            claim_name(deployment_id, number), CLAIM_SLUG
        )
        await client.delete_block_document(document.id)
    except ObjectNotFound:
        pass


async def release_all(client: PrefectClient, deployment_id: UUID | str) -> int:
    """Delete every claim of a pipeline (when the pipeline is deleted)."""
    removed = 0
    while True:
        response = await client.request(
            "POST", "/block_documents/filter",
            json={
                "block_documents": {
                    "name": {"like_": claim_prefix(deployment_id)},
                    "is_anonymous": {"eq_": True},
                },
                "block_types": {"slug": {"any_": [CLAIM_SLUG]}},
                "limit": 200,
            },
        )
        response.raise_for_status()
        documents = response.json()
        if not documents:
            return removed
        for document in documents:
            try:
                await client.delete_block_document(document["id"])
                removed += 1
            except ObjectNotFound:
                pass

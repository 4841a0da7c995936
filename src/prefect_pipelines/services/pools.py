"""Work pools: the project's pool, where every pipeline deployment sends its runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import WorkPool
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


async def ensure_work_pool(client: PrefectClient, name: str) -> WorkPool:
    """Read the pool, creating it (of the prefect-pipelines worker type) if it is missing."""
    from prefect_pipelines.worker import WORKER_TYPE, PipelineWorker

    try:
        return await client.read_work_pool(name)
    except ObjectNotFound:
        pass
    try:
        return await client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=WORKER_TYPE,
                base_job_template=PipelineWorker.get_default_base_job_template(),
                description="prefect-pipelines executions",
            )
        )
    except ObjectAlreadyExists:
        return await client.read_work_pool(name)


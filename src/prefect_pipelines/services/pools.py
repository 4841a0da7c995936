"""Work pools and queues: the pool every pipeline deployment sends its runs to (the
default one, or its cluster's when the cluster is deployed), a queue per project."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import WorkPool
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.workers.process import ProcessWorker

from prefect_pipelines.blocks import GitHubAppConfig
from prefect_pipelines.vocabulary import (
    WORKER_TYPE,
    cluster_block_name,
    cluster_pool_name,
    project_queue_name,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


async def ensure_work_pool(client: PrefectClient, name: str) -> WorkPool:
    """Read the pool, creating it (of the prefect-pipelines worker type) if it is missing.

    The pipeline worker's jobs are the process worker's (worker.PipelineWorker), so the
    pool's base job template is the process worker's (tests/test_vocabulary.py checks).
    """
    try:
        return await client.read_work_pool(name)
    except ObjectNotFound:
        pass
    try:
        return await client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=WORKER_TYPE,
                base_job_template=ProcessWorker.get_default_base_job_template(),
                description="prefect-pipelines executions",
            )
        )
    except ObjectAlreadyExists:
        return await client.read_work_pool(name)



async def deployed_pool(client: PrefectClient, cluster_id: str) -> str | None:
    """The cluster's work pool if it is deployed (services/clusters.py deploys it)."""
    try:
        block = await GitHubAppConfig.aload(cluster_block_name(cluster_id), client=client)
    except (ValueError, ObjectNotFound):
        return None
    return cluster_pool_name(cluster_id) if block.deploy else None


_queues: dict[tuple[str, str], int | None] = {}


async def ensure_project_queue(client: PrefectClient, pool: str, project_id: str,
                               quota: int) -> str:
    """The project's work queue, with the executor quota as its concurrency limit.

    Prefect's workers take no more runs from a queue than its limit allows; the others
    wait in the queue, oldest first.
    """
    name = project_queue_name(project_id)
    limit = quota if quota > 0 else None
    if _queues.get((pool, name), -1) == limit:
        return name
    try:
        queue = await client.read_work_queue_by_name(name, work_pool_name=pool)
    except ObjectNotFound:
        try:
            queue = await client.create_work_queue(
                name=name, work_pool_name=pool, concurrency_limit=limit,
                description=f"executions of project {project_id}",
            )
        except ObjectNotFound:  # the pool is missing: make it, then the queue
            await ensure_work_pool(client, pool)
            return await ensure_project_queue(client, pool, project_id, quota)
        except ObjectAlreadyExists:
            queue = await client.read_work_queue_by_name(name, work_pool_name=pool)
    if queue.concurrency_limit != limit:
        await client.update_work_queue(queue.id, concurrency_limit=limit)
    _queues[(pool, name)] = limit
    return name

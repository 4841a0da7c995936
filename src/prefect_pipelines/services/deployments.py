"""A pipeline's Prefect deployment, found by project and pipeline id.

Below every service that reads a pipeline (pipelines, executions, webhooks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound

from prefect_pipelines.errors import NotFoundError
from prefect_pipelines.translator.spec import is_pipeline_name
from prefect_pipelines.vocabulary import FLOW_NAME, deployment_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient


async def read_deployment(client: PrefectClient, project_id: str, pipeline_id: str
                          ) -> DeploymentResponse:
    """The deployment of a pipeline.

    Raises:
        NotFoundError: there is no such pipeline (a malformed id names none).
    """
    if not is_pipeline_name(pipeline_id):
        raise NotFoundError(f"pipeline {pipeline_id!r} not found in project {project_id}")
    try:
        return await client.read_deployment_by_name(
            f"{FLOW_NAME}/{deployment_name(project_id, pipeline_id)}"
        )
    except ObjectNotFound:
        raise NotFoundError(f"pipeline {pipeline_id!r} not found in project {project_id}") from None

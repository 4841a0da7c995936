"""What a running flow reads and writes about its own flow run in Prefect.

Its run number, whether its creator may still run it, its labels, the record of its
steps and its report (an artifact). Synchronous: the flow calls these from its own thread.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.services.client import pipelines_client, shared_sync_client
from prefect_pipelines.services.executions import task_runs_of
from prefect_pipelines.services.numbering import claim_run_number
from prefect_pipelines.services.projects import may_run, read_project, refused_run
from prefect_pipelines.translator import RunPlan
from prefect_pipelines.translator.executions import (
    Steps,
    encode_steps,
    execution_report,
    step_records,
)
from prefect_pipelines.translator.mapping import creator_of, run_number_of
from prefect_pipelines.translator.plan import StepDefaults
from prefect_pipelines.vocabulary import (
    LABEL_STEPS,
    TAG_EXECUTION,
    TAG_RUN,
    execution_name,
    run_tag,
)

_log = logging.getLogger(__name__)


def ensure_run_number(flow_run: FlowRun, pipeline_id: str) -> int:
    """The run number of this execution, taking one if the run was started without it.

    Runs the facade creates carry their number; runs Prefect starts by itself (cron, the
    UI, `prefect deployment run`) take the next one here and are renamed
    `<pipelineId>-<run>`. Runs outside a deployment (`exec`) are not numbered (0).
    """
    if flow_run.deployment_id is None:
        return 0
    number = run_number_of(flow_run.tags, flow_run.idempotency_key, flow_run.deployment_id)
    if number is not None:
        return number

    async def take() -> int:
        async with pipelines_client() as client:
            taken = await claim_run_number(
                client, flow_run.deployment_id, flow_run_id=str(flow_run.id)
            )
            tags = [tag for tag in flow_run.tags
                    if not tag.startswith(TAG_RUN) and tag != TAG_EXECUTION]
            await client.update_flow_run(
                flow_run.id,
                name=execution_name(pipeline_id or "pipeline", taken),
                tags=[*tags, run_tag(taken), TAG_EXECUTION],
            )
            return taken

    return run_coro_as_sync(take())


def run_policy(flow_run: FlowRun, project_id: str, *, check_creator: bool,
               credential: bool = False) -> tuple[str | None, StepDefaults]:
    """What a project's run is held to, read in one session: why it may not run (None
    when it may), and its project's step defaults (limits, privileged steps).

    With `check_creator` (a cron or webhook run, or one that clones with a credential,
    `credential`) the run acts for its pipeline's creator, as the deployment names them
    now, who must still be a member of the project."""
    async def read() -> tuple[str | None, StepDefaults]:
        async with pipelines_client() as client:
            project = await read_project(client, project_id)
            defaults = StepDefaults.from_settings(project.settings if project else None)
            if not check_creator:
                return None, defaults
            deployment = await client.read_deployment(flow_run.deployment_id)
            creator = creator_of(deployment.tags)
            if await may_run(client, project_id, creator):
                return None, defaults
            return refused_run(project_id, creator, credential=credential), defaults

    return run_coro_as_sync(read())


def record_steps(flow_run_id: UUID, *, label: bool = True) -> Steps | None:
    """What the run's steps came to (None when they cannot be read); with `label`, put
    on its flow run (LABEL_STEPS), so that the API can show a finished execution from its
    flow run alone, without reading its task runs. Called as the run ends, once every
    step is over; a run that cannot record them is shown from its task runs, as a
    running one is."""
    async def read() -> tuple[FlowRun, list[Any]]:
        async with pipelines_client() as client:
            current = await client.read_flow_run(flow_run_id)
            return current, (await task_runs_of(client, [current]))[current.id]

    try:
        current, task_runs = run_coro_as_sync(read())
    except Exception as exc:  # noqa: BLE001 - the task runs still tell
        _log.warning("could not record the steps of flow run %s: %s", flow_run_id, exc)
        return None
    steps = step_records(task_runs)
    if label:
        label_flow_run(flow_run_id, {LABEL_STEPS: encode_steps(steps, current.run_count)})
    return steps


def publish_report(plan: RunPlan, steps: Steps, *, state: str, message: str, public_url: str,
                   linked: bool) -> None:
    """The execution's Prefect artifact (its flow run's Artifacts tab): stages, steps,
    states, durations and, with `linked` (a project's run), links to the step logs on
    /v3. A run that cannot write it carries on."""
    identity = plan.identity

    def log_url(stage: int, step: int) -> str:
        return (f"{public_url.rstrip('/')}/v3/projects/{identity.project_id}/pipelineexecutionlogs/"
                f"{identity.execution_id}-{stage}-{step}")

    try:
        create_markdown_artifact(
            markdown=execution_report(plan, steps, state=state, message=message,
                                      log_url=log_url if linked and identity.project_id else None),
            description=f"execution {identity.execution_id}: its stages and steps")
    except Exception as exc:  # noqa: BLE001 - the report is a view; the run's outcome stands
        _log.warning("could not write the report of execution %s: %s", identity.execution_id, exc)


def record_definition(flow_run: FlowRun, definition: dict[str, Any]) -> None:
    """Put the definition a run of a repository's pipeline read from its file into the
    run's `pipeline` parameter, beside the repository it names: the execution's
    `pipeline`, its stages and its logs are read from there. A run that cannot record it
    carries on (the API then shows only its clone stage)."""
    parameters = {**(flow_run.parameters or {}), "pipeline": definition}
    try:
        shared_sync_client().update_flow_run(flow_run.id, parameters=parameters)
    except Exception as exc:  # noqa: BLE001 - the run itself needs no record
        _log.warning("could not record the definition of flow run %s: %s", flow_run.id, exc)


def label_flow_run(flow_run_id: UUID, labels: dict[str, str]) -> None:
    """Put labels on a flow run (the API reads an execution's commit and branch there)."""
    try:
        shared_sync_client().update_flow_run_labels(flow_run_id, labels)
    except Exception as exc:  # noqa: BLE001 - a missing label must not fail the run
        _log.warning("could not label flow run %s: %s", flow_run_id, exc)

"""Executions: flow runs of pipeline deployments, with their steps' task runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    FlowRunFilterWorkQueueName,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling

from prefect_pipelines.errors import ActionNotAvailableError, InvalidInputError, NotFoundError
from prefect_pipelines.services.deployments import read_deployment
from prefect_pipelines.services.pipelines import start_execution
from prefect_pipelines.services.projects import check_clone_credential
from prefect_pipelines.translator.executions import (
    PREFECT_TYPES,
    Steps,
    execution_fields,
    flow_run_state,
    parse_execution_id,
    recorded_steps,
    step_records,
)
from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.vocabulary import (
    FINISHED,
    FLOW_NAME,
    LABEL_BRANCH,
    LABEL_COMMIT,
    QUEUEING,
    SKIPPED,
    STATES,
    TAG_EXECUTION,
    TAG_PIPELINE,
    TAG_PROJECT,
    WAITING,
    deployment_name,
    execution_name,
    tagged_run_number,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_PAGE = 200


@dataclass
class ExecutionRecord:
    """One execution: its flow run and its steps' task runs (None when the run is over and
    recorded its steps on its flow run, `recorded`, and the task runs were not asked for)."""

    flow_run: FlowRun
    task_runs: list[TaskRun] | None
    project_id: str
    pipeline_id: str
    queue_full: bool = False
    recorded: Steps | None = None

    @property
    def state(self) -> str:
        return flow_run_state(self.flow_run, self.queue_full)

    @property
    def steps(self) -> Steps:
        if self.task_runs is not None:
            return step_records(self.task_runs)
        return self.recorded or {}

    def fields(self) -> dict[str, Any]:
        """The /v3 fields of the execution."""
        return execution_fields(self.flow_run, self.steps, project_id=self.project_id,
                                pipeline_id=self.pipeline_id, queue_full=self.queue_full)


# The final states of a flow run (a finished execution).
ENDED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
_RECENT = 50  # finished runs of a pipeline read to find a branch's last one


def branch_of(flow_run: FlowRun) -> str:
    """The branch an execution built (its label, else the branch it was asked for)."""
    value = (flow_run.labels or {}).get(LABEL_BRANCH) or (flow_run.parameters or {}).get("branch") or ""
    return value if isinstance(value, str) else ""


async def last_finished(client: PrefectClient, deployment_id: UUID, *, branch: str | None,
                        before: int | None = None) -> FlowRun | None:
    """A pipeline's finished execution with the highest run number (below `before`, when
    given) that built `branch` (any, when None), among its last 50 finished ones; None when
    there is none. Skipped runs (nothing was built) do not count."""
    runs = await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ENDED))),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=_RECENT)
    best: tuple[int, FlowRun] | None = None
    for run in runs:
        number = tagged_run_number(run.tags) or 0
        if (before is not None and number >= before) or flow_run_state(run) == SKIPPED:
            continue
        if branch is not None and branch_of(run) != branch:
            continue
        if best is None or number > best[0]:
            best = (number, run)
    return best[1] if best else None


def pipeline_of(flow_run: FlowRun) -> str:
    """The pipeline id of an execution's flow run (from its tags)."""
    for tag in flow_run.tags:
        if tag.startswith(TAG_PIPELINE):
            return tag[len(TAG_PIPELINE):]
    return flow_run.name.rpartition("-")[0]


async def task_runs_of(client: PrefectClient, flow_runs: list[FlowRun]) -> dict[UUID, list[TaskRun]]:
    """The task runs of several flow runs.

    A run's definition says how many steps it has, so the pages that hold them all are
    asked for at once rather than one after another; a last full page means more.
    """
    out: dict[UUID, list[TaskRun]] = {flow_run.id: [] for flow_run in flow_runs}
    if not flow_runs:
        return out
    task_filter = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=list(out)))
    expected = sum(step_count(flow_run) for flow_run in flow_runs)
    pages = max(1, -(-expected // _PAGE))

    async def page(number: int) -> list[TaskRun]:
        return await client.read_task_runs(task_run_filter=task_filter, sort=TaskRunSort.ID_DESC,
                                           limit=_PAGE, offset=number * _PAGE)

    found = [task_run for chunk in await asyncio.gather(*(page(n) for n in range(pages)))
             for task_run in chunk]
    while len(found) == pages * _PAGE:  # more than the definitions said: read on
        more = await page(pages)
        found.extend(more)
        pages += 1
    seen: set[UUID] = set()
    for task_run in found:
        if task_run.flow_run_id in out and task_run.id not in seen:
            seen.add(task_run.id)
            out[task_run.flow_run_id].append(task_run)
    return out


def step_count(flow_run: FlowRun) -> int:
    """How many steps a run's definition has (0 when it cannot be read)."""
    return StoredDefinition.of(flow_run.parameters).step_count


async def project_queue_full(client: PrefectClient, flow_runs: list[FlowRun]) -> bool:
    """Whether the executor quota of these runs' project is taken (only asked when one waits).

    The quota is the limit of the project's work queue, read from Prefect (an admin may
    change it there); the runs holding it are the queue's pending and running ones.
    """
    waiting = [run for run in flow_runs if run.state_type == StateType.SCHEDULED]
    if not waiting or not waiting[0].work_pool_name or not waiting[0].work_queue_name:
        return False
    try:
        queue = await client.read_work_queue_by_name(waiting[0].work_queue_name,
                                                     work_pool_name=waiting[0].work_pool_name)
    except ObjectNotFound:
        return False
    if queue.concurrency_limit is None:
        return False
    busy = await client.count_flow_runs(flow_run_filter=FlowRunFilter(
        work_queue_name=FlowRunFilterWorkQueueName(any_=[queue.name]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])),
    ), work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[waiting[0].work_pool_name])))
    return busy >= queue.concurrency_limit


async def read_execution(client: PrefectClient, *, project_id: str, execution_id: str,
                         task_runs: bool = False) -> ExecutionRecord:
    """One execution `<pipelineId>-<run>` with its steps.

    The run is asked for by its name and tags, among the runs of the pipeline's current
    deployment (an earlier pipeline of the same name leaves runs whose deployment is gone):
    one call. A run that is over and recorded its steps needs nothing more; otherwise (or
    when `task_runs` asks for them) its task runs are read.

    Raises:
        NotFoundError: no such execution.
    """
    missing = NotFoundError(f"execution {execution_id!r} not found")
    parsed = parse_execution_id(execution_id)
    if parsed is None:
        raise missing
    pipeline_id, run = parsed
    run_filter = FlowRunFilter(
        name=FlowRunFilterName(any_=[execution_name(pipeline_id, run)]),
        tags=FlowRunFilterTags(all_=[f"run:{run}", TAG_EXECUTION, f"{TAG_PROJECT}{project_id}"]),
    )
    runs = await client.read_flow_runs(flow_run_filter=run_filter, sort=FlowRunSort.ID_DESC,
                                       limit=_PAGE, **_of_pipeline(project_id, pipeline_id))
    if not runs:
        raise missing
    flow_run = min(runs, key=lambda candidate: candidate.created or candidate.expected_start_time)
    recorded = recorded_steps(flow_run)
    steps = None
    if task_runs or recorded is None:
        steps = (await task_runs_of(client, [flow_run]))[flow_run.id]
    full = await project_queue_full(client, [flow_run])
    return ExecutionRecord(flow_run, steps, project_id, pipeline_id, full, recorded)


def _of_pipeline(project_id: str, pipeline_id: str) -> dict[str, Any]:
    """Filters (for read_flow_runs, count_flow_runs) that keep the runs of a pipeline's
    current deployment."""
    return {"flow_filter": FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            "deployment_filter": DeploymentFilter(
                name=DeploymentFilterName(any_=[deployment_name(project_id, pipeline_id)]))}


async def list_executions(client: PrefectClient, *, project_id: str, pipeline_id: str | None,
                          state: str | None, limit: int, offset: int, oldest_first: bool = False
                          ) -> tuple[list[ExecutionRecord], int]:
    """Executions of a project (or one pipeline), newest first; and how many match."""
    flow_run_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=[f"{TAG_PROJECT}{project_id}", TAG_EXECUTION]))
    if state is not None:
        if state not in STATES:
            raise InvalidInputError(f"state must be one of {', '.join(STATES)}", field_name="state")
        flow_run_filter.state = _state_filter(state)
        if not PREFECT_TYPES.get(state):
            return [], 0
    of_pipeline = _of_pipeline(project_id, pipeline_id) if pipeline_id is not None else {}
    runs, total, _ = await asyncio.gather(
        client.read_flow_runs(flow_run_filter=flow_run_filter,
                              sort=FlowRunSort.EXPECTED_START_TIME_ASC if oldest_first
                              else FlowRunSort.EXPECTED_START_TIME_DESC,
                              limit=limit, offset=offset, **of_pipeline),
        client.count_flow_runs(flow_run_filter=flow_run_filter, **of_pipeline),
        # An unknown pipeline is a 404, not an empty list.
        read_deployment(client, project_id, pipeline_id) if pipeline_id is not None else asyncio.sleep(0),
    )
    recorded = {run.id: recorded_steps(run) for run in runs}
    unrecorded = [run for run in runs if recorded[run.id] is None]
    task_runs, full = await asyncio.gather(task_runs_of(client, unrecorded),
                                           project_queue_full(client, runs))
    records = [ExecutionRecord(run, task_runs.get(run.id), project_id, pipeline_of(run), full,
                               recorded[run.id]) for run in runs]
    if state in (WAITING, QUEUEING):  # one Prefect state type holds both: split by name
        records = [record for record in records if record.state == state]
    return records, total


def _state_filter(state: str) -> FlowRunFilterState:
    return FlowRunFilterState(type=FlowRunFilterStateType(any_=PREFECT_TYPES.get(state, [])))


async def stop_execution(client: PrefectClient, *, project_id: str, execution_id: str
                         ) -> ExecutionRecord:
    """Stop a waiting or running execution: Prefect cancels it and its containers stop.

    Raises:
        ActionNotAvailableError: the execution has already finished.
    """
    record = await read_execution(client, project_id=project_id, execution_id=execution_id)
    if record.state in FINISHED:
        raise ActionNotAvailableError(
            f"execution {execution_id} has finished ({record.state}); only a waiting or "
            "running execution can be stopped"
        )
    flow_run = record.flow_run
    if flow_run.state_type in (StateType.SCHEDULED, StateType.PAUSED) or (
        flow_run.state_type == StateType.PENDING and flow_run.start_time is None
    ):
        await client.set_flow_run_state(flow_run.id, Cancelled(message="stopped by the user"),
                                        force=True)
    elif flow_run.state_type != StateType.CANCELLING:
        await client.set_flow_run_state(flow_run.id, Cancelling(message="stopped by the user"))
    return await read_execution(client, project_id=project_id, execution_id=execution_id)


async def rerun_execution(client: PrefectClient, *, project_id: str, execution_id: str,
                          user_id: str) -> ExecutionRecord:
    """Run a finished execution's definition and branch again, as the next run number (a
    repository's pipeline at the same commit).

    Raises:
        ActionNotAvailableError: the execution has not finished.
    """
    record = await read_execution(client, project_id=project_id, execution_id=execution_id)
    if record.state not in FINISHED:
        raise ActionNotAvailableError(
            f"execution {execution_id} is {record.state}; only a finished execution can be rerun"
        )
    parameters = record.flow_run.parameters or {}
    deployment = await read_deployment(client, project_id, record.pipeline_id)
    await check_clone_credential(client, project_id, deployment, parameters.get("pipeline") or {})
    labels = record.flow_run.labels or {}
    branch = labels.get(LABEL_BRANCH) or parameters.get("branch")
    trigger = {"triggeredBy": "user", "userId": user_id}
    commit = labels.get(LABEL_COMMIT)
    if StoredDefinition.of(parameters).from_repository and isinstance(commit, str) and commit:
        trigger["commit"] = commit  # its file is read again at the commit it built
    flow_run = await start_execution(
        client, deployment=deployment, pipeline_id=record.pipeline_id,
        branch=str(branch) if branch else None,
        trigger=trigger,
        definition=parameters.get("pipeline") or {},
        env=parameters.get("env") if isinstance(parameters.get("env"), dict) else None,
    )
    return ExecutionRecord(flow_run, [], project_id, record.pipeline_id)

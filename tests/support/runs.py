"""Running the flow in the test process and reading back what Prefect recorded."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import LogSort
from prefect.logging.handlers import APILogHandler
from prefect.states import State

from prefect_pipelines.flows import run_pipeline
from prefect_pipelines.translator.executions import step_positions
from prefect_pipelines.vocabulary import record_offset


def run_definition(definition: dict[str, Any], **params: Any) -> tuple[State, UUID]:
    """Run a definition as a flow run in this process; return its final state and id."""
    state = run_pipeline(pipeline=definition, return_state=True, **params)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    APILogHandler().flush()
    return state, flow_run_id


class BackgroundRun:
    """A flow run started in a thread (with this thread's Prefect settings)."""

    def __init__(self, definition: dict[str, Any], **params: Any) -> None:
        self.result: tuple[State, UUID] | None = None
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run, definition, params), daemon=True
        )
        self.thread.start()

    def _run(self, definition: dict[str, Any], params: dict[str, Any]) -> None:
        self.result = run_definition(definition, **params)

    def join(self, timeout: float) -> tuple[State, UUID]:
        self.thread.join(timeout)
        assert self.result is not None, "the run did not finish in time"
        return self.result


def task_runs(flow_run_id: UUID) -> dict[tuple[int, int], TaskRun]:
    """The step task runs of a flow run, keyed by (stage, step)."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
        )
    return step_positions(runs)


def logs(flow_run_id: UUID) -> list[Any]:
    """Every log record of a flow run, oldest first."""
    APILogHandler().flush()
    records: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200, offset=len(records), sort=LogSort.TIMESTAMP_ASC,
            )
            records += page
            if len(page) < 200:
                return records


def step_log(flow_run_id: UUID, stage: int, step: int) -> str:
    """The output of one step, as its log records hold it (lines joined with newlines)."""
    runs = task_runs(flow_run_id)
    if (stage, step) not in runs:
        return ""
    task_run_id = runs[(stage, step)].id
    return "\n".join(
        record.message for record in logs(flow_run_id)
        if record.task_run_id == task_run_id and record_offset(record.name) is not None
    )


def first_run_log_line(flow_run_id: UUID) -> str:
    """The first line a run logs itself (after Prefect's "Beginning flow run ...")."""
    for record in logs(flow_run_id):
        if not record.message.startswith("Beginning flow run"):
            return record.message
    return ""


def flow_log(flow_run_id: UUID) -> str:
    """Every log message of a flow run, joined."""
    return "\n".join(record.message for record in logs(flow_run_id))


def flow_run_of(project: str, execution_id: str) -> Any:
    """The flow run of a project's execution (its name is the execution's id)."""
    async def read() -> Any:
        async with get_client() as client:
            found = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"project:{project}"]),
                name=FlowRunFilterName(any_=[execution_id])), limit=1)
            return found[0] if found else None

    return asyncio.run(read())


def flow_log_of(project: str, execution_id: str) -> str:
    """Every log message of a project's execution (its flow run's), joined."""
    flow_run = flow_run_of(project, execution_id)
    return flow_log(flow_run.id) if flow_run is not None else ""

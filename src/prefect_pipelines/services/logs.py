"""Step logs: the output records of a step's task run, read back from Prefect."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.client.schemas.filters import (
    LogFilter,
    LogFilterTaskRunId,
    LogFilterTimestamp,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import Log, TaskRun
from prefect.client.schemas.sorting import LogSort

from prefect_pipelines.errors import NotFoundError
from prefect_pipelines.services.executions import read_execution
from prefect_pipelines.translator.executions import parse_log_id, step_positions
from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.vocabulary import record_offset, step_tags

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_PAGE = 200
# Logs can reach Prefect after the run's final state; keep looking this long after it.
LATE_LOG_GRACE_SECONDS = 3.0


@dataclass
class StepLog:
    """A step's output: the text, and how many bytes of earlier output were left out."""

    message: str
    trimmed_bytes: int = 0
    total_bytes: int = 0

    def text(self) -> str:
        """The message, with a note at its head when earlier output was trimmed."""
        if not self.trimmed_bytes:
            return self.message
        return (f"[{self.trimmed_bytes} bytes of earlier output trimmed; showing the last "
                f"{self.total_bytes - self.trimmed_bytes} of {self.total_bytes} bytes]\n"
                + self.message)


@dataclass(frozen=True)
class StepOfRun:
    """A step of an execution, as a log id names it: `<executionId>-<stage>-<step>`."""

    execution_id: str
    stage: int
    step: int
    flow_run_id: UUID
    task_run: TaskRun | None  # None until the step starts (or when it never ran)


async def execution_logs(client: PrefectClient, project_id: str, execution_id: str,
                         limit_bytes: int) -> list[tuple[int, int, StepLog]]:
    """(stage, step, log) of every step of an execution, the ones that never ran empty.

    Raises:
        NotFoundError: no such execution in the project.
    """
    record = await read_execution(client, project_id=project_id, execution_id=execution_id,
                                  task_runs=True)
    positions = step_positions(record.task_runs or [])
    places = StoredDefinition.of(record.flow_run.parameters).places()
    logs = await asyncio.gather(*(
        read_step_log(client, getattr(positions.get(place), "id", None), limit_bytes)
        for place in places))
    return [(i, j, log) for (i, j), log in zip(places, logs, strict=True)]


async def find_step(client: PrefectClient, project_id: str, log_id: str) -> StepOfRun:
    """The step a log id names.

    Raises:
        NotFoundError: the id is malformed, or names no execution or step of the project.
    """
    parsed = parse_log_id(log_id)
    if parsed is None:
        raise NotFoundError(f"log {log_id!r} not found: expected <executionId>-<stage>-<step>")
    pipeline_id, run, stage, step = parsed
    execution_id = f"{pipeline_id}-{run}"
    execution = await read_execution(client, project_id=project_id, execution_id=execution_id,
                                     task_runs=True)
    if not StoredDefinition.of(execution.flow_run.parameters).has_step(stage, step):
        raise NotFoundError(f"execution {execution_id} has no step {stage}-{step}")
    return StepOfRun(execution_id, stage, step, execution.flow_run.id,
                     step_positions(execution.task_runs or []).get((stage, step)))


def follow_step(client: PrefectClient, found: StepOfRun) -> AsyncIterator[str]:
    """A step's output records as they arrive, until the step (or, when it never starts,
    its execution) is over."""

    async def is_over(task_run: TaskRun | None) -> bool:
        if task_run is not None and task_run.state is not None:
            return task_run.state.is_final()
        flow_run = await client.read_flow_run(found.flow_run_id)
        return flow_run.state is not None and flow_run.state.is_final()

    return follow_step_log(client, found.flow_run_id, found.stage, found.step, is_over=is_over)


async def find_task_run(client: PrefectClient, flow_run_id: UUID, stage: int, step: int
                        ) -> TaskRun | None:
    """The task run of step (stage, step) of an execution's flow run, if it ran."""
    runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
        flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]),
        tags=TaskRunFilterTags(all_=list(step_tags(stage, step))),
    ))
    if not runs:  # a run of an earlier version: its task runs are known by name
        runs = [task_run for position, task_run in step_positions(await client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
        )).items() if position == (stage, step)]
    return runs[-1] if runs else None


async def read_step_log(client: PrefectClient, task_run_id: UUID | None, limit_bytes: int
                        ) -> StepLog:
    """The latest `limit_bytes` of a step's output, cut at a line boundary.

    Records are read newest first, only as many as the limit needs; the newest record's
    offset tells how much output there was in all.
    """
    if task_run_id is None:
        return StepLog("")
    kept: list[Log] = []
    size = 0
    total: int | None = None
    offset = 0
    page_size = 8  # records are up to 256 KiB: a few usually hold the whole section
    while size < limit_bytes:
        page = await client.read_logs(
            log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run_id])),
            limit=page_size, offset=offset, sort=LogSort.TIMESTAMP_DESC,
        )
        for record in page:
            start = record_offset(record.name)
            if start is None:
                continue
            length = len(record.message.encode("utf-8", errors="replace")) + 1
            if total is None:
                total = start + length
            kept.append(record)
            size += length
            if size >= limit_bytes:
                break
        if len(page) < page_size:
            break
        offset += page_size
        page_size = min(page_size * 4, _PAGE)
    text = "\n".join(record.message for record in reversed(kept))
    raw = text.encode("utf-8", errors="replace")
    total = total or 0
    if len(raw) <= limit_bytes:
        earlier = record_offset(kept[-1].name) if kept else 0
        return StepLog(text, trimmed_bytes=earlier or 0, total_bytes=total)
    tail = raw[-limit_bytes:]
    newline = tail.find(b"\n")
    if newline != -1:
        tail = tail[newline + 1:]
    message = tail.decode("utf-8", errors="ignore")
    return StepLog(message, trimmed_bytes=total - len(tail) - 1, total_bytes=total)


async def follow_step_log(client: PrefectClient, flow_run_id: UUID, stage: int, step: int,
                          *, is_over: callable, poll_seconds: float = 0.5
                          ) -> AsyncIterator[str]:  # type: ignore[valid-type]
    """Yield a step's output records as they arrive, until the step is over.

    Args:
        is_over: async callable (task run or None) -> bool: whether the step (or, before
            it starts, the execution) has ended.
    """
    seen: set[UUID] = set()
    since: dt.datetime | None = None
    over_at: float | None = None
    loop = asyncio.get_running_loop()
    task_run: TaskRun | None = None
    while True:
        if task_run is None:
            task_run = await find_task_run(client, flow_run_id, stage, step)
        if task_run is not None:
            while True:
                page = await client.read_logs(
                    log_filter=LogFilter(
                        task_run_id=LogFilterTaskRunId(any_=[task_run.id]),
                        timestamp=LogFilterTimestamp(after_=since) if since else None,
                    ),
                    limit=_PAGE, sort=LogSort.TIMESTAMP_ASC,
                )
                fresh = [r for r in page if r.id not in seen and record_offset(r.name) is not None]
                for record in page:
                    seen.add(record.id)
                    since = record.timestamp
                for record in fresh:
                    yield record.message
                if len(page) < _PAGE:
                    break
        if over_at is None and await is_over(task_run):
            over_at = loop.time()
        if over_at is not None and loop.time() - over_at >= LATE_LOG_GRACE_SECONDS:
            return
        await asyncio.sleep(poll_seconds)
        if task_run is not None:
            task_run = await client.read_task_run(task_run.id)

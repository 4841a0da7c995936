"""Flow run and task runs -> a /v3 pipelineexecution (pure: no I/O).

States on the API are lowercase: waiting, queueing, running, success, failed, skipped,
aborted. A step that has no task run is `waiting` while the execution may still reach
it and `skipped` once the execution is over: it is never absent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from prefect.client.schemas.objects import FlowRun, StateType, TaskRun

from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.translator.plan import RunPlan
from prefect_pipelines.vocabulary import (
    ABORTED,
    FAILED,
    FINISHED,
    LABEL_AUTHOR,
    LABEL_BRANCH,
    LABEL_COMMIT,
    LABEL_EMAIL,
    LABEL_MESSAGE,
    LABEL_STEPS,
    QUEUEING,
    RUNNING,
    SKIPPED,
    SKIPPED_STATE_NAME,
    STAGE_TAG,
    STEP_TAG,
    SUCCESS,
    WAITING,
    tagged_run_number,
)

# Task runs of runs made before steps had readable names were named `stage-<i>-step-<j>`.
_LEGACY_TASK_NAME = re.compile(r"stage-(\d+)-step-(\d+)")

_FLOW_STATES = {
    StateType.SCHEDULED: WAITING,
    StateType.PENDING: WAITING,
    StateType.PAUSED: WAITING,
    StateType.RUNNING: RUNNING,
    StateType.CANCELLING: RUNNING,
    StateType.COMPLETED: SUCCESS,
    StateType.FAILED: FAILED,
    StateType.CRASHED: FAILED,
    StateType.CANCELLED: ABORTED,
}
_TASK_STATES = {**_FLOW_STATES, StateType.CANCELLING: ABORTED}

# The Prefect state types behind each API state, for filters.
PREFECT_TYPES: dict[str, list[StateType]] = {}
for _type, _state in _FLOW_STATES.items():
    PREFECT_TYPES.setdefault(_state, []).append(_type)
PREFECT_TYPES.setdefault(SKIPPED, [])
PREFECT_TYPES[QUEUEING] = [StateType.SCHEDULED]


def iso(value: dt.datetime | None) -> str | None:
    """`2012-09-27T18:39:00Z`, or None."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_state(state_type: StateType) -> str:
    """The API state of an execution whose flow run is in `state_type`."""
    return _FLOW_STATES.get(state_type, WAITING)


def flow_run_state(flow_run: FlowRun, queue_full: bool = False) -> str:
    """The API state of an execution.

    Args:
        queue_full: whether its project's executor quota is taken; a scheduled run then
            waits for a slot (`queueing`) rather than for a worker (`waiting`).
    """
    if flow_run.state_type is None:
        return WAITING
    if flow_run.state_type == StateType.SCHEDULED and queue_full:
        return QUEUEING
    return _FLOW_STATES.get(flow_run.state_type, WAITING)


def step_positions(task_runs: list[TaskRun]) -> dict[tuple[int, int], TaskRun]:
    """The step task runs of an execution by (stage, step): by their `stage:` and `step:`
    tags (their names are for people), or by the name runs of earlier versions gave them."""
    out: dict[tuple[int, int], TaskRun] = {}
    for task_run in task_runs:
        position = _position(task_run)
        if position is not None:
            out[position] = task_run
    return out


def _position(task_run: TaskRun) -> tuple[int, int] | None:
    stage = step = None
    for tag in task_run.tags or ():
        if tag.startswith(STAGE_TAG) and tag[len(STAGE_TAG):].isdigit():
            stage = int(tag[len(STAGE_TAG):])
        elif tag.startswith(STEP_TAG) and tag[len(STEP_TAG):].isdigit():
            step = int(tag[len(STEP_TAG):])
    if stage is not None and step is not None:
        return stage, step
    match = _LEGACY_TASK_NAME.fullmatch(task_run.name or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class StepRecord(NamedTuple):
    """What the API shows of one step: its Prefect state type, when it ran, and whether
    `when` skipped it (its task run then Completed, named SKIPPED_STATE_NAME)."""

    state_type: StateType | None
    started: dt.datetime | None
    ended: dt.datetime | None
    skipped: bool = False


Steps = dict[tuple[int, int], StepRecord]


def step_records(task_runs: list[TaskRun]) -> Steps:
    """The steps of an execution by (stage, step), from its task runs."""
    return {position: StepRecord(task_run.state_type, task_run.start_time, task_run.end_time,
                                 _skipped(task_run.state_type, task_run.state_name))
            for position, task_run in step_positions(task_runs).items()}


def _skipped(state_type: StateType | None, state_name: str | None) -> bool:
    return state_type == StateType.COMPLETED and state_name == SKIPPED_STATE_NAME


def encode_steps(steps: Steps, run_count: int) -> str:
    """`steps` as the value of the LABEL_STEPS label of a flow run in its `run_count`-th
    attempt: compact JSON, `[stage, step, state type, start, end, skipped]` per step (epoch
    seconds; `skipped` 1 or 0, absent in records of earlier versions)."""

    def epoch(value: dt.datetime | None) -> float | None:
        return round(value.timestamp(), 3) if value is not None else None

    rows = [[i, j, record.state_type.value if record.state_type else None,
             epoch(record.started), epoch(record.ended), int(record.skipped)]
            for (i, j), record in sorted(steps.items())]
    return json.dumps({"runCount": run_count, "steps": rows}, separators=(",", ":"))


def recorded_steps(flow_run: FlowRun) -> Steps | None:
    """The steps a run recorded on its flow run as it ended, or None when they cannot be
    trusted: the run is not over (a retry from the Prefect UI runs it again), the record
    is of an earlier attempt, or it is missing or malformed (the task runs then tell)."""
    value = (flow_run.labels or {}).get(LABEL_STEPS)
    if not isinstance(value, str) or flow_run.state is None or not flow_run.state.is_final():
        return None

    def when(epoch: Any) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(epoch, dt.timezone.utc) if epoch is not None else None

    try:
        data = json.loads(value)
        if data["runCount"] != flow_run.run_count:
            return None
        steps: Steps = {}
        for row in data["steps"]:
            i, j, state, start, end, *rest = row
            if len(rest) > 1:
                return None
            steps[(int(i), int(j))] = StepRecord(StateType(state) if state else None, when(start),
                                                 when(end), bool(rest[0]) if rest else False)
        return steps
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return None


def _stage_state(steps: list[dict[str, Any]], finished: bool) -> str:
    states = [step["state"] for step in steps]
    if FAILED in states:
        return FAILED
    if RUNNING in states:
        return RUNNING
    if all(state == SUCCESS for state in states):
        return SUCCESS
    if all(state == SKIPPED for state in states):
        return SKIPPED
    if ABORTED in states and all(state in FINISHED for state in states):
        return ABORTED
    if all(state in (SUCCESS, SKIPPED) for state in states) and finished:
        return SUCCESS
    return WAITING if not finished else SKIPPED


def stages_view(definition: dict[str, Any], steps: Steps, execution_state: str
                ) -> list[dict[str, Any]]:
    """`stages[]` of an execution, every step present, from its definition and its steps'
    records (task runs, or what the run recorded as it ended)."""
    finished = execution_state in FINISHED
    stages = []
    stored = StoredDefinition(definition)
    for i, stage in enumerate(stored.stages):
        views = []
        for j, _ in enumerate(stored.steps_of(stage)):
            record = steps.get((i, j))
            if record is None or record.state_type is None:
                state = SKIPPED if finished else WAITING
                views.append({"state": state, "started": None, "ended": None})
                continue
            state = SKIPPED if record.skipped else _TASK_STATES.get(record.state_type, WAITING)
            if finished and state in (WAITING, RUNNING):
                state = ABORTED if execution_state == ABORTED else FAILED
            views.append({
                "state": state,
                "started": iso(record.started),
                "ended": iso(record.ended) if state in FINISHED else None,
            })
        starts = [view["started"] for view in views if view["started"]]
        stage_state = _stage_state(views, finished)
        ends = [view["ended"] for view in views if view["ended"]]
        name = stage.get("name")
        stages.append({
            "name": name if isinstance(name, str) else "",
            "state": stage_state,
            "started": min(starts) if starts else None,
            "ended": max(ends) if ends and stage_state in FINISHED else None,
            "steps": views,
        })
    return stages


def execution_fields(flow_run: FlowRun, steps: Steps, *, project_id: str,
                     pipeline_id: str, queue_full: bool = False) -> dict[str, Any]:
    """The fields of a pipelineexecution (without links and actions)."""
    parameters = flow_run.parameters or {}
    definition = parameters.get("pipeline") or {}
    trigger = parameters.get("trigger") or {}
    state = flow_run_state(flow_run, queue_full)
    run = tagged_run_number(flow_run.tags) or 0
    labels = flow_run.labels or {}
    triggered_by = trigger.get("triggeredBy") or ("cron" if flow_run.auto_scheduled else "prefect")
    branch = _str(labels.get(LABEL_BRANCH)) or _str(parameters.get("branch"))
    event = _str(trigger.get("event")) or {"cron": "cron", "webhook": "push"}.get(triggered_by, "manual")
    return {
        "id": f"{pipeline_id}-{run}",
        "projectId": project_id,
        "pipelineId": pipeline_id,
        "run": run,
        "triggeredBy": triggered_by,
        "triggerUserId": _str(trigger.get("userId")) or None,
        "branch": branch,
        "ref": _str(trigger.get("ref")) or (f"refs/heads/{branch}" if branch else ""),
        "event": event,
        "repositoryUrl": StoredDefinition(definition).repository[0],
        # A webhook's delivery says what the commit is; a manual or cron run, git itself.
        "message": _str(trigger.get("message")) or _str(labels.get(LABEL_MESSAGE)),
        "author": _str(trigger.get("author")) or _str(labels.get(LABEL_AUTHOR)),
        "email": _str(trigger.get("email")) or _str(labels.get(LABEL_EMAIL)),
        "avatarUrl": _str(trigger.get("avatarUrl")),
        "htmlLink": _str(trigger.get("htmlLink")),
        "title": _str(trigger.get("title")),
        "pipeline": definition,
        "env": {name: value for name, value in (parameters.get("env") or {}).items()
                if isinstance(name, str) and isinstance(value, str)}
               if isinstance(parameters.get("env"), dict) else {},
        "commit": str(labels.get(LABEL_COMMIT) or trigger.get("commit") or ""),
        "state": state,
        "stateMessage": (flow_run.state.message or "") if flow_run.state and state in FINISHED else "",
        "started": iso(flow_run.start_time),
        "ended": iso(flow_run.end_time) if state in FINISHED else None,
        "stages": stages_view(definition, steps, state),
    }


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_log_id(log_id: str) -> tuple[str, int, int, int] | None:
    """`<pipelineId>-<run>-<stage>-<step>` -> (pipeline id, run, stage, step)."""
    match = re.fullmatch(r"(.+)-(\d+)-(\d+)-(\d+)", log_id)
    if not match:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))


def parse_execution_id(execution_id: str) -> tuple[str, int] | None:
    """`<pipelineId>-<run>` -> (pipeline id, run)."""
    match = re.fullmatch(r"(.+)-(\d+)", execution_id)
    if not match:
        return None
    return match.group(1), int(match.group(2))


def execution_report(plan: RunPlan, steps: Steps, *, state: str, message: str = "",
                     log_url: Callable[[int, int], str] | None = None) -> str:
    """The Markdown of an execution's Prefect artifact: its stages and steps, each step's
    state, duration and (for a project's run) a link to its log on /v3. A step that never
    started, or that `when` skipped, is `skipped`."""
    lines = [f"### Execution {plan.identity.execution_id}: {state}", ""]
    if message:
        lines += [_cell(message), ""]
    lines += ["| Stage | Step | State | Duration | Log |", "|---|---|---|---|---|"]
    known = plan.known_env()
    for step in plan.steps():
        record = steps.get((step.stage, step.index))
        step_state = (SKIPPED if record is None or record.state_type is None or record.skipped
                      else _TASK_STATES.get(record.state_type, WAITING))
        took = (f"{(record.ended - record.started).total_seconds():.1f} s"
                if record and record.started and record.ended else "")
        link = f"[log]({log_url(step.stage, step.index)})" if log_url and record else ""
        what = _cell(step.summary(known))
        lines.append(f"| {_cell(step.stage_name)} | {step.index + 1}: {what} | {step_state} "
                     f"| {took} | {link} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")

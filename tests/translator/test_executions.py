"""The record of its steps a run leaves on its flow run: written and read back exactly,
and refused whenever it cannot be trusted."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Completed, Running

from prefect_pipelines.translator.executions import (
    StepRecord,
    encode_steps,
    recorded_steps,
    stages_view,
)
from prefect_pipelines.vocabulary import LABEL_STEPS

T0 = dt.datetime(2026, 11, 29, 12, 0, 0, 250000, tzinfo=dt.timezone.utc)
STEPS = {
    (0, 0): StepRecord(StateType.COMPLETED, T0, T0 + dt.timedelta(seconds=3)),
    (0, 1): StepRecord(StateType.FAILED, T0, T0 + dt.timedelta(seconds=1.5)),
    (1, 0): StepRecord(StateType.CANCELLED, T0 + dt.timedelta(seconds=4), None),
    (1, 1): StepRecord(None, None, None),
}
DEFINITION = {"stages": [{"steps": [{}, {}]}, {"steps": [{}, {}, {}]}]}


def flow_run(label: str | None, state=Completed(), run_count: int = 1) -> FlowRun:  # type: ignore[no-untyped-def]
    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), state=state, run_count=run_count,
                   labels={LABEL_STEPS: label} if label is not None else {})


def test_a_record_reads_back_as_written() -> None:
    assert recorded_steps(flow_run(encode_steps(STEPS, 1))) == STEPS


def test_the_view_from_a_record_is_the_view_from_the_steps() -> None:
    recorded = recorded_steps(flow_run(encode_steps(STEPS, 1)))
    assert recorded is not None
    assert stages_view(DEFINITION, recorded, "failed") == stages_view(DEFINITION, STEPS, "failed")
    assert [s["state"] for s in stages_view(DEFINITION, recorded, "failed")[1]["steps"]] == \
        ["aborted", "skipped", "skipped"]


@pytest.mark.parametrize("run", [
    pytest.param(flow_run(None), id="no record"),
    pytest.param(flow_run(encode_steps(STEPS, 1), state=Running()), id="run not over"),
    pytest.param(flow_run(encode_steps(STEPS, 1), run_count=2), id="record of an earlier attempt"),
    pytest.param(flow_run("{not json"), id="not JSON"),
    pytest.param(flow_run('{"runCount": 1, "steps": [[0, 0, "NO_SUCH_STATE", null, null]]}'), id="unknown state"),
    pytest.param(flow_run('{"runCount": 1, "steps": [[0, 0]]}'), id="short row"),
    pytest.param(flow_run('{"runCount": 1, "steps": [[0, 0, "COMPLETED", 1e300, null]]}'), id="time out of range"),
    pytest.param(flow_run('{"steps": []}'), id="no run count"),
])
def test_a_record_that_cannot_be_trusted_is_not_used(run: FlowRun) -> None:
    assert recorded_steps(run) is None

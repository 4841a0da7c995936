"""A run whose worker died while the run was being cancelled is not left cancelling (shown
`running`, holding its project's quota slot) for good: Prefect does not let a Cancelling
run be marked Crashed, so the "worker lost while cancelling" automation ends it Cancelled.
(A worker killed while a run runs is tests/faults/test_scale_out.py.)"""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling, Running

from prefect_pipelines.flows import run_pipeline
from tests.support.procs import wait_for


@pytest.mark.timeout(120)
def test_a_run_whose_worker_died_while_cancelling_it_ends_cancelled(short_lost_window: int) -> None:
    with get_client(sync_client=True) as client:
        # A run as a worker leaves it when it dies between the cancel request and the end
        # of the run: Running, then Cancelling, and nothing after.
        flow_run = client.create_flow_run(run_pipeline, parameters={"pipeline": {"stages": []}})
        for state in (Running(), Cancelling(message="cancelled from the UI")):
            assert client.set_flow_run_state(flow_run.id, state, force=True).status.value == "ACCEPT"

        def ended() -> object:
            state = client.read_flow_run(flow_run.id).state
            return state if state is not None and state.type != StateType.CANCELLING else None

        state = wait_for(ended, timeout=short_lost_window + 40, interval=1, what="the cancelling run to end")
    assert state.type == StateType.CANCELLED, state
    assert "still stopping" in (state.message or "") and "worker" in (state.message or ""), state.message

"""The worker (worker.py) on a real Prefect server: it runs only run-pipeline flow runs of
its pool, and says so to a run of any other flow instead of running its code."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from prefect_pipelines.settings import get_settings
from prefect_pipelines.vocabulary import ENTRYPOINT
from tests.support.procs import wait_for


@pytest.mark.timeout(120)
def test_a_run_of_another_flow_in_the_pool_is_crashed_not_run(worker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Anyone who may deploy to the pool could point a deployment at any code: the worker
    executes run-pipeline alone, in its own process, and crashes anything else."""
    marker = tmp_path / "ran"
    script = tmp_path / "other.py"
    script.write_text(f"from prefect import flow\n\n@flow\ndef other():\n    open({str(marker)!r}, 'w')\n")
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(f"other-{uuid.uuid4().hex[:6]}")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name="not-a-pipeline", work_pool_name=get_settings().work_pool,
            entrypoint=f"{script}:other", path=str(tmp_path))
        flow_run = client.create_flow_run_from_deployment(deployment_id)

        def ended() -> object:
            state = client.read_flow_run(flow_run.id).state
            return state if state is not None and state.is_final() else None

        state = wait_for(ended, timeout=90, interval=0.5, what="the worker to end the run")
        client.delete_deployment(deployment_id)
    assert state.type == StateType.CRASHED, state
    assert f"this worker runs only {ENTRYPOINT} deployments" in (state.message or ""), state.message
    assert not marker.exists()

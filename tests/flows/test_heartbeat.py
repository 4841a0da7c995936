"""A running execution beats: it sends Prefect its flow-run heartbeat every
`heartbeat_seconds` from its start to its end, none once it is over (a beat after the
end would start a "worker lost" countdown for a finished run), and a run that is slow to
finish after its steps is not taken for lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from prefect import flow_engine
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import State
from pydantic import ValidationError

from prefect_pipelines.flows import pipeline, run_pipeline
from prefect_pipelines.flows.engine import run_flow_run
from prefect_pipelines.settings import Settings, get_settings
from prefect_pipelines.vocabulary import FLOW_NAME
from tests.support.events import events_about
from tests.support.procs import wait_for
from tests.support.runs import run_definition


@pytest.fixture
def fast_beats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PREFECT_PIPELINES_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("PREFECT_PIPELINES_LOST_AFTER_SECONDS", "30")
    monkeypatch.setenv("PREFECT_PIPELINES_EXECUTOR", "process")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fast_beats")
def test_a_run_beats_while_it_runs_and_not_after(prefect_api: str) -> None:
    since = time.time() - 5
    state, flow_run_id = run_definition(
        {"stages": [{"name": "work", "steps": [{"runScriptConfig": {
            "image": "busybox", "shellScript": "sleep 4"}}]}]})
    assert state.is_completed(), state.message

    def recorded() -> list[dict] | None:
        events = events_about(prefect_api, [f"prefect.flow-run.{flow_run_id}"], since)
        return events if any(e["event"] == "prefect.flow-run.Completed" for e in events) else None

    events = wait_for(recorded, timeout=30, what="the run's events")
    at = {e["event"]: datetime.fromisoformat(e["occurred"]) for e in events if "heartbeat" not in e["event"]}
    beats = [e for e in events if e["event"] == "prefect.flow-run.heartbeat"]
    # A 4 s step with a beat every second: at least four beats, all between start and end.
    assert len(beats) >= 4, [e["event"] for e in events]
    for beat in beats:
        assert at["prefect.flow-run.Running"] <= datetime.fromisoformat(beat["occurred"]) \
            < at["prefect.flow-run.Completed"], beat
        flow = [r for r in beat["related"] if r.get("prefect.resource.role") == "flow"]
        assert flow and flow[0]["prefect.resource.name"] == FLOW_NAME, beat["related"]


ONE_STEP = {"stages": [{"name": "work", "steps": [{"runScriptConfig": {
    "image": "busybox", "shellScript": "echo done"}}]}]}


def _never_crashed(flow_run_id: UUID) -> None:
    with get_client(sync_client=True) as client:
        history = [(s.type, s.message) for s in client.read_flow_run_states(flow_run_id)]
    assert history and all(kind != StateType.CRASHED for kind, _ in history), history


# After its steps a run still writes to Prefect (its step record, its commit status, its
# final state); on a busy SQLite server Prefect's client retries such a write for up to a
# minute. The run must go on beating meanwhile. In both tests below the last stretch takes
# two and a half "worker lost" windows.

@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fast_beats")
def test_a_run_slow_to_finish_after_its_steps_is_not_taken_for_lost(
        short_lost_window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    report = pipeline.CommitStatus.report

    def slow_report(self: pipeline.CommitStatus, state: str, description: str) -> None:
        if state == "success":
            time.sleep(2.5 * short_lost_window)
        report(self, state, description)

    monkeypatch.setattr(pipeline.CommitStatus, "report", slow_report)
    state, flow_run_id = run_definition(ONE_STEP)
    assert state.is_completed(), state.message
    _never_crashed(flow_run_id)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("fast_beats")
def test_a_slow_final_state_under_the_worker_engine_is_not_taken_for_lost(
        short_lost_window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's engine beats until Prefect has the final state, after the flow returns.
    propose = flow_engine.propose_state_sync

    def slow_propose(client: Any, state: State, *args: Any, **kwargs: Any) -> State:
        if state.is_final():
            time.sleep(2.5 * short_lost_window)
        return propose(client, state, *args, **kwargs)

    monkeypatch.setattr(flow_engine, "propose_state_sync", slow_propose)
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(run_pipeline, parameters={"pipeline": ONE_STEP})
    state = run_flow_run(run_pipeline, flow_run)
    assert state.is_completed(), state.message
    _never_crashed(flow_run.id)


def test_lost_after_must_span_three_beats() -> None:
    with pytest.raises(ValidationError, match="lost_after_seconds .20. must be at least three heartbeats"):
        Settings(heartbeat_seconds=10, lost_after_seconds=20)
    assert Settings(heartbeat_seconds=10, lost_after_seconds=30).lost_after_seconds == 30

"""Running a flow run in this process, without the per-run suspension observer.

Prefect's flow engine starts, for every flow run of a deployment, a thread with its own
event loop and an events websocket, and waits for it before the flow begins (about
0.2 s here), only to notice "suspend" requests from the UI. Pipeline runs are never
suspended (they are cancelled or they finish), so the worker runs them with an engine
that registers the suspension request but does not open that watch. Everything else is
Prefect's engine as it is: the same states, logs and results.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from prefect._flow_run_suspension import (
    FlowRunSuspensionRequest,
    register_flow_run_suspension_request,
)
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import FlowRunEngine
from prefect.flows import Flow
from prefect.states import State

from prefect_pipelines.flows.heartbeat import heartbeats
from prefect_pipelines.settings import get_settings


class PipelineFlowRunEngine(FlowRunEngine[Any, Any]):
    """Prefect's sync flow engine minus the suspension observer and its heartbeat thread:
    a pipeline run sends its own heartbeats, more often than Prefect's 30 s minimum
    (flows/heartbeat.py)."""

    @property
    def heartbeat_seconds(self) -> int | None:
        return None

    @contextmanager
    def setup_flow_run_suspension_request(self) -> Generator[FlowRunSuspensionRequest, None, None]:
        if not self.flow_run:
            raise ValueError("Flow run not set")
        request = self._get_flow_run_suspension_request()
        with register_flow_run_suspension_request(self.flow_run.id, request):
            request.raise_if_requested()
            yield request


def run_flow_run(flow: Flow[Any, Any], flow_run: FlowRun) -> State:
    """Run an existing flow run to a final state in this thread; return that state.

    The run beats from before it starts until Prefect has its final state, so that a slow
    write of that state (a busy SQLite server) does not look like a lost worker."""
    engine = PipelineFlowRunEngine(flow=flow, parameters=flow_run.parameters, flow_run=flow_run)
    with heartbeats(flow_run, get_settings().heartbeat_seconds, over=lambda: _is_over(engine)):
        with engine.start():
            while engine.is_running():
                with engine.run_context():
                    engine.call_flow_fn()
    return engine.state


def _is_over(engine: PipelineFlowRunEngine) -> bool:
    state = engine.flow_run.state if engine.flow_run is not None else None
    return state is not None and state.is_final()

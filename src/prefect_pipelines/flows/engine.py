"""Where we bend Prefect's engine for pipeline runs, and why.

`run_flow_run`: Prefect's flow engine starts, for every flow run of a deployment, a thread
with its own event loop and an events websocket, and waits for it before the flow begins
(about 0.2 s here), only to notice "suspend" requests from the UI. Pipeline runs are never
suspended (they are cancelled or they finish), so the worker runs them with an engine
that registers the suspension request but does not open that watch. Everything else is
Prefect's engine as it is: the same states, logs and results.

`StepTagLimits`: a step's task run skips Prefect's tag-limit request when no limit names
its tags, through the memo of Prefect's concurrency service.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from prefect._flow_run_suspension import (
    FlowRunSuspensionRequest,
    register_flow_run_suspension_request,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.concurrency import services as concurrency_services
from prefect.flow_engine import FlowRunEngine
from prefect.flows import Flow
from prefect.states import State

from prefect_pipelines.flows.heartbeat import heartbeats
from prefect_pipelines.settings import get_settings
from prefect_pipelines.translator import RunPlan
from prefect_pipelines.vocabulary import step_tags

_log = logging.getLogger(__name__)


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


class StepTagLimits:
    """Spares each step's task run Prefect's tag-limit request when no limit names a step tag.

    A task run with tags asks Prefect's concurrency API for slots of `tag:<tag>` limits as
    it starts; Prefect remembers "no such limit" for only 5 s per set of tags, and every
    step has its own set (`stage:i`, `step:j`), so each step of a run paid a request. One
    look at the limits per run, then the same memo Prefect keeps (when this Prefect
    version has it), removes that. A limit named after a step tag keeps the request.
    """

    def __init__(self, plan: RunPlan) -> None:
        self._cache = getattr(concurrency_services, "_no_limits_cache", None)
        self._lock = getattr(concurrency_services, "_cache_lock", None)
        self.enabled = False
        if self._cache is None or self._lock is None:
            return
        wanted = {f"tag:{tag}" for step in plan.steps() for tag in step_tags(step.stage, step.index)}
        try:
            with get_client(sync_client=True) as client:
                existing: set[str] = set()
                offset = 0
                while True:
                    page = client.read_global_concurrency_limits(limit=200, offset=offset)
                    existing.update(limit.name for limit in page)
                    if len(page) < 200:
                        break
                    offset += 200
        except Exception as exc:  # noqa: BLE001 - then Prefect asks per step, as usual
            _log.debug("could not read concurrency limits: %s", exc)
            return
        self.enabled = not (existing & wanted)

    def before_step(self, stage: int, index: int) -> None:
        """Note, right before a step's task starts, that its tags have no limits."""
        if self.enabled:
            with self._lock:
                self._cache[frozenset(f"tag:{tag}" for tag in step_tags(stage, index))] = True

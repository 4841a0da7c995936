"""A running execution's sign of life: Prefect's `prefect.flow-run.heartbeat` event, sent
every `heartbeat_seconds` from a thread of its own for as long as the run lasts, its slow
writes before and after the steps included. The "worker lost" automation
(services/lost_runs.py) marks a run Crashed when the beats stop. We send them, not
Prefect's engine, whose interval cannot go below 30 s (why: docs/history.md). One run
beats once: the inner of two nested `heartbeats()` sends nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from uuid import UUID

from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event

from prefect_pipelines.flows.control import start_thread
from prefect_pipelines.vocabulary import FLOW_NAME

_log = logging.getLogger(__name__)
# The runs beating in this call chain: the flow function, called by the worker's engine in
# the engine's thread and context, sees its engine's beats here (another thread, such as
# a retry of the same run taken while an old attempt still ends, does not).
_beating: ContextVar[frozenset[UUID]] = ContextVar("pipelines_beating", default=frozenset())


@contextmanager
def heartbeats(
    flow_run: FlowRun, seconds: float, over: Callable[[], bool] = lambda: False
) -> Iterator[None]:
    """Beat for `flow_run` every `seconds` while the block runs, the first beat at once;
    stop early once `over()` is true (the run has its final state)."""
    beating = _beating.get()
    if flow_run.id in beating:
        yield
        return
    stop = threading.Event()
    token = _beating.set(beating | {flow_run.id})
    thread: threading.Thread | None = None
    try:
        beat = _beat_for(flow_run)

        def beats() -> None:
            while not _is_true(over):
                beat()
                if stop.wait(seconds):
                    return

        thread = start_thread(beats, f"heartbeat-{flow_run.id}")
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
        _beating.reset(token)


def _is_true(over: Callable[[], bool]) -> bool:
    try:
        return over()
    except Exception:  # noqa: BLE001 - when in doubt, the run is alive: keep beating
        _log.warning("could not tell whether the run is over; beating on", exc_info=True)
        return False


def _beat_for(flow_run: FlowRun) -> Callable[[], None]:
    """A function that emits the flow run's heartbeat event (as Prefect's engine builds it:
    the run as resource, its flow and deployment as related resources)."""
    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                "prefect.resource.name": flow_run.name or ""}
    related = [{"prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME}]
    if flow_run.deployment_id is not None:
        related.append({"prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                        "prefect.resource.role": "deployment"})

    def beat() -> None:
        try:
            emit_event(event="prefect.flow-run.heartbeat", resource=resource, related=related)
        except Exception:  # noqa: BLE001 - the next beat tries again
            _log.debug("heartbeat not sent", exc_info=True)

    return beat

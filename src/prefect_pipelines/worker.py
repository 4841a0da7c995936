"""The prefect-pipelines worker: a Prefect worker that runs `run-pipeline` flow runs fast.

It is a real Prefect worker (it registers with its work pool, heartbeats, shows in the UI,
claims runs with Prefect's Pending transition, so several workers can share a pool), with
two changes that take the stock process worker's ~5 s down to a fraction of a second:

- it wakes up on Prefect's event stream as soon as a run is scheduled for its pool,
  instead of only polling every `PREFECT_WORKER_QUERY_SECONDS`;
- it runs each flow run in a thread of an already warm process, with the flow and Prefect
  imported once, instead of starting `python -m prefect.engine` per run.

A step's containers are the isolation that matters here; a run needs no process of its own.
Cancelling a run (from the UI, the API or `Cancelling`) stops its steps at once through the
same event stream.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import anyio
import anyio.abc
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import (
    EventAnyResourceFilter,
    EventFilter,
    EventNameFilter,
)
from prefect.exceptions import InfrastructureNotFound
from prefect.logging import get_logger
from prefect.settings import (
    PREFECT_LOGGING_TO_API_BATCH_INTERVAL,
    PREFECT_WORKER_QUERY_SECONDS,
    temporary_settings,
)
from prefect.states import Cancelled, Crashed
from prefect.workers.base import BaseWorker, BaseWorkerResult
from prefect.workers.process import ProcessJobConfiguration, ProcessVariables

from prefect_pipelines.flows.engine import run_flow_run
from prefect_pipelines.flows.executors import describe_executor, pin_executor, resolve_executor
from prefect_pipelines.flows.executors.docker import leftover_containers, remove_containers
from prefect_pipelines.flows.pipeline import active_runs, run_pipeline
from prefect_pipelines.presence import Presence
from prefect_pipelines.services.lost_runs import ensure_lost_runs_automation
from prefect_pipelines.settings import get_settings
from prefect_pipelines.vocabulary import ENTRYPOINT, FLOW_NAME, WORKER_TYPE

_SCHEDULED = "prefect.flow-run.Scheduled"
_CANCELLING = "prefect.flow-run.Cancelling"
# A run that ends frees a slot of its project's quota: look for a queued one.
_ENDED = tuple(f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Cancelled", "Crashed"))
_log = get_logger("prefect_pipelines.worker")
_T = TypeVar("_T")


class PipelineWorkerResult(BaseWorkerResult):
    """How a flow run executed by the worker ended (0: it reached a final state)."""


class PipelineWorker(BaseWorker[ProcessJobConfiguration, ProcessVariables, PipelineWorkerResult]):
    """Runs `run-pipeline` flow runs in threads of one warm process, woken by events."""

    type = WORKER_TYPE
    job_configuration = ProcessJobConfiguration
    job_configuration_variables = ProcessVariables
    _description = "Runs prefect-pipelines executions in a warm process, woken by events."
    _display_name = "prefect-pipelines"
    _documentation_url = "https://github.com/prefect-pipelines/prefect-pipelines"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wake = asyncio.Event()
        self._polling = asyncio.Lock()
        self._flow_id: UUID | None = None
        self._claims: dict[UUID, asyncio.Event] = {}
        self._pid_prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._presence: Presence | None = None

    def _ensure_worker_channel(self) -> None:
        """Use Prefect's REST heartbeats, not the worker-channel websocket.

        On a SQLite server, Prefect 3.8 persists worker-channel heartbeats in a write
        transaction that also publishes to the in-memory message broker; under load the
        publish waits on consumers that wait on that transaction's lock, and the whole
        server stalls for the 60 s SQLite busy timeout. The REST heartbeat has no such
        path. (Seen here under a burst of runs; `mark_work_queues_ready` and the heartbeat
        then fail after 60 s.)
        """
        super()._ensure_worker_channel()
        transport = getattr(self._worker_channel, "_transport", None)
        if transport is not None and getattr(transport, "url", None) is not None:
            transport.url = None

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[str] | None = None,
    ) -> PipelineWorkerResult:
        """Execute the flow run in a thread of this process and wait for it to end."""
        return await self._execute(flow_run, task_status)

    async def _submit_run(self, flow_run: FlowRun) -> None:
        """Claim the run (Pending) and start it at once.

        Prefect's own submission also re-reads the deployment, resolves a job
        configuration, relabels the run and proposes a Submitting state before starting
        anything: about 0.15 s that a run in a thread of this process does not need.
        """
        claimed = self._claims.setdefault(flow_run.id, asyncio.Event())
        try:
            if not await self._is_pipeline_run(flow_run):
                await self._propose_crashed_state(
                    flow_run, f"this worker runs only {ENTRYPOINT} deployments")
                self._release_limit_slot(flow_run.id)
                return
            pending = await self._propose_pending_state(flow_run)
            claimed.set()
            if not pending:
                self._release_limit_slot(flow_run.id)
                return
            assert self._runs_task_group is not None
            await self._runs_task_group.start(self._run_and_release, flow_run)
        finally:
            claimed.set()
            self._submitting_flow_run_ids.discard(flow_run.id)
            if self._cancelling_observer is not None:
                self._cancelling_observer.remove_in_flight_flow_run_id(flow_run.id)

    async def _run_and_release(self, flow_run: FlowRun,
                               task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
                               ) -> None:
        try:
            await self._execute(flow_run, task_status)
        finally:
            self._release_limit_slot(flow_run.id)

    async def _execute(self, flow_run: FlowRun,
                       task_status: anyio.abc.TaskStatus[str] | None) -> PipelineWorkerResult:
        identifier = f"{self._pid_prefix}:{flow_run.id}"
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[int] = loop.create_future()
        context = contextvars.copy_context()

        def execute() -> None:
            code = 0
            try:
                run_flow_run(run_pipeline, flow_run)
            except BaseException:  # noqa: BLE001 - the engine already reported the state
                _log.exception("flow run %s ended with an error", flow_run.id)
                code = 1
            loop.call_soon_threadsafe(_resolve, finished, code)

        thread = threading.Thread(target=context.run, args=(execute,),
                                  name=f"flow-run-{flow_run.id}", daemon=True)
        thread.start()
        if task_status is not None:
            task_status.started(identifier)
        loop.create_task(self._record_pid(flow_run, identifier))
        code = await finished
        return PipelineWorkerResult(status_code=code, identifier=identifier)

    async def _record_pid(self, flow_run: FlowRun, identifier: str) -> None:
        """Note where the run executes (so cancellation and reaping can find it)."""
        try:
            await self.client.update_flow_run(flow_run_id=flow_run.id,
                                              infrastructure_pid=identifier)
        except Exception as exc:  # noqa: BLE001 - informative only
            _log.debug("could not record the infrastructure of %s: %s", flow_run.id, exc)

    async def _is_pipeline_run(self, flow_run: FlowRun) -> bool:
        """Whether the run is of the run-pipeline flow (its id is looked up once)."""
        if self._flow_id is None:
            flow = await self.client.read_flow_by_name(FLOW_NAME)
            self._flow_id = flow.id
        return flow_run.flow_id == self._flow_id

    async def kill_infrastructure(
        self, infrastructure_pid: str, configuration: ProcessJobConfiguration,
        grace_seconds: int = 30,
    ) -> None:
        """Stop a run of this process (its steps' containers go at once)."""
        prefix, _, run_id = infrastructure_pid.rpartition(":")
        if prefix != self._pid_prefix or not _cancel_local(run_id, "the run was cancelled"):
            raise InfrastructureNotFound(f"no run {infrastructure_pid} in this worker")

    async def start(self, run_once: bool = False, with_healthcheck: bool = False,
                    printer: Any = print) -> None:
        """Run the worker's loops and, beside them, the event listener."""
        helpers = [asyncio.create_task(self._listen()), asyncio.create_task(self._reap())]
        try:
            await super().start(run_once=run_once, with_healthcheck=with_healthcheck,
                                printer=printer)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _reap(self) -> None:
        """Make sure lost runs fail, and remove the containers they left behind.

        A worker that dies (SIGKILL, host lost) leaves its runs Running and their step
        containers on the engine. Prefect's automation (services/lost_runs) ends such runs
        once their heartbeats stop; every worker then removes, from its own engine, the
        containers of runs that are over (as its Prefect server knows them) and of no run it
        is executing itself.
        """
        settings = get_settings()
        client = await _when_ready(lambda: self.client)
        try:
            await ensure_lost_runs_automation(client, settings.lost_after_seconds)
        except Exception as exc:  # noqa: BLE001 - a facade makes it too
            _log.warning("could not set up lost-run detection: %s", exc)
        try:
            self._presence = Presence(settings.workspace_root, self._pid_prefix)
        except OSError as exc:
            _log.warning("cannot tell this machine's workers apart (%s): lost runs end by "
                         "the automation alone", exc)
        while True:
            try:
                ended = await self._end_orphans()
                if ended:
                    _log.warning("ended %d run(s) of a worker of this machine that is gone", ended)
                if settings.executor != "process":
                    removed = await self._reap_once(settings.docker_host)
                    if removed:
                        _log.info("removed %d container(s) of runs that are over", removed)
            except Exception as exc:  # noqa: BLE001 - tried again next round
                _log.debug("reaping failed: %s", exc)
            await anyio.sleep(settings.reap_seconds)

    async def _end_orphans(self) -> int:
        """End the runs of this pool that a worker of this machine held when its process
        went (presence.py): Running and Pending ones Crashed, Cancelling ones Cancelled,
        each saying the worker was lost. Prefect's automation does the same for any
        machine, after LOST_AFTER_SECONDS of silence; this is the certain, early case (the
        embedded server restarting its worker)."""
        if self._presence is None:
            return 0
        work_pool = await _when_ready(lambda: self.work_pool)
        runs = await self.client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.RUNNING, StateType.PENDING, StateType.CANCELLING]))),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[work_pool.name])),
            limit=200)
        verdicts: dict[str, bool] = {}
        ended = 0
        for run in runs:
            worker = (run.infrastructure_pid or "").rpartition(":")[0]
            if not worker or worker == self._pid_prefix:
                continue
            if worker not in verdicts:
                verdicts[worker] = self._presence.gone(worker)
            if not verdicts[worker]:
                continue
            why = f"worker lost: its worker process ({worker}) is gone"
            state = (Cancelled(message=f"cancelled; {why}") if run.state_type == StateType.CANCELLING
                     else Crashed(message=why))
            await self.client.set_flow_run_state(run.id, state)
            ended += 1
        for worker, gone in verdicts.items():
            if gone:
                self._presence.forget(worker)
        return ended

    async def _reap_once(self, docker_host: str | None) -> int:
        left = await asyncio.to_thread(leftover_containers, docker_host)
        mine = set(active_runs.ids())
        ids = [run_id for run_id in map(_uuid_or_none, left) if run_id and run_id not in mine]
        if not ids:
            return 0
        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
        # Only runs this Prefect server knows to be over: an engine may be shared with
        # another installation, whose runs are none of ours.
        over = [container for run in runs if run.state and run.state.is_final()
                for container in left.get(str(run.id), [])]
        return await asyncio.to_thread(remove_containers, docker_host, over)

    async def _listen(self) -> None:
        """Wake the poller on newly scheduled runs; stop local runs on Cancelling."""
        work_pool = await _when_ready(lambda: self.work_pool)
        event_filter = EventFilter(
            event=EventNameFilter(name=[_SCHEDULED, _CANCELLING, *_ENDED]),
            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{work_pool.id}"]),
        )
        async with anyio.create_task_group() as group:
            group.start_soon(self._poll_on_wake)
            while True:
                try:
                    async with get_events_subscriber(filter=event_filter) as subscriber:
                        async for event in subscriber:
                            self._on_event(event.event, event.resource.id)
                except Exception as exc:  # noqa: BLE001 - polling goes on meanwhile
                    _log.warning("event stream lost (%s); reconnecting", exc)
                    await anyio.sleep(1)

    def _on_event(self, name: str, resource_id: str) -> None:
        if name == _SCHEDULED or name in _ENDED:
            self._wake.set()
        elif name == _CANCELLING:
            _cancel_local(resource_id.removeprefix("prefect.flow-run."), "the run was cancelled")

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        """Poll for runs, never twice at once (the timer and an event may coincide), and
        not again before the runs of this poll are claimed (Pending): Prefect counts a
        project's quota from its queue's Pending and Running runs, so a poll that came
        before the claims landed could start one run too many."""
        async with self._polling:
            submitted = await super().get_and_submit_flow_runs()
            events = [self._claims.setdefault(run.id, asyncio.Event()) for run in submitted]
            try:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout=30)
            except asyncio.TimeoutError:
                _log.warning("runs not claimed within 30 s; polling again")
            finally:
                for run in submitted:
                    self._claims.pop(run.id, None)
            return submitted

    async def _poll_on_wake(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0.02)  # one poll for a burst of events
            self._wake.clear()
            try:
                await self.get_and_submit_flow_runs()
            except Exception as exc:  # noqa: BLE001 - the regular poll retries
                _log.warning("could not fetch scheduled runs: %s", exc)


async def _when_ready(part: Callable[[], _T]) -> _T:
    """A public part of the worker (`client`, `work_pool`) once its start has made it:
    Prefect's properties raise RuntimeError until `setup` and the first sync with the
    server have run, and this worker's helpers start beside them."""
    while True:
        try:
            return part()
        except RuntimeError:
            await anyio.sleep(0.05)


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def _resolve(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


def _cancel_local(flow_run_id: str, message: str) -> bool:
    run_id = _uuid_or_none(flow_run_id)
    control = active_runs.get(run_id) if run_id else None
    if control is None:
        return False
    control.cancel(message)
    return True


def choose_executor() -> str:
    """Choose the executor of this worker's runs once, at its start, and say which: an
    `auto` setting becomes docker or process (see `executors.resolve_executor`), pinned
    in this process's settings for every run it executes."""
    settings = get_settings()
    choice = resolve_executor(settings)
    _log.info("%s", describe_executor(settings, choice))
    pin_executor(choice)
    return choice


async def run_worker(
    pool: str, *, name: str | None = None, limit: int | None = None, poll_seconds: float = 5.0
) -> None:
    """Run a worker until SIGINT or SIGTERM; its executor is chosen first (`choose_executor`).

    On the first signal the worker cancels its running executions (their containers are
    stopped and they end Cancelled, "the worker was stopped") and exits once they have
    reported; a second signal exits at once.
    """
    # Unless set otherwise: poll at our interval, and send logs soon enough to follow them.
    defaults = {
        "PREFECT_WORKER_QUERY_SECONDS": (PREFECT_WORKER_QUERY_SECONDS, poll_seconds),
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": (PREFECT_LOGGING_TO_API_BATCH_INTERVAL, 0.5),
    }
    updates = {setting: value for name, (setting, value) in defaults.items()
               if name not in os.environ}
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    async def stop_when_idle() -> None:
        for _ in range(600):
            if not active_runs.ids():
                break
            await asyncio.sleep(0.1)
        main.cancel()

    def on_signal() -> None:
        if stopping.is_set():
            main.cancel()
            return
        stopping.set()
        for run_id in active_runs.ids():
            _cancel_local(str(run_id), "the worker was stopped")
        loop.create_task(stop_when_idle())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await asyncio.to_thread(choose_executor)
    with temporary_settings(updates):
        worker = PipelineWorker(work_pool_name=pool, name=name, limit=limit)
        try:
            await worker.start()
        except asyncio.CancelledError:
            pass

"""Sending the notifications of finished executions: once each, by whichever facade
claims it, whoever ended the run.

No worker code sees every run end (a run aborted before it started, or whose worker was
lost, is ended by Prefect), so each facade follows Prefect's event stream for the final
states of `run-pipeline` runs, and sweeps for finished runs it has not looked at (every
NOTIFY_SWEEP_SECONDS, and back NOTIFY_WINDOW_MINUTES at start). A run whose pipeline's
`notification` wants a notice is claimed by an anonymous block document
`notice-<flow run id>-<attempt>`: Prefect's unique index on block names lets one facade
have it. The claimer sends, then marks the claim sent. A claim whose facade stopped
(its delivery lease went quiet, see deliveries.Dispatcher) before it was marked is taken
again as the next attempt, so a notice is lost only with every facade; one that went
out just before its facade died unmarked goes out twice.

A notifier that fails is tried NOTIFY_ATTEMPTS times, each within
NOTIFY_TIMEOUT_SECONDS; the outcome is logged on the execution's flow run. Nothing here
changes a run's state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cachetools import TTLCache
from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate, LogCreate
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter
from prefect.exceptions import ObjectAlreadyExists
from pydantic import ValidationError

from prefect_pipelines.blocks import NoticeClaim
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services.documents import block_ids
from prefect_pipelines.services.executions import ENDED, branch_of, last_finished, pipeline_of
from prefect_pipelines.services.notifiers import send
from prefect_pipelines.translator.executions import execution_fields, flow_run_state
from prefect_pipelines.translator.notices import compose, condition_of, wanted
from prefect_pipelines.translator.spec import Notification
from prefect_pipelines.vocabulary import (
    FINISHED,
    FLOW_NAME,
    TAG_PROJECT,
    tagged_run_number,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

    from prefect_pipelines.services.deliveries import Dispatcher
    from prefect_pipelines.settings import Settings

_log = logging.getLogger(__name__)
# The names of the events of those states (Prefect names an event after its state).
_EVENTS = [f"prefect.flow-run.{name}" for name in
           ("Completed", "Failed", "Crashed", "Cancelled", "TimedOut", "Skipped")]
_PAGE = 200
_HELD = object()  # another facade holds a run's claim


def claim_prefix(flow_run_id: UUID | str) -> str:
    return f"notice-{flow_run_id}-"


def claim_name(flow_run_id: UUID | str, attempt: int) -> str:
    return f"{claim_prefix(flow_run_id)}{attempt:03d}"


def project_of(flow_run: FlowRun) -> str:
    for tag in flow_run.tags:
        if tag.startswith(TAG_PROJECT):
            return tag[len(TAG_PROJECT):]
    return ""


def notification_of(flow_run: FlowRun) -> Notification | None:
    """The `notification` of the definition the run ran (a repository's file's, once
    the run read it), None when there is none or it cannot be read."""
    definition = (flow_run.parameters or {}).get("pipeline") or {}
    raw = definition.get("notification") if isinstance(definition, dict) else None
    if raw is None:
        return None
    try:
        return Notification.model_validate(raw)
    except (ValidationError, ValueError) as exc:
        _log.warning("flow run %s: its notification cannot be read: %s", flow_run.id, exc)
        return None


async def previous_state(client: PrefectClient, flow_run: FlowRun) -> str | None:
    """The API state of the pipeline's previous finished run of the same branch (by run
    number), None when there is none."""
    previous = await last_finished(client, flow_run.deployment_id, branch=branch_of(flow_run),
                                   before=tagged_run_number(flow_run.tags) or 0)
    return flow_run_state(previous) if previous is not None else None


class Notices:
    """One facade's sender of notifications (see the module's docstring)."""

    def __init__(self, client: PrefectClient, settings: Settings, dispatcher: Dispatcher) -> None:
        self._client = client
        self._settings = settings
        self._dispatcher = dispatcher
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=50_000, ttl=6 * 3600)
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._since: dt.datetime | None = None
        # Runs whose notices another facade claimed and has not marked sent: if it stops
        # before it does, a sweep here takes them over.
        self._held: dict[str, FlowRun] = {}

    @property
    def owner(self) -> str:
        return self._dispatcher.owner

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._sweep_forever())]

    async def close(self) -> None:
        tasks = [*self._tasks, *self._sending]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self) -> None:
        """Handle each final state of a run as Prefect's event stream tells it."""
        delay = 1.0
        while True:
            try:
                async with get_events_subscriber(
                        filter=EventFilter(event=EventNameFilter(name=_EVENTS)),
                        reconnection_attempts=10) as events:
                    delay = 1.0
                    async for event in events:
                        if not any(related.get("prefect.resource.name") == FLOW_NAME
                                   and related.role == "flow" for related in event.related):
                            continue
                        run_id = event.resource.id.removeprefix("prefect.flow-run.")
                        self._spawn(self._handle_id(run_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sweep covers the gap
                _log.warning("the event stream of finished runs stopped (%s); the sweep "
                             "covers it, following again in %.0f s", _describe(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                _log.warning("could not look for finished executions to notify: %s", _describe(exc))
            await asyncio.sleep(self._settings.notify_sweep_seconds)

    async def sweep(self) -> int:
        """Handle the runs that ended since the last sweep (with an overlap), and since
        NOTIFY_WINDOW_MINUTES on the first; how many it looked at."""
        now = dt.datetime.now(dt.timezone.utc)
        since = self._since or now - dt.timedelta(minutes=self._settings.notify_window_minutes)
        looked = 0
        offset = 0
        while True:
            runs = await self._client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ENDED)),
                    end_time=FlowRunFilterEndTime(after_=since)),
                sort=FlowRunSort.END_TIME_DESC, limit=_PAGE, offset=offset)
            for run in runs:
                looked += 1
                await self._handle_quietly(run)
            if len(runs) < _PAGE:
                break
            offset += _PAGE
        for run in list(self._held.values()):
            await self._handle_quietly(run)
        # The next sweep looks again at what ended during two sweeps before it: a run's
        # end time is its worker's clock, which may be behind.
        self._since = now - dt.timedelta(seconds=2 * self._settings.notify_sweep_seconds + 60)
        return looked

    async def _handle_quietly(self, flow_run: FlowRun) -> None:
        try:
            await self.handle(flow_run)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries it again
            _log.warning("flow run %s: could not look at its notifications (%s)", flow_run.id,
                         _describe(exc))

    async def _handle_id(self, run_id: str) -> None:
        if run_id in self._seen:
            return
        try:
            await self.handle(await self._client.read_flow_run(UUID(run_id)))
        except Exception as exc:  # noqa: BLE001 - the sweep tries it again
            _log.warning("flow run %s: could not look at its notifications (%s)", run_id,
                         _describe(exc))

    async def handle(self, flow_run: FlowRun) -> None:
        """Send a finished run's notifications if its pipeline wants them and nobody
        else has them."""
        key = str(flow_run.id)
        if key in self._seen or flow_run.deployment_id is None:
            return
        state = flow_run_state(flow_run)
        if state not in FINISHED:
            return
        notification = notification_of(flow_run)
        if notification is None:
            self._seen[key] = True
            return
        previous = None
        if "Changed" in notification.condition and condition_of(state) not in notification.condition:
            previous = await previous_state(self._client, flow_run)
        if not wanted(notification, state, previous):
            self._seen[key] = True
            return
        claim = await self._claim(flow_run.id)
        if claim is _HELD:  # another facade is on it: looked at again each sweep
            self._held[key] = flow_run
            return
        self._held.pop(key, None)
        self._seen[key] = True
        if claim is None:
            return
        try:
            await self._send_all(flow_run, notification)
        finally:
            await self._mark_sent(claim)

    async def _claim(self, flow_run_id: UUID) -> UUID | object | None:
        """The id of this facade's claim of a run's notifications; _HELD while another
        facade that is up holds an unsent claim; None when they went (or another facade
        won the claim just now)."""
        response = await self._client.request("POST", "/block_documents/filter", json={
            "block_documents": {"name": {"like_": claim_prefix(flow_run_id)},
                                "is_anonymous": {"eq_": True}},
            "block_types": {"slug": {"any_": [NoticeClaim.get_block_type_slug()]}},
            "sort": "NAME_DESC", "limit": 1})
        response.raise_for_status()
        found = response.json()
        attempt = 1
        if found:
            data = found[0].get("data") or {}
            if data.get("sent"):
                return None
            if self._dispatcher.is_live(str(data.get("owner") or "")):
                return _HELD
            attempt = int(found[0]["name"].rsplit("-", 1)[1]) + 1
            _log.warning("flow run %s: facade %s claimed its notifications and stopped; "
                         "sending them here", flow_run_id, data.get("owner"))
        type_id, schema_id = await block_ids(self._client, NoticeClaim)
        try:
            document = await self._client.create_block_document(BlockDocumentCreate(
                name=claim_name(flow_run_id, attempt), is_anonymous=True, block_type_id=type_id,
                block_schema_id=schema_id,
                data={"flow_run_id": str(flow_run_id), "owner": self.owner, "sent": False}))
        except ObjectAlreadyExists:
            return None
        return document.id

    async def _mark_sent(self, claim: UUID) -> None:
        try:
            await self._client.update_block_document(claim, BlockDocumentUpdate(
                data={"owner": self.owner, "sent": True}, merge_existing_data=True))
        except Exception as exc:  # noqa: BLE001 - a later taker would send again
            _log.warning("could not mark notice claim %s sent: %s", claim, _describe(exc))

    async def _send_all(self, flow_run: FlowRun, notification: Notification) -> None:
        project_id = project_of(flow_run)
        fields = execution_fields(flow_run, {}, project_id=project_id,
                                  pipeline_id=pipeline_of(flow_run))
        notice = compose(fields, public_url=self._settings.public_url,
                         message=notification.message)
        await asyncio.gather(*(self._send_one(flow_run, item.notifier, item.recipient, notice)
                               for item in notification.recipients))

    async def _send_one(self, flow_run: FlowRun, notifier: str, recipient: str | None,
                        notice: Any) -> None:
        attempts = self._settings.notify_attempts
        for attempt in range(1, attempts + 1):
            try:
                to = await send(self._client, notifier, recipient, notice,
                                cluster_id=project_of(flow_run).partition(":")[0],
                                timeout=self._settings.notify_timeout_seconds)
            except (NotFoundError, InvalidInputError) as exc:  # trying again changes nothing
                await self._log(flow_run, logging.WARNING,
                                f"notification through {notifier} not sent: {exc.message}")
                return
            except Exception as exc:  # noqa: BLE001 - logged on the execution, never raised
                reason = _describe(exc) if not isinstance(exc, TimeoutError) else (
                    f"no answer within {self._settings.notify_timeout_seconds:g} s")
                if attempt < attempts:
                    await asyncio.sleep(min(2 ** attempt, 30))
                    continue
                await self._log(flow_run, logging.WARNING,
                                f"notification through {notifier} failed after {attempts} "
                                f"attempt(s): {reason}")
                return
            await self._log(flow_run, logging.INFO,
                            f"notification sent through {notifier} to {to}: {notice.subject}")
            return

    async def _log(self, flow_run: FlowRun, level: int, message: str) -> None:
        _log.log(level, "flow run %s: %s", flow_run.id, message)
        try:
            await self._client.create_logs([LogCreate(
                name="prefect_pipelines.notifications", level=level, message=message,
                timestamp=dt.datetime.now(dt.timezone.utc), flow_run_id=flow_run.id)])
        except Exception as exc:  # noqa: BLE001 - the facade's log has it
            _log.warning("could not log on flow run %s: %s", flow_run.id, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

"""Webhook deliveries: recorded in Prefect before they are answered, run from the record.

A signed delivery that asks for a run is stored as a Prefect variable,
`pipelines-delivery-<deployment id>-<digest of the delivery id>` (tag `webhook-delivery`),
and answered at once. A variable is one light insert (a third of a block document's cost:
no encryption, no read-back), so the answer does not wait on runs being created; its
unique name makes a redelivery of a waiting delivery no second record; operators see the
deliveries still waiting on the Prefect UI's Variables page. (An event would be as quick,
but Prefect may dead-letter events on a busy SQLite server; a flow run is the slow write
the answer must not wait for.)

The facade's `Dispatcher` makes the runs from the records: one pipeline's deliveries in
the order they arrived, retried until Prefect takes them; a record is deleted once its run
exists. The run's idempotency key is the delivery's (`mapping.delivery_key`): however
often a run is tried (a retry after a lost answer, another facade taking the record over),
a delivery has one run, and a redelivery of a delivery whose run exists is answered with
that run. Records a stopped facade left are taken over by any facade's sweep once they
have waited DELIVERY_SWEEP_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from prefect.client.schemas.actions import VariableCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types import MAX_VARIABLE_VALUE_LENGTH
from pydantic import BaseModel, ValidationError

from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services.pipelines import run_with_key, start_execution
from prefect_pipelines.translator import PipelineSpecError
from prefect_pipelines.translator.mapping import TAG_PLUGIN, delivery_digest, delivery_key

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

_log = logging.getLogger(__name__)
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,100}")
PREFIX = "pipelines-delivery-"
TAG = "webhook-delivery"
_MAX_BACKOFF = 30.0
_PAGE = 200


class Delivery(BaseModel):
    """What a recorded delivery runs (the variable's value)."""

    delivery_id: str
    deployment_id: str
    project_id: str
    pipeline_id: str
    branch: str
    trigger: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What became of an accepted delivery: `queued` (new), `queued already` (a
    redelivery of one still waiting), `handled` (its run exists: `execution_id`)."""

    status: Literal["queued", "queued already", "handled"]
    execution_id: str | None = None


@dataclass(frozen=True)
class Pending:
    """A recorded delivery that has no run yet."""

    name: str
    created: datetime
    delivery: Delivery


def record_name(deployment_id: UUID | str, delivery_id: str) -> str:
    return f"{PREFIX}{deployment_id}-{delivery_digest(delivery_id)}"


def check_delivery_id(delivery_id: str) -> str:
    """A delivery id as GitHub makes them (a GUID); anything else is a 422."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise InvalidInputError("X-GitHub-Delivery is not a delivery id", field_name="X-GitHub-Delivery")
    return delivery_id


async def record(client: PrefectClient, *, deployment: DeploymentResponse, project_id: str,
                 pipeline_id: str, delivery_id: str, branch: str, trigger: dict[str, Any]
                 ) -> tuple[Outcome, Pending | None]:
    """Store a delivery that asks for a run; the pending record to dispatch, if new."""
    check_delivery_id(delivery_id)
    existing = await run_with_key(client, deployment.id, delivery_key(deployment.id, delivery_id))
    if existing is not None:
        return Outcome("handled", existing.name), None
    delivery = Delivery(delivery_id=delivery_id, deployment_id=str(deployment.id),
                        project_id=project_id, pipeline_id=pipeline_id, branch=branch,
                        trigger={**trigger, "deliveryId": delivery_id})
    name = record_name(deployment.id, delivery_id)
    try:
        variable = await client.create_variable(VariableCreate(
            name=name, value=_fit(delivery), tags=[TAG_PLUGIN, TAG]))
    except ObjectAlreadyExists:
        return Outcome("queued already"), None
    return Outcome("queued"), Pending(name, variable.created or datetime.now(timezone.utc), delivery)


def _fit(delivery: Delivery) -> dict[str, Any]:
    """The record's value within Prefect's limit for a variable: free text (the commit
    message first) is cut to fit; names, refs and hashes are short by nature."""
    value = delivery.model_dump()
    for field in ("message", "author", "htmlLink"):
        while (excess := len(json.dumps(value)) - MAX_VARIABLE_VALUE_LENGTH) > 0:
            text = str(value["trigger"].get(field) or "")
            if not text:
                break
            per_char = (len(json.dumps(text)) - 2) / len(text)  # escapes take more than one
            value["trigger"][field] = text[:max(0, len(text) - math.ceil(excess / per_char))]
    return value


async def pending(client: PrefectClient) -> list[Pending]:
    """Every recorded delivery that has no run yet, oldest first."""
    found: list[Pending] = []
    offset = 0
    while True:
        response = await client.request("POST", "/variables/filter", json={
            "variables": {"name": {"like_": PREFIX}, "tags": {"all_": [TAG]}},
            "sort": "CREATED_DESC", "offset": offset, "limit": _PAGE})
        page = response.json()
        offset += len(page)
        for variable in page:
            try:
                found.append(Pending(variable["name"], datetime.fromisoformat(variable["created"]),
                                     Delivery.model_validate(variable["value"])))
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                _log.warning("ignoring delivery record %s: %s", variable.get("name"), exc)
        if len(page) < _PAGE:
            return sorted(found, key=lambda item: item.created)


class _Drop(Exception):
    """The delivery can never run (its pipeline is gone): the record is removed."""


async def make_run(client: PrefectClient, item: Pending) -> str:
    """Create the run of a recorded delivery (once, however often called) and remove the
    record; the execution id.

    Raises:
        _Drop: the delivery can never run.
    """
    delivery = item.delivery
    try:
        deployment = await client.read_deployment(UUID(delivery.deployment_id))
    except ObjectNotFound:
        raise _Drop("its pipeline was deleted") from None
    try:
        flow_run = await start_execution(
            client, deployment=deployment, pipeline_id=delivery.pipeline_id,
            branch=delivery.branch, trigger=delivery.trigger,
            run_key=delivery_key(deployment.id, delivery.delivery_id), patient=True)
    except (InvalidInputError, NotFoundError, PipelineSpecError) as exc:
        raise _Drop(str(exc)) from None
    await forget(client, item)
    return flow_run.name


async def forget(client: PrefectClient, item: Pending) -> None:
    try:
        await client.delete_variable_by_name(item.name)
    except ObjectNotFound:
        pass


class Dispatcher:
    """Makes the runs of a process's recorded deliveries, and takes over stale ones.

    Each pipeline has a queue worked in order; a run that Prefect does not take is tried
    again after a back-off (0.5 s doubling to 30 s) for as long as the process runs.
    """

    def __init__(self, client: PrefectClient, sweep_seconds: float) -> None:
        self._client = client
        self._sweep_seconds = sweep_seconds
        self._queues: dict[str, list[Pending]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._known: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        """Stop; what is still queued stays recorded, for the next sweep of any facade."""
        tasks = [*self._drains.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def submit(self, item: Pending) -> None:
        """Queue a recorded delivery behind its pipeline's earlier ones."""
        if item.name in self._known:
            return
        self._known.add(item.name)
        key = item.delivery.deployment_id
        self._queues.setdefault(key, []).append(item)
        if key not in self._drains:
            self._drains[key] = asyncio.create_task(self._drain(key))

    def queued(self) -> int:
        return len(self._known)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue[0]
                await self._run(item)
                queue.pop(0)
                self._known.discard(item.name)
        finally:  # the queue is done, or the process stops (what is left stays recorded)
            self._queues.pop(key, None)
            self._drains.pop(key, None)
            self._known.difference_update(item.name for item in queue)

    async def _run(self, item: Pending) -> None:
        delay = 0.5
        while True:
            try:
                execution = await make_run(self._client, item)
                _log.info("delivery %s: execution %s", item.delivery.delivery_id, execution)
                return
            except _Drop as exc:
                _log.warning("delivery %s runs nothing: %s", item.delivery.delivery_id, exc)
                await _forget_quietly(self._client, item)
                return
            except Exception as exc:  # noqa: BLE001 - kept recorded, tried again
                _log.warning("delivery %s: the run is not made yet (%s); trying again in "
                             "%.1f s", item.delivery.delivery_id, _describe(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def sweep(self, min_age: float) -> int:
        """Queue recorded deliveries that waited at least `min_age` seconds; how many."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=min_age)
        taken = 0
        for item in await pending(self._client):
            if item.name in self._known or item.created > cutoff:
                continue
            self.submit(item)
            taken += 1
        return taken

    async def _sweep_forever(self) -> None:
        while True:
            try:
                taken = await self.sweep(self._sweep_seconds)
                if taken:
                    _log.warning("took over %d recorded deliveries that had no run (their "
                                 "facade stopped before making it)", taken)
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                _log.warning("could not look for recorded deliveries: %s", _describe(exc))
            await asyncio.sleep(self._sweep_seconds)


async def _forget_quietly(client: PrefectClient, item: Pending) -> None:
    try:
        await forget(client, item)
    except Exception as exc:  # noqa: BLE001 - a later sweep drops it again
        _log.warning("could not remove delivery record %s: %s", item.name, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

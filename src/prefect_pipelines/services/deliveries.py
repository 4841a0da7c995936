"""Webhook deliveries: recorded in Prefect before they are answered, run from the record.

A signed delivery that asks for a run is stored as a Prefect variable (named by its
deployment and delivery, vocabulary.DELIVERY_VARIABLE_PREFIX) and answered at once; the
facade's `Dispatcher` then makes the runs, one pipeline's deliveries in the order they
arrived, retried until Prefect takes them, and deletes a record once its run exists. The
run's idempotency key is the delivery's (`vocabulary.delivery_key`), so a delivery has
one run however often it is tried or redelivered. A record names the facade that makes its
run; when that facade stops, the next sweep of any facade takes it over. Why a variable:
docs/history.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

import httpx
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.events import emit_event
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types import MAX_VARIABLE_VALUE_LENGTH
from pydantic import BaseModel, ValidationError

from prefect_pipelines.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from prefect_pipelines.forges import Skip
from prefect_pipelines.services import repository, webhooks
from prefect_pipelines.services.pipelines import run_with_key, start_execution
from prefect_pipelines.services.projects import refused_run
from prefect_pipelines.settings import get_settings
from prefect_pipelines.translator import PipelineSpecError
from prefect_pipelines.translator.mapping import StoredDefinition, creator_of
from prefect_pipelines.vocabulary import (
    DELIVERY_RESOURCE,
    DELIVERY_SKIPPED_EVENT,
    DELIVERY_VARIABLE_PREFIX,
    DELIVERY_VARIABLE_TAG,
    LEASE_VARIABLE_PREFIX,
    LEASE_VARIABLE_TAG,
    TAG_PLUGIN,
    delivery_digest,
    delivery_key,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

_log = logging.getLogger(__name__)
_DELIVERY_ID = re.compile(r"[A-Za-z0-9-]{1,100}")
_MAX_BACKOFF = 30.0
_PAGE = 200
_unreadable: set[str] = set()


class Delivery(BaseModel):
    """What a recorded delivery runs (the variable's value)."""

    delivery_id: str
    deployment_id: str
    project_id: str
    pipeline_id: str
    branch: str
    trigger: dict[str, Any]
    owner: str = ""  # the Dispatcher (facade process) that makes its run


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


@dataclass
class Receipt:
    """What the receiver answers a delivery: 202 recorded (or waiting already), 200 run
    already or nothing to run (skipped, with why)."""

    message: str
    status: int = 200
    execution_id: str | None = None


async def receive(client: PrefectClient, pipeline: webhooks.Receiver, *, project_id: str,
                  pipeline_id: str, headers: Mapping[str, str], body: bytes,
                  may_run: Callable[[str], Awaitable[bool]], dispatcher: Dispatcher) -> Receipt:
    """Check a delivery of a pipeline's forge and record it for its run.

    Raises:
        SignatureError: not signed with (or not carrying) the pipeline's token.
        InvalidInputError: a header is missing, or the payload is not the forge's.
        PermissionDeniedError: the pipeline's creator may no longer run it.
    """
    forge = pipeline.forge
    forge.verify(pipeline.token, headers, body)
    deployment = pipeline.deployment
    try:
        delivery_id, delivery = forge.delivery(headers, body)
        definition = (deployment.parameters or {}).get("pipeline") or {}
        if deployment.paused:
            raise Skip("the pipeline is inactive")
        events = StoredDefinition(definition).webhook_events
        if not events:
            raise Skip("the pipeline's webhook trigger is off")
        if delivery.event not in events:
            field = {"push": "Push", "pull_request": "Pr", "tag": "Tag"}[delivery.event]
            raise Skip(f"the pipeline does not run on {delivery.event} "
                       f"(triggerWebhook{field} is off)")
        if delivery.skip_ci:
            raise Skip(f"the commit asks to skip CI ({delivery.skip_ci})")
        webhooks.check_branch(definition, delivery)
    except Skip as skip:
        return Receipt(str(skip))
    creator = creator_of(deployment.tags)
    if not await may_run(creator):
        raise PermissionDeniedError(refused_run(project_id, creator))
    outcome, item = await record(
        client, deployment=deployment, project_id=project_id, pipeline_id=pipeline_id,
        delivery_id=delivery_id, branch=delivery.branch, trigger=delivery.trigger(),
        owner=dispatcher.owner, id_header=forge.headers.delivery)
    if item is not None:
        dispatcher.submit(item)
    if outcome.status == "handled":
        return Receipt(f"delivery {delivery_id} was handled already: execution "
                       f"{outcome.execution_id}", execution_id=outcome.execution_id)
    if outcome.status == "queued already":
        return Receipt(f"delivery {delivery_id} is queued already", status=202)
    return Receipt(f"accepted {delivery.event} of {delivery.branch}: queued to run", status=202)


def record_name(deployment_id: UUID | str, delivery_id: str) -> str:
    return f"{DELIVERY_VARIABLE_PREFIX}{deployment_id}-{delivery_digest(delivery_id)}"


def check_delivery_id(delivery_id: str, header: str) -> str:
    """A delivery id as forges make them (a GUID); anything else is a 422 naming the header."""
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise InvalidInputError(f"{header} is not a delivery id", field_name=header)
    return delivery_id


async def record(client: PrefectClient, *, deployment: DeploymentResponse, project_id: str,
                 pipeline_id: str, delivery_id: str, branch: str, trigger: dict[str, Any],
                 owner: str, id_header: str = "X-GitHub-Delivery") -> tuple[Outcome, Pending | None]:
    """Store a delivery that asks for a run, to be run by `owner` (a Dispatcher); the
    pending record to hand to it, if new.

    Raises:
        InvalidInputError: the delivery id is not one, or its fields are too long to keep.
    """
    check_delivery_id(delivery_id, id_header)
    existing = await run_with_key(client, deployment.id, delivery_key(deployment.id, delivery_id))
    if existing is not None:
        return Outcome("handled", existing.name), None
    delivery = Delivery(delivery_id=delivery_id, deployment_id=str(deployment.id),
                        project_id=project_id, pipeline_id=pipeline_id, branch=branch,
                        trigger={**trigger, "deliveryId": delivery_id}, owner=owner)
    name = record_name(deployment.id, delivery_id)
    value = _fit(delivery)
    if len(json.dumps(value)) > MAX_VARIABLE_VALUE_LENGTH:
        raise InvalidInputError("the delivery's branch, ref or links are too long to record",
                                field_name="ref")
    try:
        variable = await client.create_variable(VariableCreate(
            name=name, value=value, tags=[TAG_PLUGIN, DELIVERY_VARIABLE_TAG]))
    except ObjectAlreadyExists:
        return Outcome("queued already"), None
    return Outcome("queued"), Pending(name, variable.created or datetime.now(timezone.utc), delivery)


def _fit(delivery: Delivery) -> dict[str, Any]:
    """The record's value within Prefect's limit for a variable: free text (the commit
    message first) is cut to fit; names, refs and hashes are short by nature."""
    value = delivery.model_dump()
    for field in ("message", "title", "author", "email", "avatarUrl", "htmlLink"):
        while (excess := len(json.dumps(value)) - MAX_VARIABLE_VALUE_LENGTH) > 0:
            text = str(value["trigger"].get(field) or "")
            if not text:
                break
            per_char = (len(json.dumps(text)) - 2) / len(text)  # escapes take more than one
            value["trigger"][field] = text[:max(0, len(text) - math.ceil(excess / per_char))]
    return value


async def _variables(client: PrefectClient, prefix: str, tag: str, sort: str) -> list[dict[str, Any]]:
    """Every Prefect variable whose name starts with `prefix` and that has `tag`, paged."""
    found: list[dict[str, Any]] = []
    while True:
        response = await client.request("POST", "/variables/filter", json={
            "variables": {"name": {"like_": prefix}, "tags": {"all_": [tag]}},
            "sort": sort, "offset": len(found), "limit": _PAGE})
        page = response.json()
        found.extend(page)
        if len(page) < _PAGE:
            return found


async def pending(client: PrefectClient) -> list[Pending]:
    """Every recorded delivery that has no run yet, oldest first."""
    found: list[Pending] = []
    variables = await _variables(client, DELIVERY_VARIABLE_PREFIX, DELIVERY_VARIABLE_TAG,
                                 "CREATED_DESC")
    for variable in variables:
        try:
            found.append(Pending(variable["name"], datetime.fromisoformat(variable["created"]),
                                 Delivery.model_validate(variable["value"])))
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            if variable.get("name") not in _unreadable:
                _unreadable.add(variable.get("name"))
                _log.error("cannot read delivery record %s (left as it is): %s",
                           variable.get("name"), exc)
    return sorted(found, key=lambda item: item.created)


class _Drop(Exception):
    """The delivery can never run (its pipeline is gone, Prefect refuses its run): the
    record is removed."""


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
    key = delivery_key(deployment.id, delivery.delivery_id)
    flow_run = await run_with_key(client, deployment.id, key)  # made by an earlier try
    definition = (deployment.parameters or {}).get("pipeline") or {}
    if flow_run is None and StoredDefinition(definition).from_repository:
        # As Rancher: a delivered commit without a (valid) pipeline file starts nothing.
        problem = await repository.delivered_file_problem(
            client, definition, branch=delivery.branch, ref=str(delivery.trigger.get("ref") or ""),
            commit=str(delivery.trigger.get("commit") or ""), settings=get_settings())
        if problem is not None:
            emit_event(event=DELIVERY_SKIPPED_EVENT, resource={
                "prefect.resource.id": f"{DELIVERY_RESOURCE}{delivery.delivery_id}",
                "prefect.resource.name": delivery.pipeline_id},
                related=[{"prefect.resource.id": f"prefect.deployment.{deployment.id}",
                          "prefect.resource.role": "deployment"}],
                payload={"reason": problem, "project": delivery.project_id,
                         "pipeline": delivery.pipeline_id, "commit": delivery.trigger.get("commit")})
            raise _Drop(problem)
    if flow_run is None:
        try:
            flow_run = await start_execution(
                client, deployment=deployment, pipeline_id=delivery.pipeline_id,
                branch=delivery.branch, trigger=delivery.trigger, run_key=key, patient=True)
        except (InvalidInputError, NotFoundError, PipelineSpecError) as exc:
            raise _Drop(str(exc)) from None
        except httpx.HTTPStatusError as exc:
            if 400 <= exc.response.status_code < 500 and exc.response.status_code not in (408, 429):
                raise _Drop(f"Prefect refuses its run ({exc.response.status_code}: "
                            f"{exc.response.text[:200]})") from None
            raise
    await forget(client, item)
    return flow_run.name


async def forget(client: PrefectClient, item: Pending) -> None:
    try:
        await client.delete_variable_by_name(item.name)
    except ObjectNotFound:
        pass


class Dispatcher:
    """Makes the runs of a process's recorded deliveries, and takes over those of a
    facade that stopped.

    Each pipeline has a queue worked in order; a run that Prefect does not take is tried
    again after a back-off (0.5 s doubling to 30 s) for as long as the process runs. A
    dispatcher holds a lease, a variable `pipelines-facade-<owner>` it rewrites three times
    per DELIVERY_SWEEP_SECONDS; every sweep takes over the records whose owner has no lease
    (it stopped cleanly) or whose lease did not change since the sweep before (it died).
    Comparing a lease with itself needs no clock shared between hosts.
    """

    def __init__(self, client: PrefectClient, sweep_seconds: float, owner: str | None = None) -> None:
        self._client = client
        self._sweep_seconds = sweep_seconds
        self.owner = owner or uuid.uuid4().hex[:16]
        self._queues: dict[str, list[Pending]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}
        self._known: set[str] = set()
        self._leases_seen: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._beats = 0
        self._stale: set[str] | None = None  # owners whose lease stopped, as of the last sweep

    @property
    def lease_name(self) -> str:
        return f"{LEASE_VARIABLE_PREFIX}{self.owner}"

    async def start(self) -> None:
        """Take the lease (before any delivery is recorded for this owner), then keep it
        fresh and sweep in the background."""
        await self._renew_lease()
        self._tasks = [asyncio.create_task(self._keep_lease()),
                       asyncio.create_task(self._sweep_forever())]

    async def close(self) -> None:
        """Stop and give the lease up: what is still queued stays recorded, and the next
        sweep of any facade takes it over."""
        tasks = [*self._drains.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._client.delete_variable_by_name(self.lease_name)
        except Exception as exc:  # noqa: BLE001 - others take over once it goes stale
            _log.warning("could not give up the delivery lease: %s", _describe(exc))

    def is_live(self, owner: str) -> bool:
        """Whether the facade `owner` still holds its lease, as of the last sweep (before
        the first one, every owner counts as live: nothing is taken over unseen)."""
        if owner == self.owner or self._stale is None:
            return True
        return owner in self._leases_seen and owner not in self._stale

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
                _log.error("delivery %s of pipeline %s runs nothing: %s",
                           item.delivery.delivery_id, item.delivery.pipeline_id, exc)
                await _forget_quietly(self._client, item)
                return
            except Exception as exc:  # noqa: BLE001 - kept recorded, tried again
                _log.warning("delivery %s: the run is not made yet (%s); trying again in "
                             "%.1f s", item.delivery.delivery_id, _describe(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    async def _renew_lease(self) -> None:
        self._beats += 1
        value = {"host": socket.gethostname(), "pid": os.getpid(), "beat": self._beats}
        try:
            await self._client.update_variable(VariableUpdate(name=self.lease_name, value=value))
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
            await self._client.create_variable(VariableCreate(
                name=self.lease_name, value=value, tags=[TAG_PLUGIN, LEASE_VARIABLE_TAG]))

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds / 3)
            try:
                await self._renew_lease()
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                _log.warning("could not renew the delivery lease: %s", _describe(exc))

    async def sweep(self) -> int:
        """Queue the recorded deliveries this dispatcher should run (its own that are not
        queued, those of stopped facades); how many it took over from others."""
        leases = await _leases(self._client)
        stale = {owner for owner, beat in leases.items()
                 if owner != self.owner and self._leases_seen.get(owner) == beat}
        self._leases_seen = leases
        self._stale = stale
        taken = 0
        for item in await pending(self._client):
            owner = item.delivery.owner
            if item.name in self._known or (owner in leases and owner not in stale
                                            and owner != self.owner):
                continue
            self.submit(item)
            taken += owner != self.owner
        return taken

    async def _sweep_forever(self) -> None:
        while True:
            try:
                taken = await self.sweep()
                if taken:
                    _log.warning("took over %d recorded deliveries that had no run (their "
                                 "facade stopped before making it)", taken)
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                _log.warning("could not look for recorded deliveries: %s", _describe(exc))
            await asyncio.sleep(self._sweep_seconds)


async def _leases(client: PrefectClient) -> dict[str, str]:
    """owner -> the lease's last change, of every dispatcher holding a lease."""
    variables = await _variables(client, LEASE_VARIABLE_PREFIX, LEASE_VARIABLE_TAG, "NAME_ASC")
    return {variable["name"][len(LEASE_VARIABLE_PREFIX):]:
            f"{variable.get('updated')}:{variable.get('value')}" for variable in variables}


async def _forget_quietly(client: PrefectClient, item: Pending) -> None:
    try:
        await forget(client, item)
    except Exception as exc:  # noqa: BLE001 - a later sweep drops it again
        _log.warning("could not remove delivery record %s: %s", item.name, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

"""Pipelines: each is a Prefect deployment of `run-pipeline`, with a secrets block beside it."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema

from prefect_pipelines.blocks import PipelineSecrets
from prefect_pipelines.errors import (
    InvalidInputError,
    NotFoundError,
    NotUniqueError,
    ServiceUnavailableError,
    StoreUncertainError,
)
from prefect_pipelines.services import webhooks
from prefect_pipelines.services.deployments import read_deployment
from prefect_pipelines.services.notifiers import check_notification
from prefect_pipelines.services.numbering import RunNumbers, highest_run, release_all
from prefect_pipelines.services.pools import deployed_pool, ensure_project_queue, ensure_work_pool
from prefect_pipelines.services.projects import read_project
from prefect_pipelines.services.secrets import check_env_from
from prefect_pipelines.services.sourcecode import check_owner
from prefect_pipelines.settings import Settings, get_settings
from prefect_pipelines.translator import (
    PipelineConfig,
    PipelineSpecError,
    validate_branch_name,
)
from prefect_pipelines.translator.branches import repository_branch
from prefect_pipelines.translator.executions import flow_run_state, iso
from prefect_pipelines.translator.mapping import StoredDefinition, creator_of
from prefect_pipelines.translator.plan import StepDefaults, step_limits
from prefect_pipelines.translator.schedule import next_fire_time
from prefect_pipelines.vocabulary import (
    ENTRYPOINT,
    FLOW_NAME,
    TAG_CLUSTER,
    TAG_CREATOR,
    TAG_EXECUTION,
    TAG_PIPELINE,
    TAG_PROJECT,
    deployment_name,
    deployment_tags,
    execution_name,
    flow_parameters,
    idempotency_key,
    run_tag,
    secrets_block_name,
    tagged_run_number,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

run_numbers = RunNumbers()
_log = logging.getLogger(__name__)


@dataclass
class PipelineRecord:
    """A pipeline as the store holds it: its deployment and what is derived from it."""

    deployment: DeploymentResponse
    project_id: str
    pipeline_id: str
    definition: dict[str, Any]
    next_run: int
    last_run: FlowRun | None

    @property
    def active(self) -> bool:
        return not self.deployment.paused

    @property
    def creator_id(self) -> str:
        return creator_of(self.deployment.tags)

    def fields(self) -> dict[str, Any]:
        """The /v3 fields of the pipeline (secrets are never among them)."""
        cron, timezone = self.cron()
        last = self.last_run
        stored = StoredDefinition(self.definition)
        events = stored.webhook_events
        next_start = None
        if cron and self.active:
            next_start = iso(next_fire_time(cron, timezone))
        return {
            "projectId": self.project_id,
            "name": self.pipeline_id,
            "stages": stored.stored_stages,
            **_repository_fields(stored),
            "timeout": self.definition.get("timeout", 60),
            "triggerCronExpression": cron,
            "triggerCronTimezone": timezone if cron else self.definition.get("triggerCronTimezone"),
            "triggerWebhook": bool(self.definition.get("triggerWebhook", False)),
            **{field: event in events for field, event in (
                ("triggerWebhookPush", "push"), ("triggerWebhookPr", "pull_request"),
                ("triggerWebhookTag", "tag"))},
            "branch": (stored.default_branch or None) if stored.from_repository
                      else self.definition.get("branch"),
            "notification": self.definition.get("notification"),
            "publicBadge": self.definition.get("publicBadge") is True,
            "cache": self.definition.get("cache"),
            "creatorId": self.creator_id,
            "created": iso(self.deployment.created),
            "state": "active" if self.active else "inactive",
            "nextRun": self.next_run,
            "lastExecutionId": last.name if last else None,
            "lastRunState": flow_run_state(last) if last else None,
            "lastStarted": iso(last.start_time or last.expected_start_time) if last else None,
            "nextStart": next_start,
        }

    @property
    def from_repository(self) -> bool:
        """Whether runs read the definition from the repository's pipeline file."""
        return StoredDefinition(self.definition).from_repository

    def cron(self) -> tuple[str | None, str | None]:
        """The cron expression and timezone of the deployment's (first) cron schedule."""
        for schedule in self.deployment.schedules or []:
            inner = schedule.schedule
            if isinstance(inner, CronSchedule):
                return inner.cron, inner.timezone or "UTC"
        return None, None


async def project_quota(client: PrefectClient, project_id: str, settings: Settings) -> int:
    """The project's executor quota: its setting `executorQuota`, else EXECUTOR_QUOTA."""
    project = await read_project(client, project_id)
    quota = (project.settings if project else {}).get("executorQuota")
    return quota if isinstance(quota, int) else settings.executor_quota


async def apply_quota(client: PrefectClient, project_id: str, settings: Settings) -> None:
    """Set the project's quota on the work queue of every pool its pipelines run on."""
    response = await client.request("POST", "/deployments/filter", json={
        "flows": {"name": {"any_": [FLOW_NAME]}},
        "deployments": {"tags": {"all_": [f"{TAG_PROJECT}{project_id}"]}}, "limit": 200})
    pools = {item.get("work_pool_name") for item in response.json()} - {None}
    quota = await project_quota(client, project_id, settings)
    for pool in sorted(pools or {settings.work_pool}):
        await ensure_project_queue(client, pool, project_id, quota)


async def _flow_id(client: PrefectClient) -> UUID:
    return await client.create_flow_from_name(FLOW_NAME)


def _schedules(config: PipelineConfig) -> list[DeploymentScheduleCreate]:
    if not config.trigger_cron_expression:
        return []
    return [DeploymentScheduleCreate(
        schedule=CronSchedule(cron=config.trigger_cron_expression,
                              timezone=config.trigger_cron_timezone or "UTC"),
        active=True,
    )]


def _parameter_schema() -> dict[str, Any]:
    return parameter_schema(flow_parameters).model_dump()


async def _apply(client: PrefectClient, *, project_id: str, config: PipelineConfig,
                 creator_id: str, paused: bool, settings: Settings) -> UUID:
    """Create or replace the deployment of a pipeline (Prefect upserts on flow + name)."""
    assert config.name is not None
    definition = config.to_dict()
    cluster_id = project_id.split(":", 1)[0]
    pool = await deployed_pool(client, cluster_id) or settings.work_pool
    queue = await ensure_project_queue(client, pool, project_id,
                                       await project_quota(client, project_id, settings))
    kwargs: dict[str, Any] = dict(
        flow_id=await _flow_id(client),
        name=deployment_name(project_id, config.name),
        entrypoint=ENTRYPOINT,
        work_pool_name=pool,
        work_queue_name=queue,
        parameters={"pipeline": definition, "pipeline_id": config.name, "project_id": project_id},
        parameter_openapi_schema=_parameter_schema(),
        schedules=_schedules(config),
        paused=paused,
        tags=[*deployment_tags(project_id, config.name), f"{TAG_CREATOR}{creator_id}",
              f"{TAG_CLUSTER}{cluster_id}"],
        description=f"prefect-pipelines pipeline {config.name!r} of project {project_id}",
    )
    try:
        return await client.create_deployment(**kwargs)
    except ObjectNotFound:  # the work pool was deleted: make it again
        await ensure_work_pool(client, pool)
        return await client.create_deployment(**kwargs)


async def _secrets_block_exists(client: PrefectClient, project_id: str, pipeline_id: str) -> bool:
    try:
        await client.read_block_document_by_name(
            secrets_block_name(project_id, pipeline_id), PipelineSecrets.get_block_type_slug()
        )
        return True
    except ObjectNotFound:
        return False


async def create_pipeline(client: PrefectClient, *, project_id: str, config: PipelineConfig,
                          creator_id: str, settings: Settings) -> PipelineRecord:
    """Create a pipeline: its secrets block (which also reserves the name), its webhook
    when asked for, then its deployment. A failure on the way removes what was made.

    Raises:
        NotUniqueError: the project has a pipeline of that name.
        PermissionDeniedError: the definition names someone else's credential.
    """
    assert config.name is not None
    await _check_credential(client, config, creator_id)
    await check_env_from(client, project_id, config)
    await check_step_limits(client, project_id, config)
    await check_notification(client, project_id, config.notification)
    block_name = secrets_block_name(project_id, config.name)
    block = PipelineSecrets(project_id=project_id, pipeline_id=config.name,
                            token=secrets.token_urlsafe(32))
    try:
        await block.asave(block_name, client=client)
    except ValueError as exc:
        if "already" not in str(exc).lower():
            raise
        raise NotUniqueError(f"project {project_id} already has a pipeline named {config.name!r}",
                            field_name="name") from None
    try:
        if config.webhook_events:
            await webhooks.sync_hook(client, project_id=project_id, pipeline_id=config.name,
                                     config=config, user_id=None, settings=settings)
        await _apply(client, project_id=project_id, config=config, creator_id=creator_id,
                     paused=False, settings=settings)
    except BaseException:
        await _delete_secrets(client, project_id, config.name)
        raise
    return await read_pipeline(client, project_id=project_id, pipeline_id=config.name)


async def check_step_limits(client: PrefectClient, project_id: str, config: PipelineConfig) -> None:
    """Every step's limits and privilege hold in its project (as its runs will hold them):
    a 422 naming the step's field otherwise. A repository's file is held to them as it runs."""
    project = await read_project(client, project_id)
    defaults = StepDefaults.from_settings(project.settings if project else None)
    for i, stage in enumerate(config.stages or []):
        for j, step in enumerate(stage.steps):
            step_limits(step, defaults, f"stages[{i}].steps[{j}]")


async def _check_credential(client: PrefectClient, config: PipelineConfig, user_id: str) -> None:
    """A pipeline may name only its author's own source code credential."""
    source = config.source
    if source is not None and source.source_code_credential_id:
        await check_owner(client, user_id=user_id, identifier=source.source_code_credential_id)


async def _record(client: PrefectClient, deployment: DeploymentResponse, project_id: str,
                  pipeline_id: str) -> PipelineRecord:
    highest, last = await asyncio.gather(
        highest_run(client, deployment.id), last_execution(client, deployment.id)
    )
    definition = dict((deployment.parameters or {}).get("pipeline") or {})
    return PipelineRecord(deployment=deployment, project_id=project_id, pipeline_id=pipeline_id,
                          definition=definition, next_run=highest + 1, last_run=last)


async def read_pipeline(client: PrefectClient, *, project_id: str, pipeline_id: str
                        ) -> PipelineRecord:
    """One pipeline with its status fields."""
    deployment = await read_deployment(client, project_id, pipeline_id)
    return await _record(client, deployment, project_id, pipeline_id)


async def last_execution(client: PrefectClient, deployment_id: UUID) -> FlowRun | None:
    """The newest execution of a pipeline."""
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
            tags=FlowRunFilterTags(all_=[TAG_EXECUTION]),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


@dataclass(frozen=True)
class PipelineFilter:
    """Which of a project's pipelines a list shows (Norman's `eq`, `ne` and `prefix`)."""

    name: str | None = None
    name_ne: str | None = None
    name_prefix: str | None = None
    state: str | None = None  # active or inactive
    state_ne: str | None = None

    def matches_none(self) -> bool:
        """Whether no pipeline can match, whatever the project holds: a prefix no name can
        start with, or a state both asked for and refused."""
        return (self.name_prefix is not None and not _NAME_PREFIX.fullmatch(self.name_prefix)
                or self.state is not None and self.state == self.state_ne)

    async def deployments(self, client: PrefectClient, project_id: str) -> dict[str, Any]:
        """The deployment filter (as JSON: the client's models lack `paused`)."""
        found: dict[str, Any] = {"tags": {"all_": [f"{TAG_PROJECT}{project_id}"]}}
        names: dict[str, Any] = {}
        if self.name:
            names["any_"] = [deployment_name(project_id, self.name)]
        if self.name_prefix:  # ILIKE %...%: the project's own `<project>:` makes it a prefix
            names["like_"] = deployment_name(project_id, self.name_prefix)
        if names:
            found["name"] = names
        if self.name_ne:
            try:
                left_out = await read_deployment(client, project_id, self.name_ne)
                found["id"] = {"not_any_": [str(left_out.id)]}
            except NotFoundError:
                pass  # nothing of that name to leave out
        if self.state is not None:
            found["paused"] = {"eq_": self.state == "inactive"}
        elif self.state_ne is not None:
            found["paused"] = {"eq_": self.state_ne == "active"}
        return found


# A name's start: what a pipeline name can begin with (lowercase letters, digits, dashes),
# so that Prefect's ILIKE, whose `_` and `%` are wildcards, matches as a prefix would.
_NAME_PREFIX = re.compile(r"[a-z0-9-]*")


async def list_pipelines(client: PrefectClient, *, project_id: str,
                         where: PipelineFilter = PipelineFilter(), limit: int, offset: int,
                         descending: bool = False) -> tuple[list[PipelineRecord], int]:
    """The pipelines of a project, by name (`descending`: Z first), filtered; and how many
    match in all."""
    if where.matches_none():
        return [], 0
    body = {"flows": {"name": {"any_": [FLOW_NAME]}},
            "deployments": await where.deployments(client, project_id)}
    listed, counted = await asyncio.gather(
        client.request("POST", "/deployments/filter",
                       json={**body, "sort": "NAME_DESC" if descending else "NAME_ASC",
                             "limit": limit, "offset": offset}),
        client.request("POST", "/deployments/count", json=body),
    )
    listed.raise_for_status()
    counted.raise_for_status()
    deployments = [DeploymentResponse.model_validate(item) for item in listed.json()]
    records = await asyncio.gather(*(
        _record(client, deployment, project_id, _pipeline_id(deployment))
        for deployment in deployments
    ))
    return list(records), int(counted.json())


def _pipeline_id(deployment: DeploymentResponse) -> str:
    for tag in deployment.tags:
        if tag.startswith(TAG_PIPELINE):
            return tag[len(TAG_PIPELINE):]
    return deployment.name.rpartition(":")[2]


async def update_pipeline(client: PrefectClient, *, project_id: str, pipeline_id: str,
                          config: PipelineConfig, user_id: str, settings: Settings
                          ) -> PipelineRecord:
    """Replace a pipeline's definition and triggers (its state and numbering stay)."""
    if config.name != pipeline_id:
        raise InvalidInputError(
            f"name {config.name!r} differs from the pipeline's id {pipeline_id!r}: "
            "a pipeline cannot be renamed", field_name="name",
        )
    current = await read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)
    await check_env_from(client, project_id, config)
    await check_step_limits(client, project_id, config)
    await check_notification(client, project_id, config.notification)
    creator = current.creator_id
    if StoredDefinition(current.definition).repository != StoredDefinition(config.model_dump(by_alias=True)).repository:
        # A new repository or credential: the caller's own credential, and the pipeline
        # becomes theirs. Any member may change the rest of another member's pipeline: its
        # clone credential stays its creator's (and never reaches a step).
        await _check_credential(client, config, user_id)
        creator = user_id
    await webhooks.sync_hook(client, project_id=project_id, pipeline_id=pipeline_id,
                             config=config, user_id=None, settings=settings)
    await _apply(client, project_id=project_id, config=config, creator_id=creator,
                 paused=not current.active, settings=settings)
    return await read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)


async def delete_pipeline(client: PrefectClient, *, project_id: str, pipeline_id: str) -> None:
    """Delete a pipeline: its webhook, its deployment, its secrets block and run numbers."""
    deployment = await read_deployment(client, project_id, pipeline_id)
    try:
        block = await webhooks.load_secrets(client, project_id, pipeline_id)
        await webhooks.remove_hook(client, block)
    except NotFoundError:
        pass
    try:
        await client.delete_deployment(deployment.id)
    except ObjectNotFound:
        pass
    await _delete_secrets(client, project_id, pipeline_id)
    await release_all(client, deployment.id)


async def _delete_secrets(client: PrefectClient, project_id: str, pipeline_id: str) -> None:
    try:
        document = await client.read_block_document_by_name(
            secrets_block_name(project_id, pipeline_id), PipelineSecrets.get_block_type_slug()
        )
        await client.delete_block_document(document.id)
    except ObjectNotFound:
        pass


async def set_active(client: PrefectClient, *, project_id: str, pipeline_id: str,
                     active: bool) -> PipelineRecord:
    """Activate (resume) or deactivate (pause) a pipeline's deployment."""
    deployment = await read_deployment(client, project_id, pipeline_id)
    if active:
        await client.resume_deployment(deployment.id)
    else:
        await client.pause_deployment(deployment.id)
    return await read_pipeline(client, project_id=project_id, pipeline_id=pipeline_id)


def _repository_fields(stored: StoredDefinition) -> dict[str, Any]:
    """repositoryUrl, sourceCodeCredentialId and configPath: set for a pipeline read from
    its repository, null for one whose definition is stored."""
    url, credential = stored.repository if stored.from_repository else ("", "")
    path = stored.data.get("configPath") if stored.from_repository else None
    return {"repositoryUrl": url or None, "sourceCodeCredentialId": credential or None,
            "configPath": path}


def resolve_branch(definition: dict[str, Any], branch: str | None) -> str:
    """The branch a run of this definition builds (422 naming `branch` when it cannot)."""
    stored = StoredDefinition(definition)
    condition = stored.branch_condition()
    try:
        if stored.from_repository:
            return repository_branch(branch, stored.default_branch)
        if condition is None:
            if branch:
                return validate_branch_name(branch)
            return ""
        return condition.resolve(branch)
    except PipelineSpecError as exc:
        raise InvalidInputError(exc.message, field_name="branch") from None


async def start_execution(client: PrefectClient, *, deployment: DeploymentResponse,
                          pipeline_id: str, branch: str | None, trigger: dict[str, Any],
                          definition: dict[str, Any] | None = None,
                          run_key: str | None = None, patient: bool = False,
                          env: dict[str, str] | None = None) -> FlowRun:
    """Start an execution: take the next run number, then create the flow run with it.

    Args:
        definition: run this definition instead of the pipeline's current one (a rerun).
        env: the run's variables (checked by the caller).
        run_key: the run's idempotency key when it must be made once whatever the number
            (a webhook delivery's, `vocabulary.delivery_key`); when that run exists
            already, it is returned and the number taken is given back.
        patient: wait for this process's turn to create a run as long as it takes, instead
            of RUN_QUEUE_SECONDS (the delivery dispatcher, whose callers were answered).

    Raises:
        ServiceUnavailableError: the turn did not come in RUN_QUEUE_SECONDS; nothing was
            created.

    Across facades, workers and Prefect's own triggers, the run-number claims keep the
    numbers unique. When the creation fails, the number is given back only once Prefect
    says the run does not exist: an error answer (or a lost connection) after the run was
    stored neither loses the run nor lets its number be taken twice: a number is given back
    only when Prefect answered the creation with an error and has no such run.
    """
    current = (deployment.parameters or {}).get("pipeline") or {}
    resolved = resolve_branch(definition if definition is not None else current, branch)
    parameters: dict[str, Any] = {"branch": resolved or None, "trigger": trigger}
    if env:
        parameters["env"] = env
    if definition is not None:
        parameters["pipeline"] = definition
    # One run creation at a time per process: on SQLite, concurrent writes through
    # Prefect's API collide and back off for seconds; in turn they take ~0.1 s each.
    # A caller that would wait in line too long is told to come back (503, Retry-After)
    # rather than left hanging past its own timeout.
    gate = write_gate()
    wait = None if patient else get_settings().run_queue_seconds
    try:
        async with asyncio.timeout(wait):  # Lock.acquire stays unlocked when cancelled
            await gate.acquire()
    except TimeoutError:
        raise ServiceUnavailableError(
            f"runs are being started faster than the store takes them (waited {wait or 0:.0f} s); "
            "retry", retry_after=5) from None
    try:
        number = await run_numbers.take(client, deployment.id)
        key = run_key or idempotency_key(deployment.id, number)
        try:
            flow_run = await client.create_flow_run_from_deployment(
                deployment.id,
                parameters=parameters,
                name=execution_name(pipeline_id, number),
                tags=[run_tag(number), TAG_EXECUTION],
                idempotency_key=key,
            )
        except httpx.HTTPStatusError:
            # Prefect answered: its transaction is over, so a look tells for sure.
            found = await _stored_anyway(client, deployment.id, key, number)
            if found is None:
                await run_numbers.give_back(client, deployment.id, number)
                raise
            flow_run = found
        except asyncio.CancelledError:
            raise  # the number stays taken: the run may still be stored
        except Exception as exc:
            # No answer (a timeout, a lost connection): the run may be stored still, so the
            # number stays taken (a gap at worst, never two runs on one number).
            found = await _stored_anyway(client, deployment.id, key, number)
            if found is None:
                raise StoreUncertainError(
                    f"Prefect did not answer whether run {number} of {pipeline_id} was made "
                    f"({type(exc).__name__}); look at the pipeline's executions before "
                    "running it again") from exc
            flow_run = found
        if tagged_run_number(flow_run.tags) != number:
            # The run of this key existed already (an earlier try made it): not a second run.
            await run_numbers.give_back(client, deployment.id, number)
        return flow_run
    finally:
        gate.release()


async def _stored_anyway(client: PrefectClient, deployment_id: UUID, key: str,
                         number: int) -> FlowRun | None:
    """After a failed creation: the run if Prefect stored it anyway, else None.

    Raises:
        StoreUncertainError: Prefect cannot be asked now (the number stays taken).
    """
    try:
        return await run_with_key(client, deployment_id, key)
    except Exception as exc:
        _log.warning("could not tell whether run %d of deployment %s was stored (%s); its "
                     "number stays taken", number, deployment_id, exc)
        raise StoreUncertainError(
            f"Prefect did not answer whether run {number} was made; look at the pipeline's "
            "executions before running it again") from None


async def run_with_key(client: PrefectClient, deployment_id: UUID | str, key: str
                       ) -> FlowRun | None:
    """The flow run of a pipeline made with this idempotency key, if there is one."""
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[UUID(str(deployment_id))]),
            idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])),
        limit=1)
    return runs[0] if runs else None


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def write_gate() -> asyncio.Lock:
    """The lock that serializes run creation in this process (one per event loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _gates:
        _gates[loop] = asyncio.Lock()
    return _gates[loop]


async def repoint_cluster(client: PrefectClient, cluster_id: str, pool: str,
                          settings: Settings) -> int:
    """Send every pipeline of a cluster to `pool` (when its work pool comes or goes)."""
    response = await client.request("POST", "/deployments/filter", json={
        "flows": {"name": {"any_": [FLOW_NAME]}},
        "deployments": {"tags": {"all_": [f"{TAG_CLUSTER}{cluster_id}"]}},
        "limit": 200,
    })
    response.raise_for_status()
    moved = 0
    for item in response.json():
        deployment = DeploymentResponse.model_validate(item)
        project_id = (deployment.parameters or {}).get("project_id") or ""
        if not project_id:
            continue
        queue = await ensure_project_queue(client, pool, project_id,
                                           await project_quota(client, project_id, settings))
        await client.update_deployment(deployment.id, DeploymentUpdate(
            work_pool_name=pool, work_queue_name=queue))
        moved += 1
    return moved

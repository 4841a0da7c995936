"""Webhooks: the hook on a pipeline's repository, and the deliveries its forge sends.

A pipeline with `triggerWebhook: true` gets a hook on its repository, made by the forge of
its credential for the events the pipeline runs on (push, tag, pull or merge request),
with the pipeline's token as its secret; its id and forge are kept in the pipeline's
secrets block. A delivery runs the pipeline only when the forge's check of it against that
token passes (forges/), for a branch the pipeline builds, while the pipeline is active.
What such a delivery asks to run is recorded before it is answered
(services/deliveries.py); a redelivery of the same delivery id runs nothing more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import PipelineSecrets
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.forges import Delivery, Forge, Skip, forge_class
from prefect_pipelines.services import sourcecode
from prefect_pipelines.services.deployments import read_deployment
from prefect_pipelines.settings import Settings
from prefect_pipelines.translator import PipelineConfig, PipelineSpecError
from prefect_pipelines.translator.branches import validate_branch_name
from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.vocabulary import secrets_block_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse


@dataclass
class HookTarget:
    """Where a pipeline's hook goes: repository, and the credential that manages it."""

    full_name: str
    credential_id: str
    forge: Forge
    token: str = field(repr=False)


async def hook_target(client: PrefectClient, config: PipelineConfig, *, user_id: str | None
                      ) -> HookTarget:
    """The repository and credential a pipeline's webhook needs.

    Args:
        user_id: when given, the credential must be this user's.

    Raises:
        InvalidInputError: the pipeline has no GitHub repository with a credential.
    """
    source = config.source
    if source is None or not source.source_code_credential_id:
        raise InvalidInputError(
            "triggerWebhook needs a sourceCodeConfig with a repository of a forge and a "
            "sourceCodeCredentialId", field_name="triggerWebhook")
    if user_id is not None:
        await sourcecode.check_owner(client, user_id=user_id,
                                     identifier=source.source_code_credential_id)
    record, token = await sourcecode.usable_token(client, source.source_code_credential_id)
    forge = record.forge
    full_name = forge.repo_name(source.url)
    if full_name is None:
        raise InvalidInputError(
            f"{source.url} is not a repository on {forge.web_host}, the host of "
            f"credential {record.id}", field_name="stages[0].steps[0].sourceCodeConfig.url")
    return HookTarget(full_name, record.id, forge, token)


def hook_url(settings: Settings, project_id: str, pipeline_id: str) -> str:
    """The receiver URL the forge posts a pipeline's deliveries to."""
    return f"{settings.public_url.rstrip('/')}/hooks?pipelineId={project_id}:{pipeline_id}"


@dataclass(frozen=True)
class Receiver:
    """What receiving a pipeline's delivery needs: its webhook token, the forge of its
    hook and its deployment."""

    token: str = field(repr=False)
    deployment: DeploymentResponse
    forge: Forge


async def receiver(client: PrefectClient, project_id: str, pipeline_id: str) -> Receiver:
    """The pipeline's webhook token and deployment (NotFoundError: no such pipeline)."""
    secrets, deployment = await asyncio.gather(
        load_secrets(client, project_id, pipeline_id),
        read_deployment(client, project_id, pipeline_id))
    # Parsing and checking a delivery needs no host: the forge's class is enough.
    return Receiver(secrets.token.get_secret_value(), deployment,
                    forge_class(secrets.webhook_kind or "github")(""))


async def load_secrets(client: PrefectClient, project_id: str, pipeline_id: str) -> PipelineSecrets:
    try:
        return await PipelineSecrets.aload(secrets_block_name(project_id, pipeline_id), client=client)
    except (ValueError, ObjectNotFound):
        raise NotFoundError(f"pipeline {pipeline_id!r} not found") from None


async def sync_hook(client: PrefectClient, *, project_id: str, pipeline_id: str,
                    config: PipelineConfig, user_id: str | None, settings: Settings) -> None:
    """Make the pipeline's hook match `triggerWebhook`: create, move or delete it."""
    block = await load_secrets(client, project_id, pipeline_id)
    target = None
    events = frozenset(config.webhook_events)
    if events:
        target = await hook_target(client, config, user_id=user_id)
        if (block.webhook_id and block.webhook_repo == target.full_name
                and block.webhook_kind == target.forge.kind
                and frozenset(block.webhook_events or ()) == events):
            return
    if block.webhook_id:
        await remove_hook(client, block)
    if target is not None:
        url = hook_url(settings, project_id, pipeline_id)
        # A hook of this pipeline that a failed save left behind would post twice.
        for leftover in await target.forge.find_hooks(target.token, target.full_name, url):
            await target.forge.delete_hook(target.token, target.full_name, leftover)
        block.webhook_id = await target.forge.create_hook(
            target.token, target.full_name, url=url, secret=block.token.get_secret_value(),
            events=events)
        block.webhook_repo = target.full_name
        block.webhook_kind = target.forge.kind
        block.webhook_events = sorted(events)
        block.credential_id = target.credential_id
    await block.asave(secrets_block_name(project_id, pipeline_id), overwrite=True, client=client)


async def remove_hook(client: PrefectClient, block: PipelineSecrets) -> None:
    """Delete the pipeline's hook on its forge (best effort when its credential is gone
    or needs a new link)."""
    if not block.webhook_id:
        return
    try:
        record, token = await sourcecode.usable_token(client, block.credential_id)
        await record.forge.delete_hook(token, block.webhook_repo, block.webhook_id)
    except (NotFoundError, InvalidInputError):
        pass
    block.webhook_id = ""
    block.webhook_repo = ""
    block.webhook_events = []


def check_branch(config: dict[str, Any], delivery: Delivery) -> None:
    """The pipeline builds this branch (or tag), else Skip; a bad name is a 422."""
    try:
        validate_branch_name(delivery.branch)
    except PipelineSpecError as exc:
        raise InvalidInputError(exc.message, field_name="ref") from None
    stored = StoredDefinition(config)
    allowed, constraint = stored.branch_allowed(delivery.branch)
    if not allowed:
        raise Skip(f"{delivery.branch!r} is not built by this pipeline (branch: {constraint})")
    condition = stored.branch_condition()
    if condition is None:
        return
    if not condition.matches(delivery.branch):
        raise Skip(f"{delivery.branch!r} is not built by this pipeline ({condition.describe()})")


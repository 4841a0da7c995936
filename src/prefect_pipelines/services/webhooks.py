"""GitHub webhooks: the hook on a pipeline's repository, and the deliveries it sends.

A pipeline with `triggerWebhook: true` gets a hook on its repository (push and
pull_request events, JSON, signed with the pipeline's token); its id is kept in the
pipeline's secrets block. A delivery runs the pipeline only with a valid
`X-Hub-Signature-256` for that token, for a push (a pushed tag is event `tag`) or an
opened / synchronized pull request, on a branch the pipeline builds, while the pipeline is
active. What such a delivery asks to run is recorded before it is answered
(services/deliveries.py); a redelivery of the same `X-GitHub-Delivery` runs nothing more.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import PipelineSecrets
from prefect_pipelines.errors import InvalidInputError, NotFoundError, SignatureError
from prefect_pipelines.services import github, sourcecode
from prefect_pipelines.services.deployments import read_deployment
from prefect_pipelines.settings import Settings
from prefect_pipelines.translator import PipelineConfig, PipelineSpecError
from prefect_pipelines.translator.branches import validate_branch_name
from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.vocabulary import secrets_block_name

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

RUN_ACTIONS = {"opened", "synchronize", "reopened"}
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")


@dataclass
class HookTarget:
    """Where a pipeline's hook goes: repository, and the credential that manages it."""

    full_name: str
    credential_id: str
    api_url: str
    token: str


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
            "triggerWebhook needs a sourceCodeConfig with a GitHub repository and a "
            "sourceCodeCredentialId", field_name="triggerWebhook")
    if user_id is not None:
        await sourcecode.check_owner(client, user_id=user_id,
                                     identifier=source.source_code_credential_id)
    record, token = await sourcecode.credential_token(client, source.source_code_credential_id)
    full_name = github.repo_full_name(source.url, record.api_url)
    if full_name is None:
        raise InvalidInputError(
            f"{source.url} is not a repository on {github.web_host(record.api_url)}, the host of "
            f"credential {record.id}", field_name="stages[0].steps[0].sourceCodeConfig.url")
    return HookTarget(full_name, record.id, record.api_url, token)


def hook_url(settings: Settings, project_id: str, pipeline_id: str) -> str:
    """The receiver URL GitHub posts a pipeline's deliveries to."""
    return f"{settings.public_url.rstrip('/')}/hooks?pipelineId={project_id}:{pipeline_id}"


@dataclass(frozen=True)
class Receiver:
    """What receiving a pipeline's delivery needs: its webhook token and its deployment."""

    token: str = field(repr=False)
    deployment: DeploymentResponse


async def receiver(client: PrefectClient, project_id: str, pipeline_id: str) -> Receiver:
    """The pipeline's webhook token and deployment (NotFoundError: no such pipeline)."""
    secrets, deployment = await asyncio.gather(
        load_secrets(client, project_id, pipeline_id),
        read_deployment(client, project_id, pipeline_id))
    return Receiver(secrets.token.get_secret_value(), deployment)


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
    if config.webhook_events:
        target = await hook_target(client, config, user_id=user_id)
        if block.webhook_id and block.webhook_repo == target.full_name:
            return
    if block.webhook_id:
        await remove_hook(client, block)
    if target is not None:
        block.webhook_id = str(await github.create_hook(
            api_url=target.api_url, token=target.token, full_name=target.full_name,
            url=hook_url(settings, project_id, pipeline_id),
            secret=block.token.get_secret_value()))
        block.webhook_repo = target.full_name
        block.credential_id = target.credential_id
    await block.asave(secrets_block_name(project_id, pipeline_id), overwrite=True, client=client)


async def remove_hook(client: PrefectClient, block: PipelineSecrets) -> None:
    """Delete the pipeline's hook on GitHub (best effort when its credential is gone)."""
    if not block.webhook_id:
        return
    try:
        record, token = await sourcecode.credential_token(client, block.credential_id)
        await github.delete_hook(api_url=record.api_url, token=token, full_name=block.webhook_repo,
                                 hook_id=int(block.webhook_id))
    except NotFoundError:
        pass
    block.webhook_id = ""
    block.webhook_repo = ""


def verify_signature(token: str, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex HMAC of the body>` in constant time."""
    if not header or not header.startswith("sha256="):
        raise SignatureError("the delivery has no X-Hub-Signature-256 signature")
    expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, header[len("sha256="):].strip()):
        raise SignatureError("the delivery's X-Hub-Signature-256 does not match the pipeline's secret")


@dataclass
class Delivery:
    """What a delivery asks to run."""

    event: str
    branch: str
    commit: str
    ref: str
    message: str = ""
    author: str = ""
    html_link: str = ""
    email: str = ""
    avatar_url: str = ""
    title: str = ""  # a pull request's
    skip_ci: str = ""  # `[skip ci]` or `[ci skip]`, when the commit message (or title) says it

    def trigger(self) -> dict[str, Any]:
        """The run's `trigger` parameter."""
        return {"triggeredBy": "webhook", "event": self.event, "commit": self.commit,
                "ref": self.ref, "message": self.message, "author": self.author,
                "htmlLink": self.html_link, "email": self.email, "avatarUrl": self.avatar_url,
                "title": self.title}


_SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)


class Skip(Exception):
    """A valid delivery that runs nothing (answered 200 with the reason)."""


def parse_delivery(event: str, body: bytes) -> Delivery:
    """What a push or pull_request delivery asks to build.

    Raises:
        Skip: the event runs nothing (ping, a deleted ref, a closed pull request, ...).
        InvalidInputError: the body is not the event's JSON.
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidInputError("the delivery is not JSON", code="InvalidBodyContent") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the delivery is not a JSON object", code="InvalidBodyContent")
    if event == "ping":
        raise Skip("pong")
    if event == "push":
        return _push(payload)
    if event == "pull_request":
        return _pull_request(payload)
    raise Skip(f"event {event!r} runs nothing")


def _text(payload: dict[str, Any], *path: str) -> str:
    value: Any = payload
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def _commit(payload: dict[str, Any], *path: str) -> str:
    """A commit hash of the payload (a 422 naming the field when it is not one)."""
    commit = _text(payload, *path)
    if not _COMMIT.fullmatch(commit):
        raise InvalidInputError(f"{'.'.join(path)} is not a commit hash", field_name=".".join(path))
    return commit


def _push(payload: dict[str, Any]) -> Delivery:
    ref = _text(payload, "ref")
    if payload.get("deleted") is True or set(_text(payload, "after")) == {"0"}:
        raise Skip(f"{ref or 'a ref'} was deleted: nothing to build")
    if ref.startswith("refs/tags/"):
        event, name = "tag", ref[len("refs/tags/"):]
    elif ref.startswith("refs/heads/"):
        event, name = "push", ref[len("refs/heads/"):]
    else:
        raise InvalidInputError(f"push of an unexpected ref {ref!r}", field_name="ref")
    return Delivery(event=event, branch=name, commit=_commit(payload, "after"), ref=ref,
                    message=_text(payload, "head_commit", "message").split("\n", 1)[0],
                    skip_ci=_skip_ci(_text(payload, "head_commit", "message")),
                    author=_text(payload, "head_commit", "author", "name"),
                    html_link=_text(payload, "compare"),
                    email=_text(payload, "head_commit", "author", "email"),
                    avatar_url=_text(payload, "sender", "avatar_url"))


def _pull_request(payload: dict[str, Any]) -> Delivery:
    action = _text(payload, "action")
    pull = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else {}
    if action not in RUN_ACTIONS or pull.get("state") != "open":
        raise Skip(f"pull request {action or 'event'}: nothing to build")
    number = pull.get("number") or payload.get("number")
    if not isinstance(number, int):
        raise InvalidInputError("the pull request has no number", field_name="number")
    return Delivery(event="pull_request", branch=_text(pull, "base", "ref"),
                    commit=_commit(pull, "head", "sha"), ref=f"refs/pull/{number}/head",
                    message=_text(pull, "title"), author=_text(pull, "user", "login"),
                    html_link=_text(pull, "html_url"), avatar_url=_text(pull, "user", "avatar_url"),
                    title=_text(pull, "title"), skip_ci=_skip_ci(_text(pull, "title")))


def _skip_ci(message: str) -> str:
    """The marker a commit message carries to be left unbuilt, as Woodpecker and GitHub
    Actions read it (any case)."""
    found = _SKIP_CI.search(message)
    return found.group(0) if found else ""


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


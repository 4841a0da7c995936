"""What a run needs from its surroundings: run numbers, credentials, the executor."""

from __future__ import annotations

import logging
import threading
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.flows.executors.base import Executor, ExecutorError
from prefect_pipelines.flows.executors.docker import DockerExecutor
from prefect_pipelines.flows.executors.process import ProcessExecutor
from prefect_pipelines.flows.output import SecretMasker
from prefect_pipelines.services.client import pipelines_client, shared_sync_client
from prefect_pipelines.services.dockercredentials import (
    DOCKER_HUB,
    operator_logins,
    private_registries,
    registry_host,
    registry_logins,
)
from prefect_pipelines.services.numbering import claim_run_number
from prefect_pipelines.settings import Settings
from prefect_pipelines.translator import RunPlan, RunScriptConfig
from prefect_pipelines.translator.executions import Steps
from prefect_pipelines.translator.mapping import run_number_of
from prefect_pipelines.vocabulary import (
    LABEL_STEPS,
    TAG_EXECUTION,
    TAG_RUN,
    credential_block_name,
    execution_name,
    run_tag,
    step_tags,
)

_log = logging.getLogger(__name__)


def ensure_run_number(flow_run: FlowRun, pipeline_id: str) -> int:
    """The run number of this execution, taking one if the run was started without it.

    Runs the facade creates carry their number; runs Prefect starts by itself (cron, the
    UI, `prefect deployment run`) take the next one here and are renamed
    `<pipelineId>-<run>`. Runs outside a deployment (`exec`) are not numbered (0).
    """
    if flow_run.deployment_id is None:
        return 0
    number = run_number_of(flow_run.tags, flow_run.idempotency_key, flow_run.deployment_id)
    if number is not None:
        return number

    async def take() -> int:
        async with pipelines_client() as client:
            taken = await claim_run_number(
                client, flow_run.deployment_id, flow_run_id=str(flow_run.id)
            )
            tags = [tag for tag in flow_run.tags
                    if not tag.startswith(TAG_RUN) and tag != TAG_EXECUTION]
            await client.update_flow_run(
                flow_run.id,
                name=execution_name(pipeline_id or "pipeline", taken),
                tags=[*tags, run_tag(taken), TAG_EXECUTION],
            )
            return taken

    return run_coro_as_sync(take())


def trigger_refusal(flow_run: FlowRun, project_id: str, *, credential: bool = False) -> str | None:
    """Why a run may not run, or None: a cron or webhook run acts for its pipeline's
    creator (as the deployment names them now), and a run that clones with a credential
    (`credential`) uses the creator's; either needs the creator to still be a member."""
    from prefect_pipelines.services.pipelines import creator_of
    from prefect_pipelines.services.projects import may_run, refused_run

    async def check() -> str | None:
        async with pipelines_client() as client:
            deployment = await client.read_deployment(flow_run.deployment_id)
            creator = creator_of(deployment.tags)
            if await may_run(client, project_id, creator):
                return None
            return refused_run(project_id, creator, credential=credential)

    return run_coro_as_sync(check())


def record_steps(flow_run_id: UUID, *, label: bool = True) -> Steps | None:
    """What the run's steps came to (None when they cannot be read); with `label`, put
    on its flow run (LABEL_STEPS), so that the API can show a finished execution from its
    flow run alone, without reading its task runs. Called as the run ends, once every
    step is over; a run that cannot record them is shown from its task runs, as a
    running one is."""
    from prefect_pipelines.services.executions import task_runs_of
    from prefect_pipelines.translator.executions import encode_steps, step_records

    async def read() -> tuple[FlowRun, list[Any]]:
        async with pipelines_client() as client:
            current = await client.read_flow_run(flow_run_id)
            return current, (await task_runs_of(client, [current]))[current.id]

    try:
        current, task_runs = run_coro_as_sync(read())
    except Exception as exc:  # noqa: BLE001 - the task runs still tell
        _log.warning("could not record the steps of flow run %s: %s", flow_run_id, exc)
        return None
    steps = step_records(task_runs)
    if label:
        label_flow_run(flow_run_id, {LABEL_STEPS: encode_steps(steps, current.run_count)})
    return steps


def publish_report(plan: RunPlan, steps: Steps, *, state: str, message: str, public_url: str,
                   linked: bool) -> None:
    """The execution's Prefect artifact (its flow run's Artifacts tab): stages, steps,
    states, durations and, with `linked` (a project's run), links to the step logs on
    /v3. A run that cannot write it carries on."""
    from prefect.artifacts import create_markdown_artifact

    from prefect_pipelines.translator.executions import execution_report

    identity = plan.identity

    def log_url(stage: int, step: int) -> str:
        return (f"{public_url.rstrip('/')}/v3/projects/{identity.project_id}/pipelineexecutionlogs/"
                f"{identity.execution_id}-{stage}-{step}")

    try:
        create_markdown_artifact(
            markdown=execution_report(plan, steps, state=state, message=message,
                                      log_url=log_url if linked and identity.project_id else None),
            description=f"execution {identity.execution_id}: its stages and steps")
    except Exception as exc:  # noqa: BLE001 - the report is a view; the run's outcome stands
        _log.warning("could not write the report of execution %s: %s", identity.execution_id, exc)


def label_flow_run(flow_run_id: UUID, labels: dict[str, str]) -> None:
    """Put labels on a flow run (the API reads an execution's commit and branch there)."""
    try:
        shared_sync_client().update_flow_run_labels(flow_run_id, labels)
    except Exception as exc:  # noqa: BLE001 - a missing label must not fail the run
        _log.warning("could not label flow run %s: %s", flow_run_id, exc)


class CommitStatus:
    """Reports an execution's state to GitHub as a commit status (webhook runs only).

    Failures to report are logged and never fail the run.
    """

    def __init__(self, plan: RunPlan, public_url: str) -> None:

        self.plan = plan
        self.enabled = False
        source = plan.config.source
        if plan.trigger.triggered_by != "webhook" or not plan.trigger.commit or source is None:
            return
        if not source.source_code_credential_id:
            return
        try:
            from prefect_pipelines.blocks import SourceCodeCredential
            from prefect_pipelines.services.github import repo_full_name

            credential = SourceCodeCredential.load(credential_block_name(source.source_code_credential_id))
        except (ValueError, ObjectNotFound) as exc:
            _log.warning("no commit status: credential %s: %s", source.source_code_credential_id, exc)
            return
        self.api_url = credential.api_url
        self.token = credential.access_token.get_secret_value()
        self.full_name = repo_full_name(source.url, credential.api_url)
        identity = plan.identity
        self.target_url = (f"{public_url.rstrip('/')}/v3/projects/{identity.project_id}"
                           f"/pipelineexecutions/{identity.execution_id}")
        self.context = f"prefect-pipelines/{identity.pipeline_id}"
        self.enabled = self.full_name is not None

    def report(self, state: str, description: str) -> None:
        """Set the commit's status: pending, success, failure or error."""
        if not self.enabled:
            return
        from prefect_pipelines.services.github import set_commit_status

        try:
            set_commit_status(api_url=self.api_url, token=self.token, full_name=self.full_name,
                              sha=self.plan.trigger.commit, state=state,
                              target_url=self.target_url, description=description,
                              context=self.context)
        except Exception as exc:  # noqa: BLE001 - GitHub being down must not fail a build
            _log.warning("could not set the commit status %s: %s", state, type(exc).__name__)


def secret_env(config: RunScriptConfig, masker: SecretMasker, project_id: str = "") -> dict[str, str]:
    """The `envFrom` variables of a step; every value is masked in logs from then on.

    A run of a project's pipeline reads the secrets of that project only
    (services/secrets.py); a run outside any project (`exec`, on an operator's machine)
    reads Prefect Secret blocks.

    Raises:
        ExecutorError: a secret does not exist, or lacks the key asked for.
    """
    if project_id:
        values = _project_env(config, project_id)
    else:
        values = _prefect_secret_env(config)
    for text in values.values():
        masker.add(text)
    return values


def _project_env(config: RunScriptConfig, project_id: str) -> dict[str, str]:
    from prefect_pipelines.errors import NotFoundError
    from prefect_pipelines.services.secrets import resolve, secret_values

    async def read() -> dict[str, dict[str, str] | None]:
        found: dict[str, dict[str, str] | None] = {}
        async with pipelines_client() as client:
            for item in config.env_from:
                if item.source_name not in found:
                    try:
                        found[item.source_name] = await secret_values(client, project_id, item.source_name)
                    except NotFoundError:
                        found[item.source_name] = None
        return found

    secrets = run_coro_as_sync(read()) if config.env_from else {}
    env: dict[str, str] = {}
    for item in config.env_from:
        values = secrets.get(item.source_name)
        if values is None:
            raise ExecutorError(f"project {project_id} has no secret {item.source_name!r}")
        try:
            env[item.target_key] = resolve(item.source_name, item.source_key, values)
        except KeyError as exc:
            raise ExecutorError(str(exc.args[0])) from None
    return env


def _prefect_secret_env(config: RunScriptConfig) -> dict[str, str]:
    import json

    from prefect.blocks.system import Secret

    env: dict[str, str] = {}
    for item in config.env_from:
        try:
            value = Secret.load(item.source_name).get()
        except (ValueError, ObjectNotFound):
            raise ExecutorError(f"secret {item.source_name!r} does not exist") from None
        if item.source_key is not None:
            if not isinstance(value, dict) or item.source_key not in value:
                raise ExecutorError(f"secret {item.source_name!r} has no key {item.source_key!r}")
            value = value[item.source_key]
        env[item.target_key] = value if isinstance(value, str) else json.dumps(value)
    return env


def load_source_token(credential_id: str | None) -> str | None:
    """The access token of a source code credential, or None when none is named.

    Raises:
        ExecutorError: the credential does not exist.
    """
    if not credential_id:
        return None
    from prefect_pipelines.blocks import SourceCodeCredential

    try:
        credential = SourceCodeCredential.load(credential_block_name(credential_id))
    except (ValueError, ObjectNotFound):
        raise ExecutorError(
            f"source code credential {credential_id!r} does not exist (or was revoked)"
        ) from None
    return credential.access_token.get_secret_value()


class RegistryLogins:
    """The registry logins of one run, read once on first use; every password is masked.

    A run of a project's pipeline uses its project's docker credentials only
    (services/dockercredentials.py), and pulls an image of a private registry (one some
    project, or an operator's block, keeps a login for) every time. A run outside any
    project (`exec`, on an operator's machine) uses prefect-docker
    `DockerRegistryCredentials` blocks, as before projects existed.
    """

    def __init__(self, masker: SecretMasker, project_id: str = "") -> None:
        self.masker, self.project_id = masker, project_id
        self._lock = threading.Lock()
        self._read: tuple[dict[str, dict[str, str]], set[str]] | None = None

    def login(self, registry: str) -> dict[str, str] | None:
        """The engine's auth config for `registry` (a host, or empty for Docker Hub)."""
        return self._load()[0].get(registry_host(registry or DOCKER_HUB))

    def private(self, registry: str) -> bool:
        """Whether an image of `registry` is pulled with this run's login every time."""
        return registry_host(registry or DOCKER_HUB) in self._load()[1]

    def has_private(self) -> bool:
        return bool(self._load()[1])

    def _load(self) -> tuple[dict[str, dict[str, str]], set[str]]:
        with self._lock:
            if self._read is None:
                self._read = run_coro_as_sync(self._fetch())
            return self._read

    async def _fetch(self) -> tuple[dict[str, dict[str, str]], set[str]]:
        async with pipelines_client() as client:
            operators = await operator_logins(client, include_secrets=not self.project_id)
            if not self.project_id:
                logins, private = operators, set()
            else:
                logins = await registry_logins(client, self.project_id)
                private = await private_registries(client) | set(operators)
        for login in logins.values():
            self.masker.add(login["password"])
        return logins, private


def select_executor(settings: Settings, logins: RegistryLogins) -> Executor:
    """The executor for this run: process only when the setting says `process` (as a
    worker or `exec` that found no engine at its start pins it, see
    `executors.resolve_executor`); docker otherwise, `auto` included. A run never falls
    back to the host by itself.

    Raises:
        ExecutorError: the docker engine does not answer.
    """
    if settings.executor == "process":
        return ProcessExecutor()
    return DockerExecutor(
        settings.docker_host, network=settings.docker_network, logins=logins
    )


class StepTagLimits:
    """Spares each step's task run Prefect's tag-limit request when no limit names a step tag.

    A task run with tags asks Prefect's concurrency API for slots of `tag:<tag>` limits as
    it starts; Prefect remembers "no such limit" for only 5 s per set of tags, and every
    step has its own set (`stage:i`, `step:j`), so each step of a run paid a request. One
    look at the limits per run, then the same memo Prefect keeps (when this Prefect
    version has it), removes that. A limit named after a step tag keeps the request.
    """

    def __init__(self, plan: RunPlan) -> None:
        from prefect.concurrency import services

        self._cache = getattr(services, "_no_limits_cache", None)
        self._lock = getattr(services, "_cache_lock", None)
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



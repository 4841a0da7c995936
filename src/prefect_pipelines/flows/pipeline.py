"""The `run-pipeline` flow: one flow run per execution, one task run per step."""

from __future__ import annotations

import contextvars
import logging
import re
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.context import FlowRunContext, TaskRunContext
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from prefect_pipelines.flows.caches import RunCaches
from prefect_pipelines.flows.control import RunControl, StopToken, start_thread
from prefect_pipelines.flows.credentials import RegistryLogins, load_clone_auth, secret_env
from prefect_pipelines.flows.engine import StepTagLimits
from prefect_pipelines.flows.executors import process_notice
from prefect_pipelines.flows.executors.base import (
    Executor,
    ExecutorError,
    StepContext,
    StepResult,
    stop_message,
)
from prefect_pipelines.flows.executors.docker import DockerExecutor
from prefect_pipelines.flows.executors.process import ProcessExecutor
from prefect_pipelines.flows.git import clone, commit_labels, existing_checkout, is_empty_dir
from prefect_pipelines.flows.heartbeat import heartbeats
from prefect_pipelines.flows.output import SecretMasker, StepOutput, console
from prefect_pipelines.services.runs import (
    ensure_run_number,
    label_flow_run,
    publish_report,
    record_definition,
    record_steps,
    run_policy,
)
from prefect_pipelines.services.statuses import CommitStatus
from prefect_pipelines.settings import Settings, get_settings
from prefect_pipelines.translator import (
    PipelineConfig,
    PipelineSpecError,
    RunIdentity,
    RunPlan,
    StagePlan,
    StepPlan,
    Trigger,
    compile_plan,
    parse_pipeline,
)
from prefect_pipelines.translator.branches import repository_branch
from prefect_pipelines.translator.executions import api_state
from prefect_pipelines.translator.pipeline_file import clone_only, file_names, parse_pipeline_file
from prefect_pipelines.translator.plan import OPERATOR_DEFAULTS
from prefect_pipelines.translator.spec import run_variables
from prefect_pipelines.vocabulary import (
    CONTAINER_EXECUTION,
    CONTAINER_FLOW_RUN,
    CONTAINER_STEP,
    FLOW_NAME,
    LABEL_BRANCH,
    LABEL_COMMIT,
    SKIPPED_STATE_NAME,
    execution_name,
)

_START_WAIT_SECONDS = 30
_TRIGGERS = ("triggerCronExpression", "triggerCronTimezone", "triggerWebhook",
             "triggerWebhookPush", "triggerWebhookPr", "triggerWebhookTag")
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
# A branch, a tag, or a pull (merge) request's head as each forge names it: GitHub and
# Gitea refs/pull/N/head, GitLab refs/merge-requests/N/head, Bitbucket Data Center
# refs/pull-requests/N/from.
_REF = re.compile(r"refs/(?:heads|tags)/[^\s~^:?*\[\\]+"
                  r"|refs/(?:pull|merge-requests|pull-requests)/\d+/(?:head|merge|from)")
_log = logging.getLogger(__name__)


@dataclass
class LocalOptions:
    """Options of a local run (`prefect-pipelines exec`), never flow parameters.

    A workspace on the host is a local decision: it is not a parameter, so nobody can
    point a deployed pipeline at a directory of the worker.
    """

    workspace: Path | None = None


local_options: contextvars.ContextVar[LocalOptions | None] = contextvars.ContextVar(
    "prefect_pipelines_local_options", default=None
)


class ActiveRuns:
    """The executions running in this process, so a worker can stop one at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[UUID, RunControl] = {}

    def add(self, flow_run_id: UUID, control: RunControl) -> None:
        with self._lock:
            self._runs[flow_run_id] = control

    def remove(self, flow_run_id: UUID) -> None:
        with self._lock:
            self._runs.pop(flow_run_id, None)

    def get(self, flow_run_id: UUID) -> RunControl | None:
        with self._lock:
            return self._runs.get(flow_run_id)

    def ids(self) -> list[UUID]:
        with self._lock:
            return list(self._runs)


active_runs = ActiveRuns()


class _Stage:
    """The steps of one stage that are running, so a failure can abort the others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, StopToken] = {}
        self._failed: str | None = None

    def add(self, label: str, token: StopToken) -> None:
        """Track a step; one that starts after a sibling failed is stopped at once."""
        with self._lock:
            self._tokens[label] = token
            failed = self._failed
        if failed is not None:
            token.stop("aborted", self._why(failed))

    def remove(self, label: str) -> None:
        with self._lock:
            self._tokens.pop(label, None)

    def abort_others(self, failed: str) -> None:
        with self._lock:
            if self._failed is None:
                self._failed = failed
            others = [token for label, token in self._tokens.items() if label != failed]
        for token in others:
            token.stop("aborted", self._why(failed))

    @staticmethod
    def _why(failed: str) -> str:
        return f"aborted: step {failed} of this stage failed"


class _Run:
    """Everything the steps of one execution share."""

    def __init__(
        self,
        plan: RunPlan,
        *,
        flow_run: FlowRun,
        executor: Executor | None,
        workspace: Path,
        settings: Settings,
        deadline: float,
        masker: SecretMasker,
        control: RunControl,
    ) -> None:
        self.plan = plan
        self.flow_run = flow_run
        self.executor = executor
        self.workspace = workspace
        self.settings = settings
        self.deadline = deadline
        self.masker = masker
        self.control = control
        self.commit = plan.trigger.commit
        self.tag_limits = StepTagLimits(plan)
        self.caches: RunCaches | None = None

    def mounts(self) -> dict[str, dict[str, str]]:
        return self.caches.mounts() if self.caches is not None else {}

    def restore_caches(self, stage: StagePlan) -> None:
        """Before the first stage that runs more than a clone: restore the run's caches
        (the plan's, read from a repository's file by now; keys know the commit)."""
        if self.caches is not None or not self.plan.config.cache or all(
                step.kind == "sourceCode" for step in stage.steps):
            return
        logger = get_run_logger()
        if not isinstance(self.executor, DockerExecutor):
            logger.warning("cache: caches are kept by the docker executor only; this run "
                           "neither restores nor saves them")
            self.plan = replace(self.plan, config=self.plan.config.model_copy(update={"cache": None}))
            return
        image = next((self.plan.resolve(step, self.commit).script.image  # type: ignore[union-attr]
                      for step in self.plan.steps() if step.kind == "runScript"), None)
        if image is None:  # the copies need an image the engine has: a step's
            logger.warning("cache: a pipeline without runScriptConfig steps keeps no caches")
            return
        try:
            self.executor.ensure_image(image, lambda text: logger.info("cache: %s", text))
        except Exception as exc:  # noqa: BLE001 - the step pulling it says why, too
            logger.warning("cache: no image to copy caches with (%s): not restored", exc)
            return
        self.caches = RunCaches(self.plan, self.workspace, self.executor.client, image,
                                lambda text: logger.info("%s", text), commit=self.commit,
                                labels={CONTAINER_FLOW_RUN: str(self.flow_run.id)})
        self.caches.restore()

    def env(self) -> dict[str, str]:
        return self.plan.cicd_env(self.commit)

    def labels(self, step: StepPlan) -> dict[str, str]:
        return {
            CONTAINER_FLOW_RUN: str(self.flow_run.id),
            CONTAINER_EXECUTION: self.plan.identity.execution_id,
            CONTAINER_STEP: f"s{step.stage}-{step.index}",
        }


class _StepJob:
    """One step to run as a task (passed to the task quoted, so Prefect does not walk it).

    A step that `when` skips (`skip`, saying why) still gets its task run, Completed and
    named SKIPPED_STATE_NAME, so the UI and the API show it skipped as soon as its stage
    is reached; it runs nothing.
    """

    def __init__(self, run: _Run, step: StepPlan, stage: _Stage, skip: str | None = None) -> None:
        self.run = run
        self.step = step
        self.stage = stage
        self.skip = skip
        self.started = threading.Event()

    def deadline(self) -> tuple[float, bool]:
        """(monotonic deadline, whether it is the pipeline's rather than the step's)."""
        if self.step.timeout_seconds is not None:
            own = time.monotonic() + self.step.timeout_seconds
            if own <= self.run.deadline:
                return own, False
        return self.run.deadline, True

    def execute(self, task_run_id: UUID | None) -> State | dict[str, Any]:
        self.started.set()
        run, step = self.run, self.step
        if self.skip is not None:
            console.status(f"{step.label} skipped: {self.skip}")
            return Completed(name=SKIPPED_STATE_NAME, message=f"skipped: {self.skip}")
        deadline, pipeline_limit = self.deadline()
        token = StopToken(deadline)
        output = StepOutput(
            step.label,
            title=step.place,
            flow_run_id=run.flow_run.id,
            task_run_id=task_run_id,
            masker=run.masker,
            chunk_bytes=run.settings.log_chunk_bytes,
            flush_seconds=run.settings.log_flush_seconds,
        )
        self.stage.add(step.label, token)
        run.control.register(token)
        started = time.monotonic()
        console.status(f"{step.label} ({step.kind}) started")
        try:
            ctx = StepContext(
                label=step.label,
                workspace=run.workspace,
                env=run.env(),
                output=output,
                token=token,
                labels=run.labels(step),
                mounts=run.mounts(),
            )
            result = self._dispatch(ctx)
            if not result.ok and result.stopped is None and not step.ignores_failure:
                self.stage.abort_others(step.label)
            message = self._message(result, token, pipeline_limit)
            if message:
                output.info(message)
        finally:
            run.control.unregister(token)
            self.stage.remove(step.label)
            output.close()
        took = time.monotonic() - started
        if result.ok:
            console.status(f"{step.label} succeeded in {took:.1f}s")
            return {"exitCode": 0, "commit": run.commit}
        console.status(f"{step.label}: {message}")
        if result.stopped in ("aborted", "cancelled"):
            return Cancelled(message=message)
        return Failed(message=message)

    def _message(self, result: StepResult, token: StopToken, pipeline_limit: bool) -> str:
        if result.stopped == "timeout":
            limit = self.run.plan.timeout_seconds if pipeline_limit else self.step.timeout_seconds
            text = stop_message("timeout", token, limit)
            return text + (" (the pipeline's timeout)" if pipeline_limit else "")
        if result.stopped is not None:
            return stop_message(result.stopped, token, None)
        if result.ok:
            return ""
        return result.message or "the step failed"

    def _dispatch(self, ctx: StepContext) -> StepResult:
        run = self.run
        try:
            if self.step.kind == "sourceCode":
                return self._clone(ctx)
            if run.executor is None:  # pragma: no cover - guarded by the flow
                raise ExecutorError("no executor is available")
            resolved = run.plan.resolve(self.step, run.commit)
            ctx.env = dict(resolved.env)
            if resolved.script is not None:
                script = resolved.script
                if script.secrets_withheld:
                    ctx.output.info("secrets (envFrom) are not given to pull_request runs")
                if script.secrets:
                    # A project's run reads its project's secrets; `exec`, Prefect's.
                    project = run.plan.identity.project_id if run.flow_run.deployment_id is not None else ""
                    ctx.env.update(secret_env(script.secrets, run.masker, project))
                return run.executor.run_script(script, ctx)
            assert resolved.publish is not None
            return run.executor.publish_image(resolved.publish, ctx)
        except (ExecutorError, PipelineSpecError) as exc:
            return StepResult(None, message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a step must end with a state, not a crash
            _log.error("step %s failed unexpectedly:\n%s", ctx.label, traceback.format_exc())
            return StepResult(None, message=f"internal error: {type(exc).__name__}: {exc}")

    def _clone(self, ctx: StepContext) -> StepResult:
        run = self.run
        source = run.plan.config.source
        assert source is not None
        if not is_empty_dir(run.workspace):
            cloned = existing_checkout(ctx)
        else:
            auth = load_clone_auth(source.source_code_credential_id)
            cloned = clone(
                source.url,
                run.plan.branch,
                ctx,
                commit=run.plan.trigger.commit,
                ref=run.plan.trigger.ref,
                auth=auth,
                depth=run.settings.clone_depth,
                allowed_schemes=run.settings.git_schemes(),
            )
        if cloned.commit:
            run.commit = cloned.commit
            if run.flow_run.deployment_id is not None:
                labels = {LABEL_COMMIT: cloned.commit}
                if run.plan.trigger.triggered_by != "webhook":  # a delivery says it itself
                    labels.update(commit_labels(run.workspace))
                label_flow_run(run.flow_run.id, labels)
        return cloned.result


@task(
    name="step",
    task_run_name="{title}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=0,
)
def run_step(stage: int, step: int, title: str, job: _StepJob) -> State | dict[str, Any]:
    """Run step `step` of stage `stage`: a task run named `title` for people
    (`StepPlan.title`), tagged `stage:<i>`, `step:<j>` for the API."""
    ctx = TaskRunContext.get()
    return job.execute(ctx.task_run.id if ctx else None)


def _trigger_from(params: dict[str, Any] | None, flow_run: FlowRun) -> Trigger:
    params = dict(params or {})
    # A run Prefect made without the facade: its schedule's, or one from the Prefect UI or
    # `prefect deployment run` (then nobody of the API started it).
    triggered_by = params.get("triggeredBy") or ("cron" if flow_run.auto_scheduled else "prefect")
    if triggered_by not in ("user", "cron", "webhook", "prefect"):
        raise PipelineSpecError(f"unknown trigger {triggered_by!r}", "trigger.triggeredBy")
    commit = str(params.get("commit") or "")
    if commit and not _COMMIT.fullmatch(commit):
        raise PipelineSpecError(f"{commit!r} is not a commit hash", "trigger.commit")
    ref = str(params.get("ref") or "")
    if ref and (not _REF.fullmatch(ref) or ".." in ref):
        raise PipelineSpecError(f"{ref!r} is not a git ref", "trigger.ref")
    return Trigger(
        triggered_by=triggered_by,
        user_id=str(params.get("userId") or ""),
        event=str(params.get("event") or ""),
        commit=commit,
        ref=ref,
        message=str(params.get("message") or ""),
        author=str(params.get("author") or ""),
        html_link=str(params.get("htmlLink") or ""),
        email=str(params.get("email") or ""),
        avatar_url=str(params.get("avatarUrl") or ""),
        title=str(params.get("title") or ""),
    )


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


def _make_workspace(flow_run: FlowRun, settings: Settings) -> tuple[Path, bool]:
    """(workspace, whether to remove it at the end)."""
    options = local_options.get()
    if options is not None and options.workspace is not None:
        options.workspace.mkdir(parents=True, exist_ok=True)
        return options.workspace, False
    root = settings.workspace_root
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    workspace = root / str(flow_run.id)
    if workspace.exists():  # a rerun of the same flow run: start clean
        shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir()
    workspace.chmod(0o777)  # containers may run as any user; the root above is private
    return workspace, True


def _watch_run(flow_run: FlowRun, control: RunControl, settings: Settings,
               done: threading.Event) -> threading.Thread:
    """While the run's steps last: poll its state and, on Cancelling, stop every step."""

    def run() -> None:
        with get_client(sync_client=True) as client:
            while not done.wait(settings.cancel_poll_seconds):
                try:
                    state = client.read_flow_run(flow_run.id).state
                except Exception:  # noqa: BLE001 - a blip of the API; try again
                    continue
                if state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED):
                    control.cancel(state.message or "the run was cancelled")
                    return

    return start_thread(run, f"watch-{flow_run.id}")


def _run_stage(run: _Run, stage: StagePlan, failed: bool) -> list[tuple[StepPlan, State]]:
    """Run a stage's steps (a clone first, alone); `failed`: whether a stage before failed,
    for the steps' `when.status`."""
    group = _Stage()
    results: list[tuple[StepPlan, State]] = []
    steps = list(stage.steps)
    if steps[0].kind == "sourceCode":  # the clone runs before the rest of its stage
        results += _submit(run, [steps.pop(0)], group, failed)
        if any(not state.is_completed() for _, state in results):
            return results
    if steps:
        results += _submit(run, steps, group, failed)
    return results


def _skip_reason(step: StepPlan, failed: bool) -> str | None:
    if step.skip is not None:
        return step.skip
    if not step.runs_after(failed):
        return ("when.status: it runs only after a failure" if not failed
                else "an earlier stage failed")
    return None


def _submit(run: _Run, steps: list[StepPlan], group: _Stage,
            failed: bool) -> list[tuple[StepPlan, State]]:
    """Start the steps one after another, then wait for all of them.

    Each step waits for the previous one to be running before it is submitted: task runs
    with tags take a (tag) concurrency slot as they start, and Prefect's SQLite backend
    answers concurrent slot requests with 503 and a 2 s retry. Started in sequence they
    take a few tens of milliseconds each.
    """
    futures = []
    for step in steps:
        run.tag_limits.before_step(step.stage, step.index)
        with tags(*step.tags):
            job = _StepJob(run, step, group, _skip_reason(step, failed))
            futures.append((step, run_step.submit(step.stage, step.index, run.plan.title_of(step),
                                                  quote(job))))
        job.started.wait(timeout=_START_WAIT_SECONDS)
    out = []
    for step, future in futures:
        future.wait()
        out.append((step, future.state))
    return out


# Run numbers taken while the engine named the run (`_run_name`), for `_execute`.
_numbers: dict[UUID, int] = {}


def _run_name() -> str:
    """The flow run's name, as Prefect's engine asks for it before the run logs anything:
    `<pipelineId>-<run>`. A run Prefect made (cron, the UI, `prefect deployment run`)
    takes its number here, so even its first log line names it so (not
    `curly-guillemot`); a run outside a deployment (`exec`) keeps its name."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:  # pragma: no cover - the engine sets it
        return "pipeline"
    flow_run, parameters = context.flow_run, context.parameters or {}
    if flow_run.deployment_id is None:
        return flow_run.name
    pipeline_id = str(parameters.get("pipeline_id") or (parameters.get("pipeline") or {}).get("name") or "")
    try:
        number = ensure_run_number(flow_run, pipeline_id)
    except Exception as exc:  # noqa: BLE001 - the run takes its number when it starts
        get_run_logger().warning("could not take a run number yet: %s", exc)
        return flow_run.name
    _numbers[flow_run.id] = number
    return execution_name(pipeline_id or "pipeline", number)


@flow(
    name=FLOW_NAME,
    flow_run_name=_run_name,
    description="Run a prefect-pipelines pipeline: stages in order, the steps of a stage "
    "concurrently, each step in a container.",
    persist_result=False,
    validate_parameters=True,
    task_runner=ThreadPoolTaskRunner(max_workers=64),
)
def run_pipeline(
    pipeline: dict[str, Any],
    pipeline_id: str = "",
    project_id: str = "",
    branch: str | None = None,
    trigger: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> State:
    """Run a pipeline definition once.

    Args:
        pipeline: the definition, in the /v3 shape (`stages`, `timeout`, ...).
        pipeline_id: the pipeline's id (its name); defaults to the definition's name.
        project_id: `<clusterId>:<projectId>`.
        branch: the branch to build; derived from the definition when it names one.
        trigger: who started the run: `triggeredBy` (user|cron|webhook), `userId`,
            `event`, `commit`, `ref`, `message`, `author`, `email`, `avatarUrl`,
            `htmlLink`, `title`.
        env: run variables, NAME -> value: every step gets them, over the pipeline's
            own env (CICD_* names are the pipeline's and cannot be set).
    """
    settings = get_settings()
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with heartbeats(context.flow_run, settings.heartbeat_seconds):
        return _execute(context.flow_run, settings, pipeline, pipeline_id, project_id, branch, trigger,
                        env)


def _execute(flow_run: FlowRun, settings: Settings, pipeline: dict[str, Any], pipeline_id: str,
             project_id: str, branch: str | None, trigger: dict[str, Any] | None,
             env: dict[str, str] | None = None) -> State:
    """The run itself (see `run_pipeline`)."""
    logger = get_run_logger()
    if settings.executor == "process":
        logger.info("%s", process_notice())
    try:
        # Triggers say when a pipeline runs, not what a run does: a definition stored by
        # an earlier version (a timezone without a cron expression) still runs.
        definition = {key: value for key, value in pipeline.items() if key not in _TRIGGERS}
        if "repositoryUrl" in definition:  # what a run of it read from its file is not its own
            definition = {key: value for key, value in definition.items() if key != "stages"}
        config = parse_pipeline(definition, min_cron_interval_seconds=0)
        repository: PipelineConfig | None = None
        if config.repository_url is not None:
            # A pipeline read from its repository: its file is read once the clone stage
            # has checked out the commit the run builds.
            repository, config = config, clone_only(config)
            try:
                branch = repository_branch(branch, repository.default_branch)
            except PipelineSpecError as exc:
                raise exc.at("branch") from None
        run_trigger = _trigger_from(trigger, flow_run)
        variables = run_variables(env)
        run_number = _numbers.pop(flow_run.id, None)
        if run_number is None:
            run_number = ensure_run_number(flow_run, pipeline_id or config.name or "")
        identity = RunIdentity(
            pipeline_id=pipeline_id or config.name or "pipeline",
            project_id=project_id,
            run=run_number,
        )
        credential = bool(config.source and config.source.source_code_credential_id)
        defaults = OPERATOR_DEFAULTS  # `exec`: the operator's own run
        if flow_run.deployment_id is not None:
            refusal, defaults = run_policy(
                flow_run, project_id, credential=credential,
                check_creator=credential or run_trigger.triggered_by in ("cron", "webhook"))
            if refusal is not None:
                logger.error("%s", refusal)
                console.status(refusal)
                return Failed(message=refusal)
        plan = compile_plan(config, identity=identity, trigger=run_trigger, branch=branch,
                            variables=variables, defaults=defaults)
    except PipelineSpecError as exc:
        logger.error("cannot run this pipeline: %s", exc)
        console.status(f"cannot run this pipeline: {exc}")
        return Failed(message=f"invalid pipeline: {exc}")

    if flow_run.deployment_id is not None and plan.branch:
        label_flow_run(flow_run.id, {LABEL_BRANCH: plan.branch})
    masker = SecretMasker()
    try:
        executor = _executor_for(plan, settings, masker, flow_run)
    except ExecutorError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc))
    status = CommitStatus(plan, settings.public_url)
    status.report("pending", f"execution {identity.execution_id} started")
    workspace, remove_workspace = _make_workspace(flow_run, settings)
    control = RunControl()
    active_runs.add(flow_run.id, control)
    done = threading.Event()
    watcher = _watch_run(flow_run, control, settings, done)
    run = _Run(
        plan,
        flow_run=flow_run,
        executor=executor,
        workspace=workspace,
        settings=settings,
        deadline=time.monotonic() + plan.timeout_seconds,
        masker=masker,
        control=control,
    )
    logger.info(
        "execution %s: %d stage(s), branch %r, executor %s",
        identity.execution_id,
        len(plan.stages),
        plan.branch,
        executor.name if executor else "none",
    )
    failure = ""
    started = time.monotonic()
    try:
        index = 0
        while index < len(run.plan.stages):
            stage = run.plan.stages[index]
            index += 1
            if control.cancelled or not stage.runs_after(bool(failure)):
                why = "the run was cancelled" if control.cancelled else failure or (
                    "when.status: it runs only after a failure")
                logger.info("stage %d %r skipped: %s", stage.index, stage.name, why)
                console.status(f"stage {stage.name} skipped")
                continue
            if stage.skip is not None:
                logger.info("stage %d %r skipped: %s", stage.index, stage.name, stage.skip)
            console.status(f"stage {stage.name}")
            run.restore_caches(stage)
            for step, state in _run_stage(run, stage, bool(failure)):
                if state.is_failed() and step.ignores_failure:
                    logger.info("step %s failed (failure: ignore): %s", step.place, state.message)
                elif state.is_failed() and not failure:
                    failure = f"stage {stage.name!r} failed: step {step.place}: {state.message}"
            if repository is not None and index == 1 and not failure and not control.cancelled:
                try:
                    run.plan = _read_pipeline_file(run, repository, pipeline)
                    run.deadline = started + run.plan.timeout_seconds
                    if run.executor is None:
                        run.executor = _executor_for(run.plan, settings, masker, flow_run)
                except (PipelineSpecError, ExecutorError) as exc:
                    failure = (f"invalid pipeline: {exc}" if isinstance(exc, PipelineSpecError)
                               else str(exc))
                    logger.error("%s", failure)
                    continue
                logger.info("%s at %s: %d stage(s) after the clone", run.plan.source_file,
                            run.commit[:12], len(run.plan.stages) - 1)
        if run.caches is not None and not failure and not control.cancelled:
            run.caches.save()
    finally:
        if run.caches is not None:
            run.caches.close()
        active_runs.remove(flow_run.id)
        done.set()
        watcher.join(timeout=5)
        executor = run.executor
        if executor is not None:
            removed = executor.cleanup(str(flow_run.id))
            if removed:
                logger.info("removed %d leftover container(s)", removed)
            executor.close()
        if remove_workspace:
            shutil.rmtree(workspace, ignore_errors=True)
    deployed = flow_run.deployment_id is not None
    steps = record_steps(flow_run.id, label=deployed)
    if control.cancelled:
        final: State = Cancelled(message=control.cancel_message or "the run was cancelled")
        console.status("cancelled")
        status.report("error", f"execution {identity.execution_id} was aborted")
    elif failure:
        final = Failed(message=failure)
        console.status(f"failed: {failure}")
        status.report("failure", failure)
    else:
        final = Completed(message=f"execution {identity.execution_id} succeeded")
        console.status("succeeded")
        status.report("success", final.message or "")
    if steps is not None:
        publish_report(run.plan, steps, state=api_state(final.type), message=final.message or "",
                       public_url=settings.public_url, linked=deployed)
    return final


def _executor_for(plan: RunPlan, settings: Settings, masker: SecretMasker,
                  flow_run: FlowRun) -> Executor | None:
    """The executor of a plan with steps beyond a clone (None without any).

    Raises:
        ExecutorError: the docker engine does not answer.
    """
    if all(step.kind == "sourceCode" for step in plan.steps()):
        return None
    # A project's run logs in with its project's registry logins; `exec`, with the
    # operator's prefect-docker blocks.
    project = plan.identity.project_id if flow_run.deployment_id is not None else ""
    return select_executor(settings, RegistryLogins(masker, project))


def _read_pipeline_file(run: _Run, repository: PipelineConfig, pipeline: dict[str, Any]) -> RunPlan:
    """The plan of the rest of a run of a repository's pipeline: its file, read from the
    checkout of the commit the run builds, compiled with the run's identity, trigger and
    branch, and recorded as the execution's definition.

    Raises:
        PipelineSpecError: no file, or one that is not a valid pipeline (naming it).
    """
    workspace = run.workspace.resolve()
    names = file_names(repository)
    for name in names:
        path = (workspace / name).resolve()
        if not path.is_relative_to(workspace):  # a link out of the checkout
            raise PipelineSpecError(f"{name} points outside the repository")
        if not path.is_file():
            continue
        if path.stat().st_size > run.settings.max_pipeline_bytes:
            raise PipelineSpecError(f"{name} is over {run.settings.max_pipeline_bytes} bytes")
        config = parse_pipeline_file(path.read_bytes(), file_name=name,
                                     clone=repository.repository_clone(),
                                     max_bytes=run.settings.max_pipeline_bytes)
        old = run.plan
        plan = compile_plan(config, identity=old.identity, trigger=old.trigger, branch=old.branch,
                            variables=old.extra_env, defaults=old.defaults)
        plan = replace(plan, source_file=name)
        if run.flow_run.deployment_id is not None:
            record_definition(run.flow_run, {**pipeline, **config.to_dict()})
        return plan
    at = f" at {run.commit[:12]}" if run.commit else ""
    raise PipelineSpecError(f"the repository has no {' or '.join(names)}{at}: nothing to run")

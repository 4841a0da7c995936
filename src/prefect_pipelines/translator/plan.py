"""The compiled run plan: what one execution runs, in order, with its environment.

The plan knows nothing of Prefect or docker: `flows/` turns it into task runs and
containers. Compiling resolves the branch to build, labels every step, turns timeouts
into seconds, defines the `CICD_*` environment every step gets, and checks that every
image and tag expands to a valid reference, so a run with a bad one fails before any
step starts. `RunPlan.resolve` then gives a step everything an executor needs (the
expanded image or tag, its registry, argv, environment, the `envFrom` entries to read):
the executors only turn a resolved step into engine calls.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from prefect_pipelines.translator.branches import BranchCondition
from prefect_pipelines.translator.conditions import runs_after
from prefect_pipelines.translator.errors import (
    BranchMismatchError,
    ImageTagError,
    PipelineSpecError,
    PrivilegedStepError,
    StepLimitsError,
)
from prefect_pipelines.translator.quantities import cpu_nanos, memory_bytes
from prefect_pipelines.translator.spec import (
    LIMITS,
    EnvFromSecret,
    PipelineConfig,
    RunScriptConfig,
    Step,
    When,
    check_requests,
)
from prefect_pipelines.vocabulary import step_tags

TriggerType = Literal["user", "cron", "webhook", "prefect"]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# docker reference grammar (distribution/reference), without the digest form.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"
_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?"
)


@dataclass(frozen=True)
class Trigger:
    """Who or what started an execution, and what it carries from outside.

    Every string here may come from an untrusted source (a webhook); it reaches a step
    only as an environment value.
    """

    triggered_by: TriggerType = "user"
    user_id: str = ""
    event: str = ""
    commit: str = ""
    ref: str = ""
    message: str = ""
    author: str = ""
    html_link: str = ""
    email: str = ""
    avatar_url: str = ""
    title: str = ""

    @property
    def cicd_event(self) -> str:
        """The `CICD_EVENT` value: push, pull_request or tag for webhooks."""
        if self.event:
            return self.event
        return "cron" if self.triggered_by == "cron" else "manual"


@dataclass(frozen=True)
class RunIdentity:
    """Where an execution belongs and its number."""

    pipeline_id: str
    project_id: str = ""
    run: int = 0

    @property
    def cluster_id(self) -> str:
        """The cluster part of a `cluster:project` project id."""
        return self.project_id.split(":", 1)[0] if ":" in self.project_id else ""

    @property
    def execution_id(self) -> str:
        """`<pipelineId>-<run>`, the execution's id on the API."""
        return f"{self.pipeline_id}-{self.run}"


@dataclass(frozen=True)
class ResolvedCache:
    """One `cache` entry of a run: where it is in the step containers, whether that is in
    the workspace, its key expanded, and `digest`, its identity (project, pipeline, path,
    key: another project's cache of the same path and key is another digest)."""

    path: str
    in_workspace: bool
    key: str
    digest: str

    @property
    def name(self) -> str:
        """The name of the cache's record and the prefix of its volumes."""
        return f"pp-cache-{self.digest}"


def resolve_caches(plan: RunPlan, commit: str = "") -> list[ResolvedCache]:
    """The caches of a run at `commit`, their keys expanded from its CICD_* variables.

    Raises:
        ImageTagError: a key names a variable the run does not have.
    """
    env = plan.cicd_env(commit)
    found = []
    for index, cache in enumerate(plan.config.cache or []):
        try:
            key = expand_vars(cache.key or "", env)
        except PipelineSpecError as exc:
            raise exc.at(f"cache[{index}].key") from None
        path = posixpath.normpath(cache.path)
        identity = "\0".join((plan.identity.project_id, plan.identity.pipeline_id, path, key))
        found.append(ResolvedCache(path=path, in_workspace=not path.startswith("/"), key=key,
                                   digest=hashlib.sha256(identity.encode()).hexdigest()[:24]))
    return found


@dataclass(frozen=True)
class StepDefaults:
    """What a project says of its steps (its settings, Rancher's executor settings): the
    limits a step that sets none of its own gets, and whether a step may run privileged
    (`allowPrivileged`, which only an admin sets). Quantities as checked by the project's
    settings."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    allow_privileged: bool = False

    @classmethod
    def from_settings(cls, settings: dict[str, object] | None) -> StepDefaults:
        """The defaults of a project's `settings` (cpuRequest, cpuLimit, memoryRequest,
        memoryLimit, allowPrivileged)."""
        settings = settings or {}

        def text(name: str) -> str | None:
            value = settings.get(name)
            return value if isinstance(value, str) and value else None

        return cls(cpu_request=text("cpuRequest"), cpu_limit=text("cpuLimit"),
                   memory_request=text("memoryRequest"), memory_limit=text("memoryLimit"),
                   allow_privileged=settings.get("allowPrivileged") is True)


# What a run outside any project (`prefect-pipelines exec`, the operator's own) may do.
OPERATOR_DEFAULTS = StepDefaults(allow_privileged=True)


@dataclass(frozen=True)
class StepLimits:
    """A step's CPU and memory, in the engine's units (None: no limit), and whether it
    runs privileged. `memory_limit` keeps the quantity as written, for the message of a
    step that goes over it."""

    cpu_request_nanos: int | None = None
    cpu_limit_nanos: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_limit: str | None = None
    privileged: bool = False


def step_limits(spec: Step, defaults: StepDefaults, where: str = "") -> StepLimits:
    """The limits a step runs with: its own, else its project's (each one alone), checked
    together (a request over the limit it gets is refused, naming the step's field).

    Raises:
        StepLimitsError: a request over its limit.
        PrivilegedStepError: a privileged step where the project does not allow them.
    """
    if spec.privileged and not defaults.allow_privileged:
        raise PrivilegedStepError(
            "this project does not allow privileged steps: an admin allows them with the "
            "project's settings.allowPrivileged").at(f"{where}.privileged" if where else "privileged")
    if spec.source_code_config is not None:
        return StepLimits()
    values = {name: getattr(spec, name) or getattr(defaults, name) for name in LIMITS}
    try:
        check_requests(**values)
    except StepLimitsError as exc:  # the step's own are checked with the definition
        kind = "cpu" if exc.path == "cpuRequest" else "memory"
        given = [f"settings.{kind}{part}" for part in ("Request", "Limit")
                 if getattr(spec, f"{kind}_{part.lower()}") is None]
        raise StepLimitsError(f"{exc.message}, with the project's {' and '.join(given)}",
                              f"{where}.{exc.path}" if where else exc.path) from None
    return StepLimits(
        cpu_request_nanos=cpu_nanos(values["cpu_request"]) if values["cpu_request"] else None,
        cpu_limit_nanos=cpu_nanos(values["cpu_limit"]) if values["cpu_limit"] else None,
        memory_request_bytes=(memory_bytes(values["memory_request"])
                              if values["memory_request"] else None),
        memory_limit_bytes=memory_bytes(values["memory_limit"]) if values["memory_limit"] else None,
        memory_limit=values["memory_limit"],
        privileged=spec.privileged,
    )


@dataclass(frozen=True)
class StepPlan:
    """One step, placed in its stage."""

    stage: int
    index: int
    stage_name: str
    spec: Step
    timeout_seconds: float | None
    skip: str | None = None  # why the step does not run on this branch and event
    status: tuple[str, ...] = ("success",)  # its `when.status`, else its stage's
    limits: StepLimits = StepLimits()  # its CPU, memory and privilege

    @property
    def ignores_failure(self) -> bool:
        """`failure: ignore`: the step's failure does not fail its stage."""
        return self.spec.failure == "ignore"

    def runs_after(self, failed: bool) -> bool:
        """Whether the step runs after stages that came to `failed` (or not)."""
        return runs_after(self.status, failed)

    @property
    def kind(self) -> str:
        """sourceCode, runScript or publishImage."""
        return self.spec.kind

    @property
    def label(self) -> str:
        """How output lines of this step are prefixed: `<stage name>/<step index>`."""
        return f"{self.stage_name}/{self.index}"

    @property
    def tags(self) -> tuple[str, str]:
        """The tags of the step's task run: what correlates it with the step."""
        return step_tags(self.stage, self.index)

    def title(self, env: dict[str, str] | None = None) -> str:
        """What people read in the Prefect UI: `<stage name> / <n>: <what it runs>`
        (n counts from 1; `${VAR}` expanded from `env` where it can be), cut to
        TITLE_LENGTH characters. Never used to find the step: `tags` do that."""
        return _cut(f"{self.place}: {self.summary(env)}")

    def summary(self, env: dict[str, str] | None = None) -> str:
        """What the step does in a few words (`golang:1.8 go test ./...`), uncut."""
        return _what(self.spec, env or {})

    @property
    def place(self) -> str:
        """`<stage name> / <n>` (n from 1): where people find the step."""
        return f"{self.stage_name} / {self.index + 1}"


@dataclass(frozen=True)
class StagePlan:
    """One stage: its steps run concurrently (a clone step runs first)."""

    index: int
    name: str
    steps: tuple[StepPlan, ...]
    skip: str | None = None  # why the stage does not run on this branch and event
    status: tuple[str, ...] = ("success",)  # its `when.status`, or what any step of it has

    def runs_after(self, failed: bool) -> bool:
        """Whether the stage (some step of it) runs after stages that came to `failed`."""
        return runs_after(self.status, failed)


def _status(when: When | None) -> tuple[str, ...] | None:
    return tuple(when.status) if when is not None and when.status else None


@dataclass(frozen=True)
class RunPlan:
    """Everything one execution runs."""

    config: PipelineConfig
    identity: RunIdentity
    trigger: Trigger
    branch: str
    stages: tuple[StagePlan, ...]
    timeout_seconds: float
    repo_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)  # the run's variables
    source_file: str = ""  # the repository's pipeline file the plan was read from, if any
    defaults: StepDefaults = StepDefaults()  # the project's, which its steps were held to

    def steps(self) -> list[StepPlan]:
        """All steps, stage by stage."""
        return [step for stage in self.stages for step in stage.steps]

    def title_of(self, step: StepPlan) -> str:
        """The step's title, its `${VAR}`s expanded from what the run knows before it
        starts (an empty one, as `CICD_GIT_COMMIT` is until the clone ends, leaves the
        template as written)."""
        return step.title(self.known_env())

    def known_env(self) -> dict[str, str]:
        """The variables a run knows before it starts, the empty ones left out."""
        return {name: value for name, value in {**self.cicd_env(), **self.extra_env}.items() if value}

    def resolve(self, step: StepPlan, commit: str = "") -> ResolvedStep:
        """Everything `step` needs to run, `commit` being the one the clone checked out
        (or the trigger's): see `resolve_step`.

        Raises:
            ImageTagError: the image or tag does not expand to a valid reference.
        """
        return resolve_step(self, step, commit)

    def cicd_env(self, commit: str = "") -> dict[str, str]:
        """The `CICD_*` variables of this execution (`commit` once the clone knows it)."""
        commit = commit or self.trigger.commit
        return {
            "CICD_GIT_URL": self.repo_url,
            "CICD_GIT_REPO_NAME": repo_name(self.repo_url),
            "CICD_GIT_BRANCH": self.branch,
            "CICD_GIT_COMMIT": commit,
            "CICD_GIT_COMMIT_SHORT": commit[:7],
            "CICD_GIT_REF": self.trigger.ref or (f"refs/heads/{self.branch}" if self.branch else ""),
            "CICD_GIT_TAG": _tag_of(self.trigger.ref) if self.trigger.event == "tag" else "",
            "CICD_PIPELINE_ID": self.identity.pipeline_id,
            "CICD_EXECUTION_ID": self.identity.execution_id,
            "CICD_EXECUTION_SEQUENCE": str(self.identity.run),
            "CICD_TRIGGER_TYPE": self.trigger.triggered_by,
            "CICD_EVENT": self.trigger.cicd_event,
            "CICD_PROJECT_ID": self.identity.project_id,
            "CICD_CLUSTER_ID": self.identity.cluster_id,
        }


@dataclass(frozen=True)
class ScriptStep:
    """A runScriptConfig step, resolved.

    Attributes:
        image: the image reference, its `${VAR}`s expanded.
        registry: the image's registry host ('' for Docker Hub).
        entrypoint, command: the argv (`script_argv`).
        shell_script: the script as written, for a shell step (an executor may send its
            output elsewhere by prefixing it).
        secrets: the `envFrom` entries to read when the step starts.
        secrets_withheld: the step has `envFrom` entries that this run does not get
            (a pull request's run).
    """

    image: str
    registry: str
    entrypoint: tuple[str, ...] | None
    command: tuple[str, ...] | None
    shell_script: str | None
    secrets: tuple[EnvFromSecret, ...] = ()
    secrets_withheld: bool = False
    limits: StepLimits = StepLimits()

    @property
    def is_shell(self) -> bool:
        return self.shell_script is not None


@dataclass(frozen=True)
class PublishStep:
    """A publishImageConfig step, resolved: build `dockerfile` in `context` (both relative
    to the workspace, checked not to leave it), tag it `tag`, push it when `push`."""

    tag: str
    registry: str
    repository: str
    image_tag: str
    dockerfile: str
    context: str
    push: bool
    limits: StepLimits = StepLimits()


@dataclass(frozen=True)
class ResolvedStep:
    """One step with everything decided but the secrets' values.

    Attributes:
        env: the step's environment: `CICD_*`, the run's variables, the step's own `env`.
        script, publish: the resolved config of a script or publish step (a clone step
            has neither; its config is `plan.spec.source_code_config`).
    """

    plan: StepPlan
    env: dict[str, str]
    script: ScriptStep | None = None
    publish: PublishStep | None = None


# Prepended to shell scripts: stderr joins stdout, so the log keeps the order the script
# wrote its lines in (two pipes, read separately, would not).
MERGE_STDERR = "exec 2>&1\n"
# What `${CICD_GIT_COMMIT}` stands for while a clone step has yet to find the commit.
_SOME_COMMIT = "0" * 40


def script_argv(config: RunScriptConfig) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, command) of a runScriptConfig step.

    With isShell the script runs as `sh -c <script>`; the script is one argument, so
    nothing from outside is ever spliced into it (values reach it as environment only).
    """
    if config.is_shell:
        return ["sh", "-c", MERGE_STDERR + (config.shell_script or "")], None
    return _argv(config.entrypoint), _argv(config.command)


def _argv(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else list(value)


def resolve_step(plan: RunPlan, step: StepPlan, commit: str = "") -> ResolvedStep:
    """A step of `plan` resolved for a run at `commit` (the trigger's when empty).

    Images and tags expand from the `CICD_*` variables and the run's variables (never
    from secrets, which would then show in the UI's task-run names and the engine).

    Raises:
        ImageTagError: the image or tag does not expand to a valid reference (its path
            in the definition set).
    """
    cicd = plan.cicd_env(commit)
    # The run's variables never name a CICD_* one (spec.run_variables refuses them).
    base = {"CI": "true", **plan.extra_env, **cicd}
    spec = step.spec
    where = f"stages[{step.stage}].steps[{step.index}]"
    if spec.run_script_config is not None:
        config = spec.run_script_config
        image = _reference(config.image, base, f"{where}.runScriptConfig.image")
        entrypoint, command = script_argv(config)
        secrets = spec.secrets()
        withheld = bool(secrets) and plan.trigger.event == "pull_request"
        script = ScriptStep(
            image=image,
            registry=split_reference(image)[0],
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
            command=tuple(command) if command is not None else None,
            shell_script=config.shell_script if config.is_shell else None,
            secrets=() if withheld else tuple(secrets),
            secrets_withheld=withheld,
            limits=step.limits,
        )
        # The step's own env, then the run's variables over it; CICD_* always the pipeline's.
        env = {"CI": "true", **spec.env_map(), **plan.extra_env, **cicd}
        return ResolvedStep(step, env, script=script)
    if spec.publish_image_config is not None:
        config_ = spec.publish_image_config
        tag = _reference(config_.tag, base, f"{where}.publishImageConfig.tag")
        if config_.registry:
            named = split_reference(tag)[0]
            if named and named != config_.registry:
                raise ImageTagError(f"the tag {tag!r} names the registry {named}, and registry "
                                    f"says {config_.registry}: give one").at(
                                        f"{where}.publishImageConfig.registry")
            tag = tag if named else f"{config_.registry}/{tag}"
        registry, repository, image_tag = split_reference(tag)
        publish = PublishStep(tag=tag, registry=registry, repository=repository,
                              image_tag=image_tag, dockerfile=config_.dockerfile_path,
                              context=config_.build_context, push=config_.push_remote,
                              limits=step.limits)
        return ResolvedStep(step, base, publish=publish)
    return ResolvedStep(step, base)


def _reference(template: str, env: dict[str, str], path: str) -> str:
    try:
        return expand_image_reference(template, env)
    except PipelineSpecError as exc:
        raise exc.at(path) from None


def check_resolves(plan: RunPlan) -> None:
    """Resolve every step once before the run starts, so a bad image or tag fails the run
    before anything runs. A commit a clone step will find stands in as 40 zeros.

    Raises:
        ImageTagError: naming the first step whose image or tag does not resolve.
    """
    commit = plan.trigger.commit or (_SOME_COMMIT if plan.config.source is not None else "")
    for step in plan.steps():
        if step.skip is None:
            resolve_step(plan, step, commit)


TITLE_LENGTH = 96


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_LENGTH else text[:TITLE_LENGTH - 1].rstrip() + "\u2026"


def _expanded(template: str, env: dict[str, str]) -> str:
    """`${NAME}` expanded where `env` has it, left as written where not."""
    return _VAR.sub(lambda match: env.get(match.group(1), match.group(0)), template)


def _what(spec: Step, env: dict[str, str]) -> str:
    """A step in a few words: what it clones, runs or publishes."""
    if spec.source_code_config is not None:
        source = spec.source_code_config
        parts = urlsplit(source.url)
        where = (f"{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
                 if parts.hostname else source.url)
        return f"clone {where} ({source.branch})"
    if spec.run_script_config is not None:
        script = spec.run_script_config
        if script.is_shell:
            lines = [line.strip() for line in (script.shell_script or "").splitlines() if line.strip()]
            command = lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
        else:
            command = " ".join(_words(script.entrypoint) + _words(script.command))
        return f"{_expanded(script.image, env)} {command}".strip()
    assert spec.publish_image_config is not None
    publish = spec.publish_image_config
    return f"publish {_expanded(publish.tag, env)}" + ("" if publish.push_remote else " (not pushed)")


def _words(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def repo_name(url: str) -> str:
    """`https://host/org/repo.git` -> `repo`."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git")


def _tag_of(ref: str) -> str:
    return ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else ""


def compile_plan(
    config: PipelineConfig,
    *,
    identity: RunIdentity,
    trigger: Trigger | None = None,
    branch: str | None = None,
    variables: dict[str, str] | None = None,
    defaults: StepDefaults = StepDefaults(),
) -> RunPlan:
    """Compile a validated definition into the plan of one execution.

    Args:
        config: the definition.
        identity: pipeline, project and run number.
        trigger: who or what started the run (default: a user).
        branch: the branch asked for; derived from the clone step when not given.
        variables: the run's variables (checked by `spec.run_variables`).
        defaults: the project's step limits and whether it allows privileged steps
            (default: no limits, no privileged steps).

    Raises:
        BranchRequiredError, BranchMismatchError, InvalidValueError: about the branch.
        StepLimitsError, PrivilegedStepError: a step's limits or privilege (`step_limits`).
        ImageTagError: a step's image or tag does not resolve (see `check_resolves`).
    """
    trigger = trigger or Trigger()
    source = config.source
    if source is not None:
        condition = BranchCondition(source.branch, source.branch_condition)
        resolved = condition.resolve(branch)
    else:
        resolved = branch or ""
    if config.branch is not None and resolved and not config.branch.allows(resolved):
        raise BranchMismatchError(
            f"branch {resolved!r} is not built by this pipeline (branch: {config.branch.describe()})"
        ).at("branch")
    event = trigger.cicd_event
    pipeline_seconds = float(config.timeout) * 60
    stages = []
    for i, stage in enumerate(config.stages):
        stage_skip = stage.when.skip_reason(resolved, event) if stage.when is not None else None
        stage_status = _status(stage.when) or ("success",)
        steps = tuple(
            StepPlan(
                stage=i,
                index=j,
                stage_name=stage.name,
                spec=step,
                timeout_seconds=float(step.timeout) * 60 if step.timeout else None,
                skip=stage_skip or (step.when.skip_reason(resolved, event) if step.when else None),
                status=_status(step.when) or stage_status,
                limits=step_limits(step, defaults, f"stages[{i}].steps[{j}]"),
            )
            for j, step in enumerate(stage.steps)
        )
        # A stage is reached when its own status, or any of its steps', says so.
        reached = tuple(dict.fromkeys(status for step in steps for status in step.status))
        stages.append(StagePlan(index=i, name=stage.name, steps=steps, skip=stage_skip,
                                status=_status(stage.when) or reached))
    plan = RunPlan(
        config=config,
        identity=identity,
        trigger=trigger,
        branch=resolved,
        stages=tuple(stages),
        timeout_seconds=pipeline_seconds,
        repo_url=source.url if source else "",
        extra_env=dict(variables or {}),
        defaults=defaults,
    )
    check_resolves(plan)
    return plan


def expand_vars(template: str, env: dict[str, str]) -> str:
    """Expand `${NAME}` from `env`.

    Raises:
        ImageTagError: a name is not in `env`.
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ImageTagError(f"{template!r} uses ${{{name}}}, which is not set")
        return env[name]

    return _VAR.sub(lookup, template)


def expand_image_reference(template: str, env: dict[str, str]) -> str:
    """Expand an image reference and check that docker accepts it.

    Raises:
        ImageTagError: a variable is unknown, or the result is not a valid reference.
    """
    reference = expand_vars(template, env)
    if not _REFERENCE.fullmatch(reference):
        raise ImageTagError(
            f"{reference!r} (from {template!r}) is not a valid image reference: "
            "lowercase name, optional registry host, optional :tag of letters, digits, _ . -"
        )
    return reference


def split_reference(reference: str) -> tuple[str, str, str]:
    """`reg:5000/team/app:1.0` -> (`reg:5000`, `reg:5000/team/app`, `1.0`).

    The registry is empty for Docker Hub references; the tag defaults to `latest`.
    """
    match = _REFERENCE.fullmatch(reference)
    if not match:
        raise ImageTagError(f"{reference!r} is not a valid image reference")
    domain = match.group("domain") or ""
    # Like docker: the first component is a registry only if it looks like a host.
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        domain = ""
    repository = reference.rsplit(":", 1)[0] if match.group("tag") else reference
    return domain, repository, match.group("tag") or "latest"


def workspace_path(workspace: str, relative: str) -> str:
    """Join a path of the definition (already checked relative) onto the workspace."""
    return posixpath.normpath(posixpath.join(workspace, relative))

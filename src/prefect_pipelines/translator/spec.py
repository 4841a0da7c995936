"""The pipeline definition: pydantic models of stages and steps, in the /v3 field names.

These models are the single source of truth for the format. Python code uses snake_case
attributes; the YAML file and the /v3 API use the camelCase aliases. Unknown keys are
rejected, values are checked strictly (no "yes" for true, no number for a string), and a
failure is raised as one of the typed errors of `translator.errors`, naming the field.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from prefect_pipelines.translator.branches import compile_branch_pattern, validate_branch_name
from prefect_pipelines.translator.conditions import (
    constraint_allows,
    describe_constraint,
    glob_pattern,
    runs_after,
)
from prefect_pipelines.translator.errors import (
    CronTimezoneError,
    EnvEntryError,
    InvalidValueError,
    MissingFieldError,
    ShellFieldsError,
    SourceStepPlacementError,
    StepKindError,
    StepLimitsError,
    UnsafePathError,
    WrongTypeError,
)
from prefect_pipelines.translator.quantities import (
    cpu_nanos,
    cpu_quantity,
    memory_bytes,
    memory_quantity,
)
from prefect_pipelines.translator.schedule import validate_cron
from prefect_pipelines.vocabulary import (
    CLONE_STAGE,
    ENV_NAME_PATTERN,
    NAME_PATTERN,
    NOTIFIER_ID_PATTERN,
)

DEFAULT_PIPELINE_TIMEOUT_MINUTES = 60
DEFAULT_DOCKERFILE = "./Dockerfile"
DEFAULT_BUILD_CONTEXT = "."
DEFAULT_IMAGE_TAG = "${CICD_GIT_REPO_NAME}:${CICD_GIT_BRANCH}"
RESERVED_ENV_PREFIX = "CICD_"
# What `when.event` may name: a webhook's event, or how else the run was started.
EVENTS = ("push", "pull_request", "tag", "manual", "cron")
STATUSES = ("success", "failure", "always")
# Rancher's Kubernetes step kinds, which need a cluster to deploy to.
KUBERNETES_STEPS = ("applyYamlConfig", "publishCatalogConfig", "applyAppConfig")

BranchCondition = Literal["only", "except", "all"]

_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_GIT_URL = re.compile(
    r"(?:(?:https?|git|ssh|file)://[^\s]+)"  # URL forms
    r"|(?:[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:[^\s]+)"  # scp-like user@host:path
)
_NAME = re.compile(NAME_PATTERN)
_REGISTRY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


def is_pipeline_name(value: str) -> bool:
    """Whether `value` can be a pipeline's name (its id in its project)."""
    return bool(_NAME.fullmatch(value))


def _not_blank(value: str) -> str:
    if not value.strip():
        raise InvalidValueError("must not be empty")
    return value


def _no_whitespace(value: str) -> str:
    if not value or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidValueError("must be a non-empty image reference without spaces")
    return value


def _relative_path(value: str) -> str:
    if not value.strip():
        raise InvalidValueError("must not be empty")
    if value.startswith("/"):
        raise UnsafePathError(f"{value!r} is absolute; give a path inside the workspace")
    if posixpath.normpath(value).split("/")[0] == "..":
        raise UnsafePathError(f"{value!r} leaves the workspace")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongTypeError(f"must be a number, not {_type_name(value)}")
    return value


def _positive_minutes(value: float) -> float:
    if value <= 0:
        raise InvalidValueError("must be a positive number of minutes")
    return value


def _str_or_str_list(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise WrongTypeError(f"must be a string or a list of strings, not {_type_name(value)}")


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "a list", dict: "a mapping", type(None): "null",
    }.get(type(value), type(value).__name__)


def _glob(value: str) -> str:
    glob_pattern(value)  # raises InvalidValueError
    return value


def constraint_shorthand(value: Any) -> Any:
    """`branch: main` and `branch: [a, b]` mean `{include: [...]}`, as in Rancher."""
    if isinstance(value, str):
        return {"include": [value]}
    if isinstance(value, list):
        return {"include": value}
    return value


def _status_shorthand(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise EnvEntryError(f"{name!r} is not an environment variable name")
    if name.startswith(RESERVED_ENV_PREFIX):
        raise EnvEntryError(f"{name} is reserved: CICD_* variables are set by the pipeline")
    return name


def implicit_clone(url: str, credential_id: str | None) -> dict[str, Any]:
    """The `sourceCodeConfig` of the implicit clone of a pipeline read from its repository:
    any branch (the run says which), with its credential when it has one."""
    clone: dict[str, Any] = {"url": url, "branchCondition": "all"}
    if credential_id:
        clone["sourceCodeCredentialId"] = credential_id
    return clone


def clone_stage(clone: dict[str, Any], name: str = CLONE_STAGE) -> dict[str, Any]:
    """The implicit first stage that runs `clone` (a `sourceCodeConfig`)."""
    return {"name": name, "steps": [{"sourceCodeConfig": clone}]}


def webhook_events(all_events: Any, push: Any, pull_request: Any, tag: Any) -> set[str]:
    """The webhook events a pipeline runs on, from its trigger fields."""
    if all_events is True:
        return {"push", "pull_request", "tag"}
    return {event for event, on in (("push", push), ("pull_request", pull_request), ("tag", tag))
            if on is True}


def run_variables(value: Any) -> dict[str, str]:
    """A run's variables (`env` of the `run` action): names as for a step's env, string
    values.

    Raises:
        WrongTypeError, EnvEntryError: naming the variable (`env.NAME`).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WrongTypeError("must be a mapping of NAME to value").at("env")
    for name, text in value.items():
        if not isinstance(name, str):
            raise EnvEntryError(f"{name!r} is not an environment variable name").at("env")
        try:
            _env_name(name)
        except EnvEntryError as exc:
            raise exc.at(f"env.{name}") from None
        if not isinstance(text, str):
            raise WrongTypeError(f"must be a string, not {_type_name(text)}").at(f"env.{name}")
    return dict(value)


def _registry(value: str) -> str:
    if not _REGISTRY.fullmatch(value):
        raise InvalidValueError(f"{value!r} is not a registry host (host or host:port)")
    return value


def check_requests(cpu_request: str | None, cpu_limit: str | None,
                   memory_request: str | None, memory_limit: str | None) -> None:
    """A request may not be over its limit (as in Kubernetes, and the engine refuses a
    memory reservation over the limit).

    Raises:
        StepLimitsError: naming the request.
    """
    if cpu_request and cpu_limit and cpu_nanos(cpu_request) > cpu_nanos(cpu_limit):
        raise StepLimitsError(
            f"{cpu_request} is more than the CPU limit ({cpu_limit})").at("cpuRequest")
    if memory_request and memory_limit and memory_bytes(memory_request) > memory_bytes(memory_limit):
        raise StepLimitsError(
            f"{memory_request} is more than the memory limit ({memory_limit})").at("memoryRequest")


NonBlank = Annotated[str, AfterValidator(_not_blank)]
Glob = Annotated[str, AfterValidator(_glob)]
ImageRef = Annotated[str, AfterValidator(_no_whitespace)]
WorkspacePath = Annotated[str, AfterValidator(_relative_path)]
Minutes = Annotated[int | float, BeforeValidator(_number), AfterValidator(_positive_minutes)]
Argv = Annotated[str | list[str] | None, BeforeValidator(_str_or_str_list)]


def _quantity_text(value: Any) -> Any:
    """`cpuLimit: 2` in YAML is a number: the quantity `2`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, "f").rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return value


CpuQuantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(cpu_quantity)]
MemoryQuantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(memory_quantity)]
# Where each of a step's limits applies: script steps' containers and publish steps' builds.
LIMITS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")


class SpecModel(BaseModel):
    """Base of every definition model: camelCase on the wire, strict, closed."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )


class Constraint(SpecModel):
    """Globs a value must match (`include`, any of them; none means anything) and must
    not match (`exclude`). Written `main`, `[main, dev]` or `{include, exclude}`."""

    include: list[Glob] = Field(default_factory=list)
    exclude: list[Glob] = Field(default_factory=list)

    def allows(self, value: str) -> bool:
        return constraint_allows(self.include, self.exclude, value)

    def describe(self) -> str:
        return describe_constraint(self.include, self.exclude)


ConstraintField = Annotated[Constraint, BeforeValidator(constraint_shorthand)]
Statuses = Annotated[list[Literal["success", "failure", "always"]], BeforeValidator(_status_shorthand)]


class When(SpecModel):
    """When a stage or step runs: on which branches and events (Rancher 2.1+), and after
    what the stages before it came to (`status`, Woodpecker's: `success` by default;
    `failure` runs it only after a failure, `always` either way)."""

    branch: ConstraintField | None = Field(default=None, description="Branches it runs on.")
    event: ConstraintField | None = Field(
        default=None, description="Events it runs on: push, pull_request, tag, manual, cron.")
    status: Statuses | None = Field(
        default=None, description="success (default), failure, always: what the stages before came to.")

    @field_validator("event")
    @classmethod
    def _events(cls, value: Constraint | None) -> Constraint | None:
        for name in (*(value.include if value else ()), *(value.exclude if value else ())):
            if not any(glob_pattern(name).fullmatch(event) for event in EVENTS):
                raise InvalidValueError(
                    f"{name!r} matches no event: events are {', '.join(EVENTS)}")
        return value

    def skip_reason(self, branch: str, event: str) -> str | None:
        """Why a run of `branch` for `event` skips it (None: it runs, as far as branch
        and event go)."""
        if self.branch is not None and not self.branch.allows(branch):
            return f"when.branch ({self.branch.describe()}) does not match {branch!r}"
        if self.event is not None and not self.event.allows(event):
            return f"when.event ({self.event.describe()}) does not match {event!r}"
        return None

    def runs_after(self, failed: bool) -> bool:
        """Whether it runs after stages that came to `failed` (or not)."""
        return runs_after(self.status or ["success"], failed)


class SourceCodeConfig(SpecModel):
    """Clone a git repository into the workspace."""

    url: NonBlank = Field(description="The repository to clone (https, http, git, ssh, file).")
    branch: str | None = Field(
        default=None,
        description="The branch, matched in regex way: a plain name means only that branch.",
    )
    branch_condition: BranchCondition = Field(
        default="only",
        description="only: the branches matching `branch`; except: all others; all: any.",
    )
    source_code_credential_id: str | None = Field(
        default=None, description="The source code credential whose token clones the repo."
    )

    @field_validator("url")
    @classmethod
    def _git_url(cls, value: str) -> str:
        if value.startswith("-") or not _GIT_URL.fullmatch(value):
            raise InvalidValueError(
                f"{value!r} is not a git URL (https://, http://, git://, ssh://, file:// "
                "or user@host:path)"
            )
        return value

    @field_validator("branch")
    @classmethod
    def _branch_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            compile_branch_pattern(value)  # raises BranchPatternError
        return value

    @model_validator(mode="after")
    def _branch_needed(self) -> SourceCodeConfig:
        if self.branch_condition != "all" and not self.branch:
            raise InvalidValueError(
                f"branch is required when branchCondition is {self.branch_condition!r}"
            )
        return self


class EnvFromSecret(SpecModel):
    """An environment variable whose value comes from a Prefect Secret block."""

    source_name: NonBlank = Field(description="The name of the Prefect Secret block.")
    source_key: str | None = Field(
        default=None, description="For a secret holding a JSON object: the key to take."
    )
    target_key: str = Field(description="The environment variable to set.")

    @field_validator("target_key")
    @classmethod
    def _target(cls, value: str) -> str:
        return _env_name(value)


class RunScriptConfig(SpecModel):
    """Run a script, or an entrypoint and command, in a container of `image`."""

    image: ImageRef = Field(description="The container image; ${VAR} expands.")
    is_shell: bool = Field(
        default=True, description="true: run `shellScript` with `sh -c`; false: entrypoint/command."
    )
    shell_script: str | None = Field(default=None, description="The script, when isShell.")
    entrypoint: Argv = Field(default=None, description="The entrypoint, when not isShell.")
    command: Argv = Field(
        default=None, description="The command (arguments), when not isShell."
    )
    env: list[str] = Field(default_factory=list, description="Environment, each NAME=value.")
    env_from: list[EnvFromSecret] = Field(
        default_factory=list,
        description="Environment from Prefect Secret blocks (masked in logs; not given to "
        "pull_request runs).",
    )

    @field_validator("env")
    @classmethod
    def _env_entries(cls, entries: list[str]) -> list[str]:
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            name, sep, _ = entry.partition("=")
            if not sep or not _ENV_NAME.fullmatch(name):
                raise EnvEntryError(f"{entry!r} is not NAME=value").at(f"[{index}]")
            if name.startswith(RESERVED_ENV_PREFIX):
                raise EnvEntryError(
                    f"{name} is reserved: CICD_* variables are set by the pipeline"
                ).at(f"[{index}]")
            if name in seen:
                raise EnvEntryError(f"{name} is set twice").at(f"[{index}]")
            seen.add(name)
        return entries

    @model_validator(mode="after")
    def _env_from_unique(self) -> RunScriptConfig:
        names = set(self.env_map())
        for index, item in enumerate(self.env_from):
            if item.target_key in names:
                raise EnvEntryError(f"{item.target_key} is set twice").at(
                    f"envFrom[{index}].targetKey")
            names.add(item.target_key)
        return self

    @model_validator(mode="after")
    def _shell_fields(self) -> RunScriptConfig:
        if self.is_shell:
            for field in ("entrypoint", "command"):
                if getattr(self, field) is not None:
                    raise ShellFieldsError(
                        f"{field} is not allowed when isShell is true; use shellScript"
                    ).at(to_camel(field))
            if not self.shell_script or not self.shell_script.strip():
                raise ShellFieldsError("shellScript is required when isShell is true").at(
                    "shellScript"
                )
        else:
            if self.shell_script is not None:
                raise ShellFieldsError(
                    "shellScript is not allowed when isShell is false; use entrypoint and command"
                ).at("shellScript")
            if self.entrypoint is None and self.command is None:
                raise ShellFieldsError(
                    "entrypoint or command is required when isShell is false"
                )
        return self

    def env_map(self) -> dict[str, str]:
        """The `env` entries as a mapping."""
        return dict(entry.split("=", 1) for entry in self.env)


class PublishImageConfig(SpecModel):
    """Build an image from a Dockerfile in the workspace and push it."""

    dockerfile_path: WorkspacePath = Field(
        default=DEFAULT_DOCKERFILE, description="The Dockerfile, relative to the workspace."
    )
    build_context: WorkspacePath = Field(
        default=DEFAULT_BUILD_CONTEXT, description="The build context, relative to the workspace."
    )
    tag: ImageRef = Field(default=DEFAULT_IMAGE_TAG, description="The image tag; ${VAR} expands.")
    push_remote: bool = Field(default=True, description="Push the image after building it.")
    registry: Annotated[str, AfterValidator(_registry)] | None = Field(
        default=None, description="The registry the tag is pushed to, when the tag names none "
        "(Rancher 2.1+).")


STEP_KINDS = ("source_code_config", "run_script_config", "publish_image_config")


class Step(SpecModel):
    """One step: exactly one of the three step configs, an optional timeout, and (as
    Rancher 2.1+'s file writes them beside the config) its `env` map, `envFrom` and
    `when`."""

    source_code_config: SourceCodeConfig | None = None
    run_script_config: RunScriptConfig | None = None
    publish_image_config: PublishImageConfig | None = None
    timeout: Minutes | None = Field(default=None, description="Minutes before the step fails.")
    env: dict[str, str] | None = Field(
        default=None, description="Environment of a runScriptConfig step, as a map (or use "
        "runScriptConfig.env's NAME=value list, not both).")
    env_from: list[EnvFromSecret] | None = Field(
        default=None, description="Secrets of a runScriptConfig step (or runScriptConfig.envFrom, not both).")
    when: When | None = Field(default=None, description="When the step runs.")
    failure: Literal["fail", "ignore"] = Field(
        default="fail", description="ignore: the step's failure does not fail its stage.")
    cpu_request: CpuQuantity | None = Field(
        default=None, description="CPUs the step is sure of (500m, 1): its share when the host "
        "is busy (docker CPU shares).")
    cpu_limit: CpuQuantity | None = Field(
        default=None, description="The most CPU the step uses (500m, 2): docker's --cpus.")
    memory_request: MemoryQuantity | None = Field(
        default=None, description="Memory the step is sure of (64Mi, 1Gi): docker's "
        "--memory-reservation.")
    memory_limit: MemoryQuantity | None = Field(
        default=None, description="The most memory the step uses (64Mi, 1Gi), swap included: "
        "over it the step fails, out of memory.")
    privileged: bool = Field(
        default=False, description="Run a runScriptConfig step's container privileged (only in "
        "projects whose admin set allowPrivileged).")

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for kind in KUBERNETES_STEPS:
                if kind in data:
                    raise StepKindError(
                        f"{kind} is one of Rancher's Kubernetes steps, which prefect-pipelines "
                        "does not run (yet): use runScriptConfig (kubectl, helm) instead"
                    ).at(kind)
            present = [to_camel(kind) for kind in STEP_KINDS if data.get(to_camel(kind)) is not None]
            if len(present) != 1:
                names = ", ".join(to_camel(kind) for kind in STEP_KINDS)
                found = f" (found {', '.join(present)})" if present else ""
                raise StepKindError(f"a step needs exactly one of {names}{found}")
        return data

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str] | None) -> dict[str, str] | None:
        for name in env or {}:
            try:
                _env_name(name)
            except EnvEntryError as exc:
                raise exc.at(name) from None
        return env

    @model_validator(mode="after")
    def _env_of_scripts(self) -> Step:
        script = self.run_script_config
        for field, inner in (("env", "env"), ("env_from", "envFrom")):
            if getattr(self, field) is None:
                continue
            if script is None:
                raise EnvEntryError(f"{to_camel(field)} applies to runScriptConfig steps only").at(
                    to_camel(field))
            if getattr(script, field):
                raise EnvEntryError(
                    f"{to_camel(field)} is given twice: beside runScriptConfig and as "
                    f"runScriptConfig.{inner}; keep one").at(to_camel(field))
        if script is not None:
            names = set(script.env_map()) | {item.target_key for item in script.env_from}
            for item in self.env_from or []:
                if item.target_key in names or item.target_key in (self.env or {}):
                    raise EnvEntryError(f"{item.target_key} is set twice").at("envFrom")
            for name in self.env or {}:
                if name in names:
                    raise EnvEntryError(f"{name} is set twice").at(f"env.{name}")
        return self

    @model_validator(mode="after")
    def _limits(self) -> Step:
        given = [to_camel(name) for name in LIMITS if getattr(self, name) is not None]
        if given and self.source_code_config is not None:
            raise InvalidValueError(
                f"{given[0]} does not apply to a sourceCodeConfig step: the clone runs in the "
                "worker, not in a container").at(given[0])
        if self.privileged and self.run_script_config is None:
            raise InvalidValueError(
                "privileged applies to runScriptConfig steps only").at("privileged")
        check_requests(self.cpu_request, self.cpu_limit, self.memory_request, self.memory_limit)
        return self

    def env_map(self) -> dict[str, str]:
        """The step's own environment, from either form."""
        script = self.run_script_config
        return {**(script.env_map() if script else {}), **(self.env or {})}

    def secrets(self) -> list[EnvFromSecret]:
        """The step's `envFrom` entries, from either form."""
        script = self.run_script_config
        return [*(script.env_from if script else []), *(self.env_from or [])]

    @property
    def kind(self) -> str:
        """The step kind: sourceCode, runScript or publishImage."""
        for kind in STEP_KINDS:
            if getattr(self, kind) is not None:
                return to_camel(kind).removesuffix("Config")
        raise AssertionError("validated step without a kind")  # pragma: no cover


class Stage(SpecModel):
    """Steps that run concurrently; stages run in order."""

    name: NonBlank
    steps: list[Step] = Field(min_length=1)
    when: When | None = Field(default=None, description="When the stage runs.")


CONTAINER_WORKSPACE = "/workspace"
MAX_CACHES = 10
_CACHE_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _cache_path(value: str) -> str:
    if not value.startswith("/"):
        if posixpath.normpath(_relative_path(value)) == ".":
            raise UnsafePathError(f"{value!r} is the whole workspace: give a directory in it")
        return value
    normal = posixpath.normpath(value)
    if normal == "/" or normal == CONTAINER_WORKSPACE or normal.startswith(CONTAINER_WORKSPACE + "/"):
        raise UnsafePathError(f"{value!r} is the root or the workspace: give a directory "
                              "(a path in the workspace is written relative to it)")
    if normal.startswith("/.prefect-pipelines"):
        raise UnsafePathError(f"{value!r} is where prefect-pipelines keeps a step's output")
    return value


def _cache_key(value: str) -> str:
    for name in _CACHE_VAR.findall(value):
        if not name.startswith(RESERVED_ENV_PREFIX):
            raise InvalidValueError(f"${{{name}}}: a cache key may use only the CICD_* "
                                    "variables of the run")
    if len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise InvalidValueError("must be one line of at most 200 characters")
    return value


class Cache(SpecModel):
    """A directory kept between runs: restored before the first step after the clone,
    saved when the run succeeds."""

    path: Annotated[str, AfterValidator(_not_blank), AfterValidator(_cache_path)] = Field(
        description="A directory in the step containers: relative to the workspace "
        "(node_modules), or absolute (/root/.cache/go-build).")
    key: Annotated[str, AfterValidator(_cache_key)] | None = Field(
        default=None, description="Which copy: runs with the same key share it (default: one "
        "for the pipeline); may use ${CICD_*}, e.g. ${CICD_GIT_BRANCH}.")


def _unique_paths(caches: list[Cache] | None) -> list[Cache] | None:
    seen: set[str] = set()
    for index, cache in enumerate(caches or []):
        normal = posixpath.normpath(cache.path)
        if normal in seen:
            raise InvalidValueError(f"{cache.path!r} is cached twice").at(f"[{index}].path")
        seen.add(normal)
    return caches


NOTIFY_CONDITIONS = ("Failed", "Success", "Changed")
_NOTIFIER_ID = re.compile(NOTIFIER_ID_PATTERN)


def is_notifier_id(value: str) -> bool:
    """Whether `value` is a notifier's id, `<clusterId>:n-<letters and digits>`."""
    return bool(_NOTIFIER_ID.fullmatch(value))


def _notifier_id(value: str) -> str:
    if not is_notifier_id(value):
        raise InvalidValueError(f"{value!r} is not a notifier id (<clusterId>:n-xxxxx, as "
                                "/v3/notifiers lists them)")
    return value


def _recipient(value: str) -> str:
    if len(value) > 320 or any(ord(ch) < 32 for ch in value):
        raise InvalidValueError("must be one line of at most 320 characters")
    return value


class Recipient(SpecModel):
    """Who a notification goes to: a notifier and, where it takes one, a recipient."""

    notifier: Annotated[str, AfterValidator(_notifier_id)] = Field(
        description="The notifier's id (`/v3/notifiers`).")
    recipient: Annotated[str, AfterValidator(_recipient)] | None = Field(
        default=None, description="An email address for an email notifier; carried in a "
        "webhook's payload; a Slack webhook posts to its own channel. Default: the "
        "notifier's defaultRecipient.")


Conditions = Annotated[list[Literal["Failed", "Success", "Changed"]],
                       BeforeValidator(_status_shorthand)]


class Notification(SpecModel):
    """Rancher 2.1+'s `notification`: tell the recipients when a run ends in a state
    `condition` names (Changed: another state than the pipeline's previous finished run
    of the same branch)."""

    recipients: list[Recipient] = Field(min_length=1, description="Who is told.")
    condition: Conditions = Field(
        min_length=1, description="Failed (an aborted or lost run too), Success, Changed.")
    message: str | None = Field(default=None, description="Added to the notification.")


class PipelineConfig(SpecModel):
    """A pipeline: its name and triggers, and what runs: its `stages` (a stored
    definition) or, for a pipeline read from its repository, the repository whose
    `.rancher-pipeline.yml` each run reads at the commit it builds."""

    name: str | None = Field(default=None, description="The pipeline's id within its project.")
    stages: list[Stage] | None = Field(default=None, min_length=1)
    repository_url: str | None = Field(
        default=None, description="The repository whose pipeline file runs (instead of stages).")
    source_code_credential_id: str | None = Field(
        default=None, description="With repositoryUrl: the source code credential that clones it.")
    config_path: WorkspacePath | None = Field(
        default=None, description="With repositoryUrl: the pipeline file (default "
        ".rancher-pipeline.yml, else .rancher-pipeline.yaml).")
    default_branch: str | None = Field(
        default=None, description="With repositoryUrl: the branch cron and manual runs build "
        "when none is given (`branch` on the API).")
    timeout: Minutes = Field(
        default=DEFAULT_PIPELINE_TIMEOUT_MINUTES, description="Minutes before the run fails."
    )
    trigger_cron_expression: str | None = Field(
        default=None, description="A 5-field cron expression that runs the pipeline."
    )
    trigger_cron_timezone: str | None = Field(
        default=None, description="The IANA timezone of the cron expression (default UTC)."
    )
    trigger_webhook: bool = Field(
        default=False, description="Run on pushes, pull requests and tags of the repository."
    )
    trigger_webhook_push: bool | None = Field(default=None, description="Run on pushes to a branch.")
    trigger_webhook_pr: bool | None = Field(default=None, description="Run on pull requests.")
    trigger_webhook_tag: bool | None = Field(default=None, description="Run on pushed tags.")
    branch: ConstraintField | None = Field(
        default=None, description="The branches that may run the pipeline at all (globs).")
    notification: Notification | None = Field(
        default=None, description="Who is told when a run ends, and when (Rancher 2.1+).")
    cache: Annotated[list[Cache], AfterValidator(_unique_paths)] | None = Field(
        default=None, max_length=MAX_CACHES, description="Directories kept between runs "
        "(docker executor).")
    public_badge: bool = Field(
        default=False, description="Serve the pipeline's badge.svg without a token.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise InvalidValueError(
                f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and "
                "dashes, starting and ending with a letter or digit"
            )
        return value

    @field_validator("repository_url")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else SourceCodeConfig._git_url(value)

    @field_validator("default_branch")
    @classmethod
    def _default_branch(cls, value: str | None) -> str | None:
        return None if value is None else validate_branch_name(value)

    @model_validator(mode="after")
    def _what_runs(self) -> PipelineConfig:
        if self.repository_url is None:
            if self.stages is None:
                raise MissingFieldError(
                    "is required (or repositoryUrl, for a pipeline read from its repository)"
                ).at("stages")
            for field in ("source_code_credential_id", "config_path", "default_branch"):
                if getattr(self, field) is not None:
                    raise InvalidValueError(
                        f"{to_camel(field)} is for a pipeline read from its repository: give "
                        "repositoryUrl, or put it in the clone step").at(to_camel(field))
        elif self.stages is not None:
            raise InvalidValueError(
                "give stages (a definition stored with the pipeline) or repositoryUrl (a "
                "pipeline that reads its file from the repository), not both").at("repositoryUrl")
        return self

    @model_validator(mode="after")
    def _source_first(self) -> PipelineConfig:
        for i, stage in enumerate(self.stages or []):
            for j, step in enumerate(stage.steps):
                if step.source_code_config is not None and (i, j) != (0, 0):
                    raise SourceStepPlacementError(
                        "sourceCodeConfig must be the first step of the first stage"
                    ).at(f"stages[{i}].steps[{j}].sourceCodeConfig")
        return self

    @model_validator(mode="after")
    def _cron(self, info: ValidationInfo) -> PipelineConfig:
        if self.trigger_cron_timezone is not None and self.trigger_cron_expression is None:
            raise CronTimezoneError(
                f"triggerCronTimezone ({self.trigger_cron_timezone!r}) is given without "
                "triggerCronExpression: a timezone only says when a cron schedule fires"
            ).at("triggerCronTimezone")
        if self.trigger_cron_expression is not None:
            context = info.context or {}
            validate_cron(
                self.trigger_cron_expression,
                self.trigger_cron_timezone,
                min_interval_seconds=context.get("min_cron_interval_seconds", 300),
            )
        return self

    @property
    def webhook_events(self) -> set[str]:
        """The delivery events that run the pipeline: all three with `triggerWebhook`,
        else the ones `triggerWebhookPush`, `Pr` and `Tag` turn on (Rancher 2.1+)."""
        return webhook_events(self.trigger_webhook, self.trigger_webhook_push,
                              self.trigger_webhook_pr, self.trigger_webhook_tag)

    @property
    def source(self) -> SourceCodeConfig | None:
        """What a run clones: the clone step's config, or the repository of a pipeline
        read from it (any branch)."""
        if self.repository_url is not None:
            return SourceCodeConfig.model_validate(self.repository_clone())
        return self.stages[0].steps[0].source_code_config if self.stages else None

    def repository_clone(self) -> dict[str, Any]:
        """The implicit clone step (`sourceCodeConfig`) of a pipeline read from its repository."""
        assert self.repository_url is not None
        return implicit_clone(self.repository_url, self.source_code_credential_id)

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data, in /v3 field names, with what the user set, and
        one form of a step's environment: `env` and `envFrom` beside `runScriptConfig`
        (Rancher 2.1+'s) are written inside it, `env` as `NAME=value` entries (the seed's),
        so `view`, `export` and an execution's `pipeline` read alike."""
        data = self.model_dump(mode="json", exclude_unset=True, by_alias=True)
        for stage in data.get("stages") or []:
            for step in stage["steps"]:
                script = step.get("runScriptConfig")
                env, env_from = step.pop("env", None), step.pop("envFrom", None)
                if script is None:
                    continue
                if env:
                    script["env"] = [f"{name}={value}" for name, value in env.items()]
                if env_from:
                    script["envFrom"] = env_from
        return data

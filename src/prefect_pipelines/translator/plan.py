"""The compiled run plan: what one execution runs, in order, with its environment.

The plan knows nothing of Prefect or docker: `flows/` turns it into task runs and
containers. Compiling resolves the branch to build, labels every step, turns timeouts
into seconds, and defines the `CICD_*` environment every step gets.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from prefect_pipelines.translator.branches import BranchCondition
from prefect_pipelines.translator.errors import ImageTagError
from prefect_pipelines.translator.spec import PipelineConfig, Step
from prefect_pipelines.vocabulary import step_tags

TriggerType = Literal["user", "cron", "webhook"]
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
class StepPlan:
    """One step, placed in its stage."""

    stage: int
    index: int
    stage_name: str
    spec: Step
    timeout_seconds: float | None

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
    extra_env: dict[str, str] = field(default_factory=dict)

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
) -> RunPlan:
    """Compile a validated definition into the plan of one execution.

    Args:
        config: the definition.
        identity: pipeline, project and run number.
        trigger: who or what started the run (default: a user).
        branch: the branch asked for; derived from the clone step when not given.

    Raises:
        BranchRequiredError, BranchMismatchError, InvalidValueError: about the branch.
    """
    trigger = trigger or Trigger()
    source = config.source
    if source is not None:
        condition = BranchCondition(source.branch, source.branch_condition)
        resolved = condition.resolve(branch)
    else:
        resolved = branch or ""
    pipeline_seconds = float(config.timeout) * 60
    stages = tuple(
        StagePlan(
            index=i,
            name=stage.name,
            steps=tuple(
                StepPlan(
                    stage=i,
                    index=j,
                    stage_name=stage.name,
                    spec=step,
                    timeout_seconds=float(step.timeout) * 60 if step.timeout else None,
                )
                for j, step in enumerate(stage.steps)
            ),
        )
        for i, stage in enumerate(config.stages)
    )
    return RunPlan(
        config=config,
        identity=identity,
        trigger=trigger,
        branch=resolved,
        stages=stages,
        timeout_seconds=pipeline_seconds,
        repo_url=source.url if source else "",
    )


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

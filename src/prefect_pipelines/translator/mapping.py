"""Reading /v3 facts back from Prefect objects: a run's number, a pipeline's creator, a
stored definition.

The names themselves are in prefect_pipelines.vocabulary (pure code).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from prefect_pipelines.translator.branches import BranchCondition
from prefect_pipelines.translator.errors import PipelineSpecError
from prefect_pipelines.translator.spec import (
    Constraint,
    clone_stage,
    constraint_shorthand,
    implicit_clone,
    webhook_events,
)
from prefect_pipelines.vocabulary import (
    DELIVERY_PREFIX,
    TAG_CREATOR,
    idempotency_key,
    tagged_run_number,
)


class StoredDefinition:
    """A definition as Prefect holds it: the `pipeline` parameter of a deployment or a
    flow run, in /v3 field names.

    It is read without trusting its shape: a definition stored by an earlier version, or
    edited through Prefect by hand, may lack any key or hold anything under it. Every
    read of a stored definition goes through here; a definition to run is parsed by the
    validator instead (`parse_pipeline`).
    """

    def __init__(self, definition: Any) -> None:
        self.data: dict[str, Any] = definition if isinstance(definition, dict) else {}

    @classmethod
    def of(cls, parameters: dict[str, Any] | None) -> StoredDefinition:
        """The definition among a deployment's or flow run's parameters."""
        return cls((parameters or {}).get("pipeline"))

    @property
    def stored_stages(self) -> list[dict[str, Any]]:
        """The stages as stored (the ones that are mappings)."""
        stages = self.data.get("stages")
        return [stage for stage in stages if isinstance(stage, dict)] if isinstance(stages, list) else []

    @property
    def stages(self) -> list[dict[str, Any]]:
        """The stages a run runs (or ran): the stored ones; for a pipeline read from its
        repository, what the run recorded from its file, else (until it has read it, or
        when it could not) the implicit clone stage alone."""
        stages = self.stored_stages
        if stages or not self.from_repository:
            return stages
        return [clone_stage(self.implicit_clone())]

    def steps_of(self, stage: dict[str, Any]) -> list[dict[str, Any]]:
        """A stage's steps as stored (the ones that are mappings)."""
        steps = stage.get("steps")
        return [step for step in steps if isinstance(step, dict)] if isinstance(steps, list) else []

    def places(self) -> list[tuple[int, int]]:
        """(stage, step) of every step, in order."""
        return [(i, j) for i, stage in enumerate(self.stages) for j, _ in enumerate(self.steps_of(stage))]

    def has_step(self, stage: int, step: int) -> bool:
        stages = self.stages
        return 0 <= stage < len(stages) and 0 <= step < len(self.steps_of(stages[stage]))

    @property
    def step_count(self) -> int:
        return len(self.places())

    @property
    def source(self) -> dict[str, Any] | None:
        """The clone step's `sourceCodeConfig`, when the first step is one."""
        stages = self.stages
        steps = self.steps_of(stages[0]) if stages else []
        source = steps[0].get("sourceCodeConfig") if steps else None
        return source if isinstance(source, dict) else None

    @property
    def from_repository(self) -> bool:
        """Whether the pipeline reads its definition from its repository's file."""
        return isinstance(self.data.get("repositoryUrl"), str)

    def implicit_clone(self) -> dict[str, Any]:
        """The `sourceCodeConfig` of the implicit clone of a pipeline read from its
        repository (see `spec.implicit_clone`)."""
        url, credential = self.repository
        return implicit_clone(url, credential)

    @property
    def default_branch(self) -> str:
        """The branch a run of a repository's pipeline builds when none is given."""
        value = self.data.get("defaultBranch")
        return value if isinstance(value, str) else ""

    @property
    def repository(self) -> tuple[str, str]:
        """(repository URL, source code credential id) of what a run clones ('' when
        nothing): the clone step's, or the repository of a pipeline read from it."""
        source = self.data if self.from_repository else (self.source or {})
        url = source.get("repositoryUrl" if self.from_repository else "url")
        credential = source.get("sourceCodeCredentialId")
        return (url if isinstance(url, str) else "",
                credential if isinstance(credential, str) else "")

    def branch_condition(self) -> BranchCondition | None:
        """Which branches the clone step builds; None without a clone step (a pipeline
        read from its repository builds any branch its file allows)."""
        if self.from_repository:
            return None
        source = self.source
        if source is None:
            return None
        return BranchCondition(source.get("branch"), source.get("branchCondition", "only"))

    @property
    def webhook_events(self) -> set[str]:
        """The webhook events that run it (see `PipelineConfig.webhook_events`)."""
        data = self.data
        return webhook_events(data.get("triggerWebhook"), data.get("triggerWebhookPush"),
                              data.get("triggerWebhookPr"), data.get("triggerWebhookTag"))

    def branch_allowed(self, branch: str) -> tuple[bool, str]:
        """(whether the pipeline-level `branch` constraint lets `branch` run, how the
        constraint reads); a pipeline without one, or with one that does not parse,
        allows any branch (the run's compile then says what is wrong)."""
        value = self.data.get("branch")
        if value is None:
            return True, ""
        try:  # read as the definition's own model reads it
            constraint = Constraint.model_validate(constraint_shorthand(value))
        except (ValidationError, PipelineSpecError):
            return True, ""
        return constraint.allows(branch), constraint.describe()

    def _configs(self, kind: str) -> list[dict[str, Any]]:
        configs = (step.get(kind) for stage in self.stages for step in self.steps_of(stage))
        return [config for config in configs if isinstance(config, dict)]

    def secret_names(self) -> set[str]:
        """The secrets the `envFrom` entries name (in runScriptConfig or beside it)."""
        steps = [step for stage in self.stages for step in self.steps_of(stage)]
        lists = [config.get("envFrom") for config in self._configs("runScriptConfig")]
        lists += [step.get("envFrom") for step in steps]
        return {item["sourceName"] for items in lists if isinstance(items, list) for item in items
                if isinstance(item, dict) and isinstance(item.get("sourceName"), str)}

    def references(self) -> list[str]:
        """The images and publish tags, as written (`${VAR}`s unexpanded)."""
        found = [config.get("image") for config in self._configs("runScriptConfig")]
        found += [config.get("tag") for config in self._configs("publishImageConfig")]
        return [reference for reference in found if isinstance(reference, str)]


def run_number_of(tags: list[str], key: str | None, deployment_id: Any) -> int | None:
    """The run number a flow run was created with by the facade, if it was.

    A tag alone is not trusted (anyone can tag a run): the idempotency key must say the
    facade made it, either for that number or for a webhook delivery of this pipeline
    (whose number is the tag the facade gave it; the claim block keeps it unique).
    """
    for tag in tags:
        number = tagged_run_number([tag])
        if number is not None:
            if key == idempotency_key(deployment_id, number) or (
                    key or "").startswith(f"{DELIVERY_PREFIX}{deployment_id}:"):
                return number
    return None


def creator_of(tags: list[str]) -> str:
    """The creator of a pipeline, from its deployment's tags (its runs inherit them)."""
    for tag in tags:
        if tag.startswith(TAG_CREATOR):
            return tag[len(TAG_CREATOR):]
    return ""

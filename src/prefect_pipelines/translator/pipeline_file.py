"""A pipeline file in a repository (Rancher 2.1+'s `.rancher-pipeline.yml`) turned into a
definition to run.

The file is the definition without its clone: the repository it is read from is cloned
by an implicit first stage, `clone`, which this module prepends (as Rancher 2.1+ did), so
stage and step numbers of an execution count that stage. A first step
`sourceCodeConfig: {}`, which Rancher's own files carry, means that clone; any other
`sourceCodeConfig` is refused. What says when a pipeline runs (its name, triggers) is the
pipeline's, set through the API, not the file's. Errors name the file and the path in it.
"""

from __future__ import annotations

import re
from typing import Any

from prefect_pipelines.translator.errors import (
    PipelineSpecError,
    SourceStepPlacementError,
    UnknownFieldError,
    WrongTypeError,
)
from prefect_pipelines.translator.spec import PipelineConfig, clone_stage
from prefect_pipelines.translator.validation import parse_pipeline
from prefect_pipelines.translator.yaml_io import load_yaml
from prefect_pipelines.vocabulary import CLONE_STAGE

CONFIG_FILES = (".rancher-pipeline.yml", ".rancher-pipeline.yaml")
# Keys of a stored definition that belong to the pipeline, not to its file.
_PIPELINE_KEYS = ("name", "triggerCronExpression", "triggerCronTimezone", "triggerWebhook",
                  "triggerWebhookPush", "triggerWebhookPr", "triggerWebhookTag", "publicBadge")


def parse_pipeline_file(text: str | bytes, *, file_name: str, clone: dict[str, Any],
                        max_bytes: int | None = None) -> PipelineConfig:
    """The definition a pipeline file describes, its clone stage first.

    Args:
        text: the file.
        file_name: its path in the repository, for errors.
        clone: the implicit clone step's `sourceCodeConfig` (url, branchCondition,
            sourceCodeCredentialId).
        max_bytes: the largest file accepted.

    Raises:
        PipelineSpecError: the file is not a valid pipeline; its message starts with the
            file name (`.rancher-pipeline.yml: stages[0].steps[1]...: ...`).
    """
    limits = {} if max_bytes is None else {"max_bytes": max_bytes}
    stripped = _Stripped()
    try:
        data = _without_clone(load_yaml(text, **limits), stripped)
        config = parse_pipeline(data, min_cron_interval_seconds=0)
    except PipelineSpecError as exc:
        exc.path = stripped.file_path(exc.path)
        raise exc.in_file(file_name) from None
    stages = [clone_stage(clone, stripped.stage_name or CLONE_STAGE), *config.to_dict()["stages"]]
    return parse_pipeline({**config.to_dict(), "stages": stages}, min_cron_interval_seconds=0)


class _Stripped:
    """What `_without_clone` took out, to give errors the file's own numbers back."""

    def __init__(self) -> None:
        self.step = False  # the first step of the first stage, `sourceCodeConfig: {}`
        self.stage_name = ""  # the first stage, when that step was all it had

    def file_path(self, path: str) -> str:
        if self.stage_name:
            return re.sub(r"^stages\[(\d+)\]", lambda m: f"stages[{int(m.group(1)) + 1}]", path)
        if self.step:
            return re.sub(r"^stages\[0\]\.steps\[(\d+)\]",
                          lambda m: f"stages[0].steps[{int(m.group(1)) + 1}]", path)
        return path


def _without_clone(data: Any, stripped: _Stripped) -> Any:
    """The file's document without the `sourceCodeConfig: {}` its first step may be."""
    if not isinstance(data, dict):
        raise WrongTypeError("a pipeline file must be a mapping with a `stages` list")
    for key in _PIPELINE_KEYS:
        if key in data:
            raise UnknownFieldError(
                f"{key} is set on the pipeline (through the API), not in its file").at(key)
    stages = data.get("stages")
    if not isinstance(stages, list):
        return data
    stages = list(stages)
    first = stages[0] if stages else None
    steps = first.get("steps") if isinstance(first, dict) else None
    if isinstance(steps, list) and steps and _is_empty_clone(steps[0]):
        assert isinstance(first, dict)
        stripped.step = True
        stages[0] = {**first, "steps": steps[1:]}
        if not steps[1:]:
            stages.pop(0)
            stripped.stage_name = first.get("name") if isinstance(first.get("name"), str) else ""
            stripped.stage_name = stripped.stage_name.strip() or CLONE_STAGE
    for i, stage in enumerate(stages):
        steps_of = stage.get("steps") if isinstance(stage, dict) else None
        for j, step in enumerate(steps_of if isinstance(steps_of, list) else []):
            if isinstance(step, dict) and "sourceCodeConfig" in step:
                raise SourceStepPlacementError(
                    "the clone is implicit in a pipeline file: only an empty sourceCodeConfig, "
                    "as the very first step, is accepted"
                ).at(f"stages[{i}].steps[{j}].sourceCodeConfig")
    return {**data, "stages": stages}


def _is_empty_clone(step: Any) -> bool:
    return (isinstance(step, dict) and set(step) == {"sourceCodeConfig"}
            and step["sourceCodeConfig"] in ({}, None))


def clone_only(config: PipelineConfig) -> PipelineConfig:
    """What a run of a pipeline read from its repository runs before it has read the file:
    the clone stage."""
    return parse_pipeline({"stages": [clone_stage(config.repository_clone())], "timeout": config.timeout},
                          min_cron_interval_seconds=0)


def file_names(config: PipelineConfig) -> tuple[str, ...]:
    """The files a run looks for, in order: `configPath`, else the two default names."""
    return (config.config_path,) if config.config_path else CONFIG_FILES

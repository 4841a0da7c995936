"""The pipeline definition (pure code, no I/O): models, YAML, validation and the run plan."""

from prefect_pipelines.translator.branches import BranchCondition, validate_branch_name
from prefect_pipelines.translator.errors import PipelineSpecError
from prefect_pipelines.translator.plan import (
    RunIdentity,
    RunPlan,
    StagePlan,
    StepPlan,
    Trigger,
    compile_plan,
)
from prefect_pipelines.translator.spec import (
    PipelineConfig,
    PublishImageConfig,
    RunScriptConfig,
    SourceCodeConfig,
    Stage,
    Step,
)
from prefect_pipelines.translator.validation import parse_pipeline, parse_pipeline_yaml
from prefect_pipelines.translator.yaml_io import dump_yaml, load_yaml

__all__ = [
    "BranchCondition",
    "PipelineConfig",
    "PipelineSpecError",
    "PublishImageConfig",
    "RunIdentity",
    "RunPlan",
    "RunScriptConfig",
    "SourceCodeConfig",
    "Stage",
    "StagePlan",
    "Step",
    "StepPlan",
    "Trigger",
    "compile_plan",
    "dump_yaml",
    "load_yaml",
    "parse_pipeline",
    "parse_pipeline_yaml",
    "validate_branch_name",
]

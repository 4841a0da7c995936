"""The `run-pipeline` flow, its step task, and the executors steps run on."""

from prefect_pipelines.flows.pipeline import FLOW_NAME, LocalOptions, local_options, run_pipeline

ENTRYPOINT = "prefect_pipelines.flows.pipeline.run_pipeline"

__all__ = ["ENTRYPOINT", "FLOW_NAME", "LocalOptions", "local_options", "run_pipeline"]

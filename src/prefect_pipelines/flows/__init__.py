"""The `run-pipeline` flow, its step task, and the executors steps run on.

Deployments run `prefect_pipelines.flows.pipeline.run_pipeline` (vocabulary.ENTRYPOINT).
"""

from prefect_pipelines.flows.pipeline import LocalOptions, local_options, run_pipeline

__all__ = ["LocalOptions", "local_options", "run_pipeline"]

"""The vocabulary says what the flow and the worker are (services/ builds on it alone)."""

from __future__ import annotations

import importlib

from prefect.utilities.callables import parameter_schema
from prefect.workers.process import ProcessWorker

from prefect_pipelines.flows.pipeline import run_pipeline
from prefect_pipelines.vocabulary import ENTRYPOINT, FLOW_NAME, WORKER_TYPE, flow_parameters
from prefect_pipelines.worker import PipelineWorker


def test_the_entrypoint_is_the_flow_of_that_name() -> None:
    """Existing deployments store the entrypoint: it must keep naming the flow."""
    module, _, name = ENTRYPOINT.rpartition(".")
    assert getattr(importlib.import_module(module), name) is run_pipeline
    assert run_pipeline.name == FLOW_NAME


def test_deployments_get_the_flows_parameter_schema() -> None:
    assert parameter_schema(flow_parameters) == parameter_schema(run_pipeline)


def test_pools_are_made_for_the_worker() -> None:
    assert PipelineWorker.type == WORKER_TYPE
    assert (ProcessWorker.get_default_base_job_template()
            == PipelineWorker.get_default_base_job_template())

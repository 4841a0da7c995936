"""How /v3 resources map onto Prefect objects: names, tags, keys and states (pure code)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

# Tags every pipeline deployment and execution carries.
TAG_PLUGIN = "prefect-pipelines"
TAG_PROJECT = "project:"
TAG_PIPELINE = "pipeline:"
TAG_RUN = "run:"
TAG_EXECUTION = "pipeline-execution"
IDEMPOTENCY_PREFIX = "pipeline-run:"
DELIVERY_PREFIX = "pipeline-delivery:"

_RUN_TAG = re.compile(r"run:(\d+)")
_BLOCK_NAME_BAD = re.compile(r"[^a-z0-9-]+")


def deployment_name(project_id: str, pipeline_id: str) -> str:
    """The deployment of a pipeline: `<clusterId>:<projectId>:<pipelineId>`."""
    return f"{project_id}:{pipeline_id}"


def split_deployment_name(name: str) -> tuple[str, str] | None:
    """(project id, pipeline id) of a pipeline deployment name, None for other names."""
    project, sep, pipeline = name.rpartition(":")
    if not sep or ":" not in project:
        return None
    return project, pipeline


def deployment_tags(project_id: str, pipeline_id: str) -> list[str]:
    """Tags of a pipeline deployment (flow runs inherit them)."""
    return [TAG_PLUGIN, f"{TAG_PROJECT}{project_id}", f"{TAG_PIPELINE}{pipeline_id}"]


def run_tag(number: int) -> str:
    """The tag that carries an execution's run number."""
    return f"{TAG_RUN}{number}"


def idempotency_key(deployment_id: Any, number: int) -> str:
    """The idempotency key of run `number`: unique per flow in Prefect's database."""
    return f"{IDEMPOTENCY_PREFIX}{deployment_id}:{number}"


def stored_source(definition: dict[str, Any]) -> dict[str, Any] | None:
    """The clone step (`sourceCodeConfig`) of a stored definition, when it has one."""
    stages = definition.get("stages") or []
    steps = (stages[0].get("steps") or []) if stages else []
    return steps[0].get("sourceCodeConfig") if steps else None


def delivery_digest(delivery_id: str) -> str:
    """A fixed-length name part for a webhook delivery id."""
    return hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


def delivery_key(deployment_id: Any, delivery_id: str) -> str:
    """The idempotency key of the run of a webhook delivery: one run per delivery, however
    often its creation is tried."""
    return f"{DELIVERY_PREFIX}{deployment_id}:{delivery_digest(delivery_id)}"


def run_number_of(tags: list[str], key: str | None, deployment_id: Any) -> int | None:
    """The run number a flow run was created with by the facade, if it was.

    A tag alone is not trusted (anyone can tag a run): the idempotency key must say the
    facade made it, either for that number or for a webhook delivery of this pipeline
    (whose number is the tag the facade gave it; the claim block keeps it unique).
    """
    for tag in tags:
        match = _RUN_TAG.fullmatch(tag)
        if match:
            number = int(match.group(1))
            if key == idempotency_key(deployment_id, number) or (
                    key or "").startswith(f"{DELIVERY_PREFIX}{deployment_id}:"):
                return number
    return None


def tagged_run_number(tags: list[str]) -> int | None:
    """The run number in a flow run's `run:<n>` tag, if any."""
    for tag in tags:
        match = _RUN_TAG.fullmatch(tag)
        if match:
            return int(match.group(1))
    return None


def execution_name(pipeline_id: str, number: int) -> str:
    """`<pipelineId>-<run>`: the execution id and the flow run name."""
    return f"{pipeline_id}-{number}"


def block_slug(value: str) -> str:
    """A string made fit for a Prefect block document name (lowercase, digits, dashes)."""
    slug = _BLOCK_NAME_BAD.sub("-", value.lower()).strip("-")
    return slug or "x"


def project_queue_name(project_id: str) -> str:
    """The work queue of a project's pipelines (its limit is the executor quota)."""
    cluster, _, project = project_id.partition(":")
    return f"project--{cluster}--{project}"


def secrets_block_name(project_id: str, pipeline_id: str) -> str:
    """The block holding a pipeline's webhook token: `pipeline--<cluster>--<project>--<id>`.

    Cluster and project ids never hold `--`, so the name maps back unambiguously.
    """
    cluster, _, project = project_id.partition(":")
    return f"pipeline--{cluster}--{project}--{pipeline_id}"


def credential_block_name(credential_id: str) -> str:
    """The block document of a source code credential."""
    return f"scc-{block_slug(credential_id)}"

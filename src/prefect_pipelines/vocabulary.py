"""The names prefect-pipelines gives its Prefect objects, in one place everything may import.

The flow, its entrypoint and parameters, the worker type, the tags (a step's included),
labels, idempotency keys, block, queue, variable and automation names, the names of step
output records, and the states an execution and a step are in on the API. Pure: no I/O,
nothing of ours.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# The flow every pipeline deployment runs. Existing deployments store the entrypoint:
# the flow must stay importable there.
FLOW_NAME = "run-pipeline"
ENTRYPOINT = "prefect_pipelines.flows.pipeline.run_pipeline"
WORKER_TYPE = "prefect-pipelines"

# Tags every pipeline deployment and execution carries.
TAG_PLUGIN = "prefect-pipelines"
TAG_PROJECT = "project:"
TAG_PIPELINE = "pipeline:"
TAG_RUN = "run:"
TAG_EXECUTION = "pipeline-execution"
# Tags of a pipeline deployment only.
TAG_CREATOR = "creator:"
TAG_CLUSTER = "cluster:"
IDEMPOTENCY_PREFIX = "pipeline-run:"
DELIVERY_PREFIX = "pipeline-delivery:"

# Labels the flow puts on its own flow run once it knows them.
LABEL_COMMIT = "pipelines.commit"
LABEL_BRANCH = "pipelines.branch"
# What git says of the commit a manual or cron run cloned (a webhook's delivery says it).
LABEL_MESSAGE = "pipelines.message"
LABEL_AUTHOR = "pipelines.author"
LABEL_EMAIL = "pipelines.email"
# What the steps of a run came to, put on the flow run as the run ends (see recorded_steps).
LABEL_STEPS = "pipelines.steps"

# Labels of step containers on the docker engine: how a run's leftovers are found (and
# removed) by the run's cleanup and by any worker's reaper.
CONTAINER_LABEL_PREFIX = "io.prefect-pipelines"
CONTAINER_FLOW_RUN = f"{CONTAINER_LABEL_PREFIX}.flow-run-id"
CONTAINER_EXECUTION = f"{CONTAINER_LABEL_PREFIX}.execution-id"
CONTAINER_STEP = f"{CONTAINER_LABEL_PREFIX}.step"

# Prefect variables of the webhook deliveries waiting for a run, and of the facades that
# make those runs (services/deliveries.py).
DELIVERY_VARIABLE_PREFIX = "pipelines-delivery-"
DELIVERY_VARIABLE_TAG = "webhook-delivery"
# The Prefect event of a delivery that runs nothing (its resource: the delivery).
DELIVERY_SKIPPED_EVENT = "prefect-pipelines.delivery.skipped"
DELIVERY_RESOURCE = "prefect-pipelines.delivery."
LEASE_VARIABLE_PREFIX = "pipelines-facade-"
LEASE_VARIABLE_TAG = "facade-lease"

# The automations that end the runs of a lost worker (services/lost_runs.py).
LOST_RUN_AUTOMATION = "prefect-pipelines: worker lost"
LOST_CANCEL_AUTOMATION = "prefect-pipelines: worker lost while cancelling"

# The shapes of the API's ids and names. The checks fullmatch these; the OpenAPI document
# publishes them anchored (`anchored`) on the path parameters and fields that take them, so
# a generated client refuses what the server refuses.
CLUSTER_ID_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"  # and at most MAX_ID characters
PROJECT_ID_PATTERN = rf"{CLUSTER_ID_PATTERN}:{CLUSTER_ID_PATTERN}"
# A pipeline's, a secret's and a docker credential's name (a DNS label).
NAME_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
EXECUTION_ID_PATTERN = rf"{NAME_PATTERN}-[0-9]+"  # <pipelineId>-<run> (execution_name)
LOG_ID_PATTERN = rf"{EXECUTION_ID_PATTERN}-[0-9]+-[0-9]+"  # <executionId>-<stage>-<step>
NOTIFIER_ID_PATTERN = rf"{CLUSTER_ID_PATTERN}:n-[a-z0-9]{{5,12}}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
SECRET_KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,127}"
USER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}"
REGISTRY_HOST_PATTERN = (r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
                         r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?")
# A self-managed forge's host (and port).
FORGE_HOST_PATTERN = r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?"
# A string with something in it (not empty, not only white space; no NUL, as no string
# the API stores has one).
NOT_BLANK_PATTERN = r"[^\x00]*[^\s\x00][^\x00]*"
MAX_ID = 63


def anchored(pattern: str) -> str:
    """`pattern` for a JSON schema, where a pattern matches anywhere unless anchored."""
    return f"^(?:{pattern})$"


# States on the API are lowercase.
WAITING, QUEUEING, RUNNING = "waiting", "queueing", "running"
SUCCESS, FAILED, SKIPPED, ABORTED = "success", "failed", "skipped", "aborted"
STATES = (WAITING, QUEUEING, RUNNING, SUCCESS, FAILED, SKIPPED, ABORTED)
FINISHED = (SUCCESS, FAILED, SKIPPED, ABORTED)
# The implicit first stage of a pipeline read from its repository.
CLONE_STAGE = "clone"
# The name of the (Completed) state of a step's task run when `when` skipped the step.
SKIPPED_STATE_NAME = "Skipped"

# A step's task run carries `stage:<i>` and `step:<j>` (0-based): what correlates it with
# the step (its name is for people, translator.plan.StepPlan.title).
STAGE_TAG, STEP_TAG = "stage:", "step:"

# Each output record is sent under the name `<step> output@<offset>` (`build / 2
# output@1024`): which step it is from, for people reading the Prefect UI, and the number
# of bytes of output before it, from which the API learns a log's size from its newest
# record alone. Runs of earlier versions named theirs `prefect_pipelines.output@<offset>`.
OUTPUT_SUFFIX = " output@"
_RECORD_NAME = re.compile(r"(?:.+ output|prefect_pipelines\.output)@(\d+)", re.DOTALL)

_RUN_TAG = re.compile(r"run:(\d+)")
_BLOCK_NAME_BAD = re.compile(r"[^a-z0-9-]+")


# The flow's parameters: `flows.pipeline.run_pipeline` has this signature and docstring
# (tests/test_vocabulary.py checks), so services/ makes a deployment's parameter
# schema from this without importing the flow.
def flow_parameters(
    pipeline: dict[str, Any],
    pipeline_id: str = "",
    project_id: str = "",
    branch: str | None = None,
    trigger: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a pipeline definition once.

    Args:
        pipeline: the definition, in the /v3 shape (`stages`, `timeout`, ...).
        pipeline_id: the pipeline's id (its name); defaults to the definition's name.
        project_id: `<clusterId>:<projectId>`.
        branch: the branch to build; derived from the definition when it names one.
        trigger: who started the run: `triggeredBy` (user|cron|webhook), `userId`,
            `event`, `commit`, `ref`, `message`, `author`, `email`, `avatarUrl`,
            `htmlLink`, `title`.
        env: run variables, NAME -> value: every step gets them, over the pipeline's
            own env (CICD_* names are the pipeline's and cannot be set).
    """


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


def tagged_run_number(tags: list[str]) -> int | None:
    """The run number in a flow run's `run:<n>` tag, if any."""
    for tag in tags:
        match = _RUN_TAG.fullmatch(tag)
        if match:
            return int(match.group(1))
    return None


def idempotency_key(deployment_id: Any, number: int) -> str:
    """The idempotency key of run `number`: unique per flow in Prefect's database."""
    return f"{IDEMPOTENCY_PREFIX}{deployment_id}:{number}"


def delivery_digest(delivery_id: str) -> str:
    """A fixed-length name part for a webhook delivery id."""
    return hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


def delivery_key(deployment_id: Any, delivery_id: str) -> str:
    """The idempotency key of the run of a webhook delivery: one run per delivery, however
    often its creation is tried."""
    return f"{DELIVERY_PREFIX}{deployment_id}:{delivery_digest(delivery_id)}"


def execution_name(pipeline_id: str, number: int) -> str:
    """`<pipelineId>-<run>`: the execution id and the flow run name."""
    return f"{pipeline_id}-{number}"


def step_tags(stage: int, index: int) -> tuple[str, str]:
    """The tags of the task run of step `index` of stage `stage` (both 0-based)."""
    return f"{STAGE_TAG}{stage}", f"{STEP_TAG}{index}"


def record_name(step: str, offset: int) -> str:
    """The name of a record of `step`'s output that starts `offset` bytes in."""
    return f"{step}{OUTPUT_SUFFIX}{offset}"


def record_offset(name: str) -> int | None:
    """The output offset carried in a log record's name, None for other records."""
    match = _RECORD_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def block_slug(value: str) -> str:
    """A string made fit for a Prefect block document name (lowercase, digits, dashes)."""
    slug = _BLOCK_NAME_BAD.sub("-", value.lower()).strip("-")
    return slug or "x"


def project_queue_name(project_id: str) -> str:
    """The work queue of a project's pipelines (its limit is the executor quota)."""
    cluster, _, project = project_id.partition(":")
    return f"project--{cluster}--{project}"


def cluster_block_name(cluster_id: str) -> str:
    """The block holding a cluster's pipeline settings."""
    return f"cluster-{cluster_id}"


def forge_app_block_name(cluster_id: str, kind: str) -> str:
    """The block holding a cluster's OAuth app on one forge."""
    return f"forge-app-{cluster_id}-{kind}"


def cluster_pool_name(cluster_id: str) -> str:
    """The work pool of a deployed cluster: its workers run the cluster's pipelines."""
    return f"pipelines-{cluster_id}"


def secrets_block_name(project_id: str, pipeline_id: str) -> str:
    """The block holding a pipeline's webhook token: `pipeline--<cluster>--<project>--<id>`.

    Cluster and project ids never hold `--`, so the name maps back unambiguously.
    """
    cluster, _, project = project_id.partition(":")
    return f"pipeline--{cluster}--{project}--{pipeline_id}"


def credential_block_name(credential_id: str) -> str:
    """The block document of a source code credential."""
    return f"scc-{block_slug(credential_id)}"

"""Reading /v3 facts back from Prefect objects: a run's number, a pipeline's creator, a
definition's clone step.

The names themselves are in prefect_pipelines.vocabulary (pure code).
"""

from __future__ import annotations

from typing import Any

from prefect_pipelines.vocabulary import (
    DELIVERY_PREFIX,
    TAG_CREATOR,
    idempotency_key,
    tagged_run_number,
)


def stored_source(definition: dict[str, Any]) -> dict[str, Any] | None:
    """The clone step (`sourceCodeConfig`) of a stored definition, when it has one."""
    stages = definition.get("stages") or []
    steps = (stages[0].get("steps") or []) if stages else []
    return steps[0].get("sourceCodeConfig") if steps else None


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

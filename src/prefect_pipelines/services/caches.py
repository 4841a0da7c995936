"""Where each cache's last complete save is: a Prefect variable `pp-cache-<digest>` per
cache, naming the docker volume that holds it.

A save fills a new volume and only then points the variable at it, so a run reads
either the save before or the new one, never half of one; the last save to finish wins.
The variables are tagged with their pipeline, so that its caches are listed (their
sizes) and cleared (`clearcache`) without the engine: a cleared cache's volumes go when
a worker next meets them (see flows/caches.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from prefect.client.schemas.actions import VariableCreate, VariableUpdate

from prefect_pipelines.services.client import shared_sync_client
from prefect_pipelines.vocabulary import TAG_PLUGIN

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_log = logging.getLogger(__name__)
CACHE_TAG = "pipeline-cache"
_PAGE = 200


def pipeline_tag(project_id: str, pipeline_id: str) -> str:
    return f"cache-of:{project_id}:{pipeline_id}"


def read_pointer(name: str) -> dict[str, Any] | None:
    """The record of a cache's last complete save (None: there is none)."""
    variable = shared_sync_client().read_variable_by_name(name)
    value = variable.value if variable is not None else None
    return value if isinstance(value, dict) and value.get("volume") else None


def write_pointer(name: str, value: dict[str, Any], *, project_id: str, pipeline_id: str) -> None:
    """Point a cache at its new save."""
    client = shared_sync_client()
    try:
        client.update_variable(VariableUpdate(name=name, value=value))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
        client.create_variable(VariableCreate(
            name=name, value=value, tags=[TAG_PLUGIN, CACHE_TAG, pipeline_tag(project_id, pipeline_id)]))


async def caches_of(client: PrefectClient, project_id: str, pipeline_id: str) -> list[dict[str, Any]]:
    """The records of a pipeline's caches: `path`, `key`, `size` (bytes), `saved`,
    `execution` (the run that saved it)."""
    found: list[dict[str, Any]] = []
    while True:
        response = await client.request("POST", "/variables/filter", json={
            "variables": {"tags": {"all_": [CACHE_TAG, pipeline_tag(project_id, pipeline_id)]}},
            "sort": "NAME_ASC", "offset": len(found), "limit": _PAGE})
        response.raise_for_status()
        page = response.json()
        found.extend(page)
        if len(page) < _PAGE:
            break
    return [{"name": item["name"], **item["value"]} for item in found
            if isinstance(item.get("value"), dict)]


async def clear_caches(client: PrefectClient, project_id: str, pipeline_id: str) -> int:
    """Forget a pipeline's caches (its next runs restore nothing); how many there were."""
    records = await caches_of(client, project_id, pipeline_id)
    for record in records:
        try:
            await client.delete_variable_by_name(record["name"])
        except Exception as exc:  # noqa: BLE001 - gone already
            _log.info("cache record %s: %s", record["name"], exc)
    return len(records)

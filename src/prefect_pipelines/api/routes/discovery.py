"""Routes of Norman's discovery: /v3/schemas and /v3/projects/{id}/schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from prefect_pipelines.api import discovery, norman
from prefect_pipelines.api.deps import Project, User, strict_query
from prefect_pipelines.api.schemas import ERROR_RESPONSES, NormanSchema, NormanSchemaCollection
from prefect_pipelines.errors import NotFoundError

router = APIRouter(tags=["schemas"], responses=ERROR_RESPONSES)


def _collection(request: Request, found: list[dict[str, Any]]) -> dict[str, Any]:
    return norman.collection(request, "schema", found, limit=len(found) or 1, offset=0,
                             total=len(found))


def _one(found: list[dict[str, Any]], schema_id: str) -> dict[str, Any]:
    for schema in found:
        if schema["id"] == schema_id:
            return schema
    raise NotFoundError(f"no schema {schema_id!r}")


@router.get("/v3/schemas", response_model=NormanSchemaCollection, dependencies=[strict_query()])
async def list_schemas(request: Request, user: User) -> dict[str, Any]:
    """The schemas of the types outside projects (Rancher's clients load these first)."""
    return _collection(request, discovery.schema_list(request, discovery.GLOBAL))


@router.get("/v3/schemas/{schema_id}", response_model=NormanSchema, dependencies=[strict_query()])
async def read_schema(request: Request, schema_id: str, user: User) -> dict[str, Any]:
    """One schema."""
    return _one(discovery.schema_list(request, discovery.GLOBAL), schema_id)


@router.get("/v3/projects/{project_id}/schemas", response_model=NormanSchemaCollection,
            dependencies=[strict_query()])
async def list_project_schemas(request: Request, project_id: Project) -> dict[str, Any]:
    """The schemas of a project's types, their collections under the project."""
    return _collection(request, discovery.schema_list(request, discovery.PROJECT, project_id))


@router.get("/v3/projects/{project_id}/schemas/{schema_id}", response_model=NormanSchema,
            dependencies=[strict_query()])
async def read_project_schema(request: Request, project_id: Project, schema_id: str) -> dict[str, Any]:
    """One schema of a project's types."""
    return _one(discovery.schema_list(request, discovery.PROJECT, project_id), schema_id)

"""FastAPI dependencies: the Prefect client, the settings, the caller, strict query strings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from prefect.client.orchestration import PrefectClient

from prefect_pipelines.api.access import caller
from prefect_pipelines.api.norman import MAX_LIMIT
from prefect_pipelines.api.schemas import shape
from prefect_pipelines.errors import InvalidInputError
from prefect_pipelines.services.projects import check_project_id
from prefect_pipelines.settings import Settings, get_settings
from prefect_pipelines.vocabulary import (
    CLUSTER_ID_PATTERN,
    EXECUTION_ID_PATTERN,
    LOG_ID_PATTERN,
    MAX_ID,
    NAME_PATTERN,
    NOTIFIER_ID_PATTERN,
    PROJECT_ID_PATTERN,
)


def prefect_client(request: Request) -> PrefectClient:
    """The facade's Prefect client (one per process, opened at start-up)."""
    return request.app.state.prefect_client


async def current_user(request: Request) -> str:
    """The user id of the bearer token (see `access.caller`).

    Raises:
        UnauthorizedError: no `Authorization: Bearer <token>`, or a token that is unknown
            or revoked.
    """
    return (await caller(request)).user_id


def strict_query(*allowed: str):  # type: ignore[no-untyped-def]
    """A dependency that refuses query parameters the route does not know."""
    known = set(allowed)

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown query parameter {unknown[0]!r}"
                + (f"; this route takes {', '.join(sorted(known))}" if known else ""),
                field_name=unknown[0],
            )

    return Depends(check)


def no_nul(request: Request) -> None:
    """A dependency of every route: no query value or path part holds a NUL character.

    Nothing this API names can hold one, and PostgreSQL refuses it in any text: sent on
    to Prefect, it would come back as a server error that Prefect's client retries for a
    minute.
    """
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if "\x00" in name or "\x00" in str(value):
            raise InvalidInputError(f"{name.replace(chr(0), '?')!r} holds a NUL character",
                                    field_name=name.replace("\x00", "?"))


# A string with no NUL character: what `no_nul` holds every query value and path part to.
NO_NUL = "^[^\\x00]*$"


def refuse_nul_in_parameters(schema: dict[str, Any]) -> None:
    """State on every string parameter that it holds no NUL (see `say_no_nul`)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                say_no_nul(parameter.get("schema", {}))


def say_no_nul(node: Any, shaped: bool = False) -> None:
    """Put NO_NUL on every string of a JSON schema that has no pattern, enum or const of
    its own or from the schema around it (the API's own patterns hold no NUL either), and
    on the keys of every map (`body.refuse_nul` refuses one in a body's keys and values)."""
    if isinstance(node, list):
        for item in node:
            say_no_nul(item, shaped)
        return
    if not isinstance(node, dict):
        return
    shaped = shaped or bool({"pattern", "enum", "const"} & set(node))
    if node.get("type") == "string" and not shaped:
        node["pattern"] = NO_NUL
    if isinstance(node.get("additionalProperties"), dict) and "propertyNames" not in node:
        node["propertyNames"] = {"pattern": NO_NUL}
    for key, value in node.items():
        if key not in ("propertyNames", "examples", "default"):
            say_no_nul(value, shaped if key in ("anyOf", "oneOf", "allOf") else False)


ProjectId = Annotated[str, Path(description="`<clusterId>:<projectId>` (`local:p-abc12`).",
                                json_schema_extra=shape(PROJECT_ID_PATTERN))]


def project(project_id: ProjectId) -> str:
    """The project of the path, checked."""
    return check_project_id(project_id)


Client = Annotated[PrefectClient, Depends(prefect_client)]
User = Annotated[str, Depends(current_user)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Project = Annotated[str, Depends(project)]
ClusterId = Annotated[str, Path(description="The cluster (`local`).",
                                json_schema_extra=shape(CLUSTER_ID_PATTERN, MAX_ID))]
# A pipeline's, secret's or docker credential's name: anything else is not found (404).
ItemName = Annotated[str, Path(description="Its name: lowercase letters, digits, dashes.",
                               json_schema_extra=shape(NAME_PATTERN))]
ExecutionId = Annotated[str, Path(description="`<pipelineId>-<run>`.",
                                  json_schema_extra=shape(EXECUTION_ID_PATTERN))]
LogId = Annotated[str, Path(description="`<executionId>-<stage>-<step>` (both 0-based).",
                            json_schema_extra=shape(LOG_ID_PATTERN))]
NotifierId = Annotated[str, Path(description="`<clusterId>:n-<id>`.",
                                 json_schema_extra=shape(NOTIFIER_ID_PATTERN))]
Limit = Annotated[int | None, Query(description=f"Page size (1-{MAX_LIMIT}, default 50).",
                                    json_schema_extra={"minimum": 1, "maximum": MAX_LIMIT})]
Marker = Annotated[str | None, Query(description="Where the page starts (from `next`).",
                                     json_schema_extra=shape(r"[0-9]{0,9}"))]

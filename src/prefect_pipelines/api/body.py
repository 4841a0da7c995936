"""Reading a pipeline definition from a request body: JSON or YAML, within limits."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from fastapi import Request

from prefect_pipelines.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from prefect_pipelines.settings import Settings
from prefect_pipelines.translator import PipelineConfig, parse_pipeline
from prefect_pipelines.translator.validation import format_path
from prefect_pipelines.translator.yaml_io import load_yaml

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
JSON_TYPES = {"application/json", ""}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_document(request: Request, settings: Settings, *, allow_empty: bool = False,
                        raw: bytes | None = None) -> Any:
    """The decoded body (JSON or YAML by Content-Type; `raw` when it was read already)."""
    media = _media_type(request)
    if media not in YAML_TYPES | JSON_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media!r} is not accepted: send application/json or application/yaml"
        )
    if raw is None:
        raw = await read_body(request, settings.max_pipeline_bytes)
    if not raw.strip():
        if allow_empty:
            return None
        raise InvalidInputError("the body is empty", code="MissingRequired")
    if media in YAML_TYPES:
        data = load_yaml(raw, max_bytes=settings.max_pipeline_bytes)
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidInputError(f"the body is not valid JSON: {str(exc)[:200]}",
                                    code="InvalidBodyContent") from None
    refuse_nul(data)
    return data


def refuse_nul(data: Any) -> None:
    """A 422 naming the first string (key or value) that holds a NUL character: nothing
    this API stores can hold one (PostgreSQL refuses it in text and JSON), and sent on to
    Prefect it would come back as a server error that Prefect's client retries."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidInputError(f"{format_path(path) or 'the body'} holds a NUL character",
                                        field_name=format_path(path) or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidInputError(f"a key of {format_path(path) or 'the body'} holds a "
                                            "NUL character", field_name=format_path(path) or None)
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))


async def read_definition(request: Request, settings: Settings, project_id: str
                          ) -> PipelineConfig:
    """A pipeline definition from the body (JSON or YAML), checked against the path."""
    data = await read_document(request, settings)
    if isinstance(data, dict) and "projectId" in data:
        data = dict(data)
        given = data.pop("projectId")
        if given is not None and given not in (project_id, project_id.partition(":")[2]):
            raise InvalidInputError(
                f"projectId {given!r} does not match the project in the path ({project_id}): "
                "give the full id or the part after the colon",
                field_name="projectId",
            )
    if isinstance(data, dict) and "repositoryUrl" in data and "branch" in data:
        # A pipeline read from its repository: `branch` is the branch cron and manual runs
        # build (the branches it may build are its file's).
        data = {("defaultBranch" if key == "branch" else key): value for key, value in data.items()}
    config = parse_pipeline(data, min_cron_interval_seconds=settings.min_cron_interval)
    if not config.name:
        raise InvalidInputError("name is required", field_name="name", code="MissingRequired")
    return config


def parse_model(model: type[ModelT], data: Any) -> ModelT:
    """Validate a decoded body against a request model; a 422 names the first bad field."""
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object", code="InvalidBodyContent")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = format_path(first.get("loc", ())) or None
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            message = f"{field} is not a known field"
        elif kind == "missing":
            message = f"{field} is required"
        else:
            message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
        raise InvalidInputError(message, field_name=field,
                                code="MissingRequired" if kind == "missing" else None) from None


async def no_body(request: Request, settings: Settings, action: str) -> None:
    """An action that takes no input: its body is empty or `{}` (Rancher's clients send
    `{}`); anything else is a 422, not silently ignored."""
    raw = await read_body(request, settings.max_pipeline_bytes)
    if not raw.strip():
        return  # nothing sent, whatever its Content-Type says
    data = await read_document(request, settings, allow_empty=True, raw=raw)
    if data not in (None, {}):
        raise InvalidInputError(f"{action} takes no input: send no body, or {{}}",
                                code="InvalidBodyContent")

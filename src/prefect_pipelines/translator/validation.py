"""Turning user input into a `PipelineConfig`, or into one typed error naming the field."""

from __future__ import annotations

from typing import Any

import pydantic

from prefect_pipelines.translator import errors
from prefect_pipelines.translator.spec import PipelineConfig
from prefect_pipelines.translator.yaml_io import load_yaml

_TYPE_NAMES = {
    "string_type": "a string",
    "bool_type": "a boolean (true or false)",
    "int_type": "an integer",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def parse_pipeline(
    data: Any, *, min_cron_interval_seconds: float = 300
) -> PipelineConfig:
    """Validate plain data (from YAML or JSON) as a pipeline definition.

    Args:
        data: the decoded document.
        min_cron_interval_seconds: the shortest gap allowed between two cron fires.

    Returns:
        The validated definition.

    Raises:
        PipelineSpecError: the first problem found, as its typed subclass, naming the
            field; `.all_errors` on it lists every problem found.
    """
    if not isinstance(data, dict):
        raise errors.WrongTypeError(
            "a pipeline definition must be a mapping with a `stages` list"
        )
    try:
        return PipelineConfig.model_validate(
            data, context={"min_cron_interval_seconds": min_cron_interval_seconds}
        )
    except pydantic.ValidationError as exc:
        found = [to_spec_error(item) for item in exc.errors(include_url=False)]
        first = found[0]
        first.all_errors = found  # type: ignore[attr-defined]
        raise first from None


def parse_pipeline_yaml(
    text: str | bytes, *, min_cron_interval_seconds: float = 300, max_bytes: int | None = None
) -> PipelineConfig:
    """Read a pipeline definition from YAML text (see `parse_pipeline`)."""
    limits = {} if max_bytes is None else {"max_bytes": max_bytes}
    return parse_pipeline(
        load_yaml(text, **limits), min_cron_interval_seconds=min_cron_interval_seconds
    )


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`('stages', 1, 'steps', 0, 'image')` -> `stages[1].steps[0].image`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(base: str, relative: str) -> str:
    if not relative:
        return base
    if not base:
        return relative
    return base + relative if relative.startswith("[") else f"{base}.{relative}"


def to_spec_error(item: dict[str, Any]) -> errors.PipelineSpecError:
    """Map one pydantic error to the typed error for it, with the full field path."""
    loc = tuple(item.get("loc", ()))
    path = format_path(loc)
    kind = item.get("type", "")
    cause = (item.get("ctx") or {}).get("error")
    if isinstance(cause, errors.PipelineSpecError):
        cause.path = _join(path, cause.path)
        cause.args = (str(cause),)
        return cause
    if kind == "missing":
        return errors.MissingFieldError("is required", path)
    if kind == "extra_forbidden":
        return errors.UnknownFieldError("is not a known field", path)
    if kind == "too_short":
        return errors.EmptyListError("must have at least one item", path)
    if kind == "literal_error":
        expected = (item.get("ctx") or {}).get("expected", "")
        return errors.InvalidValueError(f"must be one of {expected}", path)
    if kind in _TYPE_NAMES:
        got = type(item.get("input")).__name__
        return errors.WrongTypeError(f"must be {_TYPE_NAMES[kind]}, not {got}", path)
    return errors.InvalidValueError(item.get("msg", "is not valid"), path)

"""Project secrets: named values a project's steps get through `envFrom`, and nothing else.

Each is a `ProjectSecret` block document `secret--<cluster>--<project>--<name>`
(services/project_items.py); its values are a secret field (Prefect encrypts them at rest, its API shows `********`), and
answers show only the keys. An `envFrom` names a secret of the pipeline's own project:
the name is joined to that project, so no name reaches another project's secrets or an
operator's Prefect Secret blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect_pipelines.blocks import ProjectSecret
from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.services.project_items import ProjectItems
from prefect_pipelines.translator import PipelineConfig
from prefect_pipelines.translator.spec import RunScriptConfig
from prefect_pipelines.vocabulary import SECRET_KEY_PATTERN

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_KEY = re.compile(SECRET_KEY_PATTERN)
MAX_VALUE_BYTES = 64 << 10


@dataclass
class SecretInfo:
    """What the API shows of a secret: its name and keys, never its values."""

    project_id: str
    name: str
    keys: list[str]


SECRETS = ProjectItems(ProjectSecret, "secret", "secret")


def check_data(data: Any) -> dict[str, str]:
    """`{"KEY": "value"}`: at least one key; keys like environment names, values strings."""
    if not isinstance(data, dict) or not data:
        raise InvalidInputError("data must be an object of at least one KEY: value",
                                field_name="data")
    for key, value in data.items():
        if not _KEY.fullmatch(key):
            raise InvalidInputError(f"{key!r} is not a key: letters, digits, _ . -, starting "
                                    "with a letter or _", field_name=f"data.{key}")
        if not isinstance(value, str):
            raise InvalidInputError(f"data.{key} must be a string", field_name=f"data.{key}")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise InvalidInputError(f"data.{key} is over {MAX_VALUE_BYTES} bytes",
                                    field_name=f"data.{key}")
    return dict(data)


async def put_secret(client: PrefectClient, project_id: str, name: str, data: dict[str, str], *,
                     create: bool) -> SecretInfo:
    """Create (409 when the name is taken) or replace (404 when missing) a secret."""
    SECRETS.check_name(name)
    data = check_data(data)
    await SECRETS.save(client, project_id, name,
                       ProjectSecret(project_id=project_id, name=name, data=data), create=create)
    return SecretInfo(project_id, name, sorted(data))


async def list_secrets(client: PrefectClient, project_id: str) -> list[SecretInfo]:
    return [SecretInfo(project_id, data.get("name", ""), sorted(data.get("data") or {}))
            for data in await SECRETS.documents(client, project_id)]


async def read_secret(client: PrefectClient, project_id: str, name: str) -> SecretInfo:
    values = await secret_values(client, project_id, name)
    return SecretInfo(project_id, name, sorted(values))


async def secret_values(client: PrefectClient, project_id: str, name: str) -> dict[str, str]:
    """A secret's values (for a step's `envFrom` only; never for an answer)."""
    block = await SECRETS.load(client, project_id, name)
    return dict(block.data.get_secret_value())


async def delete_secret(client: PrefectClient, project_id: str, name: str) -> None:
    await SECRETS.delete(client, project_id, name)


def resolve(item_name: str, key: str | None, values: dict[str, str]) -> str:
    """The value an `envFrom` entry asks for: `sourceKey`, or the one key there is.

    Raises:
        KeyError: with the reason, when the key is missing or must be given.
    """
    if key is None:
        if len(values) != 1:
            raise KeyError(f"secret {item_name!r} has {len(values)} keys: give sourceKey")
        return next(iter(values.values()))
    if key not in values:
        raise KeyError(f"secret {item_name!r} has no key {key!r}")
    return values[key]


async def check_env_from(client: PrefectClient, project_id: str, config: PipelineConfig) -> None:
    """Every `envFrom` of the pipeline names a secret (and key) of its own project: a 422
    naming the field otherwise."""
    known: dict[str, dict[str, str] | None] = {}
    for i, stage in enumerate(config.stages or []):  # a repository's file: checked as it runs
        for j, step in enumerate(stage.steps):
            script = step.run_script_config
            if not isinstance(script, RunScriptConfig):
                continue
            inner = len(script.env_from)
            for k, item in enumerate(step.secrets()):  # runScriptConfig.envFrom, then the step's
                field = (f"stages[{i}].steps[{j}].runScriptConfig.envFrom[{k}]" if k < inner
                         else f"stages[{i}].steps[{j}].envFrom[{k - inner}]")
                if item.source_name not in known:
                    try:
                        known[item.source_name] = await secret_values(client, project_id, item.source_name)
                    except NotFoundError:
                        known[item.source_name] = None
                values = known[item.source_name]
                if values is None:
                    raise InvalidInputError(f"project {project_id} has no secret {item.source_name!r}",
                                            field_name=f"{field}.sourceName")
                try:
                    resolve(item.source_name, item.source_key, values)
                except KeyError as exc:
                    raise InvalidInputError(str(exc.args[0]), field_name=f"{field}.sourceKey") from None

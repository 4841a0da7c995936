"""Norman's discovery: the schemas Rancher's own clients read before anything else.

`GET /v3` answers with `X-API-Schemas: <base>/v3/schemas`; `/v3/schemas` and
`/v3/projects/{id}/schemas` are collections of Norman schemas, one per type, generated
here from the same pydantic models the OpenAPI document is made of (a type's response
model for its fields, its input model for `create`, `update` and `required`), so the two
cannot disagree. A field the input model has and the response model lacks is a
write-only secret: Norman's `password`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from prefect_pipelines.api import norman, schemas

GLOBAL = "global"
PROJECT = "project"
# Fields every resource has, which Norman does not list among a type's fields.
_ENVELOPE = {"id", "type", "links", "actions"}


@dataclass(frozen=True)
class TypeInfo:
    """One resource type of the API, as Norman describes it."""

    id: str
    plural: str  # the collection's path under its scope
    scope: str  # GLOBAL or PROJECT
    model: type[BaseModel]  # what a GET answers
    input: type[BaseModel] | None = None  # what POST and PUT take
    collection_methods: tuple[str, ...] = ("GET",)
    resource_methods: tuple[str, ...] = ("GET",)
    actions: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # name -> (input, output)
    filters: tuple[str, ...] = ()
    modifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # beside eq, per filter


TYPES = (
    TypeInfo("project", "projects", GLOBAL, schemas.Project, schemas.ProjectCreate,
             ("GET", "POST"), ("GET", "PUT", "DELETE")),
    TypeInfo("projectRoleTemplateBinding", "projectroletemplatebindings", GLOBAL,
             schemas.ProjectRoleTemplateBinding, schemas.BindingIn, ("GET", "POST"),
             ("GET", "DELETE"), filters=("projectId", "userId")),
    TypeInfo("sourceCodeCredential", "sourcecodecredentials", GLOBAL, schemas.SourceCodeCredential,
             None, ("GET",), ("GET", "DELETE"), {"refreshrepos": (None, "sourceCodeCredential")},
             filters=("creatorId",)),
    TypeInfo("sourceCodeRepository", "sourcecoderepositories", GLOBAL, schemas.SourceCodeRepository,
             filters=("creatorId", "sourceCodeCredentialId")),
    TypeInfo("notifier", "notifiers", GLOBAL, schemas.Notifier, schemas.NotifierCreate,
             ("GET", "POST"), ("GET", "PUT", "DELETE"), filters=("clusterId",)),
    TypeInfo("pipeline", "pipelines", PROJECT, schemas.Pipeline, schemas.PipelineIn,
             ("GET", "POST"), ("GET", "PUT", "DELETE"),
             {"run": ("runInput", "pipelineExecution"), "activate": (None, "pipeline"),
              "deactivate": (None, "pipeline"), "clearcache": (None, "pipeline")},
             filters=("name", "state"), modifiers={"name": ("ne", "prefix"), "state": ("ne",)}),
    TypeInfo("pipelineExecution", "pipelineexecutions", PROJECT, schemas.PipelineExecution,
             actions={"stop": (None, "pipelineExecution"), "rerun": (None, "pipelineExecution")},
             filters=("pipelineId", "state")),
    TypeInfo("pipelineExecutionLog", "pipelineexecutionlogs", PROJECT, schemas.PipelineExecutionLog,
             filters=("pipelineExecutionId",)),
    TypeInfo("secret", "secrets", PROJECT, schemas.ProjectSecret, schemas.SecretCreate,
             ("GET", "POST"), ("GET", "PUT", "DELETE")),
    TypeInfo("dockerCredential", "dockercredentials", PROJECT, schemas.DockerCredential,
             schemas.DockerCredentialCreate, ("GET", "POST"), ("GET", "PUT", "DELETE")),
)


def filters_of(type_id: str) -> tuple[str, ...]:
    """The collection filters of a type: what its list takes and its answer's `filters` says."""
    return next(info.filters for info in TYPES if info.id == type_id)


# Action inputs, listed beside the types (Norman lists every type an action names).
INPUTS: dict[str, type[BaseModel]] = {"runInput": schemas.RunInput}


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _norman_type(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, bool, list[Any] | None]:
    """(Norman type, nullable, options) of a JSON schema property."""
    nullable = False
    options = None
    if "anyOf" in prop:
        variants = [item for item in prop["anyOf"] if item.get("type") != "null"]
        nullable = len(variants) < len(prop["anyOf"])
        if len(variants) == 1:
            kind, _, options = _norman_type(variants[0], defs)
            return kind, nullable, options
        if all("const" in item or "enum" in item for item in variants):
            options = [value for item in variants for value in item.get("enum", [item.get("const")])]
            return "enum", nullable, options
        return "json", nullable, None
    if "$ref" in prop:
        return _camel(prop["$ref"].rsplit("/", 1)[-1]), nullable, None
    if "enum" in prop or "const" in prop:
        return "enum", nullable, list(prop.get("enum", [prop.get("const")]))
    kind = prop.get("type")
    if kind == "string":
        return ("date" if prop.get("format") == "date-time" else "string"), nullable, None
    if kind == "integer":
        return "int", nullable, None
    if kind == "number":
        return "float", nullable, None
    if kind == "boolean":
        return "boolean", nullable, None
    if kind == "array":
        inner, _, _ = _norman_type(prop.get("items") or {}, defs)
        return f"array[{inner}]", nullable, None
    if kind == "object":
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            inner, _, _ = _norman_type(extra, defs)
            return f"map[{inner}]", nullable, None
        return "json", nullable, None
    return "json", nullable, None


def _write_only(prop: dict[str, Any]) -> bool:
    """A field its description calls write-only (a secret inside an input type)."""
    return "write-only" in str(prop.get("description", "")).lower()


def _fields(model: type[BaseModel], input_model: type[BaseModel] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resourceFields, the $defs both models reference)."""
    shown = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = dict(shown.get("$defs", {}))
    taken: dict[str, Any] = {}
    required_in: set[str] = set()
    if input_model is not None:
        given = input_model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(given.get("$defs", {}))
        taken = given.get("properties", {})
        required_in = set(given.get("required", []))
    fields: dict[str, Any] = {}
    for name, prop in {**taken, **shown.get("properties", {})}.items():
        if name in _ENVELOPE:
            continue
        kind, nullable, options = _norman_type(prop, defs)
        if name in taken and kind in ("json", "map[json]"):  # the input says what it holds
            kind, _, options = _norman_type(taken[name], defs)
        secret = (name in taken and name not in shown.get("properties", {})) or _write_only(prop)
        entry: dict[str, Any] = {
            "type": ("password" if kind == "string" else "map[password]" if kind == "map[string]"
                     else kind) if secret else kind,
            "nullable": nullable,
            "required": name in required_in,
            "create": name in taken,
            "update": name in taken and name not in ("name", "clusterId", "projectId"),
        }
        if "default" in prop and prop["default"] is not None:
            entry["default"] = prop["default"]
        if options:
            entry["options"] = options
        if prop.get("description"):
            entry["description"] = prop["description"]
        fields[name] = entry
    return fields, defs


def _schema(base: str, schema_id: str, fields: dict[str, Any], *, collection: str | None = None,
            info: TypeInfo | None = None) -> dict[str, Any]:
    links = {"self": f"{base}/{schema_id}"}
    if collection:
        links["collection"] = collection
    body: dict[str, Any] = {
        "id": schema_id, "type": "schema", "links": links,
        "pluralName": info.plural if info else schema_id + "s",
        "collectionMethods": list(info.collection_methods) if info and collection else [],
        "resourceMethods": list(info.resource_methods) if info and collection else [],
        "resourceFields": fields,
        "resourceActions": {name: {key: value for key, value in (("input", act[0]), ("output", act[1]))
                                   if value} for name, act in (info.actions if info else {}).items()},
        "collectionActions": {},
        "collectionFilters": {name: {"modifiers": ["eq", *info.modifiers.get(name, ())]}
                              for name in (info.filters if info else ())},
    }
    return body


def schema_list(request: Request, scope: str, project_id: str = "") -> list[dict[str, Any]]:
    """The schemas of a scope (GLOBAL, or PROJECT with `project_id`): its resource types,
    the action inputs they name, and the embedded types their fields refer to."""
    root = norman.base_url(request)
    prefix = f"{root}/v3/projects/{project_id}" if scope == PROJECT else f"{root}/v3"
    base = f"{prefix}/schemas"
    found: dict[str, dict[str, Any]] = {}
    embedded: dict[str, Any] = {}
    for info in TYPES:
        if info.scope != scope:
            continue
        fields, defs = _fields(info.model, info.input)
        embedded.update(defs)
        found[info.id] = _schema(base, info.id, fields, collection=f"{prefix}/{info.plural}",
                                 info=info)
        for action_input, _ in info.actions.values():
            if action_input and action_input not in found:
                fields, defs = _fields(INPUTS[action_input], None)
                embedded.update(defs)
                found[action_input] = _schema(base, action_input, fields)
    pending = dict(embedded)
    while pending:  # an embedded type's own references
        name, definition = pending.popitem()
        schema_id = _camel(name)
        if schema_id in found:
            continue
        fields = {}
        for field_name, prop in definition.get("properties", {}).items():
            kind, nullable, options = _norman_type(prop, embedded)
            if _write_only(prop) and kind == "string":
                kind = "password"
            fields[field_name] = {"type": kind, "nullable": nullable,
                                  "required": field_name in definition.get("required", []),
                                  "create": True, "update": True, **({"options": options} if options else {})}
            for ref in re.findall(r"#/\$defs/(\w+)", str(prop)):
                if _camel(ref) not in found and ref in embedded:
                    pending.setdefault(ref, embedded[ref])
        found[schema_id] = _schema(base, schema_id, fields)
    return [found[key] for key in sorted(found)]


def schemas_url(request: Request, project_id: str = "") -> str:
    root = norman.base_url(request)
    return f"{root}/v3/projects/{project_id}/schemas" if project_id else f"{root}/v3/schemas"

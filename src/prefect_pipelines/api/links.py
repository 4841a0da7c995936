"""OpenAPI links: which answer's id the next call's path takes, so a client (and stateful
testing) can walk from what it made to what it can do with it.

Made from the paths themselves, not listed by hand: an answer that makes a resource (201
of a POST on a collection, or an action's answer of another type) links to every
operation under that resource's own path (`<collection>/{id}...`), passing the answer's
`id` as that parameter and the request's own path parameters on. A new route under a
collection is linked without touching this file.
"""

from __future__ import annotations

import re
from typing import Any

_PARAM = re.compile(r"\{(\w+)\}")
# Answers that are a resource of another collection than their path's: (method, path,
# status) -> the collection their id belongs to.
_ELSEWHERE: dict[tuple[str, str, str], str] = {
    # `run` answers with the new execution.
    ("post", "/v3/projects/{project_id}/pipelines/{pipeline_id}", "200"):
        "/v3/projects/{project_id}/pipelineexecutions",
}
# Operations under a resource that only some of its kind have: a pipeline that stores its
# definition is viewed and exported, one read from its repository has branches, configs
# and a file (each pipeline's own `links` say which). A link says what any answer can do
# next, so these are left out (the other kind answers 404 ActionNotAvailable).
_SOME_OF_THE_KIND = re.compile(r"/v3/projects/\{project_id\}/pipelines/\{pipeline_id\}/"
                               r"(?:view|export|branches|configs|yaml)")
# Operations that take an execution's id in the query rather than the path.
_BY_QUERY = {"/v3/projects/{project_id}/pipelineexecutions":
             [("get", "/v3/projects/{project_id}/pipelineexecutionlogs", "pipelineExecutionId")]}


def _item_operations(paths: dict[str, Any], collection: str) -> list[tuple[str, str, str, str]]:
    """(method, path, operationId, id parameter) of the operations under `collection/{id}`."""
    found = []
    pattern = re.compile(re.escape(collection) + r"/\{(\w+)\}(?:/.*)?")
    for path, operations in paths.items():
        match = pattern.fullmatch(path)
        if match and not _SOME_OF_THE_KIND.fullmatch(path):
            found.extend((method, path, operation["operationId"], match.group(1))
                         for method, operation in operations.items() if "operationId" in operation)
    return found


def _link(source_path: str, target_path: str, operation_id: str, id_param: str | None,
          query: str | None = None) -> dict[str, Any]:
    passed = set(_PARAM.findall(source_path))
    parameters = {f"path.{name}": f"$request.path.{name}" for name in _PARAM.findall(target_path)
                  if name in passed and name != id_param}
    if id_param:
        parameters[f"path.{id_param}"] = "$response.body#/id"
    if query:
        parameters[f"query.{query}"] = "$response.body#/id"
    return {"operationId": operation_id, "parameters": parameters}


def add_links(schema: dict[str, Any]) -> None:
    """Put the links into an OpenAPI document's responses (in place)."""
    paths: dict[str, Any] = schema.get("paths", {})
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if (method, path, status) in _ELSEWHERE:
                    collection = _ELSEWHERE[(method, path, status)]
                elif method == "post" and status == "201":
                    collection = path
                else:
                    continue
                links = {}
                for _, target, operation_id, param in _item_operations(paths, collection):
                    links[operation_id] = _link(path, target, operation_id, param)
                for target_method, target, query in _BY_QUERY.get(collection, []):
                    operation_id = paths[target][target_method]["operationId"]
                    links[operation_id] = _link(path, target, operation_id, None, query)
                if links:
                    response["links"] = links


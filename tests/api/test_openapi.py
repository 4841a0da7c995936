"""The OpenAPI document against the code it describes (no server needed): the filters
Norman's schemas list are the query parameters the collections take, the shapes it
publishes are the checks' own, and what makes a resource links to what can be done with it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from prefect_pipelines.api import discovery, norman
from prefect_pipelines.api.app import create_app
from prefect_pipelines.errors import InvalidInputError
from prefect_pipelines.services.projects import check_cluster_id, check_project_id
from prefect_pipelines.translator.branches import validate_branch_name
from prefect_pipelines.translator.errors import PipelineSpecError


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return document["paths"][path][method]


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [item for item in operation.get("parameters", []) if item["name"] == name]
    return found


def _pattern(schema: dict[str, Any]) -> re.Pattern[str]:
    pattern = schema.get("pattern") or next(
        item["pattern"] for item in schema.get("anyOf", []) if "pattern" in item)
    assert pattern.startswith("^") and pattern.endswith("$"), pattern  # anchored
    return re.compile(pattern)


def test_every_filter_and_modifier_a_schema_lists_is_a_query_parameter_of_its_list(document) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    for info in discovery.TYPES:
        if not info.filters:
            continue
        prefix = "/v3/projects/{project_id}" if info.scope == discovery.PROJECT else "/v3"
        listing = _operation(document, "get", f"{prefix}/{info.plural}")
        taken = {item["name"] for item in listing.get("parameters", []) if item["in"] == "query"}
        for name in info.filters:
            wanted = {name} | {f"{name}_{modifier}" for modifier in info.modifiers.get(name, ())}
            assert wanted <= taken, (info.id, wanted - taken)
            assert set(info.modifiers.get(name, ())) <= set(norman.MODIFIERS)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize(("value", "valid"), [
    ("local", True), ("c-abc12", True), ("a" * 63, True), ("a" * 64, False), ("Local", False),
    ("a--b", False), ("-a", False), ("", False), ("a:b", False)])
def test_the_cluster_id_the_document_publishes_is_the_check(document, value: str, valid: bool) -> None:  # type: ignore[no-untyped-def]
    schema = _parameter(_operation(document, "get", "/v3/clusters/{cluster_id}/clusterpipelines"),
                        "cluster_id")["schema"]
    published = bool(_pattern(schema).match(value)) and len(value) <= schema.get("maxLength", 10**9)
    try:
        checked = check_cluster_id(value) == value
    except InvalidInputError:
        checked = False
    assert published is checked is valid


@pytest.mark.parametrize(("value", "valid"), [
    ("local:p-abc12", True), ("c-1:p-x", True), ("local", False), ("local:", False),
    ("Local:p-1", False), ("local:p_1", False), ("a:b:c", False)])
def test_the_project_id_the_document_publishes_is_the_check(document, value: str, valid: bool) -> None:  # type: ignore[no-untyped-def]
    schema = _parameter(_operation(document, "get", "/v3/projects/{project_id}"), "project_id")["schema"]
    try:
        checked = check_project_id(value) == value
    except InvalidInputError:
        checked = False
    assert bool(_pattern(schema).match(value)) is checked is valid


@pytest.mark.parametrize("value", ["main", "release/1.0", "feature/x-y_z", "a.b", "", "-x", "/x",
                                   "x/", "x.", "x.lock", "x.lock/y", "a..b", "a@{b", "a//b",
                                   "a/.b", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b",
                                   "a\\b", "a\x7fb", "é", "x" * 255, "x" * 256])
def test_the_branch_the_document_publishes_is_the_check(document, value: str) -> None:  # type: ignore[no-untyped-def]
    operation = _operation(document, "get", "/v3/projects/{project_id}/pipelines/{pipeline_id}/yaml")
    published = bool(_pattern(_parameter(operation, "branch")["schema"]).match(value))
    try:
        checked = value == "" or validate_branch_name(value) == value  # "" is no branch
    except PipelineSpecError:
        checked = False
    assert published is checked


def test_what_makes_a_resource_links_to_its_own_operations(document) -> None:  # type: ignore[no-untyped-def]
    ids = {operation["operationId"] for item in document["paths"].values() for operation in item.values()}
    created = _operation(document, "post", "/v3/projects")["responses"]["201"]["links"]
    pipeline = _operation(document, "get", "/v3/projects/{project_id}/pipelines/{pipeline_id}")
    assert created and set(created) <= ids
    # A project's id goes to every operation under it, its pipelines' creation included.
    create_pipeline = _operation(document, "post", "/v3/projects/{project_id}/pipelines")["operationId"]
    assert created[create_pipeline]["parameters"] == {"path.project_id": "$response.body#/id"}
    # A pipeline's: its own path's project is the request's, its id the answer's.
    made = _operation(document, "post", "/v3/projects/{project_id}/pipelines")["responses"]["201"]["links"]
    assert made[pipeline["operationId"]]["parameters"] == {
        "path.project_id": "$request.path.project_id", "path.pipeline_id": "$response.body#/id"}
    # `run` answers with an execution: its operations, and its logs by query.
    ran = _operation(document, "post", "/v3/projects/{project_id}/pipelines/{pipeline_id}")["responses"]["200"]["links"]
    logs = _operation(document, "get", "/v3/projects/{project_id}/pipelineexecutionlogs")["operationId"]
    assert ran[logs]["parameters"]["query.pipelineExecutionId"] == "$response.body#/id"
    for links in (created, made, ran):
        for name, link in links.items():
            assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name  # OpenAPI's rule for link names
            assert link["operationId"] in ids


def test_a_create_takes_more_than_a_change_where_the_server_does(document) -> None:  # type: ignore[no-untyped-def]
    schemas = document["components"]["schemas"]
    for create, change in (("ProjectCreate", "ProjectIn"), ("SecretCreate", "SecretIn"),
                           ("DockerCredentialCreate", "DockerCredentialIn"),
                           ("NotifierCreate", "NotifierIn")):
        assert "name" in schemas[create]["required"], create
        assert "name" not in schemas[change].get("required", []), change
    post = _operation(document, "post", "/v3/projects")["requestBody"]["content"]
    put = _operation(document, "put", "/v3/projects/{project_id}")["requestBody"]["content"]
    assert post["application/json"]["schema"]["$ref"].endswith("/ProjectCreate")
    assert put["application/json"]["schema"]["$ref"].endswith("/ProjectIn")
    # The YAML body of a pipeline is the JSON's fields, not any string.
    body = _operation(document, "post", "/v3/projects/{project_id}/pipelines")["requestBody"]["content"]
    assert body["application/yaml"]["schema"] == body["application/json"]["schema"]


def test_the_ids_the_api_makes_fit_the_shapes_it_publishes(document) -> None:  # type: ignore[no-untyped-def]
    from prefect_pipelines.vocabulary import execution_name

    execution = execution_name("build-app", 12)
    base = "/v3/projects/{project_id}"
    execution_schema = _parameter(_operation(document, "get", f"{base}/pipelineexecutions/{{execution_id}}"),
                                  "execution_id")["schema"]
    log_schema = _parameter(_operation(document, "get", f"{base}/pipelineexecutionlogs/{{log_id}}"),
                            "log_id")["schema"]
    assert _pattern(execution_schema).match(execution)
    assert _pattern(log_schema).match(f"{execution}-0-1")
    assert not _pattern(execution_schema).match("build-app") and not _pattern(log_schema).match(execution)


def test_no_parameter_or_body_string_the_document_allows_holds_a_nul(document) -> None:  # type: ignore[no-untyped-def]
    """The server refuses a NUL anywhere (no_nul, body.refuse_nul): the document says so."""
    from prefect_pipelines.api.schemas import REQUEST_MODELS

    seen = 0
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                declared = parameter["schema"]
                for variant in [declared, *declared.get("anyOf", [])]:
                    if variant.get("type") == "string" and "enum" not in variant and "const" not in variant:
                        pattern = variant.get("pattern") or declared["pattern"]
                        assert not re.search(pattern, "a\x00b"), (parameter["name"], pattern)
                        seen += 1
    assert seen > 40

    def strings(node: Any, shaped: bool = False) -> list[bool]:
        if isinstance(node, list):
            return [found for item in node for found in strings(item, shaped)]
        if not isinstance(node, dict):
            return []
        shaped = shaped or bool({"pattern", "enum", "const"} & set(node))
        here = [shaped] if node.get("type") == "string" else []
        return here + [found for key, value in node.items() if key not in ("examples", "default")
                       for found in strings(value, shaped if key == "anyOf" else False)]

    components = document["components"]["schemas"]
    reached, pending = set(), list(REQUEST_MODELS)
    while pending:  # the request models and every schema they refer to
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending += re.findall(r"#/components/schemas/(\w+)", str(components[name]))
    found = [ok for name in sorted(reached) for ok in strings(components[name])]
    assert len(found) > 100 and all(found)

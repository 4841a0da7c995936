"""Tokens, and bad input: every error in Norman's shape, a 4xx that says what is wrong."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from prefect_pipelines.settings import get_settings
from tests.support.api import assert_error, create, definition, new_project, script_step

SIMPLE = [script_step("true")]
CLI = [sys.executable, "-m", "prefect_pipelines.cli"]


class TestTokens:
    def test_no_or_bad_token_is_401(self, facade, api) -> None:  # type: ignore[no-untyped-def]
        project = new_project(api)
        url = f"{facade.url}/v3/projects/{project}/pipelines"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer ppt_" + "x" * 43}):
            assert_error(httpx.get(url, headers=headers), 401, code="Unauthorized")

    def test_cli_token_create_and_revoke(self, facade) -> None:  # type: ignore[no-untyped-def]
        made = subprocess.run([*CLI, "token", "create", "--user", "carol"], capture_output=True,
                              text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=facade.url, headers=headers) as carol:
            project = new_project(carol)
            created = carol.post(f"/v3/projects/{project}/pipelines", json=definition("mine", SIMPLE))
            assert created.status_code == 201 and created.json()["creatorId"] == "carol"
            listed = subprocess.run([*CLI, "token", "list", "--user", "carol"], capture_output=True,
                                    text=True, timeout=60)
            assert "carol" in listed.stdout and token not in listed.stdout
            revoked = subprocess.run([*CLI, "token", "revoke", token], capture_output=True,
                                     text=True, timeout=60)
            assert revoked.returncode == 0, revoked.stderr
            # the facade trusts a checked token for TOKEN_CACHE_SECONDS (5 s by default)
            deadline = time.monotonic() + get_settings().token_cache_seconds + 5
            while (answer := carol.get(f"/v3/projects/{project}/pipelines")).status_code == 200:
                assert time.monotonic() < deadline, "a revoked token still works"
                time.sleep(0.2)
            assert_error(answer, 401)
        again = subprocess.run([*CLI, "token", "revoke", token], capture_output=True, text=True,
                               timeout=60)
        assert again.returncode == 2 and "no such token" in again.stderr

    def test_only_a_hash_is_stored(self, facade, tokens) -> None:  # type: ignore[no-untyped-def]
        import asyncio

        from prefect.client.orchestration import get_client

        async def stored() -> list:  # type: ignore[type-arg]
            async with get_client() as client:
                return await client.read_block_documents_by_type("pipelines-api-token", include_secrets=True)

        documents = asyncio.run(stored())
        text = repr([document.data for document in documents])
        assert documents and all(token not in text for token in tokens.values())


BAD_BODIES = [
    # (id, body, status, field)
    ("unknown field", {**definition("p", SIMPLE), "colour": "red"}, 422, "colour"),
    ("wrong type", {**definition("p", SIMPLE), "timeout": "soon"}, 422, "timeout"),
    ("two configs in a step", definition("p", [{**script_step("x"), "publishImageConfig": {}}]), 422, "stages[0].steps[0]"),
    ("no name", {"stages": [{"name": "a", "steps": SIMPLE}]}, 422, "name"),
    ("bad name", definition("Not OK", SIMPLE), 422, "name"),
    ("no stages", {"name": "p"}, 422, "stages"),
    ("not an object", ["stages"], 422, None),
    ("null", None, 422, None),
    ("deep step error", definition("p", [{"runScriptConfig": {"image": "busybox", "isShell": False}}]), 422, "stages[0].steps[0].runScriptConfig"),
]


@pytest.mark.parametrize(("body", "status", "field"), [case[1:] for case in BAD_BODIES],
                         ids=[case[0] for case in BAD_BODIES])
def test_bad_pipeline_bodies(api: httpx.Client, body: object, status: int, field: str | None) -> None:
    project = new_project(api)
    response = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert_error(response, status, field=field)
    assert api.get(f"/v3/projects/{project}/pipelines").json()["data"] == []


class TestOtherBadInput:
    def test_bodies_that_are_not_json_or_yaml(self, api: httpx.Client) -> None:
        url = f"/v3/projects/{new_project(api)}/pipelines"
        assert_error(api.post(url, content=b"{not json", headers={"Content-Type": "application/json"}),
                     422, code="InvalidBodyContent")
        assert_error(api.post(url, content=b"stages: [", headers={"Content-Type": "application/yaml"}), 422)
        assert_error(api.post(url, content=b"<xml/>", headers={"Content-Type": "application/xml"}), 415)
        assert_error(api.post(url, content=b"", headers={"Content-Type": "application/json"}), 422,
                     code="MissingRequired")
        assert_error(api.post(url, content=b"[" * 200_000 + b"]" * 200_000,
                              headers={"Content-Type": "application/json"}), 422)
        assert_error(api.post(url, content=b"a" * (2 << 20), headers={"Content-Type": "application/json"}), 413)

    def test_bad_project_ids_and_paths(self, api: httpx.Client) -> None:
        # A malformed id names no project: 404, as for one the caller holds no role in.
        assert_error(api.get("/v3/projects/not-a-project/pipelines"), 404)
        assert_error(api.get("/v3/projects/C-1:P-1/pipelines"), 404)
        assert_error(api.get("/v3/nothing-here"), 404)
        assert_error(api.patch(f"/v3/projects/{new_project(api)}/pipelines"), 405)

    def test_405_and_options_list_every_method_the_path_serves(self, api: httpx.Client) -> None:
        project = new_project(api)
        for path, methods in [
            (f"/v3/projects/{project}/pipelines/p", "DELETE, GET, OPTIONS, POST, PUT"),
            (f"/v3/projects/{project}/pipelines", "GET, OPTIONS, POST"),
            ("/v3/notifiers/local:n-abcde", "DELETE, GET, OPTIONS, PUT"),
            ("/v3", "GET, OPTIONS"),
        ]:
            refused = api.patch(path)
            body = assert_error(refused, 405, code="MethodNotAllowed")
            assert refused.headers["allow"] == methods, path
            assert "PATCH is not served" in body["message"]
            asked = httpx.options(f"{api.base_url}{path}")  # no token needed to ask
            assert (asked.status_code, asked.headers["allow"]) == (204, methods), path
        assert_error(httpx.options(f"{api.base_url}/v3/nothing-here"), 404)

    def test_an_action_that_takes_no_input_refuses_a_body(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("quiet", [script_step("true")]))
        url = f"/v3/projects/{project}/pipelines/quiet"
        for content, media in [(b"\x8f\x00garbage", "application/json"), (b'{"x": 1}', "application/json"),
                               (b"[]", "application/json"), (b"x: 1", "application/yaml")]:
            assert_error(api.post(url, params={"action": "deactivate"}, content=content,
                                  headers={"Content-Type": media}), 422, code=None)
        assert api.get(url).json()["state"] == "active"  # nothing happened
        assert_error(api.post(url, params={"action": "deactivate"}, content=b'{"x": 1}',
                              headers={"Content-Type": "application/json"}), 422,
                     code="InvalidBodyContent")
        for content in (b"", b"{}", b" {} "):
            done = api.post(url, params={"action": "deactivate"}, content=content,
                            headers={"Content-Type": "application/json"})
            assert done.status_code == 200, done.text
        assert api.post(url, params={"action": "activate"}, content=b"",
                        headers={"Content-Type": "text/plain"}).status_code == 200
        cluster = "/v3/clusters/c-nobody/clusterpipelines/c-nobody"
        assert_error(api.post(cluster, params={"action": "deploy"}, content=b"random bytes",
                              headers={"Content-Type": "application/json"}), 422)

    def test_unknown_query_parameters_and_bad_pages(self, api: httpx.Client) -> None:
        url = f"/v3/projects/{new_project(api)}/pipelines"
        assert_error(api.get(url, params={"colour": "red"}), 422, field="colour")
        assert_error(api.get(url, params={"limit": 0}), 422, field="limit")
        assert_error(api.get(url, params={"limit": "ten"}), 422, field="limit")
        assert_error(api.get(url, params={"marker": "-1"}), 422, field="marker")
        assert_error(api.get(url, params={"state": "sleeping"}), 422, field="state")

    def test_actions_on_a_missing_pipeline_and_bad_run_input(self, api: httpx.Client) -> None:
        project = new_project(api)
        assert_error(api.post(f"/v3/projects/{project}/pipelines/ghost", params={"action": "run"}), 404)
        assert_error(api.delete(f"/v3/projects/{project}/pipelines/ghost"), 404)
        assert_error(api.put(f"/v3/projects/{project}/pipelines/ghost", json=definition("ghost", SIMPLE)), 404)
        clone = {"sourceCodeConfig": {"url": "https://example.com/a.git", "branch": "main|dev"}}
        create(api, project, definition("needs-branch", [clone]))
        url = f"/v3/projects/{project}/pipelines/needs-branch"
        assert_error(api.post(url, params={"action": "run"}), 422, field="branch")
        assert_error(api.post(url, params={"action": "run"}, json={"branch": "feature"}), 422, field="branch")
        assert_error(api.post(url, params={"action": "run"}, json={"branch": 5}), 422, field="branch")
        assert_error(api.post(url, params={"action": "run"}, json={"branch": "main", "x": 1}), 422, field="x")
        assert_error(api.post(url, params={"action": "run"}, json={"branch": "-rf"}), 422, field="branch")
        assert_error(api.post(url), 422, field="action")
        assert api.get(f"/v3/projects/{project}/pipelineexecutions").json()["data"] == []

    def test_openapi_describes_every_route(self, facade) -> None:  # type: ignore[no-untyped-def]
        schema = httpx.get(f"{facade.url}/openapi.json").json()
        paths = schema["paths"]
        for path in ("/v3/projects/{project_id}/pipelines", "/v3/projects/{project_id}/pipelines/{pipeline_id}",
                     "/v3/projects/{project_id}/pipelineexecutions/{execution_id}",
                     "/v3/projects/{project_id}/pipelineexecutionlogs/{log_id}"):
            assert path in paths
        assert "PipelineIn" in schema["components"]["schemas"]
        assert httpx.get(f"{facade.url}/docs").status_code == 200

    def test_every_reference_of_the_openapi_document_resolves(self, facade) -> None:  # type: ignore[no-untyped-def]
        schema = httpx.get(f"{facade.url}/openapi.json").json()
        found: list[str] = []

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    found.append(node["$ref"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(schema)
        components = schema["components"]["schemas"]
        assert found and all(ref.startswith("#/components/schemas/") for ref in found)
        missing = sorted({ref for ref in found if ref.rsplit("/", 1)[1] not in components})
        assert missing == [], f"references to no schema: {missing}"


YAML_BOMB = "name: bomb\nstages:\n" + "".join(
    f"- &{chr(97 + i)} {{name: s{i}, steps: [" + ", ".join([f"*{chr(96 + i)}"] * 10 if i else ["x"] * 10) + "]}\n"
    for i in range(9))


def _chunked(data: bytes, size: int = 1 << 16):  # type: ignore[no-untyped-def]
    for start in range(0, len(data), size):
        yield data[start:start + size]


HOSTILE = [
    # (id, content type, body, status)
    ("yaml alias bomb", "application/yaml", YAML_BOMB.encode(), 422),
    ("yaml nested 100k deep", "application/yaml", b"name: x\nstages: " + b"[" * 100_000 + b"]" * 100_000, 422),
    ("json nested 100k deep", "application/json", b"[" * 100_000 + b"]" * 100_000, 422),
    ("json nested 500 deep", "application/json",
     b'{"name": "p", "stages": ' + b"[" * 500 + b"]" * 500 + b"}", 422),
    ("10 MB of yaml, streamed", "application/yaml", b"name: big\nstages:\n" + b"# padding\n" * 1_000_000, 413),
    ("10 MB of json, declared", "application/json", b'"' + b"a" * 10_000_000 + b'"', 413),
]


@pytest.mark.parametrize(("media", "body", "status"), [case[1:] for case in HOSTILE],
                         ids=[case[0] for case in HOSTILE])
def test_hostile_pipeline_bodies_are_refused_fast(api: httpx.Client, media: str, body: bytes,
                                                  status: int) -> None:
    """Refused with a 4xx that says why, quickly (a generous bound for a shared machine:
    the point is "not exponential, not buffered whole"), and nothing is stored."""
    project = new_project(api)
    # The big YAML comes without a Content-Length: the limit must hold while streaming.
    streamed = _chunked(body) if media == "application/yaml" and len(body) > (1 << 20) else body
    started = time.monotonic()
    response = api.post(f"/v3/projects/{project}/pipelines", content=streamed,
                        headers={"Content-Type": media})
    took = time.monotonic() - started
    assert_error(response, status)
    assert took < 5, took
    assert api.get(f"/v3/projects/{project}/pipelines").json()["data"] == []


def test_a_nul_character_anywhere_is_named_not_sent_on(api: httpx.Client) -> None:
    """PostgreSQL refuses NUL in any text; sent on to Prefect it came back as a server
    error that Prefect's client retried for a minute (schemathesis found it, through a
    `name` filter). Query, path and body each say which part holds it, and nothing is
    stored."""
    project = new_project(api)
    base = f"/v3/projects/{project}/pipelines"
    answer = api.get(base, params={"name": "a\x00b"}, timeout=30)
    assert_error(answer, 422, field="name")
    assert_error(api.get(f"{base}/a%00b", timeout=30), 422, field="pipeline_id")
    step = {"runScriptConfig": {"image": "busybox", "shellScript": "echo a\x00b"}}
    answer = api.post(base, json=definition("nul", [step]), timeout=30)
    assert_error(answer, 422, field="stages[0].steps[0].runScriptConfig.shellScript")
    assert api.get(base).json()["data"] == []
    made = api.post(f"/v3/projects/{project}/secrets", json={"name": "nul", "data": {"K": "a\x00b"}},
                    timeout=30)
    assert_error(made, 422, field="data.K")

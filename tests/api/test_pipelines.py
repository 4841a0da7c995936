"""/v3 pipelines: CRUD, cron triggers, actions, links, and the concurrent run numbering."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client

from prefect_pipelines.vocabulary import deployment_name
from tests.support.api import (
    assert_error,
    create,
    definition,
    new_project,
    run,
    script_step,
    step_log,
    wait_state,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.usefixtures("worker")

SIMPLE = [script_step("echo hello")]


def prefect_deployment(project: str, pipeline: str):  # type: ignore[no-untyped-def]
    async def read():  # type: ignore[no-untyped-def]
        async with get_client() as client:
            return await client.read_deployment_by_name(f"run-pipeline/{deployment_name(project, pipeline)}")

    return asyncio.run(read())


class TestCrud:
    def test_create_read_list_update_delete(self, api: httpx.Client) -> None:
        project = new_project(api)
        body = definition("build", SIMPLE, [script_step("echo two")], timeout=30)
        created = create(api, project, body)
        assert created["id"] == "build" and created["type"] == "pipeline"
        assert created["projectId"] == project and created["creatorId"] == "alice"
        assert created["state"] == "active" and created["nextRun"] == 1
        assert created["lastExecutionId"] is None and created["nextStart"] is None
        assert created["stages"] == body["stages"] and created["timeout"] == 30
        assert "token" not in created and "webhookId" not in created
        self_url = created["links"]["self"]
        assert self_url.endswith(f"/v3/projects/{project}/pipelines/build")
        assert {"update", "remove", "view", "export"} <= set(created["links"])
        assert created["actions"] == {"run": f"{self_url}?action=run",
                                      "deactivate": f"{self_url}?action=deactivate",
                                      "clearcache": f"{self_url}?action=clearcache"}
        # It is a Prefect deployment of run-pipeline, named and tagged by project.
        deployment = prefect_deployment(project, "build")
        assert f"project:{project}" in deployment.tags and "pipeline:build" in deployment.tags

        assert api.get(f"/v3/projects/{project}/pipelines/build").json()["stages"] == body["stages"]
        listed = api.get(f"/v3/projects/{project}/pipelines").json()
        assert listed["type"] == "collection" and listed["resourceType"] == "pipeline"
        assert [p["id"] for p in listed["data"]] == ["build"]

        body["stages"] = [{"name": "only", "steps": [script_step("echo changed")]}]
        updated = api.put(f"/v3/projects/{project}/pipelines/build", json=body)
        assert updated.status_code == 200, updated.text
        assert updated.json()["stages"][0]["name"] == "only"

        assert api.delete(f"/v3/projects/{project}/pipelines/build").status_code == 204
        assert_error(api.get(f"/v3/projects/{project}/pipelines/build"), 404, code="NotFound")
        assert api.get(f"/v3/projects/{project}/pipelines").json()["data"] == []

    def test_names_are_unique_per_project(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("dup", SIMPLE))
        assert_error(api.post(f"/v3/projects/{project}/pipelines", json=definition("dup", SIMPLE)),
                     422, field="name", code="NotUnique")
        create(api, new_project(api), definition("dup", SIMPLE))  # another project: fine

    def test_filters_and_pagination(self, api: httpx.Client) -> None:
        project = new_project(api)
        for name in ("a1", "a2", "a3"):
            create(api, project, definition(name, SIMPLE))
        api.post(f"/v3/projects/{project}/pipelines/a2", params={"action": "deactivate"})
        assert [p["id"] for p in api.get(f"/v3/projects/{project}/pipelines",
                                         params={"name": "a3"}).json()["data"]] == ["a3"]
        assert [p["id"] for p in api.get(f"/v3/projects/{project}/pipelines",
                                         params={"state": "inactive"}).json()["data"]] == ["a2"]
        assert [p["id"] for p in api.get(f"/v3/projects/{project}/pipelines",
                                         params={"state": "active"}).json()["data"]] == ["a1", "a3"]
        first = api.get(f"/v3/projects/{project}/pipelines", params={"limit": 2}).json()
        assert [p["id"] for p in first["data"]] == ["a1", "a2"]
        assert first["pagination"]["total"] == 3 and first["pagination"]["partial"]
        second = api.get(first["pagination"]["next"]).json()
        assert [p["id"] for p in second["data"]] == ["a3"] and second["pagination"]["next"] is None

    def test_rename_through_put_is_refused(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("keep", SIMPLE))
        assert_error(api.put(f"/v3/projects/{project}/pipelines/keep", json=definition("other", SIMPLE)),
                     422, field="name")

    def test_project_in_body_must_match_the_path(self, api: httpx.Client) -> None:
        project = new_project(api)
        body = {**definition("p", SIMPLE), "projectId": "c-x:p-other"}
        assert_error(api.post(f"/v3/projects/{project}/pipelines", json=body), 422, field="projectId")
        body["projectId"] = project
        create(api, project, body)


class TestCron:
    def test_next_start_is_the_next_fire_in_the_timezone(self, api: httpx.Client) -> None:
        project = new_project(api)
        created = create(api, project, definition("nightly", SIMPLE, triggerCronExpression="30 8 * * *",
                                                  triggerCronTimezone="America/New_York"))
        assert created["triggerCronExpression"] == "30 8 * * *"
        assert created["triggerCronTimezone"] == "America/New_York"
        zone = ZoneInfo("America/New_York")
        now = dt.datetime.now(zone)
        fire = dt.datetime.combine(now.date(), dt.time(8, 30), zone)
        if fire <= now:
            fire = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(8, 30), zone)
        expected = fire.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert created["nextStart"] == expected
        # The deployment carries the schedule, and Prefect's scheduler fires at that time.
        deployment = prefect_deployment(project, "nightly")
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("30 8 * * *", "America/New_York")
        first = wait_for(lambda: _first_scheduled_run(deployment.id), timeout=60, interval=1,
                         what="Prefect's scheduler to schedule a run")
        assert first == expected

    def test_deactivate_and_activate_change_next_start(self, api: httpx.Client) -> None:
        project = new_project(api)
        created = create(api, project, definition("cr", SIMPLE, triggerCronExpression="0 */6 * * *",
                                                  triggerCronTimezone="Asia/Kolkata"))
        assert created["nextStart"] is not None
        url = f"/v3/projects/{project}/pipelines/cr"
        paused = api.post(url, params={"action": "deactivate"}).json()
        assert paused["state"] == "inactive" and paused["nextStart"] is None
        assert "activate" in paused["actions"] and "deactivate" not in paused["actions"]
        assert prefect_deployment(project, "cr").paused is True
        resumed = api.post(url, params={"action": "activate"}).json()
        assert resumed["state"] == "active" and resumed["nextStart"] == created["nextStart"]

    def test_removing_the_expression_removes_the_schedule(self, api: httpx.Client) -> None:
        project = new_project(api)
        body = definition("cr2", SIMPLE, triggerCronExpression="15 3 * * 1", triggerCronTimezone="Europe/Berlin")
        create(api, project, body)
        body.pop("triggerCronExpression")
        body.pop("triggerCronTimezone")
        updated = api.put(f"/v3/projects/{project}/pipelines/cr2", json=body).json()
        assert updated["triggerCronExpression"] is None and updated["nextStart"] is None
        assert prefect_deployment(project, "cr2").schedules == []

    @pytest.mark.parametrize(("extra", "field"), [
        ({"triggerCronExpression": "0 3 * * *", "triggerCronTimezone": "Moon/Base"}, "triggerCronTimezone"),
        ({"triggerCronExpression": "0 3 * *"}, "triggerCronExpression"),
        ({"triggerCronExpression": "* * * * *"}, "triggerCronExpression"),
        ({"triggerCronExpression": "*/3 * * * *"}, "triggerCronExpression"),
    ])
    def test_bad_cron_is_422_naming_the_field(self, api: httpx.Client, extra: dict, field: str) -> None:  # type: ignore[type-arg]
        project = new_project(api)
        assert_error(api.post(f"/v3/projects/{project}/pipelines", json=definition("c", SIMPLE, **extra)),
                     422, field=field)
        assert api.get(f"/v3/projects/{project}/pipelines").json()["data"] == []  # nothing half-saved


def _first_scheduled_run(deployment_id) -> str | None:  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():  # type: ignore[no-untyped-def]
        async with get_client() as client:
            return await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)

    runs = asyncio.run(read())
    if not runs:
        return None
    return runs[0].expected_start_time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class TestActionsAndLinks:
    def test_run_returns_the_new_execution(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("r", [script_step("echo run-me")]))
        execution = run(api, project, "r")
        assert execution["type"] == "pipelineExecution" and execution["id"] == "r-1"
        assert execution["run"] == 1 and execution["triggeredBy"] == "user"
        assert execution["triggerUserId"] == "alice" and execution["pipelineId"] == "r"
        assert execution["state"] in ("waiting", "running", "success")
        finished = wait_state(api, project, "r-1")
        assert finished["state"] == "success"
        pipeline = api.get(f"/v3/projects/{project}/pipelines/r").json()
        assert pipeline["nextRun"] == 2 and pipeline["lastExecutionId"] == "r-1"
        assert pipeline["lastRunState"] == "success" and pipeline["lastStarted"]

    def test_an_inactive_pipeline_still_runs_by_hand(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("off", SIMPLE))
        api.post(f"/v3/projects/{project}/pipelines/off", params={"action": "deactivate"})
        run(api, project, "off")
        assert wait_state(api, project, "off-1")["state"] == "success"

    def test_view_and_export_then_import(self, api: httpx.Client) -> None:
        project = new_project(api)
        body = definition("exp", [script_step("echo a", env=["K=V"])], [script_step("echo b")],
                          timeout=15, triggerCronExpression="0 2 * * *", triggerCronTimezone="Europe/Paris")
        original = create(api, project, body)
        view = api.get(f"/v3/projects/{project}/pipelines/exp/view")
        assert view.status_code == 200 and view.headers["content-type"].startswith("application/yaml")
        assert yaml.safe_load(view.text) == {k: v for k, v in body.items()}
        export = api.get(f"/v3/projects/{project}/pipelines/exp/export")
        assert export.headers["content-disposition"] == 'attachment; filename="exp.yaml"'
        assert export.text == view.text
        assert api.delete(f"/v3/projects/{project}/pipelines/exp").status_code == 204
        again = api.post(f"/v3/projects/{project}/pipelines", content=export.text,
                         headers={"Content-Type": "application/yaml"})
        assert again.status_code == 201, again.text
        fields = ("stages", "timeout", "triggerCronExpression", "triggerCronTimezone", "nextStart", "name")
        assert {k: again.json()[k] for k in fields} == {k: original[k] for k in fields}

    def test_twenty_concurrent_runs_get_numbers_one_to_twenty(self, api: httpx.Client) -> None:
        project = new_project(api)
        create(api, project, definition("busy", [script_step("true")]))
        url = f"/v3/projects/{project}/pipelines/busy"
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(lambda _: api.post(url, params={"action": "run"}), range(20)))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        numbers = sorted(r.json()["run"] for r in responses)
        assert numbers == list(range(1, 21))
        assert sorted(r.json()["id"] for r in responses) == sorted(f"busy-{n}" for n in range(1, 21))
        assert api.get(url).json()["nextRun"] == 21
        for n in range(1, 21):  # let them finish before the next test
            wait_state(api, project, f"busy-{n}", timeout=180)


def test_prefect_yaml_deploys_a_pipeline_the_api_shows(api: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "prefect.yaml", tmp_path / "prefect.yaml")
    result = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=180,
                            env={**os.environ})
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"][0]
    project = spec["parameters"]["project_id"]
    pipeline_id = spec["parameters"]["pipeline_id"]
    shown = api.get(f"/v3/projects/{project}/pipelines/{pipeline_id}")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["triggerCronExpression"] == spec["schedules"][0]["cron"]
    assert body["triggerCronTimezone"] == spec["schedules"][0]["timezone"]
    assert body["nextStart"] is not None
    assert body["stages"] == spec["parameters"]["pipeline"]["stages"]


class TestRunVariables:
    def test_run_variables_reach_every_step_are_recorded_and_rerun(self, api: httpx.Client) -> None:
        project = new_project(api)
        script = 'echo "greeting=$GREETING mode=$MODE exec=$CICD_EXECUTION_ID"'
        create(api, project, definition("vars", [script_step(script, env=["MODE=pipeline", "KEEP=1"])],
                                        [script_step('echo "again=$GREETING"')]))
        # A value is data, never shell: quotes, $(...) and ; reach the step as written.
        variables = {"GREETING": "hi $(id -u); 'x'", "MODE": "run"}
        response = api.post(f"/v3/projects/{project}/pipelines/vars", params={"action": "run"},
                            json={"env": variables})
        assert response.status_code == 200, response.text
        done = wait_state(api, project, response.json()["id"])
        assert done["state"] == "success", done
        assert done["env"] == variables
        log = step_log(api, project, done["id"], 0, 0)
        assert "greeting=hi $(id -u); 'x' mode=run exec=vars-1" in log  # over the pipeline's env
        assert "again=hi $(id -u); 'x'" in step_log(api, project, done["id"], 1, 0)
        rerun = api.post(f"/v3/projects/{project}/pipelineexecutions/{done['id']}", params={"action": "rerun"})
        assert rerun.status_code == 200, rerun.text
        again = wait_state(api, project, rerun.json()["id"])
        assert again["env"] == variables and "mode=run" in step_log(api, project, again["id"], 0, 0)
        plain = wait_state(api, project, run(api, project, "vars")["id"])
        assert plain["env"] == {} and "mode=pipeline" in step_log(api, project, plain["id"], 0, 0)

    @pytest.mark.parametrize(("env", "field"), [
        ({"1X": "a"}, "env.1X"), ({"CICD_GIT_BRANCH": "main"}, "env.CICD_GIT_BRANCH"),
        ({"A": 1}, "env.A"), ("A=1", "env"), ({"A B": "x"}, "env.A B"),
    ])
    def test_bad_run_variables_are_refused_naming_them(self, api: httpx.Client, env: object, field: str) -> None:
        project = new_project(api)
        create(api, project, definition("vars", SIMPLE))
        response = api.post(f"/v3/projects/{project}/pipelines/vars", params={"action": "run"}, json={"env": env})
        assert_error(response, 422, field=field)
        assert api.get(f"/v3/projects/{project}/pipelineexecutions").json()["data"] == []

    def test_the_prefect_ui_run_form_asks_for_branch_and_env(self, api: httpx.Client) -> None:
        """Prefect's "Custom run" form is drawn from the deployment's parameter schema."""
        project = new_project(api)
        create(api, project, definition("form", SIMPLE))
        schema = prefect_deployment(project, "form").parameter_openapi_schema
        assert schema["properties"]["env"]["description"].startswith("run variables, NAME -> value")
        assert "branch to build" in schema["properties"]["branch"]["description"]


def test_a_badge_shows_the_last_finished_run_and_is_public_only_when_asked(api, facade) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    create(api, project, definition("badged", [script_step('[ "$CICD_GIT_BRANCH" != bad ]')],
                                    branch=["*"]))
    anonymous = httpx.Client(base_url=facade.url, timeout=30)
    url = f"/v3/projects/{project}/pipelines/badged/badge.svg"

    def badge(client: httpx.Client = api, **params: str) -> httpx.Response:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("image/svg+xml")
        return answer

    first = badge()
    assert "build: unknown" in first.text and first.headers["cache-control"] == "private, max-age=30"
    assert_error(anonymous.get(url), 401)
    # A pipeline that does not exist answers a stranger without a token the same.
    assert anonymous.get(f"/v3/projects/{project}/pipelines/ghost/badge.svg").status_code == 401
    assert anonymous.get("/v3/projects/nope/pipelines/ghost/badge.svg").status_code == 401
    wait_state(api, project, run(api, project, "badged", branch="main")["id"])
    passed = badge()
    assert "build: success" in passed.text and "#4c1" in passed.text
    # Unchanged: the client's copy is current.
    again = api.get(url, headers={"If-None-Match": passed.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == passed.headers["etag"]
    wait_state(api, project, run(api, project, "badged", branch="bad")["id"])
    assert "build: failed" in badge().text
    assert "build: success" in badge(branch="main").text
    assert "build: unknown" in badge(branch="dev").text
    assert_error(api.get(url, params={"branch": "a..b"}), 422, "branch")
    # Made public: served without a token, for anyone to cache.
    body = api.get(f"/v3/projects/{project}/pipelines/badged").json()
    changed = api.put(f"/v3/projects/{project}/pipelines/badged", json={
        "name": "badged", "stages": body["stages"], "branch": ["*"], "publicBadge": True})
    assert changed.status_code == 200 and changed.json()["publicBadge"] is True, changed.text
    public = badge(anonymous, branch="main")
    assert "build: success" in public.text and public.headers["cache-control"] == "public, max-age=30"
    anonymous.close()


def test_a_pipeline_shows_its_caches_and_clearcache_forgets_them(api, docker_client) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    create(api, project, definition("cached", [script_step(
        "cat /root/.m2/seen 2>/dev/null || echo none; head -c 3000 /dev/zero > /root/.m2/seen")],
        cache=[{"path": "/root/.m2"}]))
    first = wait_state(api, project, run(api, project, "cached")["id"])
    assert first["state"] == "success"
    shown = api.get(f"/v3/projects/{project}/pipelines/cached").json()
    assert shown["cache"] == [{"path": "/root/.m2"}]
    assert [(item["path"], item["size"], item["execution"]) for item in shown["caches"]] == [
        ("/root/.m2", 3000, first["id"])]
    assert shown["cacheSize"] == 3000 and "clearcache" in shown["actions"]
    second = wait_state(api, project, run(api, project, "cached")["id"])
    assert step_log(api, project, second["id"], 0, 0).strip() != "none"
    cleared = api.post(f"/v3/projects/{project}/pipelines/cached", params={"action": "clearcache"})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["caches"] == [] and cleared.json()["cacheSize"] == 0
    third = wait_state(api, project, run(api, project, "cached")["id"])
    assert step_log(api, project, third["id"], 0, 0).strip() == "none"
    # The cleared saves are gone from the engine once a run meets them: one save is left.
    volumes = docker_client.volumes.list(filters={"label": "io.prefect-pipelines.project=" + project})
    assert len(volumes) == 1, [volume.name for volume in volumes]


def test_collections_sort_and_say_their_filters_as_norman_does(api) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    for name in ("bravo", "alpha", "charlie"):
        create(api, project, definition(name, SIMPLE))
    url = f"/v3/projects/{project}/pipelines"
    listed = api.get(url).json()
    assert [item["name"] for item in listed["data"]] == ["alpha", "bravo", "charlie"]
    assert listed["sort"]["name"] == "name" and listed["sort"]["order"] == "asc"
    assert listed["filters"] == {"name": None, "state": None}
    reverse = api.get(listed["sort"]["reverse"]).json()
    assert [item["name"] for item in reverse["data"]] == ["charlie", "bravo", "alpha"]
    paged = api.get(url, params={"sort": "name", "order": "desc", "limit": 2}).json()
    assert [item["name"] for item in paged["data"]] == ["charlie", "bravo"]
    assert [item["name"] for item in api.get(paged["pagination"]["next"]).json()["data"]] == ["alpha"]
    named = api.get(url, params={"name": "bravo"}).json()
    assert named["filters"]["name"] == [{"modifier": "eq", "value": "bravo"}]
    assert set(named["sortLinks"]) == {"name"}
    assert_error(api.get(url, params={"sort": "colour"}), 422, field="sort")
    assert_error(api.get(url, params={"order": "sideways"}), 422, field="order")
    first = wait_state(api, project, run(api, project, "alpha")["id"])
    second = wait_state(api, project, run(api, project, "alpha")["id"])
    executions = f"/v3/projects/{project}/pipelineexecutions"
    newest = [item["id"] for item in api.get(executions, params={"pipelineId": "alpha"}).json()["data"]]
    oldest = [item["id"] for item in api.get(executions, params={"pipelineId": "alpha", "order": "asc"}).json()["data"]]
    assert newest == [second["id"], first["id"]] and oldest == [first["id"], second["id"]]


def test_pipelines_take_normans_ne_and_prefix_modifiers(api) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    for name in ("alpha", "alpine", "bravo", "alpaca-2"):
        create(api, project, definition(name, SIMPLE))
    url = f"/v3/projects/{project}/pipelines"
    assert api.post(f"{url}/bravo", params={"action": "deactivate"}).status_code == 200

    def names(**params: str) -> list[str]:
        answer = api.get(url, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["pagination"]["total"] == len(body["data"])
        return [item["name"] for item in body["data"]]

    assert names(name_prefix="alp") == ["alpaca-2", "alpha", "alpine"]
    assert names(name_prefix="alph") == ["alpha"]
    assert names(name_prefix="") == ["alpaca-2", "alpha", "alpine", "bravo"]
    # Prefect's ILIKE is neither case-blind nor wild here: `_` and `%` match themselves.
    assert names(name_prefix="ALP") == [] and names(name_prefix="al_") == [] and names(name_prefix="%") == []
    assert names(name_ne="alpha") == ["alpaca-2", "alpine", "bravo"]
    assert names(name_ne="nothing-so-named") == ["alpaca-2", "alpha", "alpine", "bravo"]
    assert names(name_prefix="alp", name_ne="alpine") == ["alpaca-2", "alpha"]
    assert names(state_ne="active") == ["bravo"]
    assert names(state_ne="inactive") == ["alpaca-2", "alpha", "alpine"]
    assert names(state="active", state_ne="active") == []
    answer = api.get(url, params={"name_prefix": "alp", "name_ne": "alpine", "limit": 1}).json()
    assert answer["filters"]["name"] == [{"modifier": "ne", "value": "alpine"},
                                         {"modifier": "prefix", "value": "alp"}]
    assert answer["filters"]["state"] is None
    assert [item["name"] for item in api.get(answer["pagination"]["next"]).json()["data"]] == ["alpha"]
    schema = api.get(f"/v3/projects/{project}/schemas/pipeline").json()
    assert schema["collectionFilters"] == {"name": {"modifiers": ["eq", "ne", "prefix"]},
                                           "state": {"modifiers": ["eq", "ne"]}}
    assert_error(api.get(url, params={"name_like": "a"}), 422, field="name_like")


@pytest.mark.parametrize("path", ["/v3/notifiers", "/v3/projectroletemplatebindings",
                                  "/v3/sourcecodecredentials", "/v3/sourcecoderepositories"])
def test_each_collection_says_the_filters_its_schema_lists(api, path: str) -> None:  # type: ignore[no-untyped-def]
    body = api.get(path).json()
    schema = api.get(f"/v3/schemas/{body['resourceType']}")
    assert schema.status_code == 200, schema.text
    assert set(body["filters"]) == set(schema.json()["collectionFilters"])

"""Every route, called as every role, answers as the access table (api/access.py) says.

A new route without a rule stops the facade from starting; a route with a rule but no
probe here fails `test_every_route_is_probed`. Requests aim at objects that do not exist
(or bodies that are refused) wherever the call is allowed, so that an allowed call changes
nothing; what tells allowed from refused is the refusal itself: 401 without a token, 403
for a role too weak (or not an admin), 404 "project ... not found" for no role at all.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from prefect_pipelines.api.access import RULES, Need, routes_of
from prefect_pipelines.services.projects import at_least
from prefect_pipelines.settings import get_settings
from prefect_pipelines.vocabulary import ENTRYPOINT
from tests.support.api import create, definition, new_project, run, script_step, wait_state

pytestmark = pytest.mark.usefixtures("worker")
ROLES = ("anonymous", "stranger", "read-only", "project-member", "project-owner", "admin")


@dataclass
class Probe:
    url: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None


@pytest.fixture(scope="module")
def world(facade, api):  # type: ignore[no-untyped-def]
    """A project of `owner` with a member, a reader, a pipeline and a finished run; a
    stranger (a token, no role) and an admin."""
    suffix = uuid.uuid4().hex[:6]
    users = {role: f"acc-{role}-{suffix}" for role in ROLES[1:]}
    tokens = {role: facade.create_token(user, admin=(role == "admin")) for role, user in users.items()}
    clients = {role: httpx.Client(base_url=facade.url, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})
               for role, token in tokens.items()}
    clients["anonymous"] = httpx.Client(base_url=facade.url, timeout=60)
    owner = clients["project-owner"]
    project = new_project(owner, "c-acc")
    for role in ("read-only", "project-member"):
        granted = owner.post("/v3/projectroletemplatebindings", json={
            "projectId": project, "userId": users[role], "roleTemplateId": role})
        assert granted.status_code == 201, granted.text
    create(owner, project, definition("p", [script_step("echo hi")]))
    execution = run(owner, project, "p")["id"]
    assert wait_state(owner, project, execution)["state"] == "success"
    member_binding = f"{project}:" + next(
        b["id"] for b in owner.get("/v3/projectroletemplatebindings", params={"projectId": project}).json()["data"]
        if b["userId"] == users["project-member"]).rpartition(":")[2]
    yield {"project": project, "users": users, "clients": clients, "execution": execution,
           "binding": member_binding, "facade": facade, "url": facade.url}
    for client in clients.values():
        client.close()


def probes(world: dict[str, Any]) -> dict[tuple[str, str], list[Probe]]:
    """For each route, the calls made (one per action where the rule names actions)."""
    project = world["project"]
    ghost_binding = f"{project}:{'0' * 16}"
    base = f"/v3/projects/{project}"
    cluster = "/v3/clusters/c-acc-none/clusterpipelines"
    return {
        ("GET", "/v3"): [Probe("/v3")],
        ("GET", "/healthz"): [Probe("/healthz")],
        ("POST", "/hooks"): [Probe("/hooks", {"pipelineId": f"{project}:ghost"}, {})],
        ("GET", "/v3/projects"): [Probe("/v3/projects")],
        ("POST", "/v3/projects"): [Probe("/v3/projects", json={"clusterId": "c-acc"})],  # no name: 422
        ("GET", "/v3/projects/{project_id}"): [Probe(base)],
        ("PUT", "/v3/projects/{project_id}"): [Probe(base, json={"name": ""})],  # 422
        ("DELETE", "/v3/projects/{project_id}"): [Probe(base)],  # holds a pipeline: 409
        ("GET", "/v3/projects/{project_id}/pipelines"): [Probe(f"{base}/pipelines")],
        ("POST", "/v3/projects/{project_id}/pipelines"): [Probe(f"{base}/pipelines", json={})],
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}"): [Probe(f"{base}/pipelines/p")],
        ("PUT", "/v3/projects/{project_id}/pipelines/{pipeline_id}"): [
            Probe(f"{base}/pipelines/ghost", json=definition("ghost", [script_step("true")]))],
        ("DELETE", "/v3/projects/{project_id}/pipelines/{pipeline_id}"): [Probe(f"{base}/pipelines/ghost")],
        ("POST", "/v3/projects/{project_id}/pipelines/{pipeline_id}"): [
            Probe(f"{base}/pipelines/ghost", {"action": action})
            for action in ("run", "activate", "deactivate", "clearcache")],
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/view"): [Probe(f"{base}/pipelines/p/view")],
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/export"): [Probe(f"{base}/pipelines/p/export")],
        # `p`'s badge is not public: without a token it is refused as any project read
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/badge.svg"): [
            Probe(f"{base}/pipelines/p/badge.svg")],
        # `p` stores its definition: these answer 404 ActionNotAvailable to whoever may call them
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/branches"): [Probe(f"{base}/pipelines/p/branches")],
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/configs"): [Probe(f"{base}/pipelines/p/configs")],
        ("GET", "/v3/projects/{project_id}/pipelines/{pipeline_id}/yaml"): [
            Probe(f"{base}/pipelines/p/yaml", {"branch": "main"})],
        ("PUT", "/v3/projects/{project_id}/pipelines/{pipeline_id}/yaml"): [
            Probe(f"{base}/pipelines/p/yaml", {"branch": "main"})],
        ("GET", "/v3/projects/{project_id}/pipelineexecutions"): [Probe(f"{base}/pipelineexecutions")],
        ("GET", "/v3/projects/{project_id}/pipelineexecutions/{execution_id}"): [
            Probe(f"{base}/pipelineexecutions/{world['execution']}")],
        ("POST", "/v3/projects/{project_id}/pipelineexecutions/{execution_id}"): [
            Probe(f"{base}/pipelineexecutions/ghost-1", {"action": action}) for action in ("stop", "rerun")],
        ("GET", "/v3/projects/{project_id}/pipelineexecutionlogs"): [
            Probe(f"{base}/pipelineexecutionlogs", {"pipelineExecutionId": world["execution"]})],
        ("GET", "/v3/projects/{project_id}/pipelineexecutionlogs/{log_id}"): [
            Probe(f"{base}/pipelineexecutionlogs/{world['execution']}-0-0")],
        ("GET", "/v3/projects/{project_id}/secrets"): [Probe(f"{base}/secrets")],
        ("POST", "/v3/projects/{project_id}/secrets"): [Probe(f"{base}/secrets", json={"name": "x"})],
        ("GET", "/v3/projects/{project_id}/secrets/{name}"): [Probe(f"{base}/secrets/ghost")],
        ("PUT", "/v3/projects/{project_id}/secrets/{name}"): [
            Probe(f"{base}/secrets/ghost", json={"data": {"K": "v"}})],
        ("DELETE", "/v3/projects/{project_id}/secrets/{name}"): [Probe(f"{base}/secrets/ghost")],
        ("GET", "/v3/projects/{project_id}/dockercredentials"): [Probe(f"{base}/dockercredentials")],
        ("POST", "/v3/projects/{project_id}/dockercredentials"): [
            Probe(f"{base}/dockercredentials", json={"name": "x"})],  # no registries: 422
        ("GET", "/v3/projects/{project_id}/dockercredentials/{name}"): [Probe(f"{base}/dockercredentials/ghost")],
        ("PUT", "/v3/projects/{project_id}/dockercredentials/{name}"): [Probe(
            f"{base}/dockercredentials/ghost", json={"registries": {"r.example": {"username": "u"}}})],
        ("DELETE", "/v3/projects/{project_id}/dockercredentials/{name}"): [
            Probe(f"{base}/dockercredentials/ghost")],
        ("GET", "/v3/projectroletemplatebindings"): [Probe("/v3/projectroletemplatebindings")],
        ("POST", "/v3/projectroletemplatebindings"): [Probe("/v3/projectroletemplatebindings", json={
            "projectId": project, "userId": world["users"]["project-member"], "roleTemplateId": "read-only"})],
        ("GET", "/v3/projectroletemplatebindings/{binding_id}"): [
            Probe(f"/v3/projectroletemplatebindings/{world['binding']}")],
        ("DELETE", "/v3/projectroletemplatebindings/{binding_id}"): [
            Probe(f"/v3/projectroletemplatebindings/{ghost_binding}")],
        ("GET", "/v3/clusters/{cluster_id}/clusterpipelines"): [Probe(cluster)],
        ("POST", "/v3/clusters/{cluster_id}/clusterpipelines"): [Probe(cluster, json={})],
        ("GET", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): [Probe(f"{cluster}/c-acc-none")],
        ("PUT", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): [
            Probe(f"{cluster}/c-acc-none", json={})],
        ("POST", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): [
            Probe(f"{cluster}/c-acc-none", {"action": action}, {})
            for action in ("authapp", "authuser", "deploy", "destroy", "revokeapp")],
        ("GET", "/v3/schemas"): [Probe("/v3/schemas")],
        ("GET", "/v3/schemas/{schema_id}"): [Probe("/v3/schemas/project")],
        ("GET", "/v3/projects/{project_id}/schemas"): [Probe(f"{base}/schemas")],
        ("GET", "/v3/projects/{project_id}/schemas/{schema_id}"): [Probe(f"{base}/schemas/pipeline")],
        ("GET", "/v3/notifiers"): [Probe("/v3/notifiers")],
        ("POST", "/v3/notifiers"): [Probe("/v3/notifiers", json={"clusterId": "c-acc"})],  # no name: 422
        ("GET", "/v3/notifiers/{notifier_id}"): [Probe("/v3/notifiers/c-acc:n-ghost")],  # 404
        ("PUT", "/v3/notifiers/{notifier_id}"): [
            Probe("/v3/notifiers/c-acc:n-ghost", json={"webhookConfig": {"url": "http://127.0.0.1:9/"}})],
        ("DELETE", "/v3/notifiers/{notifier_id}"): [Probe("/v3/notifiers/c-acc:n-ghost")],
        ("GET", "/v3/sourcecodecredentials"): [Probe("/v3/sourcecodecredentials")],
        ("GET", "/v3/sourcecodecredentials/{credential_id}"): [Probe("/v3/sourcecodecredentials/ghost")],
        ("DELETE", "/v3/sourcecodecredentials/{credential_id}"): [Probe("/v3/sourcecodecredentials/ghost")],
        ("POST", "/v3/sourcecodecredentials/{credential_id}"): [
            Probe("/v3/sourcecodecredentials/ghost", {"action": "refreshrepos"})],
        ("GET", "/v3/sourcecoderepositories"): [Probe("/v3/sourcecoderepositories")],
        ("GET", "/v3/sourcecoderepositories/{repository_id}"): [Probe("/v3/sourcecoderepositories/ghost")],
    }


def allowed(role: str, need: Need) -> bool:
    if need is Need.ANYONE:
        return True
    if role == "anonymous":
        return False
    if role == "admin" or need is Need.USER:
        return True
    if need is Need.ADMIN:
        return False
    return at_least(None if role == "stranger" else role, need.value)


def refusal(role: str, need: Need) -> tuple[int, str]:
    """The status a refused call answers, and a word its message holds."""
    if role == "anonymous":
        return 401, "Bearer"
    if need in (Need.READ, Need.MEMBER, Need.OWNER) and role == "stranger":
        return 404, "project "
    return 403, ""


def test_the_table_follows_the_role_table() -> None:
    """The README's role table, as an oracle for api/access.py: under a project, reading
    needs read-only, changing needs member; the project itself and its bindings are
    changed by owners; a cluster's GitHub app and notifiers by admins."""
    for (method, path), rule in RULES.items():
        needs = {rule.need, *rule.actions.values()}
        if path.startswith(("/v3/projects/{project_id}/secrets", "/v3/projects/{project_id}/dockercredentials")):
            assert needs == {Need.OWNER}, (method, path)  # read-only reads no secret, not even its keys
        elif path.startswith("/v3/projects/{project_id}"):
            if method == "GET":
                assert needs == {Need.READ}, (method, path)
            elif path == "/v3/projects/{project_id}":
                assert needs == {Need.OWNER}, (method, path)
            else:
                assert needs == {Need.MEMBER}, (method, path)
        elif path.startswith("/v3/projectroletemplatebindings"):
            assert needs == ({Need.READ} if method == "GET" and "{" in path else
                             {Need.USER} if method == "GET" else {Need.OWNER}), (method, path)
        elif path.startswith("/v3/clusters/"):
            if method == "GET":
                assert needs == {Need.USER}, (method, path)
            elif rule.actions:  # only linking one's own account is for anyone
                assert rule.actions == {"authuser": Need.USER, "authapp": Need.ADMIN, "deploy": Need.ADMIN,
                                        "destroy": Need.ADMIN, "revokeapp": Need.ADMIN}, path
                assert rule.need is Need.ADMIN, path
            else:
                assert needs == {Need.ADMIN}, (method, path)
        elif path.startswith("/v3/notifiers"):  # admins make them, anyone names them
            assert needs == ({Need.USER} if method == "GET" else {Need.ADMIN}), (method, path)
        elif path in ("/v3", "/healthz", "/hooks"):
            assert needs == {Need.ANYONE}, (method, path)
        else:  # a user's own projects list, credentials and repositories
            assert needs == {Need.USER}, (method, path)
    assert RULES[("POST", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}")].actions["authuser"] is Need.USER


def test_every_route_is_probed(facade, world) -> None:  # type: ignore[no-untyped-def]
    routes = set(routes_of(facade.app))
    assert routes <= set(RULES), sorted(routes - set(RULES))
    assert routes == set(probes(world)), sorted(routes ^ set(probes(world)))


@pytest.mark.parametrize("role", ROLES)
def test_every_route_answers_each_role_as_the_table_says(world, role: str) -> None:  # type: ignore[no-untyped-def]
    client: httpx.Client = world["clients"][role]
    wrong = []
    for (method, path), calls in probes(world).items():
        for probe in calls:
            need = RULES[(method, path)].need_for(probe.params.get("action"))
            answer = client.request(method, probe.url, params=probe.params, json=probe.json)
            message = answer.json().get("message", "") if answer.headers.get(
                "content-type", "").startswith("application/json") and isinstance(answer.json(), dict) else ""
            if allowed(role, need):
                refused = answer.status_code in (401, 403) or (
                    answer.status_code == 404 and message.startswith("project "))
                if refused and not (path == "/hooks" and answer.status_code == 401):
                    wrong.append(f"{method} {probe.url} {probe.params}: allowed for {role} ({need.value}) "
                                 f"but answered {answer.status_code} {message}")
                assert answer.status_code < 500, (method, probe.url, answer.text)
            else:
                status, word = refusal(role, need)
                if answer.status_code != status or word not in message:
                    wrong.append(f"{method} {probe.url} {probe.params}: refused to {role} ({need.value}) "
                                 f"should be {status}, answered {answer.status_code} {message}")
    assert not wrong, "\n".join(wrong)


def test_projects_and_bindings(world, facade) -> None:  # type: ignore[no-untyped-def]
    clients, project, users = world["clients"], world["project"], world["users"]
    owner, member, reader = clients["project-owner"], clients["project-member"], clients["read-only"]
    stranger, admin = clients["stranger"], clients["admin"]
    # Each lists the projects they hold a role in; the admin sees every one.
    for client in (owner, member, reader, admin):
        assert project in [p["id"] for p in client.get("/v3/projects").json()["data"]]
    assert project not in [p["id"] for p in stranger.get("/v3/projects").json()["data"]]
    shown = owner.get(f"/v3/projects/{project}").json()
    assert shown["type"] == "project" and shown["clusterId"] == "c-acc" and shown["creatorId"] == users["project-owner"]
    assert set(shown["links"]) >= {"pipelines", "pipelineexecutions", "secrets",
                                   "projectroletemplatebindings"}
    # The id is the server's: <cluster>:p-<5 lowercase letters or digits>.
    made = stranger.post("/v3/projects", json={"clusterId": "c-acc", "name": "mine"}).json()
    assert made["id"].startswith("c-acc:p-") and len(made["id"]) == len("c-acc:p-") + 5
    # Members see each other's pipelines; readers run nothing.
    assert [p["id"] for p in reader.get(f"/v3/projects/{project}/pipelines").json()["data"]] == ["p"]
    assert reader.post(f"/v3/projects/{project}/pipelines/p", params={"action": "run"}).status_code == 403
    # The last owner stays; a second owner can then remove the first.
    bindings = owner.get("/v3/projectroletemplatebindings", params={"projectId": project}).json()["data"]
    owner_binding = next(b for b in bindings if b["roleTemplateId"] == "project-owner")
    last = owner.delete(f"/v3/projectroletemplatebindings/{owner_binding['id']}")
    assert (last.status_code, last.json()["code"]) == (409, "Conflict")
    extra = f"acc-second-{uuid.uuid4().hex[:6]}"
    granted = admin.post("/v3/projectroletemplatebindings", json={
        "projectId": project, "userId": extra, "roleTemplateId": "project-owner"})
    assert granted.status_code == 201, granted.text
    again = owner.post("/v3/projectroletemplatebindings", json={
        "projectId": project, "userId": extra, "roleTemplateId": "read-only"})
    assert again.status_code == 422 and again.json()["fieldName"] == "userId"
    assert again.json()["code"] == "NotUnique"
    assert owner.delete(f"/v3/projectroletemplatebindings/{granted.json()['id']}").status_code == 204
    # A bad role and a bad projectId in a pipeline body name the field.
    bad = owner.post("/v3/projectroletemplatebindings", json={
        "projectId": project, "userId": extra, "roleTemplateId": "god"})
    assert bad.status_code == 422 and bad.json()["fieldName"] == "roleTemplateId"
    short = project.partition(":")[2]
    body = {**definition("q", [script_step("true")]), "projectId": short}
    assert member.post(f"/v3/projects/{project}/pipelines", json=body).status_code == 201
    body = {**definition("r", [script_step("true")]), "projectId": "c-x:p-other"}
    answer = member.post(f"/v3/projects/{project}/pipelines", json=body)
    assert answer.status_code == 422 and answer.json()["fieldName"] == "projectId"
    # allowPrivileged is an admin's: refused to an owner, and nothing is made.
    before = {p["id"] for p in owner.get("/v3/projects").json()["data"]}
    refused = owner.post("/v3/projects", json={"clusterId": "c-acc", "name": "priv",
                                               "settings": {"allowPrivileged": True}})
    assert refused.status_code == 403
    assert {p["id"] for p in owner.get("/v3/projects").json()["data"]} == before
    # Owners delete an empty project only.
    assert owner.delete(f"/v3/projects/{project}").status_code == 409
    empty = new_project(owner, "c-acc")
    assert owner.delete(f"/v3/projects/{empty}").status_code == 204
    assert owner.get(f"/v3/projects/{empty}").status_code == 404


def test_a_removed_role_stops_working(world) -> None:  # type: ignore[no-untyped-def]
    clients, project = world["clients"], world["project"]
    owner = clients["project-owner"]
    user = f"acc-gone-{uuid.uuid4().hex[:6]}"
    granted = owner.post("/v3/projectroletemplatebindings", json={
        "projectId": project, "userId": user, "roleTemplateId": "read-only"})
    assert granted.status_code == 201, granted.text
    with httpx.Client(base_url=world["url"], timeout=60, headers={
            "Authorization": f"Bearer {world['facade'].create_token(user)}"}) as gone:
        assert gone.get(f"/v3/projects/{project}/pipelines").status_code == 200
        assert owner.delete(f"/v3/projectroletemplatebindings/{granted.json()['id']}").status_code == 204
        deadline = time.monotonic() + get_settings().token_cache_seconds + 5
        while (answer := gone.get(f"/v3/projects/{project}/pipelines")).status_code == 200:
            assert time.monotonic() < deadline, "a removed role still works"
            time.sleep(0.2)
        assert answer.status_code == 404


def test_projects_from_before_projects_existed_are_adopted(api, prefect_api, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pipeline stored as the previous version stored it (a deployment and its secrets
    block, no project record): a facade that starts adopts its project, id kept, with the
    pipeline's creator as owner; nobody else reaches it. The Prefect Secret it named and
    the operator's login for the registry it publishes to are copied into the project."""
    import asyncio

    from prefect.client.orchestration import get_client

    from prefect.blocks.system import Secret
    from prefect.client.schemas.actions import DeploymentUpdate

    from prefect_pipelines.services.pipelines import create_pipeline
    from prefect_pipelines.translator import parse_pipeline
    from tests.support.api import step_log
    from tests.support.secret_scan import scan
    from tests.support.stack import Stack

    project = f"c-old:p-{uuid.uuid4().hex[:6]}"
    creator = f"old-{uuid.uuid4().hex[:6]}"

    secret_name, secret_value = f"legacy-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex}"
    scan.add(secret_value, "an adopted pipeline's Prefect Secret block")
    Secret(value=secret_value).save(secret_name)
    from prefect_docker.credentials import DockerRegistryCredentials

    logins = {f"legacy-reg-{uuid.uuid4().hex[:6]}": registry.host,
              f"legacy-other-{uuid.uuid4().hex[:6]}": f"other-{uuid.uuid4().hex[:6]}.example:5000"}
    for block, host in logins.items():
        DockerRegistryCredentials(username=registry.username, password=registry.password,
                                  registry_url=f"http://{host}").save(block)

    async def store() -> None:
        async with get_client() as client:
            publish = parse_pipeline(definition("legacy-publish", [
                {"publishImageConfig": {"tag": f"{registry.host}/legacy/app:1"}}]))
            await create_pipeline(client, project_id=project, config=publish, creator_id=creator,
                                  settings=get_settings())
            config = parse_pipeline(definition("legacy", [script_step('echo "still here s=$S"')]))
            await create_pipeline(client, project_id=project, config=config, creator_id=creator,
                                  settings=get_settings())
            # The previous version let envFrom name any Prefect Secret block.
            deployment = await client.read_deployment_by_name(f"run-pipeline/{project}:legacy")
            parameters = dict(deployment.parameters)
            parameters["pipeline"]["stages"][0]["steps"][0]["runScriptConfig"]["envFrom"] = [
                {"sourceName": secret_name, "targetKey": "S"}]
            await client.update_deployment(deployment.id, DeploymentUpdate(parameters=parameters))

    asyncio.run(store())

    async def odd() -> None:  # a deployment an operator named in no project-id form
        from prefect.client.schemas.actions import DeploymentCreate  # noqa: F401

        async with get_client() as client:
            flow_id = await client.create_flow_from_name("run-pipeline")
            await client.create_deployment(flow_id=flow_id, name="Team A:x:odd", entrypoint=ENTRYPOINT,
                                           tags=["project:Team A:x"], work_pool_name=get_settings().work_pool)

    asyncio.run(odd())
    stack = Stack(tmp_path, prefect_api, work_pool=get_settings().work_pool)
    try:
        _, url = stack.facade("adopter")
        with stack.client(url, user=creator) as old:
            assert sorted(p["id"] for p in old.get(f"/v3/projects/{project}/pipelines").json()["data"]) == [
                "legacy", "legacy-publish"]
            shown = old.get(f"/v3/projects/{project}").json()
            assert shown["id"] == project and "adopted" in shown["description"]
            bindings = old.get("/v3/projectroletemplatebindings", params={"projectId": project}).json()["data"]
            assert [(b["userId"], b["roleTemplateId"]) for b in bindings] == [(creator, "project-owner")]
            execution = run(old, project, "legacy")["id"]
            assert wait_state(old, project, execution)["state"] == "success"
            assert "still here s=********" in step_log(old, project, execution, 0, 0)
            # Its secret was copied into the project, which scopes it from now on.
            listed = old.get(f"/v3/projects/{project}/secrets").json()["data"]
            assert [(x["name"], x["keys"]) for x in listed] == [(secret_name, ["value"])]
            # The login of the registry it publishes to, and no other, likewise.
            copied = old.get(f"/v3/projects/{project}/dockercredentials").json()["data"]
            assert [(x["name"], x["registries"]) for x in copied] == [
                ("adopted", {registry.host: {"username": registry.username}})]
            assert registry.password not in str(copied)
        with stack.client(url, user="bob") as bob:
            answer = bob.get(f"/v3/projects/{project}/pipelines")
            assert answer.status_code == 404 and answer.json()["message"].startswith("project ")
    finally:
        stack.close()
        for block in logins:
            DockerRegistryCredentials.delete(block)


def test_webhook_and_cron_runs_of_a_creator_who_lost_their_role_are_refused(
        api, facade, fake_github, prefect_api) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import SyncPrefectClient

    from tests.support.procs import wait_for
    from tests.support.webhooks import delivery, hooked_pipeline, send

    maker = f"acc-maker-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=facade.url, timeout=60,
                      headers={"Authorization": f"Bearer {facade.create_token(maker)}"}) as creator:
        hooked = hooked_pipeline(api, fake_github, creator=creator)
    payload = delivery("push-new-branch.json", ref="refs/heads/main", after=hooked.commit)
    assert send(facade.url, hooked.ref, "push", payload, hooked.secret).status_code == 202
    # The maker leaves the project (an admin makes another owner first: the last one stays).
    heir = api.post("/v3/projectroletemplatebindings", json={
        "projectId": hooked.project, "userId": f"acc-heir-{uuid.uuid4().hex[:6]}",
        "roleTemplateId": "project-owner"})
    assert heir.status_code == 201, heir.text
    made_by = next(b for b in api.get("/v3/projectroletemplatebindings",
                                      params={"projectId": hooked.project}).json()["data"]
                   if b["userId"] == maker)
    assert api.delete(f"/v3/projectroletemplatebindings/{made_by['id']}").status_code == 204
    refused = send(facade.url, hooked.ref, "push", payload, hooked.secret)
    assert refused.status_code == 403, refused.text
    assert f"creator {maker} no longer holds project-member" in refused.json()["message"]
    # It clones with the maker's credential: a member's manual run is refused too, saying how
    # to take it over, and nothing is started.
    manual = api.post(f"/v3/projects/{hooked.project}/pipelines/{hooked.name}", params={"action": "run"})
    assert manual.status_code == 403, manual.text
    assert "clones with their source code credential" in manual.json()["message"]
    # A cron run, and a manual run made through Prefect (the UI, `prefect deployment run`),
    # end failed, saying why (made as Prefect makes them).
    with SyncPrefectClient(prefect_api) as client:
        deployment = client.read_deployment_by_name(f"run-pipeline/{hooked.ref}")
        flow_runs = [client.create_flow_run_from_deployment(
            deployment.id, parameters={"trigger": {"triggeredBy": how}}) for how in ("cron", "user")]

        def final(flow_run_id):  # type: ignore[no-untyped-def]
            current = client.read_flow_run(flow_run_id)
            return current if current.state and current.state.is_final() else None

        for flow_run in flow_runs:
            ended = wait_for(lambda: final(flow_run.id), timeout=90, what="the run to end")
            assert ended.state.is_failed() and f"creator {maker} no longer holds" in ended.state.message
            assert "clones with their source code credential" in ended.state.message
    # Who still holds a role sees them as failed executions, named by their run numbers.
    listed = api.get(f"/v3/projects/{hooked.project}/pipelineexecutions").json()["data"]
    made = [e for e in listed if e["triggeredBy"] in ("cron", "user")]
    assert sorted(e["triggeredBy"] for e in made) == ["cron", "user"], listed
    assert all(e["state"] == "failed" for e in made), made


def test_a_projects_secrets_reach_its_own_steps_and_no_one_elses(world, api) -> None:  # type: ignore[no-untyped-def]
    import base64

    from prefect.blocks.system import Secret

    from tests.support.api import step_log
    from tests.support.secret_scan import scan

    clients, project = world["clients"], world["project"]
    owner, member, stranger = clients["project-owner"], clients["project-member"], clients["stranger"]
    value, operator_value = f"pw-{uuid.uuid4().hex}", f"op-{uuid.uuid4().hex}"
    scan.add(value, "a project secret's value")
    scan.add(operator_value, "an operator's Prefect Secret block")
    name = f"db-{uuid.uuid4().hex[:6]}"
    made = owner.post(f"/v3/projects/{project}/secrets", json={"name": name, "data": {"PASSWORD": value}})
    assert made.status_code == 201, made.text
    assert made.json()["keys"] == ["PASSWORD"] and value not in made.text
    assert value not in owner.get(f"/v3/projects/{project}/secrets").text
    assert member.get(f"/v3/projects/{project}/secrets").status_code == 403
    again = owner.post(f"/v3/projects/{project}/secrets", json={"name": name, "data": {"A": "b"}})
    assert again.status_code == 422 and again.json()["fieldName"] == "name"
    # A member's step gets it (masked in its log).
    step = script_step('echo "pw=$P"', envFrom=[{"sourceName": name, "targetKey": "P"}])
    create(member, project, definition("uses-secret", [step]))
    execution = run(member, project, "uses-secret")["id"]
    assert wait_state(member, project, execution)["state"] == "success"
    assert "pw=********" in step_log(member, project, execution, 0, 0)
    # Another project cannot name it, nor an operator's Prefect Secret block, whatever the name.
    operator = f"prod-deploy-key-{uuid.uuid4().hex[:6]}"
    Secret(value=operator_value).save(operator)
    theirs = new_project(stranger, "c-acc")
    for source in (name, operator):
        step = script_step('echo "$K" | base64; echo "$K"', envFrom=[{"sourceName": source, "targetKey": "K"}])
        refused = stranger.post(f"/v3/projects/{theirs}/pipelines", json=definition("steal", [step]))
        assert refused.status_code == 422, refused.text
        assert refused.json()["fieldName"] == "stages[0].steps[0].runScriptConfig.envFrom[0].sourceName"
    # Nor can a member change a pipeline to name one, and a wrong key is named too.
    bad_key = script_step("true", envFrom=[{"sourceName": name, "sourceKey": "NOPE", "targetKey": "K"}])
    answer = member.put(f"/v3/projects/{project}/pipelines/uses-secret", json=definition("uses-secret", [bad_key]))
    assert answer.status_code == 422 and answer.json()["fieldName"].endswith("envFrom[0].sourceKey")
    for encoded in (value, base64.b64encode(value.encode()).decode(), value[::-1]):
        assert encoded not in step_log(member, project, execution, 0, 0)
    # Replace and delete.
    assert owner.put(f"/v3/projects/{project}/secrets/{name}", json={"data": {"PASSWORD": "new"}}).status_code == 200
    assert owner.delete(f"/v3/projects/{project}/secrets/{name}").status_code == 204
    assert owner.get(f"/v3/projects/{project}/secrets/{name}").status_code == 404
    Secret.delete(operator)


def test_a_projects_executor_quota_is_its_work_queues_limit(world, prefect_api) -> None:  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import SyncPrefectClient

    from prefect_pipelines.services.pools import project_queue_name

    owner, admin, project = world["clients"]["project-owner"], world["clients"]["admin"], world["project"]

    def limit() -> int | None:
        with SyncPrefectClient(prefect_api) as client:
            return client.read_work_queue_by_name(project_queue_name(project),
                                                  work_pool_name=get_settings().work_pool).concurrency_limit

    assert limit() == get_settings().executor_quota
    changed = owner.put(f"/v3/projects/{project}", json={"settings": {"executorQuota": 1}})
    assert changed.status_code == 200 and changed.json()["settings"] == {"executorQuota": 1}
    assert limit() == 1
    create(owner, project, definition("later", [script_step("true")]))  # a new pipeline keeps it
    assert limit() == 1
    refused = owner.put(f"/v3/projects/{project}", json={"settings": {"allowPrivileged": True}})
    assert refused.status_code == 403
    assert admin.put(f"/v3/projects/{project}", json={"settings": {"allowPrivileged": True}}).status_code == 200
    bad = owner.put(f"/v3/projects/{project}", json={"settings": {"executorQuota": "two"}})
    assert bad.status_code == 422 and "executorQuota" in (bad.json()["fieldName"] or "")
    # Prefect keeps a queue's limit in 32 bits: PostgreSQL answered a larger one with a 500.
    huge = owner.put(f"/v3/projects/{project}", json={"settings": {"executorQuota": 4607493950}})
    assert huge.status_code == 422 and huge.json()["fieldName"] == "settings.executorQuota"
    owner.put(f"/v3/projects/{project}", json={"settings": {"executorQuota": get_settings().executor_quota}})


def test_operators_cli_for_projects_members_and_secrets(facade, prefect_api) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.support.secret_scan import scan

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "prefect_pipelines.cli", *args], input=stdin,
                              capture_output=True, text=True, timeout=120)

    owner, reader = f"cli-owner-{uuid.uuid4().hex[:6]}", f"cli-reader-{uuid.uuid4().hex[:6]}"
    made = cli("project", "create", "team-cli", "--owner", owner, "--cluster", "c-cli")
    assert made.returncode == 0, made.stderr
    project = made.stdout.strip()
    assert project.startswith("c-cli:p-")
    added = cli("member", "add", project, reader, "--role", "read-only")
    assert added.returncode == 0 and f"{reader} is read-only in {project}" in added.stdout, added.stderr
    members = cli("member", "list", project).stdout
    assert f"{owner}\tproject-owner" in members and f"{reader}\tread-only" in members
    assert any(line.startswith(f"{project}\tteam-cli\towners: {owner}") for line in cli("project", "list").stdout.splitlines())
    value = f"cli-{uuid.uuid4().hex}"
    scan.add(value, "a project secret set through the CLI")
    stored = cli("secret", "set", project, "db", "PASSWORD=-", "USER=svc", stdin=value + "\n")
    assert stored.returncode == 0 and value not in stored.stdout, stored.stderr
    listed = cli("secret", "list", project).stdout
    assert "db\tPASSWORD, USER" in listed and value not in listed
    with httpx.Client(base_url=facade.url, timeout=60, headers={
            "Authorization": f"Bearer {facade.create_token(reader)}"}) as client:
        assert client.get(f"/v3/projects/{project}/pipelines").status_code == 200
        assert cli("member", "remove", project, reader).returncode == 0
        facade.app.state.access.forget(project, reader)  # another process removed it
        assert client.get(f"/v3/projects/{project}/pipelines").status_code == 404
    last = cli("member", "remove", project, owner)
    assert last.returncode == 2 and "last owner" in last.stderr and "Traceback" not in last.stderr
    missing = cli("member", "add", "c-cli:p-zzzzz", reader)
    assert missing.returncode == 2 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    assert cli("secret", "delete", project, "db").returncode == 0
    assert "db" not in cli("secret", "list", project).stdout

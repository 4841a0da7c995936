"""GitHub: cluster pipelines, OAuth, credentials and repositories, webhooks, commit status.

GitHub is a fake GitHub Enterprise on loopback that the real PyGithub client talks to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import assert_error, new_project, script_step, step_log, wait_state
from tests.support.events import events_about
from tests.support.procs import wait_for
from tests.support.webhooks import delivery, send

pytestmark = pytest.mark.usefixtures("worker")


def cluster_url(cluster: str) -> str:
    return f"/v3/clusters/{cluster}/clusterpipelines/{cluster}"


def github_config(fake, client_id: str, client_secret: str | None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    config: dict[str, Any] = {"host": fake.host, "tls": False, "clientId": client_id}
    if client_secret is not None:
        config["clientSecret"] = client_secret
    return config


@pytest.fixture(scope="module")
def github_setup(api: httpx.Client, facade, tokens, fake_github):  # type: ignore[no-untyped-def]
    """A cluster whose OAuth app alice configured (authapp) and bob logged into (authuser)."""
    fake = fake_github
    cluster = f"c-gh{uuid.uuid4().hex[:6]}"
    client_id, client_secret = fake.add_app()
    alice = fake.add_user(f"alice-{cluster}", "Alice A")
    bob = fake.add_user(f"bob-{cluster}", "Bob B")
    repo = fake.add_repo(alice.login, "service", branches={
        "main": {"hello.txt": "hello from main\n"},
        "dev": {"hello.txt": "hello from dev\n"},
    })
    fake.add_repo(bob.login, "bob-private", branches={"main": {"bob.txt": "bob only\n"}})
    for i in range(105):  # more than one page of /user/repos
        fake.add_repo(alice.login, f"filler-{i:03d}")
    made = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
        "githubConfig": github_config(fake, client_id, client_secret),
        "code": fake.new_code(client_id, alice.login)})
    assert made.status_code == 200, made.text
    with httpx.Client(base_url=facade.url, headers={"Authorization": f"Bearer {tokens['bob']}"},
                      timeout=60) as bob_api:
        linked = bob_api.post(cluster_url(cluster), params={"action": "authuser"},
                              json={"code": fake.new_code(client_id, bob.login)})
        assert linked.status_code == 200, linked.text
        yield {"cluster": cluster, "client_id": client_id, "client_secret": client_secret,
               "alice": alice, "bob": bob, "repo": repo, "bob_api": bob_api,
               "alice_credential": _credential_of(api, alice.login),
               "bob_credential": linked.json()}


def _credential_of(api: httpx.Client, login: str) -> dict[str, Any]:
    found = [c for c in api.get("/v3/sourcecodecredentials").json()["data"] if c["loginName"] == login]
    assert len(found) == 1, found
    return found[0]


class TestOAuth:
    def test_authapp_saves_the_app_and_the_callers_credential(self, api, github_setup, fake_github) -> None:  # type: ignore[no-untyped-def]
        setup = github_setup
        cluster = api.get(cluster_url(setup["cluster"])).json()
        assert cluster["type"] == "clusterPipeline" and cluster["deploy"] is False
        assert cluster["githubConfig"] == {"host": fake_github.host, "tls": False,
                                           "clientId": setup["client_id"]}
        assert "clientSecret" not in json.dumps(cluster)
        credential = setup["alice_credential"]
        assert credential["kind"] == "github" and credential["userId"] == "alice"
        assert credential["creatorId"] == "alice" and credential["clusterId"] == setup["cluster"]
        assert credential["name"] == "Alice A" and credential["loginName"] == setup["alice"].login
        assert credential["links"]["avatar"].endswith(f"/avatars/{setup['alice'].login}")
        assert credential["links"]["profile"].endswith(f"/{setup['alice'].login}")
        assert "accessToken" not in credential and setup["alice"].token not in json.dumps(credential)

    def test_authuser_links_the_callers_account(self, github_setup) -> None:  # type: ignore[no-untyped-def]
        credential = github_setup["bob_credential"]
        assert credential["type"] == "sourceCodeCredential" and credential["userId"] == "bob"
        assert credential["loginName"] == github_setup["bob"].login

    @pytest.mark.parametrize("action", ["authapp", "authuser"])
    def test_a_bad_code_is_refused_and_saves_nothing(self, api, fake_github, github_setup, action) -> None:  # type: ignore[no-untyped-def]
        before = api.get("/v3/sourcecodecredentials").json()["data"]
        body: dict[str, Any] = {"code": "not-a-code"}
        if action == "authapp":
            body["githubConfig"] = github_config(fake_github, github_setup["client_id"],
                                                 github_setup["client_secret"])
        response = api.post(cluster_url(github_setup["cluster"]), params={"action": action}, json=body)
        assert_error(response, 422, field="code")
        assert api.get("/v3/sourcecodecredentials").json()["data"] == before

    def test_a_wrong_secret_saves_nothing(self, api, fake_github) -> None:  # type: ignore[no-untyped-def]
        cluster = f"c-bad{uuid.uuid4().hex[:6]}"
        client_id, _ = fake_github.add_app()
        user = fake_github.add_user(f"u-{cluster}")
        response = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
            "githubConfig": github_config(fake_github, client_id, "wrong-secret"),
            "code": fake_github.new_code(client_id, user.login)})
        body = assert_error(response, 422, field="githubConfig.clientSecret")
        assert "wrong-secret" not in body["message"]
        assert_error(api.get(cluster_url(cluster)), 404)

    def test_an_unreachable_host_saves_nothing(self, api) -> None:  # type: ignore[no-untyped-def]
        from tests.support.procs import free_port

        cluster = f"c-down{uuid.uuid4().hex[:6]}"
        response = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
            "githubConfig": {"host": f"127.0.0.1:{free_port()}", "tls": False, "clientId": "x",
                             "clientSecret": "y"}, "code": "z"})
        body = assert_error(response, 422, field="githubConfig.host")
        assert "cannot reach GitHub" in body["message"]
        assert_error(api.get(cluster_url(cluster)), 404)

    def test_cluster_crud_keeps_the_secret_write_only(self, api, fake_github) -> None:  # type: ignore[no-untyped-def]
        cluster = f"c-crud{uuid.uuid4().hex[:6]}"
        client_id, secret = fake_github.add_app()
        created = api.post(f"/v3/clusters/{cluster}/clusterpipelines", json={
            "clusterId": cluster, "githubConfig": github_config(fake_github, client_id, secret)})
        assert created.status_code == 201, created.text
        assert secret not in created.text
        assert_error(api.post(f"/v3/clusters/{cluster}/clusterpipelines", json={"clusterId": cluster}), 422,
                     code="NotUnique")
        listed = api.get(f"/v3/clusters/{cluster}/clusterpipelines").json()
        assert [c["id"] for c in listed["data"]] == [cluster]
        updated = api.put(cluster_url(cluster), json={"githubConfig": {**github_config(fake_github, client_id, None), "tls": True}})
        assert updated.status_code == 200 and updated.json()["githubConfig"]["tls"] is True
        assert_error(api.put(cluster_url(cluster), json={"githubConfig": github_config(fake_github, "other-app", None)}),
                     422, field="githubConfig.clientSecret")
        revoked = api.post(cluster_url(cluster), params={"action": "revokeapp"})
        assert revoked.json()["githubConfig"] is None
        assert_error(api.post(cluster_url(cluster), params={"action": "authuser"}, json={"code": "x"}),
                     422, field="githubConfig")
        assert_error(api.put(cluster_url(cluster), json={"bogus": 1}), 422, field="bogus")
        assert_error(api.get("/v3/clusters/C_BAD/clusterpipelines"), 422, field="clusterId")

    def test_deploy_and_destroy_the_clusters_work_pool(self, api, fake_github) -> None:  # type: ignore[no-untyped-def]
        import asyncio

        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        cluster = f"c-dep{uuid.uuid4().hex[:6]}"
        api.post(f"/v3/clusters/{cluster}/clusterpipelines", json={"clusterId": cluster})
        project = new_project(api, cluster)
        made = api.post(f"/v3/projects/{project}/pipelines", json={
            "name": "on-cluster", "stages": [{"name": "s", "steps": [script_step("true")]}]})
        assert made.status_code == 201, made.text

        def pool_of_deployment() -> tuple[bool, str]:
            async def read() -> tuple[bool, str]:
                async with get_client() as client:
                    try:
                        await client.read_work_pool(f"pipelines-{cluster}")
                        exists = True
                    except ObjectNotFound:
                        exists = False
                    deployment = await client.read_deployment_by_name(f"run-pipeline/{project}:on-cluster")
                    return exists, deployment.work_pool_name
            return asyncio.run(read())

        deployed = api.post(cluster_url(cluster), params={"action": "deploy"}).json()
        assert deployed["deploy"] is True and "destroy" in deployed["actions"]
        assert pool_of_deployment() == (True, f"pipelines-{cluster}")
        destroyed = api.post(cluster_url(cluster), params={"action": "destroy"}).json()
        assert destroyed["deploy"] is False and "deploy" in destroyed["actions"]
        assert pool_of_deployment() == (False, "pipelines")


class TestCredentialsAndRepositories:
    def test_each_user_sees_only_their_own(self, api, github_setup) -> None:  # type: ignore[no-untyped-def]
        bob_api = github_setup["bob_api"]
        alice_id = github_setup["alice_credential"]["id"]
        bob_id = github_setup["bob_credential"]["id"]
        alice_ids = {c["id"] for c in api.get("/v3/sourcecodecredentials").json()["data"]}
        assert alice_id in alice_ids and bob_id not in alice_ids
        assert api.get("/v3/sourcecodecredentials", params={"creatorId": "bob"}).json()["data"] == []
        assert_error(api.get(f"/v3/sourcecodecredentials/{bob_id}"), 404)
        assert_error(api.delete(f"/v3/sourcecodecredentials/{bob_id}"), 404)
        assert_error(api.post(f"/v3/sourcecodecredentials/{bob_id}", params={"action": "refreshrepos"}), 404)
        assert bob_api.get(f"/v3/sourcecodecredentials/{bob_id}").status_code == 200
        repos = api.get("/v3/sourcecoderepositories").json()["data"]
        assert repos and all(r["userId"] == "alice" for r in repos)
        bob_repos = bob_api.get("/v3/sourcecoderepositories").json()["data"]
        assert [r["url"] for r in bob_repos if r["sourceCodeCredentialId"] == bob_id] == [
            f"http://{github_setup['repo']['url'].split('/')[2]}/{github_setup['bob'].login}/bob-private.git"]
        assert_error(api.get(f"/v3/sourcecoderepositories/{bob_repos[0]['id']}"), 404)
        assert api.get("/v3/sourcecoderepositories", params={"creatorId": "bob"}).json()["data"] == []

    def test_repositories_are_cached_from_every_page(self, api, github_setup) -> None:  # type: ignore[no-untyped-def]
        credential = github_setup["alice_credential"]["id"]
        repos = api.get("/v3/sourcecoderepositories", params={"sourceCodeCredentialId": credential}).json()["data"]
        assert len(repos) == 106  # service + 105 fillers, across two pages of 100
        service = next(r for r in repos if r["url"].endswith("/service.git"))
        assert service["permissions"] == {"pull": True, "push": True, "admin": True}
        assert service["language"] == "Go" and service["defaultBranch"] == "main"
        assert service["kind"] == "github" and service["clusterId"] == github_setup["cluster"]
        assert api.get(f"/v3/sourcecoderepositories/{service['id']}").json()["url"] == service["url"]

    def test_refreshrepos_picks_up_a_new_repository(self, api, github_setup, fake_github) -> None:  # type: ignore[no-untyped-def]
        credential = github_setup["alice_credential"]["id"]
        fake_github.add_repo(github_setup["alice"].login, "brand-new", language="Rust")
        before = {r["url"] for r in api.get("/v3/sourcecoderepositories").json()["data"]}
        assert not any(url.endswith("/brand-new.git") for url in before)
        refreshed = api.post(f"/v3/sourcecodecredentials/{credential}", params={"action": "refreshrepos"})
        assert refreshed.status_code == 200
        assert any(r["url"].endswith("/brand-new.git") for r in refreshed.json()["data"])
        assert any(r["url"].endswith("/brand-new.git")
                   for r in api.get("/v3/sourcecoderepositories").json()["data"])

    def test_a_pipeline_cannot_use_someone_elses_credential(self, api, github_setup) -> None:  # type: ignore[no-untyped-def]
        project = new_project(api)
        body = {"name": "steal", "stages": [{"name": "s", "steps": [{"sourceCodeConfig": {
            "url": github_setup["repo"]["clone_url"].replace("service", "bob-private"), "branch": "main",
            "sourceCodeCredentialId": github_setup["bob_credential"]["id"]}}]}]}
        assert_error(api.post(f"/v3/projects/{project}/pipelines", json=body), 403)
        assert api.get(f"/v3/projects/{project}/pipelines").json()["data"] == []

    def test_delete_a_credential(self, api, fake_github) -> None:  # type: ignore[no-untyped-def]
        cluster = f"c-del{uuid.uuid4().hex[:6]}"
        client_id, secret = fake_github.add_app()
        user = fake_github.add_user(f"d-{cluster}")
        api.post(cluster_url(cluster), params={"action": "authapp"}, json={
            "githubConfig": github_config(fake_github, client_id, secret),
            "code": fake_github.new_code(client_id, user.login)})
        credential = _credential_of(api, user.login)
        assert api.delete(f"/v3/sourcecodecredentials/{credential['id']}").status_code == 204
        assert_error(api.get(f"/v3/sourcecodecredentials/{credential['id']}"), 404)


class TestWebhooks:
    @pytest.fixture
    def hooked(self, api, github_setup, fake_github):  # type: ignore[no-untyped-def]
        """A pipeline on alice's repository with its webhook on."""
        project = new_project(api)
        name = f"hooked-{uuid.uuid4().hex[:4]}"
        repo = github_setup["repo"]
        body = {"name": name, "triggerWebhook": True, "stages": [
            {"name": "build", "steps": [
                {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main|dev|feature/.*|v.*",
                                      "sourceCodeCredentialId": github_setup["alice_credential"]["id"]}},
                script_step('cat hello.txt; echo "event=$CICD_EVENT commit=$CICD_GIT_COMMIT branch=$CICD_GIT_BRANCH"'),
            ]}]}
        created = api.post(f"/v3/projects/{project}/pipelines", json=body)
        assert created.status_code == 201, created.text
        hooks = fake_github.hooks.get(repo["full_name"], {})
        hook = next(h for h in hooks.values() if h["config"]["url"].endswith(f"pipelineId={project}:{name}"))
        return {"project": project, "name": name, "hook": hook, "secret": hook["config"]["secret"],
                "ref": f"{project}:{name}", "body": body, "repo": repo}

    def test_the_hook_is_made_and_removed_with_the_pipeline(self, api, hooked, fake_github) -> None:  # type: ignore[no-untyped-def]
        hook = hooked["hook"]
        assert set(hook["events"]) == {"push", "pull_request"}
        assert hook["config"]["content_type"] == "json" and hook["active"]
        assert "webhookId" not in api.get(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}").text
        hooks = fake_github.hooks[hooked["repo"]["full_name"]]
        body = dict(hooked["body"], triggerWebhook=False)
        assert api.put(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}", json=body).status_code == 200
        assert hook["id"] not in hooks
        body["triggerWebhook"] = True
        api.put(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}", json=body)
        new_ids = [i for i, h in hooks.items() if h["config"]["url"].endswith(hooked["ref"])]
        assert len(new_ids) == 1
        assert api.delete(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}").status_code == 204
        assert new_ids[0] not in hooks

    def test_a_signed_push_runs_once_and_reports_its_status(self, api, facade, hooked, fake_github,
                                                            github_setup) -> None:  # type: ignore[no-untyped-def]
        commit = fake_github.push(github_setup["alice"].login, "service", "refs/heads/dev", {"hello.txt": "pushed to dev\n"})
        payload = delivery("push-new-branch.json", ref="refs/heads/dev", after=commit,
                           **{"repository.clone_url": hooked["repo"]["clone_url"]})
        response = send(facade.url, hooked["ref"], "push", payload, hooked["secret"], delivery_id="d-push-1")
        assert response.status_code == 202, response.text
        assert response.json()["message"] == "accepted push of dev: queued to run"
        execution_id = f"{hooked['name']}-1"
        done = wait_state(api, hooked["project"], execution_id)
        # A redelivery once the run exists names it and runs nothing more.
        again = send(facade.url, hooked["ref"], "push", payload, hooked["secret"], delivery_id="d-push-1")
        assert again.status_code == 200, again.text
        assert again.json()["executionId"] == execution_id
        assert "handled already" in again.json()["message"]
        assert done["state"] == "success" and done["triggeredBy"] == "webhook" and done["commit"] == commit
        # What the execution knows of its commit comes from the delivery (Rancher 2.1+'s fields).
        assert {key: done[key] for key in ("triggerUserId", "branch", "ref", "event", "message",
                                           "author", "email", "avatarUrl", "htmlLink", "title")} == {
            "triggerUserId": None, "branch": "dev", "ref": "refs/heads/dev", "event": "push",
            "message": "Initial commit", "author": "Codertocat",
            "email": "21031067+Codertocat@users.noreply.github.com",
            "avatarUrl": "https://avatars1.githubusercontent.com/u/21031067?v=4",
            "htmlLink": payload["compare"], "title": ""}
        output = step_log(api, hooked["project"], execution_id, 0, 1)
        assert "pushed to dev" in output and f"event=push commit={commit} branch=dev" in output
        executions = api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"]
        assert [e["id"] for e in executions] == [execution_id]
        statuses = wait_for(lambda: _statuses(fake_github, hooked, commit, 2), timeout=30,
                            what="two commit statuses")
        assert [s["state"] for s in statuses] == ["pending", "success"]
        assert statuses[-1]["target_url"].endswith(
            f"/v3/projects/{hooked['project']}/pipelineexecutions/{execution_id}")
        assert statuses[-1]["context"] == f"prefect-pipelines/{hooked['name']}"

    def test_deliveries_that_run_nothing(self, api, facade, hooked, fake_github, github_setup) -> None:  # type: ignore[no-untyped-def]
        commit = github_setup["repo"]["commits"]["main"]
        push = delivery("push-new-branch.json", ref="refs/heads/main", after=commit)
        ref, secret = hooked["ref"], hooked["secret"]
        assert_error(send(facade.url, ref, "push", push, "wrong-secret"), 401)
        assert_error(send(facade.url, ref, "push", push, None), 401)
        assert_error(send(facade.url, f"{hooked['project']}:no-such", "push", push, secret), 404)
        assert_error(send(facade.url, "garbage", "push", push, secret), 404)
        other = delivery("push-new-branch.json", ref="refs/heads/not-built", after=commit)
        assert "not built" in send(facade.url, ref, "push", other, secret).json()["message"]
        assert send(facade.url, ref, "ping", delivery("ping.json"), secret).json()["message"] == "pong"
        deleted = delivery("push-tag-deleted.json")
        assert "deleted" in send(facade.url, ref, "push", deleted, secret).json()["message"]
        closed = delivery("pull_request-closed.json")
        assert "nothing to build" in send(facade.url, ref, "pull_request", closed, secret).json()["message"]
        assert send(facade.url, ref, "issues", {"action": "opened"}, secret).status_code == 200
        body = b"{not json"
        bad = httpx.post(f"{facade.url}/hooks", params={"pipelineId": ref}, content=body, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "x",
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()})
        assert_error(bad, 422)
        api.post(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}", params={"action": "deactivate"})
        assert "inactive" in send(facade.url, ref, "push", push, secret).json()["message"]
        assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []

    def test_skip_ci_and_the_events_a_pipeline_runs_on(self, api, facade, hooked, github_setup) -> None:  # type: ignore[no-untyped-def]
        commit = github_setup["repo"]["commits"]["main"]
        ref, secret = hooked["ref"], hooked["secret"]
        for marker in ("[skip ci]", "[CI SKIP]"):
            push = delivery("push-new-branch.json", ref="refs/heads/main", after=commit,
                            **{"head_commit.message": f"docs: typo\n\nnothing to build {marker}"})
            answer = send(facade.url, ref, "push", push, secret)
            assert answer.status_code == 200, answer.text
            assert answer.json()["message"] == f"the commit asks to skip CI ({marker})"
        # Pushes only (Rancher 2.1+'s triggerWebhookPush/Pr/Tag): a pull request or a tag runs nothing.
        only_pushes = {**hooked["body"], "triggerWebhook": False, "triggerWebhookPush": True}
        changed = api.put(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}", json=only_pushes)
        assert changed.status_code == 200, changed.text
        assert (changed.json()["triggerWebhookPush"], changed.json()["triggerWebhookPr"],
                changed.json()["triggerWebhookTag"]) == (True, False, False)
        opened = delivery("pull_request-opened.json", **{"pull_request.head.sha": commit})
        answer = send(facade.url, ref, "pull_request", opened, secret)
        assert answer.json()["message"] == "the pipeline does not run on pull_request (triggerWebhookPr is off)"
        tag = delivery("push-new-branch.json", ref="refs/tags/v9", after=commit)
        assert "(triggerWebhookTag is off)" in send(facade.url, ref, "push", tag, secret).json()["message"]
        assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []

    def test_a_tag_push_is_event_tag(self, api, facade, hooked, fake_github, github_setup) -> None:  # type: ignore[no-untyped-def]
        commit = fake_github.push(github_setup["alice"].login, "service", "refs/tags/v1.2.0", {"hello.txt": "tagged\n"})
        payload = delivery("push-new-branch.json", ref="refs/tags/v1.2.0", after=commit)
        response = send(facade.url, hooked["ref"], "push", payload, hooked["secret"])
        assert response.status_code == 202, response.text
        done = wait_state(api, hooked["project"], f"{hooked['name']}-1")
        assert done["state"] == "success"
        output = step_log(api, hooked["project"], done["id"], 0, 1)
        assert "tagged" in output and f"event=tag commit={commit} branch=v1.2.0" in output

    def test_a_pull_request_runs_its_head(self, api, facade, hooked, fake_github, github_setup) -> None:  # type: ignore[no-untyped-def]
        head = fake_github.push(github_setup["alice"].login, "service", "refs/pull/2/head", {"hello.txt": "from the PR\n"})
        payload = delivery("pull_request-opened.json", **{"pull_request.head.sha": head,
                                                          "pull_request.base.ref": "main"})
        response = send(facade.url, hooked["ref"], "pull_request", payload, hooked["secret"])
        assert response.status_code == 202, response.text
        done = wait_state(api, hooked["project"], f"{hooked['name']}-1")
        assert done["state"] == "success" and done["commit"] == head
        output = step_log(api, hooked["project"], done["id"], 0, 1)
        assert "from the PR" in output and "event=pull_request" in output and "branch=main" in output

    def test_a_repository_pipeline_reads_its_file_at_each_delivered_commit(  # type: ignore[no-untyped-def]
            self, api, facade, fake_github, github_setup) -> None:
        """Push, tag and pull request deliveries of a pipeline read from its repository:
        each run reads .rancher-pipeline.yml at the commit delivered, and `when` sees its event."""
        project, repo, login = new_project(api), github_setup["repo"], github_setup["alice"].login
        created = api.post(f"/v3/projects/{project}/pipelines", json={
            "name": "pac", "repositoryUrl": repo["clone_url"], "triggerWebhook": True, "branch": "main",
            "sourceCodeCredentialId": github_setup["alice_credential"]["id"]})
        assert created.status_code == 201, created.text
        hook = next(h for h in fake_github.hooks.get(repo["full_name"], {}).values()
                    if h["config"]["url"].endswith(f"pipelineId={project}:pac"))
        ref, secret = f"{project}:pac", hook["config"]["secret"]
        pipeline_file = ("stages:\n- name: test\n  steps:\n"
                         "  - runScriptConfig: {image: busybox, shellScript: 'echo \"$CICD_EVENT at $CICD_GIT_COMMIT\"; cat hello.txt'}\n"
                         "  - runScriptConfig: {image: busybox, shellScript: 'echo for pull requests'}\n"
                         "    when: {event: pull_request}\n")
        pushed = fake_github.push(login, "service", "refs/heads/dev",
                                  {".rancher-pipeline.yml": pipeline_file, "hello.txt": "pac on dev\n"})
        tagged = fake_github.push(login, "service", "refs/tags/v2.0",
                                  {".rancher-pipeline.yml": pipeline_file, "hello.txt": "pac tagged\n"})
        head = fake_github.push(login, "service", "refs/pull/7/head",
                                {".rancher-pipeline.yml": pipeline_file, "hello.txt": "pac from the PR\n"})
        deliveries = [
            ("push", delivery("push-new-branch.json", ref="refs/heads/dev", after=pushed), pushed, "push", "pac on dev"),
            ("push", delivery("push-new-branch.json", ref="refs/tags/v2.0", after=tagged), tagged, "tag", "pac tagged"),
            ("pull_request", delivery("pull_request-opened.json", **{"pull_request.head.sha": head,
                                                                     "pull_request.base.ref": "main"}),
             head, "pull_request", "pac from the PR"),
        ]
        for run_number, (event, payload, commit, cicd_event, text) in enumerate(deliveries, start=1):
            answer = send(facade.url, ref, event, payload, secret, delivery_id=f"pac-{uuid.uuid4().hex}")
            assert answer.status_code == 202, answer.text
            done = wait_state(api, project, f"pac-{run_number}")
            assert done["state"] == "success" and done["commit"] == commit, done
            assert done["event"] == cicd_event and [s["name"] for s in done["stages"]] == ["clone", "test"]
            output = step_log(api, project, done["id"], 1, 0)
            assert f"{cicd_event} at {commit}" in output and text in output
            states = [step["state"] for step in done["stages"][1]["steps"]]
            assert states == (["success", "success"] if cicd_event == "pull_request" else ["success", "skipped"])

    def test_a_delivered_commit_without_a_valid_file_starts_nothing(  # type: ignore[no-untyped-def]
            self, api, facade, fake_github, github_setup, prefect_api) -> None:
        """As Rancher: the file is looked at, at the delivered commit, before a run is made;
        no file, an invalid one, or one whose `branch` leaves the branch out: no execution,
        the record is dropped and a Prefect event says why."""
        project, repo, login = new_project(api), github_setup["repo"], github_setup["alice"].login
        created = api.post(f"/v3/projects/{project}/pipelines", json={
            "name": "pre", "repositoryUrl": repo["clone_url"], "triggerWebhook": True,
            "sourceCodeCredentialId": github_setup["alice_credential"]["id"]})
        assert created.status_code == 201, created.text
        hook = next(h for h in fake_github.hooks.get(repo["full_name"], {}).values()
                    if h["config"]["url"].endswith(f"pipelineId={project}:pre"))
        ref, secret = f"{project}:pre", hook["config"]["secret"]
        invalid = fake_github.push(login, "service", "refs/heads/broken",
                                   {".rancher-pipeline.yml": "stages:\n- name: a\n  steps:\n  - runScriptConfig: {image: busybox}\n"})
        elsewhere = fake_github.push(login, "service", "refs/heads/other", {".rancher-pipeline.yml": (
            "stages:\n- name: a\n  steps:\n  - runScriptConfig: {image: busybox, shellScript: 'true'}\n"
            "branch: [main]\n")})
        cases = [
            ("main", repo["commits"]["main"], "has no .rancher-pipeline.yml or .rancher-pipeline.yaml: nothing to run"),
            ("broken", invalid, "invalid pipeline: .rancher-pipeline.yml: stages[0].steps[0].runScriptConfig.shellScript"),
            ("other", elsewhere, ".rancher-pipeline.yml does not build 'other' (branch: include ['main'])"),
        ]
        since = time.time()
        ids = {}
        for branch, commit, _ in cases:
            ids[branch] = f"pre-{uuid.uuid4().hex}"
            payload = delivery("push-new-branch.json", ref=f"refs/heads/{branch}", after=commit)
            answer = send(facade.url, ref, "push", payload, secret, delivery_id=ids[branch])
            assert answer.status_code == 202, answer.text  # recorded; looked at before its run

        def skipped() -> dict[str, str] | None:
            events = events_about(prefect_api, ["prefect-pipelines.delivery."], since)
            found = {event["resource"]["prefect.resource.id"].rsplit(".", 1)[1]: event["payload"]["reason"]
                     for event in events if event["event"] == "prefect-pipelines.delivery.skipped"}
            return found if set(ids.values()) <= set(found) else None

        reasons = wait_for(skipped, timeout=60, interval=1, what="three skipped deliveries")
        for branch, commit, why in cases:
            assert reasons[ids[branch]].startswith(f"commit {commit[:12]}"), reasons
            assert why in reasons[ids[branch]], reasons
        assert api.get(f"/v3/projects/{project}/pipelineexecutions").json()["data"] == []

    def test_the_links_of_a_repository_pipeline_go_through_github_s_api(  # type: ignore[no-untyped-def]
            self, api, fake_github, github_setup) -> None:
        project, repo = new_project(api), github_setup["repo"]
        created = api.post(f"/v3/projects/{project}/pipelines", json={
            "name": "links", "repositoryUrl": repo["clone_url"], "branch": "main",
            "sourceCodeCredentialId": github_setup["alice_credential"]["id"]})
        assert created.status_code == 201, created.text
        base = f"/v3/projects/{project}/pipelines/links"
        fake_github.requests.clear()
        assert {"dev", "main"} <= set(api.get(f"{base}/branches").json()["branches"])
        missing = assert_error(api.get(f"{base}/yaml", params={"branch": "main"}), 404)
        assert missing["message"] == "branch 'main' has no .rancher-pipeline.yml or .rancher-pipeline.yaml"
        gone = assert_error(api.get(f"{base}/yaml", params={"branch": "gone"}), 404)
        assert gone["message"] == "the repository has no branch 'gone'"
        text = "stages:\n- name: t\n  steps:\n  - runScriptConfig: {image: busybox, shellScript: 'true'}\n"
        committed = api.put(f"{base}/yaml", params={"branch": "main"}, content=text.encode(),
                            headers={"Content-Type": "application/yaml"})
        assert committed.status_code == 200, committed.text
        again = api.get(f"{base}/yaml", params={"branch": "main"})
        assert again.text == text and again.headers["x-commit"] == committed.json()["commit"]
        config = api.get(f"{base}/configs", params={"branch": "main"}).json()["configs"]["main"]
        assert [stage["name"] for stage in config["config"]["stages"]] == ["clone", "t"]
        # GitHub's API, not git: the contents and branches endpoints, no clone.
        paths = [path for _, path in fake_github.requests]
        assert any(path.endswith("/branches") for path in paths)
        assert any("/contents/.rancher-pipeline.yml" in path for path in paths)
        assert not any(path.endswith("git-upload-pack") for path in paths)
        # Bob is a member but the pipeline's credential is alice's: he may not commit with it.
        bob = github_setup["bob_api"]
        assert api.post("/v3/projectroletemplatebindings", json={
            "projectId": project, "userId": "bob", "roleTemplateId": "project-member"}).status_code == 201
        refused = bob.put(f"{base}/yaml", params={"branch": "main"}, content=text.encode(),
                          headers={"Content-Type": "application/yaml"})
        assert_error(refused, 403)
        assert "alice's credential" in refused.json()["message"]

    def test_untrusted_branch_names(self, api, facade, hooked, fake_github, github_setup) -> None:  # type: ignore[no-untyped-def]
        target = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"
        commit = github_setup["repo"]["commits"]["main"]
        spaced = delivery("push-new-branch.json", ref=f"refs/heads/$(touch {target})", after=commit)
        assert_error(send(facade.url, hooked["ref"], "push", spaced, hooked["secret"]), 422)
        assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []
        assert not target.exists()


    def test_hostile_branch_names_that_git_accepts_run_as_plain_text(
            self, api, facade, hooked, fake_github, github_setup) -> None:  # type: ignore[no-untyped-def]
        """Valid git branch names made of shell syntax are built (the pipeline builds
        `feature/.*`) and reach the step as text: the host runs none of it."""
        marks = [Path("/tmp") / f"pwned-{uuid.uuid4().hex}" for _ in range(2)]
        branches = [f"feature/$(touch${{IFS}}{marks[0]})", f"feature/;touch${{IFS}}{marks[1]};"]
        for number, branch in enumerate(branches, start=1):
            commit = fake_github.push(github_setup["alice"].login, "service", f"refs/heads/{branch}",
                                      {"hello.txt": f"hostile {number}\n"})
            push = delivery("push-new-branch.json", ref=f"refs/heads/{branch}", after=commit)
            answer = send(facade.url, hooked["ref"], "push", push, hooked["secret"])
            assert answer.status_code == 202, answer.text
            execution_id = f"{hooked['name']}-{number}"
            done = wait_state(api, hooked["project"], execution_id)
            assert done["state"] == "success", done
            output = step_log(api, hooked["project"], execution_id, 0, 1)
            assert f"hostile {number}" in output and f"branch={branch}" in output, output
        assert not any(mark.exists() for mark in marks)


def _statuses(fake, hooked, commit: str, count: int):  # type: ignore[no-untyped-def]
    found = fake.statuses.get(f"{hooked['repo']['full_name']}@{commit}", [])
    return found if len(found) >= count else None


def test_a_private_clone_uses_the_credential(api, github_setup) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    body = {"name": "private", "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": github_setup["repo"]["clone_url"], "branch": "main",
                              "sourceCodeCredentialId": github_setup["alice_credential"]["id"]}},
        script_step("cat hello.txt")]}]}
    assert api.post(f"/v3/projects/{project}/pipelines", json=body).status_code == 201
    api.post(f"/v3/projects/{project}/pipelines/private", params={"action": "run"})
    done = wait_state(api, project, "private-1")
    assert done["state"] == "success"
    assert "hello from main" in step_log(api, project, "private-1", 0, 1)
    # Without the credential, the (private) clone is refused.
    del body["stages"][0]["steps"][0]["sourceCodeConfig"]["sourceCodeCredentialId"]
    body["name"] = "anonymous"
    api.post(f"/v3/projects/{project}/pipelines", json=body)
    api.post(f"/v3/projects/{project}/pipelines/anonymous", params={"action": "run"})
    assert wait_state(api, project, "anonymous-1")["state"] == "failed"


def test_revokeapp_keeps_existing_credentials_usable(api, fake_github) -> None:  # type: ignore[no-untyped-def]
    cluster = f"c-rev{uuid.uuid4().hex[:6]}"
    client_id, secret = fake_github.add_app()
    user = fake_github.add_user(f"r-{cluster}")
    repo = fake_github.add_repo(user.login, "kept", branches={"main": {"hello.txt": "still works\n"}})
    api.post(cluster_url(cluster), params={"action": "authapp"}, json={
        "githubConfig": github_config(fake_github, client_id, secret),
        "code": fake_github.new_code(client_id, user.login)})
    credential = _credential_of(api, user.login)
    assert api.post(cluster_url(cluster), params={"action": "revokeapp"}).json()["githubConfig"] is None
    project = new_project(api)
    api.post(f"/v3/projects/{project}/pipelines", json={"name": "after-revoke", "stages": [
        {"name": "b", "steps": [{"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main",
                                                       "sourceCodeCredentialId": credential["id"]}},
                                script_step("cat hello.txt")]}]})
    api.post(f"/v3/projects/{project}/pipelines/after-revoke", params={"action": "run"})
    assert wait_state(api, project, "after-revoke-1")["state"] == "success"
    assert "still works" in step_log(api, project, "after-revoke-1", 0, 1)

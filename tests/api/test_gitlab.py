"""GitLab: the cluster's OAuth app, credentials and repositories, refresh of expiring
tokens, webhooks (push, tag, merge request), commit statuses and clones with the token.

GitLab is a fake self-managed GitLab on loopback (tests/fakes/gitlab.py) that the real
python-gitlab client talks to; deliveries are GitLab's documented example payloads
(tests/fixtures/gitlab/) with their commits and URLs pointed at the fake's repositories.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.fakes.gitlab import REPORTER
from tests.support.api import assert_error, new_project, script_step, step_log, wait_state
from tests.support.forges import (
    app_config,
    cluster_url,
    forge_delivery,
    link,
    send_gitlab,
    statuses,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def gitlab_setup(api: httpx.Client, facade, tokens, fake_gitlab):  # type: ignore[no-untyped-def]
    """A cluster whose GitLab app alice configured (authapp) and bob linked to (authuser)."""
    fake = fake_gitlab
    cluster = f"c-gl{uuid.uuid4().hex[:6]}"
    client_id, client_secret = fake.add_app()
    alice = fake.add_user(f"alice-{cluster}", "Alice A")
    bob = fake.add_user(f"bob-{cluster}", "Bob B")
    repo = fake.add_repo(alice.login, "service", branches={
        "main": {"hello.txt": "hello from main\n"},
        "dev": {"hello.txt": "hello from dev\n"},
    })
    fake.add_repo(alice.login, "read-only", level=REPORTER)
    fake.add_repo(bob.login, "bob-private", branches={"main": {"bob.txt": "bob only\n"}})
    for i in range(104):  # with the two above, more than one page of 100 projects
        fake.add_repo(alice.login, f"filler-{i:03d}")
    alice_credential = link(api, fake, "gitlab", cluster, alice.login, (client_id, client_secret))
    with httpx.Client(base_url=facade.url, headers={"Authorization": f"Bearer {tokens['bob']}"},
                      timeout=60) as bob_api:
        linked = bob_api.post(cluster_url(cluster), params={"action": "authuser"}, json={
            "sourceCodeType": "gitlab", "code": fake.new_code(client_id, bob.login)})
        assert linked.status_code == 200, linked.text
        yield {"cluster": cluster, "client_id": client_id, "client_secret": client_secret,
               "alice": alice, "bob": bob, "repo": repo, "bob_api": bob_api,
               "alice_credential": alice_credential, "bob_credential": linked.json()}


class TestOAuth:
    def test_authapp_saves_the_app_and_the_callers_credential(self, api, gitlab_setup, fake_gitlab) -> None:  # type: ignore[no-untyped-def]
        setup = gitlab_setup
        cluster = api.get(cluster_url(setup["cluster"])).json()
        assert cluster["gitlabConfig"] == {"host": fake_gitlab.host, "tls": False,
                                           "clientId": setup["client_id"]}
        assert cluster["githubConfig"] is None
        authorize = cluster["authorizeUrls"]["gitlab"]
        assert authorize.startswith(f"http://{fake_gitlab.host}/oauth/authorize?")
        assert f"client_id={setup['client_id']}" in authorize and "scope=api" in authorize
        assert setup["client_secret"] not in json.dumps(cluster)
        credential = setup["alice_credential"]
        assert credential["kind"] == "gitlab" and credential["userId"] == "alice"
        assert credential["name"] == "Alice A" and credential["loginName"] == setup["alice"].login
        assert credential["state"] == "active" and credential["transitioning"] == "no"
        assert credential["links"]["profile"] == f"http://{fake_gitlab.host}/{setup['alice'].login}"
        assert "/uploads/-/system/user/avatar/" in credential["links"]["avatar"]
        assert setup["alice"].token not in json.dumps(credential)

    def test_authuser_links_the_callers_gitlab_account(self, gitlab_setup) -> None:  # type: ignore[no-untyped-def]
        credential = gitlab_setup["bob_credential"]
        assert credential["type"] == "sourceCodeCredential" and credential["kind"] == "gitlab"
        assert credential["userId"] == "bob" and credential["loginName"] == gitlab_setup["bob"].login

    def test_authuser_without_the_forges_app_names_it(self, api, gitlab_setup) -> None:  # type: ignore[no-untyped-def]
        cluster = f"c-glnone{uuid.uuid4().hex[:6]}"
        assert api.post(f"/v3/clusters/{cluster}/clusterpipelines", json={"clusterId": cluster}).status_code == 201
        missing = api.post(cluster_url(cluster), params={"action": "authuser"},
                           json={"sourceCodeType": "gitlab", "code": "x"})
        assert "no GitLab app" in assert_error(missing, 422, field="gitlabConfig")["message"]
        assert_error(api.post(cluster_url(cluster), params={"action": "authuser"},
                              json={"sourceCodeType": "svn", "code": "x"}), 422, field="sourceCodeType")

    def test_two_forges_on_one_cluster_and_revoking_one(self, api, fake_gitlab, fake_github) -> None:  # type: ignore[no-untyped-def]
        cluster = f"c-glrev{uuid.uuid4().hex[:6]}"
        gh_id, gh_secret = fake_github.add_app()
        gl_id, gl_secret = fake_gitlab.add_app()
        created = api.post(f"/v3/clusters/{cluster}/clusterpipelines", json={
            "clusterId": cluster,
            "githubConfig": {"host": fake_github.host, "tls": False, "clientId": gh_id, "clientSecret": gh_secret},
            "gitlabConfig": app_config(fake_gitlab, gl_id, gl_secret)})
        assert created.status_code == 201, created.text
        assert created.json()["githubConfig"]["clientId"] == gh_id
        assert created.json()["gitlabConfig"]["clientId"] == gl_id
        assert gh_secret not in created.text and gl_secret not in created.text
        # A forge left out of a PUT keeps its app; a new one needs its secret.
        updated = api.put(cluster_url(cluster), json={"gitlabConfig": {**app_config(fake_gitlab, gl_id, None)}})
        assert updated.status_code == 200 and updated.json()["githubConfig"]["clientId"] == gh_id
        assert_error(api.put(cluster_url(cluster), json={"gitlabConfig": app_config(fake_gitlab, "other", None)}),
                     422, field="gitlabConfig.clientSecret")
        revoked = api.post(cluster_url(cluster), params={"action": "revokeapp"},
                           json={"sourceCodeType": "gitlab"})
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["gitlabConfig"] is None and revoked.json()["githubConfig"]["clientId"] == gh_id
        assert list(revoked.json()["authorizeUrls"]) == ["github"]


class TestRepositories:
    def test_every_page_is_listed_with_gitlab_s_access_levels(self, api, gitlab_setup) -> None:  # type: ignore[no-untyped-def]
        credential = gitlab_setup["alice_credential"]["id"]
        repos = api.get("/v3/sourcecoderepositories", params={"sourceCodeCredentialId": credential}).json()["data"]
        assert len(repos) == 106  # service, read-only and 104 fillers, across two pages of 100
        by_name = {r["url"].rsplit("/", 1)[-1]: r for r in repos}
        assert by_name["service.git"]["permissions"] == {"pull": True, "push": True, "admin": True}
        assert by_name["read-only.git"]["permissions"] == {"pull": True, "push": False, "admin": False}
        assert by_name["service.git"]["kind"] == "gitlab" and by_name["service.git"]["defaultBranch"] == "main"
        assert by_name["service.git"]["links"]["html"].endswith(f"/{gitlab_setup['alice'].login}/service")

    def test_refreshrepos_picks_up_a_new_project(self, api, gitlab_setup, fake_gitlab) -> None:  # type: ignore[no-untyped-def]
        credential = gitlab_setup["alice_credential"]["id"]
        fake_gitlab.add_repo(gitlab_setup["alice"].login, "brand-new-on-gitlab")
        refreshed = api.post(f"/v3/sourcecodecredentials/{credential}", params={"action": "refreshrepos"})
        assert refreshed.status_code == 200, refreshed.text
        assert any(r["url"].endswith("/brand-new-on-gitlab.git") for r in refreshed.json()["data"])


def _hooked(api, setup, fake, **flags: bool) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    project = new_project(api)
    name = f"gl-{uuid.uuid4().hex[:4]}"
    repo = setup["repo"]
    body = {"name": name, "triggerWebhook": True, **flags, "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main|dev|v.*",
                              "sourceCodeCredentialId": setup["alice_credential"]["id"]}},
        script_step('cat hello.txt; echo "event=$CICD_EVENT commit=$CICD_GIT_COMMIT branch=$CICD_GIT_BRANCH"'),
    ]}]}
    created = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert created.status_code == 201, created.text
    hook = next(h for h in fake.hooks.get(repo["full_name"], {}).values()
                if h["url"].endswith(f"pipelineId={project}:{name}"))
    return {"project": project, "name": name, "hook": hook, "secret": hook["token"],
            "ref": f"{project}:{name}", "body": body, "repo": repo}


class TestWebhooks:
    @pytest.fixture
    def hooked(self, api, gitlab_setup, fake_gitlab):  # type: ignore[no-untyped-def]
        return _hooked(api, gitlab_setup, fake_gitlab)

    def test_the_hook_asks_for_the_pipeline_s_events_and_goes_with_it(self, api, gitlab_setup, fake_gitlab) -> None:  # type: ignore[no-untyped-def]
        hooked = _hooked(api, gitlab_setup, fake_gitlab, triggerWebhook=False,
                         triggerWebhookPush=True, triggerWebhookTag=True)
        hook = hooked["hook"]
        assert (hook["push_events"], hook["tag_push_events"], hook["merge_requests_events"]) == (True, True, False)
        hooks = fake_gitlab.hooks[hooked["repo"]["full_name"]]
        base = f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}"
        body = dict(hooked["body"], triggerWebhookPr=True)
        assert api.put(base, json=body).status_code == 200
        assert hook["id"] not in hooks  # remade for the new events
        [again] = [h for h in hooks.values() if h["url"].endswith(hooked["ref"])]
        assert again["merge_requests_events"] is True
        assert api.delete(base).status_code == 204
        assert again["id"] not in hooks

    def test_a_push_runs_once_clones_with_the_token_and_reports_its_status(  # type: ignore[no-untyped-def]
            self, api, facade, hooked, fake_gitlab, gitlab_setup) -> None:
        login = gitlab_setup["alice"].login
        commit = fake_gitlab.push(login, "service", "refs/heads/dev", {"hello.txt": "pushed to dev\n"})
        payload = forge_delivery("gitlab", "push.json", ref="refs/heads/dev", checkout_sha=commit, after=commit,
                                  **{"commits.-1.id": commit})
        delivery_id = str(uuid.uuid4())
        response = send_gitlab(facade.url, hooked["ref"], "Push Hook", payload, hooked["secret"], delivery_id)
        assert response.status_code == 202, response.text
        execution_id = f"{hooked['name']}-1"
        done = wait_state(api, hooked["project"], execution_id)
        again = send_gitlab(facade.url, hooked["ref"], "Push Hook", payload, hooked["secret"], delivery_id)
        assert again.status_code == 200 and again.json()["executionId"] == execution_id
        assert done["state"] == "success" and done["commit"] == commit and done["event"] == "push"
        # The head commit's author, from the commits the payload lists.
        assert done["branch"] == "dev" and done["author"] == "GitLab dev user"
        assert done["email"] == "gitlabdev@dv6700.(none)"
        assert done["message"] == "fixed readme" and done["avatarUrl"] == payload["user_avatar"]
        assert done["htmlLink"] == f"http://example.com/mike/diaspora/-/compare/{payload['before']}...{commit}"
        output = step_log(api, hooked["project"], execution_id, 0, 1)
        assert "pushed to dev" in output and f"event=push commit={commit} branch=dev" in output
        reported = wait_for(lambda: statuses(fake_gitlab, hooked["repo"]["full_name"], commit, 2), timeout=30,
                            what="two commit statuses")
        assert [s["status"] for s in reported] == ["pending", "success"]
        assert reported[-1]["name"] == f"prefect-pipelines/{hooked['name']}"
        assert reported[-1]["target_url"].endswith(
            f"/v3/projects/{hooked['project']}/pipelineexecutions/{execution_id}")

    def test_a_tag_and_a_merge_request_run(self, api, facade, hooked, fake_gitlab, gitlab_setup) -> None:  # type: ignore[no-untyped-def]
        login = gitlab_setup["alice"].login
        tagged = fake_gitlab.push(login, "service", "refs/tags/v1.0.0", {"hello.txt": "tagged\n"})
        tag = forge_delivery("gitlab", "tag_push.json", checkout_sha=tagged, after=tagged)
        assert send_gitlab(facade.url, hooked["ref"], "Tag Push Hook", tag, hooked["secret"]).status_code == 202
        first = wait_state(api, hooked["project"], f"{hooked['name']}-1")
        assert first["state"] == "success" and first["event"] == "tag" and first["branch"] == "v1.0.0"
        assert first["commit"] == tagged and first["ref"] == "refs/tags/v1.0.0"
        proposed = fake_gitlab.push(login, "service", "refs/merge-requests/1/head", {"hello.txt": "proposed\n"})
        opened = forge_delivery("gitlab", "merge_request-open.json", **{
            "object_attributes.last_commit.id": proposed, "object_attributes.target_branch": "main"})
        answer = send_gitlab(facade.url, hooked["ref"], "Merge Request Hook", opened, hooked["secret"])
        assert answer.status_code == 202, answer.text
        second = wait_state(api, hooked["project"], f"{hooked['name']}-2")
        assert second["state"] == "success" and second["event"] == "pull_request"
        assert second["branch"] == "main" and second["ref"] == "refs/merge-requests/1/head"
        assert second["title"] == "MS-Viewport" and second["commit"] == proposed
        assert "proposed" in step_log(api, hooked["project"], f"{hooked['name']}-2", 0, 1)

    def test_deliveries_that_run_nothing(self, api, facade, hooked, gitlab_setup) -> None:  # type: ignore[no-untyped-def]
        ref, secret = hooked["ref"], hooked["secret"]
        commit = gitlab_setup["repo"]["commits"]["main"]
        push = forge_delivery("gitlab", "push.json", ref="refs/heads/main", checkout_sha=commit, after=commit)
        assert_error(send_gitlab(facade.url, ref, "Push Hook", push, "wrong-token"), 401)
        assert_error(send_gitlab(facade.url, ref, "Push Hook", push, None), 401)
        other = forge_delivery("gitlab", "push.json", ref="refs/heads/not-built", checkout_sha=commit, after=commit)
        assert "not built" in send_gitlab(facade.url, ref, "Push Hook", other, secret).json()["message"]
        deleted = forge_delivery("gitlab", "push-branch-deleted.json")
        assert "deleted" in send_gitlab(facade.url, ref, "Push Hook", deleted, secret).json()["message"]
        for name in ("merge_request-close.json", "merge_request-merge.json"):
            answer = send_gitlab(facade.url, ref, "Merge Request Hook", forge_delivery("gitlab", name), secret)
            assert answer.status_code == 200 and "nothing to build" in answer.json()["message"], answer.text
        retitled = forge_delivery("gitlab", "merge_request-update.json", **{"object_attributes.oldrev": None})
        answer = send_gitlab(facade.url, ref, "Merge Request Hook", retitled, secret)
        assert "without new commits" in answer.json()["message"]
        wiki = send_gitlab(facade.url, ref, "Wiki Page Hook", forge_delivery("gitlab", "wiki_page.json"), secret)
        assert wiki.status_code == 200 and "runs nothing" in wiki.json()["message"]
        bad = forge_delivery("gitlab", "push.json", ref="refs/heads/main", checkout_sha="not-a-commit")
        assert_error(send_gitlab(facade.url, ref, "Push Hook", bad, secret), 422, field="checkout_sha")
        assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []

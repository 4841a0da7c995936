"""Bitbucket Data Center: the cluster's OAuth 2 application link, credentials and
repositories, webhooks (repo:refs_changed for branches and tags, pr:opened and
pr:from_ref_updated) signed with X-Hub-Signature, build statuses and clones with the
token as a Bearer header. What it shares with the other OAuth 2 forges (refresh, refused
codes, pipeline files through the API) is in test_forges.py.

Data Center is a fake on loopback (tests/fakes/bitbucketserver.py); deliveries are the
payloads of tests/fixtures/bitbucketserver/ pointed at the fake's repositories.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import assert_error, new_project, script_step, step_log, wait_state
from tests.support.forges import cluster_url, forge_delivery, link, send_bitbucket, statuses
from tests.support.procs import wait_for

pytestmark = pytest.mark.usefixtures("worker")


def send(facade_url: str, pipeline: str, event: str, payload: dict[str, Any], secret: str | None,
         request_id: str | None = None) -> httpx.Response:
    return send_bitbucket(facade_url, pipeline, event, payload, secret, request_id, cloud=False)


@pytest.fixture(scope="module")
def dc_setup(api: httpx.Client, fake_bitbucketserver):  # type: ignore[no-untyped-def]
    fake = fake_bitbucketserver
    cluster = f"c-dc{uuid.uuid4().hex[:6]}"
    user = fake.add_user(f"dev{uuid.uuid4().hex[:6]}", "Dana Dev")
    repo = fake.add_repo(user.login, "service", branches={
        "main": {"hello.txt": "hello from main\n"}, "feature": {"hello.txt": "hello from feature\n"}})
    fake.add_repo(user.login, "readable", level="REPO_READ")
    fake.add_repo(user.login, "writable", level="REPO_WRITE")
    for i in range(99):  # with the three above, more than one page of 100
        fake.add_repo(user.login, f"filler-{i:03d}")
    app = fake.add_app()
    credential = link(api, fake, "bitbucketserver", cluster, user.login, app)
    return {"cluster": cluster, "app": app, "user": user, "repo": repo, "credential": credential}


def test_the_link_the_credential_and_every_page_of_repositories(api, dc_setup, fake_bitbucketserver) -> None:  # type: ignore[no-untyped-def]
    setup, fake = dc_setup, fake_bitbucketserver
    cluster = api.get(cluster_url(setup["cluster"])).json()
    assert cluster["bitbucketServerConfig"] == {"host": fake.host, "tls": False, "clientId": setup["app"][0]}
    authorize = cluster["authorizeUrls"]["bitbucketserver"]
    assert authorize.startswith(f"http://{fake.host}/rest/oauth2/latest/authorize?") and "REPO_ADMIN" in authorize
    credential = setup["credential"]
    assert credential["kind"] == "bitbucketserver" and credential["name"] == "Dana Dev"
    assert credential["links"]["profile"] == f"http://{fake.host}/users/{setup['user'].login}"
    assert setup["user"].token not in json.dumps(credential)
    repos = api.get("/v3/sourcecoderepositories",
                    params={"sourceCodeCredentialId": credential["id"]}).json()["data"]
    assert len(repos) == 102
    by_name = {r["url"].rsplit("/", 1)[-1]: r for r in repos}
    assert by_name["service.git"]["url"] == setup["repo"]["clone_url"]  # without the user name
    assert by_name["service.git"]["permissions"] == {"pull": True, "push": True, "admin": True}
    assert by_name["writable.git"]["permissions"] == {"pull": True, "push": True, "admin": False}
    assert by_name["readable.git"]["permissions"] == {"pull": True, "push": False, "admin": False}
    assert by_name["service.git"]["defaultBranch"] == "main"


@pytest.fixture
def hooked(api, dc_setup, fake_bitbucketserver):  # type: ignore[no-untyped-def]
    project = new_project(api)
    name = f"dc-{uuid.uuid4().hex[:4]}"
    repo = dc_setup["repo"]
    body = {"name": name, "triggerWebhook": True, "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main|v.*",
                              "sourceCodeCredentialId": dc_setup["credential"]["id"]}},
        script_step('cat hello.txt; echo "event=$CICD_EVENT commit=$CICD_GIT_COMMIT branch=$CICD_GIT_BRANCH"'),
    ]}]}
    created = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert created.status_code == 201, created.text
    hook = next(h for h in fake_bitbucketserver.hooks[repo["full_name"]].values()
                if h["url"].endswith(f"pipelineId={project}:{name}"))
    return {"project": project, "name": name, "hook": hook, "secret": hook["configuration"]["secret"],
            "ref": f"{project}:{name}", "repo": repo}


def test_the_hook_is_made_for_the_pipeline_s_events_and_goes_with_it(api, hooked, fake_bitbucketserver) -> None:  # type: ignore[no-untyped-def]
    hook = hooked["hook"]
    assert sorted(hook["events"]) == ["pr:from_ref_updated", "pr:opened", "repo:refs_changed"]
    assert hook["active"] is True and len(hooked["secret"]) >= 32
    assert api.delete(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}").status_code == 204
    assert hook["id"] not in fake_bitbucketserver.hooks[hooked["repo"]["full_name"]]


def test_a_push_a_tag_and_a_pull_request_run_and_report(api, facade, hooked, fake_bitbucketserver,  # type: ignore[no-untyped-def]
                                                          dc_setup) -> None:
    fake, ref, secret = fake_bitbucketserver, hooked["ref"], hooked["secret"]
    owner = f"scm/{fake.project_of(dc_setup['user'].login).lower()}"
    pushed = fake.push(owner, "service", "refs/heads/main", {"hello.txt": "pushed to main\n"})
    push = forge_delivery("bitbucketserver", "repo_refs_changed.json", **{
        "changes.0.refId": "refs/heads/main", "changes.0.ref.id": "refs/heads/main",
        "changes.0.ref.displayId": "main", "changes.0.toHash": pushed})
    request_id = str(uuid.uuid4())
    assert send(facade.url, ref, "repo:refs_changed", push, secret, request_id).status_code == 202
    first = wait_state(api, hooked["project"], f"{hooked['name']}-1")
    again = send(facade.url, ref, "repo:refs_changed", push, secret, request_id)
    assert again.status_code == 200 and again.json()["executionId"] == f"{hooked['name']}-1"
    assert first["state"] == "success" and (first["event"], first["branch"], first["commit"]) == ("push", "main", pushed)
    assert first["author"] == "Renovate Bot" and first["email"] == "renovatebot@example.com"
    assert "pushed to main" in step_log(api, hooked["project"], f"{hooked['name']}-1", 0, 1)
    reported = wait_for(lambda: statuses(fake, hooked["repo"]["full_name"], pushed, 2), timeout=30,
                        what="two build statuses")
    assert [s["state"] for s in reported] == ["INPROGRESS", "SUCCESSFUL"]
    assert reported[-1]["url"].endswith(f"/pipelineexecutions/{hooked['name']}-1")
    tagged = fake.push(owner, "service", "refs/tags/v1.1.0", {"hello.txt": "tagged\n"})
    tag = forge_delivery("bitbucketserver", "repo_refs_changed-tag.json", **{"changes.0.toHash": tagged})
    assert send(facade.url, ref, "repo:refs_changed", tag, secret).status_code == 202
    second = wait_state(api, hooked["project"], f"{hooked['name']}-2")
    assert second["state"] == "success" and (second["event"], second["branch"]) == ("tag", "v1.1.0")
    proposed = fake.push(owner, "service", "refs/pull-requests/7/from", {"hello.txt": "proposed\n"})
    opened = forge_delivery("bitbucketserver", "pr_opened.json", **{"pullRequest.id": 7, "pullRequest.fromRef.latestCommit": proposed,
                                              "pullRequest.toRef.displayId": "main"})
    assert send(facade.url, ref, "pr:opened", opened, secret).status_code == 202
    third = wait_state(api, hooked["project"], f"{hooked['name']}-3")
    assert third["state"] == "success", third.get("stateMessage")
    assert (third["event"], third["branch"], third["ref"]) == ("pull_request", "main", "refs/pull-requests/7/from")
    assert "proposed" in step_log(api, hooked["project"], f"{hooked['name']}-3", 0, 1)


def test_deliveries_that_run_nothing(api, facade, hooked, dc_setup) -> None:  # type: ignore[no-untyped-def]
    ref, secret = hooked["ref"], hooked["secret"]
    push = forge_delivery("bitbucketserver", "repo_refs_changed.json", **{"changes.0.toHash": dc_setup["repo"]["commits"]["main"]})
    assert_error(send(facade.url, ref, "repo:refs_changed", push, "wrong-secret"), 401)
    assert_error(send(facade.url, ref, "repo:refs_changed", push, None), 401)
    assert "not built" in send(facade.url, ref, "repo:refs_changed", push, secret).json()["message"]
    assert send(facade.url, ref, "diagnostics:ping", {"test": True}, secret).json()["message"] == "pong"
    for event, name in (("repo:refs_changed", "repo_refs_changed-branch-deleted.json"),
                        ("pr:merged", "pr_merged.json"), ("pr:declined", "pr_declined.json"),
                        ("pr:modified", "pr_modified.json")):
        answer = send(facade.url, ref, event, forge_delivery("bitbucketserver", name), secret)
        assert answer.status_code == 200, (name, answer.text)
    assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []

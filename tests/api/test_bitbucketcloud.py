"""Bitbucket Cloud: the cluster's OAuth consumer, credentials and repositories, webhooks
(repo:push for branches and tags, pullrequest:created / updated) signed with
X-Hub-Signature, build statuses and clones with the token. What it shares with GitLab and
Gitea (refresh, refused codes, pipeline files through the API) is in
test_forges.py.

Bitbucket Cloud is a fake on loopback (tests/fakes/bitbucketcloud.py) reached through
`apiUrl`; deliveries are the payloads of tests/fixtures/bitbucketcloud/ pointed at the
fake's repositories.
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
    return send_bitbucket(facade_url, pipeline, event, payload, secret, request_id, cloud=True)


@pytest.fixture(scope="module")
def bitbucket_setup(api: httpx.Client, fake_bitbucketcloud):  # type: ignore[no-untyped-def]
    fake = fake_bitbucketcloud
    cluster = f"c-bb{uuid.uuid4().hex[:6]}"
    user = fake.add_user(f"team-{cluster}", "Team Lead")
    repo = fake.add_repo(user.login, "service", branches={
        "main": {"hello.txt": "hello from main\n"}, "feature": {"hello.txt": "hello from feature\n"}})
    fake.add_repo(user.login, "readable", permission="read")
    fake.add_repo(user.login, "writable", permission="write")
    for i in range(99):  # with the three above, more than one page of 100
        fake.add_repo(user.login, f"filler-{i:03d}")
    app = fake.add_app()
    credential = link(api, fake, "bitbucketcloud", cluster, user.login, app)
    return {"cluster": cluster, "app": app, "user": user, "repo": repo, "credential": credential}


def test_the_consumer_the_credential_and_every_page_of_repositories(api, bitbucket_setup, fake_bitbucketcloud) -> None:  # type: ignore[no-untyped-def]
    setup, fake = bitbucket_setup, fake_bitbucketcloud
    cluster = api.get(cluster_url(setup["cluster"])).json()
    assert cluster["bitbucketCloudConfig"] == {"apiUrl": fake.api_url, "clientId": setup["app"][0]}
    assert cluster["authorizeUrls"]["bitbucketcloud"].startswith(f"http://{fake.host}/site/oauth2/authorize?")
    credential = setup["credential"]
    assert credential["kind"] == "bitbucketcloud" and credential["name"] == "Team Lead"
    assert credential["links"]["avatar"] == f"http://{fake.host}/account/{setup['user'].login}/avatar/"
    assert setup["user"].token not in json.dumps(credential) and setup["app"][1] not in json.dumps(cluster)
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
def hooked(api, bitbucket_setup, fake_bitbucketcloud):  # type: ignore[no-untyped-def]
    project = new_project(api)
    name = f"bb-{uuid.uuid4().hex[:4]}"
    repo = bitbucket_setup["repo"]
    body = {"name": name, "triggerWebhook": True, "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main|feature|v.*",
                              "sourceCodeCredentialId": bitbucket_setup["credential"]["id"]}},
        script_step('cat hello.txt; echo "event=$CICD_EVENT commit=$CICD_GIT_COMMIT branch=$CICD_GIT_BRANCH"'),
    ]}]}
    created = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert created.status_code == 201, created.text
    hook = next(h for h in fake_bitbucketcloud.hooks[repo["full_name"]].values()
                if h["url"].endswith(f"pipelineId={project}:{name}"))
    return {"project": project, "name": name, "hook": hook, "secret": hook["secret"],
            "ref": f"{project}:{name}", "repo": repo}


def test_the_hook_asks_for_pushes_and_pull_requests_and_goes_with_the_pipeline(  # type: ignore[no-untyped-def]
        api, hooked, fake_bitbucketcloud) -> None:
    hook = hooked["hook"]
    assert sorted(hook["events"]) == ["pullrequest:created", "pullrequest:updated", "repo:push"]
    assert hook["secret_set"] is True and hook["active"] is True
    assert api.delete(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}").status_code == 204
    assert hook["uuid"] not in fake_bitbucketcloud.hooks[hooked["repo"]["full_name"]]


def test_a_push_a_tag_and_a_pull_request_run_and_report(api, facade, hooked, fake_bitbucketcloud,  # type: ignore[no-untyped-def]
                                                          bitbucket_setup) -> None:
    fake, login, ref, secret = fake_bitbucketcloud, bitbucket_setup["user"].login, hooked["ref"], hooked["secret"]
    pushed = fake.push(login, "service", "refs/heads/main", {"hello.txt": "pushed to main\n"})
    push = forge_delivery("bitbucketcloud", "repo_push.json", **{"push.changes.0.new.name": "main",
                                                   "push.changes.0.new.target.hash": pushed})
    request_id = str(uuid.uuid4())
    assert send(facade.url, ref, "repo:push", push, secret, request_id).status_code == 202
    first = wait_state(api, hooked["project"], f"{hooked['name']}-1")
    again = send(facade.url, ref, "repo:push", push, secret, request_id)
    assert again.status_code == 200 and again.json()["executionId"] == f"{hooked['name']}-1"
    assert first["state"] == "success" and (first["event"], first["branch"], first["commit"]) == ("push", "main", pushed)
    assert first["message"] == "Update README" and first["author"] == "Brad Rydzewski"
    assert "pushed to main" in step_log(api, hooked["project"], f"{hooked['name']}-1", 0, 1)
    reported = wait_for(lambda: statuses(fake, hooked["repo"]["full_name"], pushed, 2), timeout=30,
                        what="two build statuses")
    assert [s["state"] for s in reported] == ["INPROGRESS", "SUCCESSFUL"]
    assert reported[-1]["name"] == f"prefect-pipelines/{hooked['name']}"
    assert reported[-1]["url"].endswith(f"/pipelineexecutions/{hooked['name']}-1")
    tagged = fake.push(login, "service", "refs/tags/v2.0", {"hello.txt": "tagged\n"})
    tag = forge_delivery("bitbucketcloud", "repo_push-tag.json", **{"push.changes.0.new.name": "v2.0",
                                                      "push.changes.0.new.target.hash": tagged})
    assert send(facade.url, ref, "repo:push", tag, secret).status_code == 202
    second = wait_state(api, hooked["project"], f"{hooked['name']}-2")
    assert second["state"] == "success" and (second["event"], second["branch"]) == ("tag", "v2.0")
    # A pull request names its source commit by 12 characters; its source branch is fetched.
    proposed = fake.push(login, "service", "refs/heads/feature", {"hello.txt": "proposed\n"})
    opened = forge_delivery("bitbucketcloud", "pullrequest_created.json", **{
        "pullrequest.source.commit.hash": proposed[:12], "pullrequest.source.branch.name": "feature",
        "pullrequest.destination.branch.name": "main"})
    assert send(facade.url, ref, "pullrequest:created", opened, secret).status_code == 202
    third = wait_state(api, hooked["project"], f"{hooked['name']}-3")
    assert third["state"] == "success", third.get("stateMessage")
    assert third["event"] == "pull_request" and third["branch"] == "main"
    assert third["title"] == "Awesome new feature"
    output = step_log(api, hooked["project"], f"{hooked['name']}-3", 0, 1)
    assert "proposed" in output and f"commit={proposed} " in output


def test_deliveries_that_run_nothing(api, facade, hooked, bitbucket_setup) -> None:  # type: ignore[no-untyped-def]
    ref, secret = hooked["ref"], hooked["secret"]
    commit = bitbucket_setup["repo"]["commits"]["main"]
    push = forge_delivery("bitbucketcloud", "repo_push.json", **{"push.changes.0.new.name": "main",
                                                   "push.changes.0.new.target.hash": commit})
    assert_error(send(facade.url, ref, "repo:push", push, "wrong-secret"), 401)
    assert_error(send(facade.url, ref, "repo:push", push, None), 401)
    other = forge_delivery("bitbucketcloud", "repo_push.json", **{"push.changes.0.new.name": "not-built",
                                                    "push.changes.0.new.target.hash": commit})
    assert "not built" in send(facade.url, ref, "repo:push", other, secret).json()["message"]
    for event, name in (("repo:push", "repo_push-branch-deleted.json"),
                        ("pullrequest:fulfilled", "pullrequest_fulfilled.json"),
                        ("pullrequest:rejected", "pullrequest_rejected.json"),
                        ("repo:commit_status_created", "repo_commit_status_created.json")):
        answer = send(facade.url, ref, event, forge_delivery("bitbucketcloud", name), secret)
        assert answer.status_code == 200, (name, answer.text)
    assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []

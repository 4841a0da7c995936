"""Gitea (and Forgejo): the cluster's OAuth app, credentials and repositories, webhooks
(push, tag, pull request) signed with X-Gitea-Signature, commit statuses and clones with
the token. What it shares with GitLab (refresh, refused codes, pipeline files through the
API) is in test_forges.py.

Gitea is a fake on loopback (tests/fakes/gitea.py) that the forge's own client talks to;
deliveries are the payloads of tests/fixtures/gitea/ pointed at the fake's repositories.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import httpx
import pytest

from tests.support.api import assert_error, new_project, script_step, step_log, wait_state
from tests.support.forges import (
    cluster_url,
    credential_of,
    forge_delivery,
    link,
    send_gitea,
    statuses,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def gitea_setup(api: httpx.Client, facade, tokens, fake_gitea):  # type: ignore[no-untyped-def]
    """A cluster whose Gitea app alice configured (authapp) and bob linked to (authuser)."""
    fake = fake_gitea
    cluster = f"c-gt{uuid.uuid4().hex[:6]}"
    app = fake.add_app()
    alice = fake.add_user(f"alice-{cluster}", "Alice A")
    bob = fake.add_user(f"bob-{cluster}", "Bob B")
    repo = fake.add_repo(alice.login, "service", branches={
        "main": {"hello.txt": "hello from main\n"}, "dev": {"hello.txt": "hello from dev\n"}})
    fake.add_repo(alice.login, "read-only", admin=False, push=False)
    for i in range(58):  # with the two above, more than one page of Gitea's 50
        fake.add_repo(alice.login, f"filler-{i:03d}")
    alice_credential = link(api, fake, "gitea", cluster, alice.login, app)
    with httpx.Client(base_url=facade.url, headers={"Authorization": f"Bearer {tokens['bob']}"},
                      timeout=60) as bob_api:
        linked = bob_api.post(cluster_url(cluster), params={"action": "authuser"}, json={
            "sourceCodeType": "gitea", "code": fake.new_code(app[0], bob.login)})
        assert linked.status_code == 200, linked.text
        yield {"cluster": cluster, "app": app, "alice": alice, "bob": bob, "repo": repo,
               "alice_credential": alice_credential, "bob_credential": linked.json()}


def test_the_app_the_credentials_and_every_page_of_repositories(api, gitea_setup, fake_gitea) -> None:  # type: ignore[no-untyped-def]
    setup = gitea_setup
    cluster = api.get(cluster_url(setup["cluster"])).json()
    assert cluster["giteaConfig"] == {"host": fake_gitea.host, "tls": False, "clientId": setup["app"][0]}
    assert cluster["authorizeUrls"]["gitea"].startswith(f"http://{fake_gitea.host}/login/oauth/authorize?")
    assert setup["app"][1] not in json.dumps(cluster)
    alice, bob = setup["alice_credential"], setup["bob_credential"]
    assert alice["kind"] == "gitea" and alice["name"] == "Alice A" and alice["state"] == "active"
    assert alice["links"]["profile"] == f"http://{fake_gitea.host}/{setup['alice'].login}"
    assert bob["kind"] == "gitea" and bob["userId"] == "bob" and bob["loginName"] == setup["bob"].login
    assert setup["alice"].token not in json.dumps(alice)
    repos = api.get("/v3/sourcecoderepositories",
                    params={"sourceCodeCredentialId": alice["id"]}).json()["data"]
    assert len(repos) == 60
    by_name = {r["url"].rsplit("/", 1)[-1]: r for r in repos}
    assert by_name["service.git"]["permissions"] == {"pull": True, "push": True, "admin": True}
    assert by_name["read-only.git"]["permissions"] == {"pull": True, "push": False, "admin": False}
    assert by_name["service.git"]["kind"] == "gitea" and by_name["service.git"]["language"] == "Go"


@pytest.fixture
def hooked(api, gitea_setup, fake_gitea):  # type: ignore[no-untyped-def]
    project = new_project(api)
    name = f"gt-{uuid.uuid4().hex[:4]}"
    repo = gitea_setup["repo"]
    body = {"name": name, "triggerWebhook": True, "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main|dev|v.*",
                              "sourceCodeCredentialId": gitea_setup["alice_credential"]["id"]}},
        script_step('cat hello.txt; echo "event=$CICD_EVENT commit=$CICD_GIT_COMMIT branch=$CICD_GIT_BRANCH"'),
    ]}]}
    created = api.post(f"/v3/projects/{project}/pipelines", json=body)
    assert created.status_code == 201, created.text
    hook = next(h for h in fake_gitea.hooks[repo["full_name"]].values()
                if h["config"]["url"].endswith(f"pipelineId={project}:{name}"))
    return {"project": project, "name": name, "hook": hook, "secret": hook["config"]["secret"],
            "ref": f"{project}:{name}", "repo": repo}


def test_the_hook_is_a_signed_gitea_hook_removed_with_the_pipeline(api, hooked, fake_gitea) -> None:  # type: ignore[no-untyped-def]
    hook = hooked["hook"]
    assert hook["type"] == "gitea" and hook["active"] is True
    assert sorted(hook["events"]) == ["create", "pull_request", "push"]
    assert hook["config"]["content_type"] == "json" and len(hooked["secret"]) >= 32
    assert api.delete(f"/v3/projects/{hooked['project']}/pipelines/{hooked['name']}").status_code == 204
    assert hook["id"] not in fake_gitea.hooks[hooked["repo"]["full_name"]]


def test_a_push_a_tag_and_a_pull_request_run_and_report(api, facade, hooked, fake_gitea, gitea_setup) -> None:  # type: ignore[no-untyped-def]
    login, ref, secret = gitea_setup["alice"].login, hooked["ref"], hooked["secret"]
    pushed = fake_gitea.push(login, "service", "refs/heads/dev", {"hello.txt": "pushed to dev\n"})
    push = forge_delivery("gitea", "push.json", ref="refs/heads/dev", after=pushed, **{"commits.0.id": pushed})
    delivery_id = str(uuid.uuid4())
    assert send_gitea(facade.url, ref, "push", push, secret, delivery_id).status_code == 202
    first = wait_state(api, hooked["project"], f"{hooked['name']}-1")
    again = send_gitea(facade.url, ref, "push", push, secret, delivery_id)
    assert again.status_code == 200 and again.json()["executionId"] == f"{hooked['name']}-1"
    assert first["state"] == "success" and (first["event"], first["branch"], first["commit"]) == ("push", "dev", pushed)
    assert first["message"] == "Webhooks Yay!" and first["author"] == "Gitea"
    assert first["htmlLink"] == push["compare_url"]
    assert "pushed to dev" in step_log(api, hooked["project"], f"{hooked['name']}-1", 0, 1)
    reported = wait_for(lambda: statuses(fake_gitea, hooked["repo"]["full_name"], pushed, 2), timeout=30,
                        what="two commit statuses")
    assert [s["status"] for s in reported] == ["pending", "success"]
    assert reported[-1]["context"] == f"prefect-pipelines/{hooked['name']}"
    # A tag runs from its create event; the push Gitea also sends for it runs nothing.
    tagged = fake_gitea.push(login, "service", "refs/tags/v1.0.0", {"hello.txt": "tagged\n"})
    tag_push = forge_delivery("gitea", "push.json", ref="refs/tags/v1.0.0", after=tagged)
    assert "create event runs it" in send_gitea(facade.url, ref, "push", tag_push, secret).json()["message"]
    create = forge_delivery("gitea", "create-tag.json", sha=tagged)
    assert send_gitea(facade.url, ref, "create", create, secret).status_code == 202
    second = wait_state(api, hooked["project"], f"{hooked['name']}-2")
    assert second["state"] == "success" and (second["event"], second["branch"]) == ("tag", "v1.0.0")
    assert second["commit"] == tagged and "tagged" in step_log(api, hooked["project"], f"{hooked['name']}-2", 0, 1)
    proposed = fake_gitea.push(login, "service", "refs/pull/1/head", {"hello.txt": "proposed\n"})
    opened = forge_delivery("gitea", "pull_request-opened.json", **{"pull_request.head.sha": proposed,
                                                          "pull_request.base.ref": "main"})
    assert send_gitea(facade.url, ref, "pull_request", opened, secret).status_code == 202
    third = wait_state(api, hooked["project"], f"{hooked['name']}-3")
    assert third["state"] == "success" and third["event"] == "pull_request" and third["branch"] == "main"
    assert third["ref"] == "refs/pull/1/head" and third["title"] == "Add License File"
    assert "proposed" in step_log(api, hooked["project"], f"{hooked['name']}-3", 0, 1)


def test_deliveries_that_run_nothing(api, facade, hooked, gitea_setup) -> None:  # type: ignore[no-untyped-def]
    ref, secret = hooked["ref"], hooked["secret"]
    commit = gitea_setup["repo"]["commits"]["main"]
    push = forge_delivery("gitea", "push.json", ref="refs/heads/main", after=commit)
    assert_error(send_gitea(facade.url, ref, "push", push, "wrong-secret"), 401)
    assert_error(send_gitea(facade.url, ref, "push", push, None), 401)
    body = json.dumps(push).encode()
    forgejo = httpx.post(f"{facade.url}/hooks", params={"pipelineId": ref}, content=body, headers={
        "X-Gitea-Event": "push", "X-Gitea-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
        "X-Forgejo-Signature": hmac.new(b"wrong", body, hashlib.sha256).hexdigest()})
    assert_error(forgejo, 401)
    other = forge_delivery("gitea", "push.json", ref="refs/heads/not-built", after=commit)
    assert "not built" in send_gitea(facade.url, ref, "push", other, secret).json()["message"]
    for event, name in (("pull_request", "pull_request-closed.json"), ("pull_request", "pull_request-merged.json"),
                        ("delete", "delete-branch.json"), ("issues", "issues-opened.json")):
        answer = send_gitea(facade.url, ref, event, forge_delivery("gitea", name), secret)
        assert answer.status_code == 200, (name, answer.text)
    assert api.get(f"/v3/projects/{hooked['project']}/pipelineexecutions").json()["data"] == []


def test_a_private_clone_uses_the_credential(api, gitea_setup) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    body = {"name": "private", "stages": [{"name": "build", "steps": [
        {"sourceCodeConfig": {"url": gitea_setup["repo"]["clone_url"], "branch": "main",
                              "sourceCodeCredentialId": gitea_setup["alice_credential"]["id"]}},
        script_step("cat hello.txt")]}]}
    assert api.post(f"/v3/projects/{project}/pipelines", json=body).status_code == 201
    api.post(f"/v3/projects/{project}/pipelines/private", params={"action": "run"})
    assert wait_state(api, project, "private-1")["state"] == "success"
    assert "hello from main" in step_log(api, project, "private-1", 0, 1)
    assert credential_of(api, gitea_setup["alice"].login)["id"] == gitea_setup["alice_credential"]["id"]

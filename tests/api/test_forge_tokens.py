"""What every forge with OAuth 2 tokens that expire does alike (GitLab, Gitea): a refused
code or secret or an unreachable host saves nothing; a token is refreshed before use, and
a refresh the forge refuses asks for a new link; a pipeline's file is read and committed
through the forge's API, not git.

Each forge is its fake on loopback, talked to by the forge's real client."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.support.api import assert_error, new_project, script_step, step_log, wait_state
from tests.support.forges import app_config, cluster_url, config_field, link
from tests.support.procs import free_port

pytestmark = pytest.mark.usefixtures("worker")

# kind -> (title, what its API's file and commit paths end in)
FORGES = {"gitlab": ("GitLab", "/repository/files/.rancher-pipeline.yml", "/repository/commits"),
          "gitea": ("Gitea", "/contents/.rancher-pipeline.yml", "/contents/.rancher-pipeline.yml"),
          "bitbucketcloud": ("Bitbucket Cloud", "/.rancher-pipeline.yml", "/src"),
          "bitbucketserver": ("Bitbucket Data Center", "/raw/.rancher-pipeline.yml",
                              "/browse/.rancher-pipeline.yml")}


@pytest.fixture(params=list(FORGES))
def forge(request):  # type: ignore[no-untyped-def]
    """(kind, its fake)."""
    return request.param, request.getfixturevalue(f"fake_{request.param}")


@pytest.mark.parametrize("action", ["authapp", "authuser"])
def test_a_bad_code_is_refused_and_saves_nothing(api, forge, action) -> None:  # type: ignore[no-untyped-def]
    kind, fake = forge
    cluster = f"c-code{uuid.uuid4().hex[:6]}"
    app = fake.add_app()
    link(api, fake, kind, cluster, fake.add_user(f"c-{cluster}").login, app)
    before = api.get("/v3/sourcecodecredentials").json()["data"]
    body: dict[str, Any] = {"code": "not-a-code"}
    if action == "authapp":
        body[config_field(kind)] = app_config(fake, *app)
    else:
        body["sourceCodeType"] = kind
    response = api.post(cluster_url(cluster), params={"action": action}, json=body)
    title = FORGES[kind][0]
    assert f"{title} refused the code" in assert_error(response, 422, field="code")["message"]
    assert api.get("/v3/sourcecodecredentials").json()["data"] == before


def test_a_wrong_secret_or_an_unreachable_host_saves_nothing(api, forge) -> None:  # type: ignore[no-untyped-def]
    kind, fake = forge
    cluster = f"c-bad{uuid.uuid4().hex[:6]}"
    client_id, _ = fake.add_app()
    user = fake.add_user(f"u-{cluster}")
    field = config_field(kind)
    wrong = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
        field: app_config(fake, client_id, "wrong-secret"), "code": fake.new_code(client_id, user.login)})
    assert "wrong-secret" not in assert_error(wrong, 422, field=f"{field}.clientSecret")["message"]
    location = fake.location(f"127.0.0.1:{free_port()}")
    down = api.post(cluster_url(cluster), params={"action": "authapp"}, json={
        field: {**location, "clientId": "x", "clientSecret": "y"}, "code": "z"})
    message = assert_error(down, 422, field=f"{field}.{next(iter(location))}")["message"]
    assert f"cannot reach {FORGES[kind][0]}" in message
    assert_error(api.get(cluster_url(cluster)), 404)


def test_the_links_of_a_repository_pipeline_go_through_the_forge_s_api(api, forge) -> None:  # type: ignore[no-untyped-def]
    kind, fake = forge
    cluster = f"c-lnk{uuid.uuid4().hex[:6]}"
    user = fake.add_user(f"l-{cluster}")
    repo = fake.add_repo(user.login, "links", branches={"main": {"a.txt": "a\n"}, "dev": {"a.txt": "b\n"}})
    credential = link(api, fake, kind, cluster, user.login, fake.add_app())
    project = new_project(api)
    created = api.post(f"/v3/projects/{project}/pipelines", json={
        "name": "links", "repositoryUrl": repo["clone_url"], "branch": "main",
        "sourceCodeCredentialId": credential["id"]})
    assert created.status_code == 201, created.text
    base = f"/v3/projects/{project}/pipelines/links"
    fake.requests.clear()
    assert set(api.get(f"{base}/branches").json()["branches"]) == {"dev", "main"}
    missing = assert_error(api.get(f"{base}/yaml", params={"branch": "main"}), 404)
    assert missing["message"] == "branch 'main' has no .rancher-pipeline.yml or .rancher-pipeline.yaml"
    gone = assert_error(api.get(f"{base}/yaml", params={"branch": "gone"}), 404)
    assert gone["message"] == "the repository has no branch 'gone'"
    text = "stages:\n- name: t\n  steps:\n  - runScriptConfig: {image: busybox, shellScript: 'true'}\n"
    commits = []
    for _ in range(2):  # the first commit creates the file, the second updates it
        committed = api.put(f"{base}/yaml", params={"branch": "main"}, content=text.encode(),
                            headers={"Content-Type": "application/yaml"})
        assert committed.status_code == 200, committed.text
        commits.append(committed.json()["commit"])
    assert commits[0] != commits[1]
    again = api.get(f"{base}/yaml", params={"branch": "main"})
    assert again.text == text and again.headers["x-commit"] == commits[1]
    config = api.get(f"{base}/configs", params={"branch": "main"}).json()["configs"]["main"]
    assert [stage["name"] for stage in config["config"]["stages"]] == ["clone", "t"]
    _, file_path, commit_path = FORGES[kind]
    paths = [path for _, path in fake.requests]
    assert any(path.endswith("/branches") for path in paths)
    assert any(file_path in path for path in paths) and any(commit_path in path for path in paths)
    assert not any(path.endswith("git-upload-pack") for path in paths)


def test_an_expiring_token_is_refreshed_and_a_refused_refresh_asks_for_a_new_link(api, forge) -> None:  # type: ignore[no-untyped-def]
    """Tokens that live two seconds: every use after that needs a refresh, as a webhook
    run hours after the link would. Once the forge refuses the refresh, the credential
    says it needs a new link and the run fails saying so."""
    kind, fake = forge
    title = FORGES[kind][0]
    cluster = f"c-ref{uuid.uuid4().hex[:6]}"
    app = fake.add_app()
    lifetime = fake.token_lifetime
    fake.token_lifetime = 2.0
    try:
        user = fake.add_user(f"r-{cluster}")
        repo = fake.add_repo(user.login, "kept", branches={"main": {"hello.txt": "still clones\n"}})
        credential = link(api, fake, kind, cluster, user.login, app)
        time.sleep(2.5)  # the linked token no longer works at the forge
        project = new_project(api)
        body = {"name": "late", "stages": [{"name": "b", "steps": [
            {"sourceCodeConfig": {"url": repo["clone_url"], "branch": "main",
                                  "sourceCodeCredentialId": credential["id"]}},
            script_step("cat hello.txt")]}]}
        assert api.post(f"/v3/projects/{project}/pipelines", json=body).status_code == 201
        api.post(f"/v3/projects/{project}/pipelines/late", params={"action": "run"})
        assert wait_state(api, project, "late-1")["state"] == "success"
        assert "still clones" in step_log(api, project, "late-1", 0, 1)
        assert user.login in fake.refreshes
        time.sleep(2.5)
        refreshed = api.post(f"/v3/sourcecodecredentials/{credential['id']}", params={"action": "refreshrepos"})
        assert refreshed.status_code == 200, refreshed.text
        assert fake.refreshes.count(user.login) == 2
        # The user revokes the app at the forge: the next refresh is refused.
        fake.revoke_refresh_tokens(user.login)
        time.sleep(2.5)
        api.post(f"/v3/projects/{project}/pipelines/late", params={"action": "run"})
        failed = wait_state(api, project, "late-2")
        assert failed["state"] == "failed"
        assert "needs a new link" in json.dumps(failed["stages"]) + json.dumps(failed.get("stateMessage"))
        shown = api.get(f"/v3/sourcecodecredentials/{credential['id']}").json()
        assert shown["state"] == "relink" and shown["transitioning"] == "error"
        assert f"{title} refused to refresh its token" in shown["transitioningMessage"]
        refused = api.post(f"/v3/sourcecodecredentials/{credential['id']}", params={"action": "refreshrepos"})
        assert "needs a new link" in assert_error(refused, 422, field="sourceCodeCredentialId")["message"]
        # Linking again (authuser) makes it usable.
        again = api.post(cluster_url(cluster), params={"action": "authuser"}, json={
            "sourceCodeType": kind, "code": fake.new_code(app[0], user.login)})
        assert again.status_code == 200 and again.json()["state"] == "active"
    finally:
        fake.token_lifetime = lifetime

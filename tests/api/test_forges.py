"""What the forges do alike. Every forge: a hook that a failed save left behind is removed
before the pipeline's hook is made; a forge that answers 5xx or rate-limits is a 424
naming it. Every forge whose OAuth 2 tokens expire (GitLab, Gitea, Bitbucket Cloud and
Data Center): a refused code or secret or an unreachable host saves nothing; a token is
refreshed before use, and a refresh the forge refuses asks for a new link; a pipeline's
file is read and committed through the forge's API, not git.

Each forge is its fake on loopback, talked to by the forge's real client."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from prefect_pipelines.forges import FORGES as FORGE_TYPES
from prefect_pipelines.forges import Forge, OAuthApp
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


# kind -> the path of its repository list, the first call of refreshrepos
REPOSITORY_LISTS = {"github": "/api/v3/user/repos", "gitlab": "/api/v4/projects",
                    "gitea": "/api/v1/user/repos", "bitbucketcloud": "/2.0/user/permissions/repositories",
                    "bitbucketserver": "/rest/api/1.0/repos"}


@pytest.fixture(params=list(FORGES))
def forge(request):  # type: ignore[no-untyped-def]
    """(kind, its fake), for the forges whose tokens expire."""
    return request.param, request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture(params=list(REPOSITORY_LISTS))
def any_forge(request):  # type: ignore[no-untyped-def]
    """(kind, its fake), for every forge."""
    return request.param, request.getfixturevalue(f"fake_{request.param}")


def _client_of(kind: str, fake: Any) -> Forge:
    """The forge's own client, on the fake."""
    forge_type = FORGE_TYPES[kind]
    location = fake.location(fake.host)
    app = OAuthApp(host=fake.host, tls=False, client_id="", client_secret="",
                   api_url=location.get("apiUrl", ""))
    return forge_type(forge_type.api_url_of(app))


def test_a_hook_left_behind_is_replaced_not_doubled(api, any_forge) -> None:  # type: ignore[no-untyped-def]
    kind, fake = any_forge
    cluster = f"c-left{uuid.uuid4().hex[:6]}"
    user = fake.add_user(f"h-{cluster}")
    repo = fake.add_repo(user.login, "hooked", branches={"main": {"a.txt": "a\n"}})
    credential = link(api, fake, kind, cluster, user.login, fake.add_app())
    client = _client_of(kind, fake)
    project = new_project(api)

    def create(name: str) -> None:
        made = api.post(f"/v3/projects/{project}/pipelines", json={
            "name": name, "triggerWebhook": True, "stages": [{"name": "c", "steps": [{"sourceCodeConfig": {
                "url": repo["clone_url"], "branch": "main", "sourceCodeCredentialId": credential["id"]}}]}]})
        assert made.status_code == 201, made.text

    create("first")
    [(_, first_url)] = client.hooks_of(fake.users[user.login].token, repo["full_name"])
    second_url = first_url.replace(f"{project}:first", f"{project}:second")
    token = fake.users[user.login].token
    leftover = asyncio.run(client.create_hook(token, repo["full_name"], url=second_url, secret="stale",
                                              events=frozenset({"push"})))
    create("second")
    hooks = client.hooks_of(fake.users[user.login].token, repo["full_name"])
    seconds = [hook_id for hook_id, url in hooks if url == second_url]
    assert len(seconds) == 1 and seconds[0] != leftover and len(hooks) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_a_forge_that_fails_or_rate_limits_is_a_424_naming_it(api, any_forge, status: int) -> None:  # type: ignore[no-untyped-def]
    kind, fake = any_forge
    cluster = f"c-fail{uuid.uuid4().hex[:6]}"
    user = fake.add_user(f"f-{cluster}")
    fake.add_repo(user.login, "kept")
    credential = link(api, fake, kind, cluster, user.login, fake.add_app())
    before = api.get("/v3/sourcecoderepositories", params={"sourceCodeCredentialId": credential["id"]}).json()
    fake.failing[REPOSITORY_LISTS[kind]] = status
    try:
        failed = api.post(f"/v3/sourcecodecredentials/{credential['id']}", params={"action": "refreshrepos"})
    finally:
        del fake.failing[REPOSITORY_LISTS[kind]]
    assert f"{FORGE_TYPES[kind].title} answered {status}" in assert_error(failed, 424)["message"]
    after = api.get("/v3/sourcecoderepositories", params={"sourceCodeCredentialId": credential["id"]}).json()
    assert after["data"] == before["data"] and len(after["data"]) == 1  # the cached list is kept


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


def test_a_github_app_kept_before_forge_apps_is_read_then_moved(api, fake_github) -> None:  # type: ignore[no-untyped-def]
    """A cluster configured before each forge's app had its own block kept its GitHub app
    in its settings block: it is shown and used as the cluster's GitHub app, and the next
    save of that app moves it to its own block."""
    from prefect.client.orchestration import get_client

    from prefect_pipelines.blocks import ForgeApp, GitHubAppConfig
    from prefect_pipelines.vocabulary import cluster_block_name, forge_app_block_name

    cluster = f"c-old{uuid.uuid4().hex[:6]}"
    client_id, secret = fake_github.add_app()

    async def blocks(save: bool = False) -> tuple[GitHubAppConfig, ForgeApp | None]:
        async with get_client() as client:
            if save:
                await GitHubAppConfig(cluster_id=cluster, host=fake_github.host, tls=False, client_id=client_id,
                                      client_secret=secret).asave(cluster_block_name(cluster), client=client)
            settings = await GitHubAppConfig.aload(cluster_block_name(cluster), client=client)
            try:
                app = await ForgeApp.aload(forge_app_block_name(cluster, "github"), client=client)
            except ValueError:
                app = None
            return settings, app

    asyncio.run(blocks(save=True))
    shown = api.get(cluster_url(cluster)).json()
    assert shown["githubConfig"] == {"host": fake_github.host, "tls": False, "clientId": client_id}
    user = fake_github.add_user(f"o-{cluster}")
    linked = api.post(cluster_url(cluster), params={"action": "authuser"},
                      json={"code": fake_github.new_code(client_id, user.login)})
    assert linked.status_code == 200 and linked.json()["kind"] == "github", linked.text
    # Saving the app again (its stored secret kept) moves it out of the settings block.
    moved = api.put(cluster_url(cluster), json={"githubConfig": app_config(fake_github, client_id, None)})
    assert moved.status_code == 200, moved.text
    settings, app = asyncio.run(blocks())
    assert settings.client_id == "" and settings.client_secret.get_secret_value() == ""
    assert app is not None and app.client_id == client_id and app.client_secret.get_secret_value() == secret
    assert api.get(cluster_url(cluster)).json()["githubConfig"]["clientId"] == client_id

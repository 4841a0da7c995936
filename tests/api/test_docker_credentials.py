"""Project docker credentials: a project's registry logins serve its own pulls and pushes,
and no other project's, whatever the other project's steps name; nor do an operator's
global prefect-docker blocks serve a project's run."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import assert_error, create, definition, new_project, run, step_log, wait_state
from tests.support.secret_scan import scan

pytestmark = pytest.mark.usefixtures("worker")


def _client(facade: Any, user: str) -> httpx.Client:
    return httpx.Client(base_url=facade.url, timeout=60,
                        headers={"Authorization": f"Bearer {facade.create_token(user)}"})


def _logins(registry: Any, password: str | None = None) -> dict[str, Any]:
    login: dict[str, str] = {"username": registry.username}
    if password is not None:
        login["password"] = password
    return {registry.host: login}


def test_docker_credentials_are_write_only_and_checked(facade) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:6]
    with _client(facade, f"dc-owner-{suffix}") as owner, _client(facade, f"dc-member-{suffix}") as member:
        project = new_project(owner, "c-dc")
        owner.post("/v3/projectroletemplatebindings", json={
            "projectId": project, "userId": f"dc-member-{suffix}", "roleTemplateId": "project-member"})
        base = f"/v3/projects/{project}/dockercredentials"
        password = f"reg-{uuid.uuid4().hex}"
        scan.add(password, "a project docker credential's password")
        made = owner.post(base, json={"name": "ci", "registries": {
            "https://Reg.Example.com:5000/": {"username": "bot", "password": password}}})
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["type"] == "dockerCredential" and body["projectId"] == project
        assert body["registries"] == {"reg.example.com:5000": {"username": "bot"}}
        assert password not in made.text and password not in owner.get(base).text
        assert [c["name"] for c in owner.get(base).json()["data"]] == ["ci"]
        assert member.get(base).status_code == 403  # owners only
        assert member.post(base, json={"name": "m", "registries": {}}).status_code == 403
        # The project link names them.
        assert owner.get(f"/v3/projects/{project}").json()["links"]["dockercredentials"].endswith(base)

        # Bad input is named.
        assert_error(owner.post(base, json={"name": "ci", "registries": {"r.example": {
            "username": "u", "password": "p"}}}), 422, field="name", code="NotUnique")
        assert_error(owner.post(base, json={"name": "two", "registries": {"reg.example.com:5000": {
            "username": "u", "password": "p"}}}), 422, field="registries.reg.example.com:5000")
        assert_error(owner.post(base, json={"name": "bad", "registries": {"not a host!": {
            "username": "u", "password": "p"}}}), 422, field="registries.not a host!")
        # urllib refuses an unbalanced bracket (its IPv6 check): still a 422, never a 500.
        assert_error(owner.post(base, json={"name": "bracket", "registries": {"reg]:5000": {
            "username": "u", "password": "p"}}}), 422, field="registries.reg]:5000")
        assert_error(owner.post(base, json={"name": "nopass", "registries": {"r.example": {
            "username": "u"}}}), 422, field="registries.r.example.password")
        assert_error(owner.post(base, json={"name": "none", "registries": {}}), 422, field="registries")
        assert_error(owner.post(base, json={"name": "Bad_Name", "registries": {"r.example": {
            "username": "u", "password": "p"}}}), 422, field="name")
        assert_error(owner.put(f"{base}/ci", json={"name": "other", "registries": {"r.example": {
            "username": "u", "password": "p"}}}), 422, field="name")

        # A change that leaves the password out keeps it (read back through the run's path).
        kept = owner.put(f"{base}/ci", json={"registries": {"reg.example.com:5000": {"username": "bot2"}}})
        assert kept.status_code == 200, kept.text
        assert kept.json()["registries"] == {"reg.example.com:5000": {"username": "bot2"}}
        assert _stored_logins(project) == {"reg.example.com:5000": ("bot2", password)}
        # Another project sees none of them; its own list is empty.
        theirs = new_project(member, "c-dc")
        assert member.get(f"/v3/projects/{theirs}/dockercredentials").json()["data"] == []
        assert _stored_logins(theirs) == {}
        assert member.get(f"/v3/projects/{theirs}/dockercredentials/ci").status_code == 404

        assert owner.delete(f"{base}/ci").status_code == 204
        assert owner.get(f"{base}/ci").status_code == 404
        assert owner.delete(f"{base}/ci").status_code == 404


def _stored_logins(project: str) -> dict[str, tuple[str, str]]:
    import asyncio

    from prefect.client.orchestration import get_client

    from prefect_pipelines.services.dockercredentials import registry_logins

    async def read() -> dict[str, dict[str, str]]:
        async with get_client() as client:
            return await registry_logins(client, project)

    return {host: (login["username"], login["password"]) for host, login in asyncio.run(read()).items()}


@pytest.mark.timeout(400)
def test_a_projects_registry_login_serves_its_own_runs_only(facade, registry, git_server,
                                                            docker_client) -> None:  # type: ignore[no-untyped-def]
    from prefect_docker.credentials import DockerRegistryCredentials

    suffix = uuid.uuid4().hex[:6]
    image = f"{registry.host}/dc/app-{suffix}"
    repo = f"dc-{suffix}"
    git_server.create_repo(repo, {"main": {
        "hello.txt": "hello\n",
        "Dockerfile": 'FROM busybox:latest\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n',
        "Dockerfile.steal": f"FROM {image}:1\nRUN cat /hello.txt\n"}})
    clone = {"sourceCodeConfig": {"url": git_server.repo_url(repo), "branch": "main"}}
    # An operator's global login for the same registry: never used by a project's run.
    operator_block = f"dc-operator-{suffix}"
    DockerRegistryCredentials(username=registry.username, password=registry.password,
                              registry_url=f"http://{registry.host}").save(operator_block)
    try:
        with _client(facade, f"dc-a-{suffix}") as a, _client(facade, f"dc-b-{suffix}") as b:
            ours, theirs = new_project(a, "c-dc"), new_project(b, "c-dc")
            made = a.post(f"/v3/projects/{ours}/dockercredentials", json={
                "name": "registry", "registries": _logins(registry, registry.password)})
            assert made.status_code == 201, made.text

            # Project A builds and pushes with its login, then runs its private image.
            create(a, ours, definition("publish", [clone], [{"publishImageConfig": {
                "tag": f"{image}:1"}}], [{"runScriptConfig": {"image": f"{image}:1",
                                          "shellScript": "cat /hello.txt"}}]))
            done = wait_state(a, ours, run(a, ours, "publish")["id"], timeout=180)
            assert done["state"] == "success", done
            assert "1" in registry.tags(f"dc/app-{suffix}")
            assert "hello" in step_log(a, ours, done["id"], 2, 0)
            assert docker_client.images.get(f"{image}:1")  # the engine has it now

            # Project B: its push has no login; the image the engine holds is not run for
            # it (pulled again, without a login: refused), nor built upon.
            attempts = {
                "steal-run": {"runScriptConfig": {"image": f"{image}:1", "shellScript": "cat /hello.txt"}},
                "steal-base": {"publishImageConfig": {"tag": f"{image}:stolen",
                                                      "dockerfilePath": "./Dockerfile.steal"}},
                "steal-push": {"publishImageConfig": {"tag": f"{registry.host}/dc/b-{suffix}:1"}},
            }
            logs = {}
            for name, step in attempts.items():
                create(b, theirs, definition(name, [clone], [step]))
                ended = wait_state(b, theirs, run(b, theirs, name)["id"], timeout=180)
                assert ended["state"] == "failed", (name, ended)
                assert ended["stages"][1]["steps"][0]["state"] == "failed", (name, ended)
                logs[name] = step_log(b, theirs, ended["id"], 1, 0)
            assert "without this project's login" in logs["steal-run"], logs["steal-run"]
            assert "without this project's login" in logs["steal-base"], logs["steal-base"]
            assert "hello" not in logs["steal-run"] and "hello" not in logs["steal-base"]
            assert "no registry credentials match" in logs["steal-push"], logs["steal-push"]
            assert "stolen" not in registry.tags(f"dc/app-{suffix}")
            assert registry.tags(f"dc/b-{suffix}") == []

            # Nothing of the password in any step's log, in any encoding tried.
            pair = f"{registry.username}:{registry.password}"
            texts = [*logs.values(), *(step_log(a, ours, done["id"], stage, 0) for stage in range(3))]
            for encoded in (registry.password, base64.b64encode(registry.password.encode()).decode(),
                            base64.b64encode(pair.encode()).decode(), registry.password.encode().hex()):
                assert not any(encoded in text for text in texts), encoded
    finally:
        DockerRegistryCredentials.delete(operator_block)
        for tag in (f"{image}:1", f"{image}:stolen"):
            try:
                docker_client.images.remove(tag, force=True)
            except Exception:  # noqa: BLE001 - absent is fine
                pass

"""Pipelines read from their repository (issue 11): `.rancher-pipeline.yml` at the commit a
run builds, on the real git server, through the /v3 API and a real worker."""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_error, create, new_project, run, step_log, wait_state

pytestmark = pytest.mark.usefixtures("worker")

FILE = ".rancher-pipeline.yml"


def pipeline_file(word: str) -> str:
    return textwrap.dedent(f"""\
        stages:
        - name: Clone
          steps:
          - sourceCodeConfig: {{}}
        - name: build
          steps:
          - runScriptConfig:
              image: busybox
              shellScript: echo "{word} at $CICD_GIT_COMMIT on $CICD_GIT_BRANCH"
          - runScriptConfig: {{image: busybox, shellScript: echo pushes only}}
            when: {{event: push}}
        - name: release
          when: {{branch: main}}
          steps:
          - runScriptConfig: {{image: busybox, shellScript: echo releasing}}
        timeout: 5
        """)


@pytest.fixture
def repository(git_server, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A repository whose branches hold a pipeline file, another one, an invalid one and
    none; `push(branch, files)` commits to one and returns the commit."""
    name = f"pac-{uuid.uuid4().hex[:8]}"
    commits = git_server.create_repo(name, {
        "nofile": {"README": "no pipeline here\n"},
        "main": {FILE: pipeline_file("main")},
        "dev": {FILE: pipeline_file("dev")},
        "bad": {FILE: "stages:\n- name: Clone\n  steps:\n  - sourceCodeConfig: {}\n"
                      "- name: b\n  steps:\n  - runScriptConfig: {image: busybox}\n"},
    })
    url = git_server.repo_url(name)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", url, str(work)], check=True)

    def push(branch: str, files: dict[str, str]) -> str:
        git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        subprocess.run([*git, "checkout", "-q", branch], check=True)
        for path, text in files.items():
            (work / path).write_text(text)
        subprocess.run([*git, "commit", "-q", "-am", f"change {branch}"], check=True)
        subprocess.run([*git, "push", "-q", "origin", branch], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()

    return {**commits, "url": url, "push": push}  # type: ignore[dict-item]


def test_runs_read_the_file_of_the_commit_they_build(api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    created = create(api, project, {"name": "pac", "repositoryUrl": repository["url"], "branch": "main"})
    assert (created["repositoryUrl"], created["branch"], created["stages"]) == (repository["url"], "main", [])
    assert "view" not in created["links"] and "export" not in created["links"]
    assert_error(api.get(f"/v3/projects/{project}/pipelines/pac/view"), 404, code="ActionNotAvailable")

    first = wait_state(api, project, run(api, project, "pac")["id"])  # the default branch
    assert first["state"] == "success", first
    assert [stage["name"] for stage in first["pipeline"]["stages"]] == ["Clone", "build", "release"]
    assert first["commit"] == repository["main"]
    # What the execution knows of its commit comes from git itself for a manual run.
    assert {key: first[key] for key in ("triggeredBy", "triggerUserId", "branch", "ref", "event",
                                        "repositoryUrl", "message", "author", "email")} == {
        "triggeredBy": "user", "triggerUserId": "alice", "branch": "main", "ref": "refs/heads/main",
        "event": "manual", "repositoryUrl": repository["url"], "message": "main commit",
        "author": "CI Test", "email": "ci@example.com"}
    assert [(stage["name"], stage["state"]) for stage in first["stages"]] == [
        ("Clone", "success"), ("build", "success"), ("release", "success")]
    assert f"main at {repository['main']} on main" in step_log(api, project, first["id"], 1, 0)
    assert [step["state"] for step in first["stages"][1]["steps"]] == ["success", "skipped"]

    dev = wait_state(api, project, run(api, project, "pac", branch="dev")["id"])
    assert dev["state"] == "success", dev
    assert f"dev at {repository['dev']} on dev" in step_log(api, project, dev["id"], 1, 0)
    assert dev["stages"][2]["state"] == "skipped"  # the release stage is main's (when.branch)

    # A second commit changes what runs; a rerun builds the commit it built before.
    second = repository["push"]("main", {FILE: pipeline_file("changed")})
    changed = wait_state(api, project, run(api, project, "pac")["id"])
    assert f"changed at {second} on main" in step_log(api, project, changed["id"], 1, 0)
    assert (changed["commit"], changed["message"], changed["author"]) == (second, "change main", "t")
    rerun = api.post(f"/v3/projects/{project}/pipelineexecutions/{first['id']}", params={"action": "rerun"})
    assert rerun.status_code == 200, rerun.text
    again = wait_state(api, project, rerun.json()["id"])
    assert again["commit"] == repository["main"]
    assert f"main at {repository['main']} on main" in step_log(api, project, again["id"], 1, 0)


def test_a_commit_without_a_valid_file_fails_naming_the_file(api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    create(api, project, {"name": "pac", "repositoryUrl": repository["url"]})
    assert_error(api.post(f"/v3/projects/{project}/pipelines/pac", params={"action": "run"}), 422,
                 field="branch")  # no default branch, none given

    missing = wait_state(api, project, run(api, project, "pac", branch="nofile")["id"])
    assert missing["state"] == "failed"
    assert missing["stateMessage"] == (f"invalid pipeline: the repository has no {FILE} or "
                                  f".rancher-pipeline.yaml at {repository['nofile'][:12]}: nothing to run")
    # It shows what it ran: the implicit clone, which succeeded.
    assert [(stage["name"], stage["state"]) for stage in missing["stages"]] == [("clone", "success")]

    bad = wait_state(api, project, run(api, project, "pac", branch="bad")["id"])
    assert bad["state"] == "failed"
    assert bad["stateMessage"] == (f"invalid pipeline: {FILE}: stages[1].steps[0].runScriptConfig.shellScript: "
                              "shellScript is required when isShell is true")


def test_a_body_with_both_kinds_or_a_bad_repository_is_refused(api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    stages = [{"name": "a", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "true"}}]}]
    pipelines = f"/v3/projects/{project}/pipelines"
    assert_error(api.post(pipelines, json={"name": "both", "repositoryUrl": repository["url"], "stages": stages}),
                 422, field="repositoryUrl")
    assert_error(api.post(pipelines, json={"name": "bad", "repositoryUrl": "not a url"}), 422, field="repositoryUrl")
    assert_error(api.post(pipelines, json={"name": "path", "repositoryUrl": repository["url"],
                                           "configPath": "../x.yml"}), 422, field="configPath")
    assert_error(api.post(pipelines, json={"name": "stored", "stages": stages, "configPath": "x.yml"}),
                 422, field="configPath")
    assert_error(api.post(pipelines, json={"name": "neither"}), 422, field="stages")


def test_a_cron_run_builds_the_default_branch_s_file(api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    """As Prefect's scheduler makes a cron run: from the deployment, no branch given."""
    from prefect.client.orchestration import get_client

    project = new_project(api)
    created = create(api, project, {"name": "nightly", "repositoryUrl": repository["url"], "branch": "dev",
                                    "triggerCronExpression": "0 3 * * *"})
    assert created["nextStart"] is not None
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"run-pipeline/{project}:nightly")
        client.create_flow_run_from_deployment(deployment.id, parameters={"trigger": {"triggeredBy": "cron"}})
    done = wait_state(api, project, "nightly-1")
    assert (done["state"], done["triggeredBy"], done["event"], done["branch"]) == ("success", "cron", "cron", "dev")
    assert f"dev at {repository['dev']} on dev" in step_log(api, project, done["id"], 1, 0)


def test_branches_configs_and_yaml_and_a_commit_through_the_api(api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    project = new_project(api)
    created = create(api, project, {"name": "pac", "repositoryUrl": repository["url"], "branch": "main"})
    assert {"branches", "configs", "yaml"} <= set(created["links"])
    base = f"/v3/projects/{project}/pipelines/pac"
    assert api.get(f"{base}/branches").json()["branches"] == ["bad", "dev", "main", "nofile"]

    configs = api.get(f"{base}/configs").json()["configs"]
    assert [stage["name"] for stage in configs["main"]["config"]["stages"]] == ["Clone", "build", "release"]
    assert configs["main"]["commit"] == repository["main"] and configs["main"]["file"] == FILE
    assert configs["nofile"] == {"config": None, "error": f"no {FILE} or .rancher-pipeline.yaml"}
    assert configs["bad"]["config"] is None
    assert configs["bad"]["error"].startswith(f"{FILE}: stages[1].steps[0].runScriptConfig.shellScript")
    assert list(api.get(f"{base}/configs", params={"branch": "dev"}).json()["configs"]) == ["dev"]
    assert_error(api.get(f"{base}/configs", params={"branch": "gone"}), 404)

    text = api.get(f"{base}/yaml", params={"branch": "main"})
    assert text.status_code == 200 and text.text == pipeline_file("main")
    assert text.headers["content-type"].startswith("application/yaml")
    assert_error(api.get(f"{base}/yaml", params={"branch": "nofile"}), 404)
    assert_error(api.get(f"{base}/yaml"), 422, field="branch")

    # A commit through the API: validated first, then the next run of the branch runs it.
    bad = api.put(f"{base}/yaml", params={"branch": "main"}, content=b"stages: [",
                  headers={"Content-Type": "application/yaml"})
    assert_error(bad, 422)
    assert f"{FILE}: " in bad.json()["message"]
    committed = api.put(f"{base}/yaml", params={"branch": "main"}, content=pipeline_file("edited").encode(),
                        headers={"Content-Type": "application/yaml"})
    assert committed.status_code == 200, committed.text
    assert committed.json()["file"] == FILE and committed.json()["branch"] == "main"
    done = wait_state(api, project, run(api, project, "pac")["id"])
    assert done["commit"] == committed.json()["commit"] and done["message"] == f"Update {FILE}"
    assert f"edited at {done['commit']} on main" in step_log(api, project, done["id"], 1, 0)
    assert_error(api.put(f"{base}/yaml", params={"branch": "main"}, json={"stages": []}), 415)

    stored = create(api, project, {"name": "stored", "stages": [
        {"name": "a", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "true"}}]}]})
    assert "yaml" not in stored["links"]
    assert_error(api.get(f"/v3/projects/{project}/pipelines/stored/branches"), 404, code="ActionNotAvailable")


def test_a_files_limits_caches_and_notification_hold_as_a_stored_pipelines(
        api: httpx.Client, repository) -> None:  # type: ignore[no-untyped-def]
    from tests.support.receivers import WebhookReceiver
    from tests.support.runs import flow_log_of
    from tests.support.procs import wait_for

    receiver = WebhookReceiver()
    try:
        notifier = api.post("/v3/notifiers", json={"name": "pac", "clusterId": "c-test",
                                                    "webhookConfig": {"url": receiver.url}})
        stranger = api.post("/v3/notifiers", json={"name": "pac", "clusterId": "c-elsewhere",
                                                    "webhookConfig": {"url": receiver.url}})
        assert notifier.status_code == 201 and stranger.status_code == 201
        project = new_project(api)  # of cluster c-test

        def file(script: str, *, notify: str, extra: str = "") -> str:
            return textwrap.dedent(f"""\
                stages:
                - name: build
                  steps:
                  - runScriptConfig: {{image: busybox, shellScript: "{script}"}}
                    memoryLimit: 64Mi{extra}
                cache:
                - path: /root/.cache
                notification:
                  recipients: [{{notifier: "{notify}"}}]
                  condition: [Success, Failed]
                """)

        remember = "cat /root/.cache/seen 2>/dev/null || echo first; echo $CICD_EXECUTION_SEQUENCE > /root/.cache/seen"
        repository["push"]("main", {FILE: file(remember, notify=notifier.json()["id"])})
        create(api, project, {"name": "pacx", "repositoryUrl": repository["url"], "branch": "main"})
        first = wait_state(api, project, run(api, project, "pacx")["id"])
        second = wait_state(api, project, run(api, project, "pacx")["id"])
        assert (first["state"], second["state"]) == ("success", "success")
        assert step_log(api, project, first["id"], 1, 0).strip() == "first"
        assert step_log(api, project, second["id"], 1, 0).strip() == "1"  # the file's cache
        assert receiver.wait_for(second["id"])["state"] == "success"  # the file's notification
        # The file's steps are held to the project: its memory limit, and no privilege.
        repository["push"]("main", {FILE: file("dd if=/dev/zero of=/dev/null bs=200M count=1",
                                               notify=stranger.json()["id"])})
        hungry = wait_state(api, project, run(api, project, "pacx")["id"])
        assert hungry["state"] == "failed"
        assert "out of memory (limit 64Mi)" in step_log(api, project, hungry["id"], 1, 0)
        # A notifier of another cluster, named in a file, sends nothing and says so.
        wait_for(lambda: "not sent: cluster c-test has no notifier" in flow_log_of(project, hungry["id"]),
                 timeout=60, what="the refused notifier logged")
        assert receiver.about(hungry["id"]) == []
        repository["push"]("main", {FILE: file("true", notify=notifier.json()["id"],
                                               extra="\n" + " " * 20 + "privileged: true")})
        refused = wait_state(api, project, run(api, project, "pacx")["id"])
        assert refused["state"] == "failed"
        assert "stages[1].steps[0].privileged" in refused["stateMessage"], refused["stateMessage"]
    finally:
        receiver.stop()

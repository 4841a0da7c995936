"""The run-pipeline flow on a real Prefect server, a real docker engine, git server and registry."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling

from prefect_pipelines.flows.output import MASK
from prefect_pipelines.vocabulary import credential_block_name
from tests.support.docker_engine import containers_of
from tests.support.procs import wait_for
from tests.support.runs import BackgroundRun, flow_log, logs, run_definition, step_log, task_runs

pytestmark = pytest.mark.usefixtures("prefect_api", "docker_client")


def _running_container(client, execution_id: str):  # type: ignore[no-untyped-def]
    """A running step container of an execution, by its labels."""
    containers = client.containers.list(filters={"label": f"io.prefect-pipelines.execution-id={execution_id}"})
    return containers[0] if containers else None


def running_flow_run(client, execution_id: str) -> str | None:  # type: ignore[no-untyped-def]
    """The flow run of a running step container of an execution, by its labels."""
    container = _running_container(client, execution_id)
    return container.labels["io.prefect-pipelines.flow-run-id"] if container else None


def script(text: str, **extra: Any) -> dict[str, Any]:
    return {"runScriptConfig": {"image": "busybox", "shellScript": text, **extra}}


def stages(*steps_per_stage: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"stages": [{"name": f"stage{i}", "steps": steps} for i, steps in enumerate(steps_per_stage)], **top}


@pytest.fixture
def registry_login(registry):  # type: ignore[no-untyped-def]
    """A prefect-docker DockerRegistryCredentials block for the test registry."""
    from prefect_docker.credentials import DockerRegistryCredentials

    name = f"test-registry-{uuid.uuid4().hex[:8]}"
    DockerRegistryCredentials(
        username=registry.username, password=registry.password, registry_url=f"http://{registry.host}"
    ).save(name)
    yield registry
    DockerRegistryCredentials.delete(name)


class TestStepKinds:
    def test_clone_script_and_publish(self, app_repo, registry_login, docker_client) -> None:  # type: ignore[no-untyped-def]
        registry = registry_login
        repository = f"{registry.host}/demo/app-{uuid.uuid4().hex[:6]}"
        definition = stages(
            [{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main"}}],
            [script('cat hello.txt; echo "commit=$CICD_GIT_COMMIT"; echo "exec=$CICD_EXECUTION_ID"')],
            [{"publishImageConfig": {"tag": repository + ":${CICD_GIT_BRANCH}"}}],
        )
        state, flow_run_id = run_definition(definition, pipeline_id="app-ci")
        assert state.is_completed(), state.message
        output = step_log(flow_run_id, 1, 0)
        assert "hello from main" in output
        assert f"commit={app_repo['main']}" in output
        assert "exec=app-ci-0" in output  # a run outside a deployment is not numbered
        assert "main" in registry.tags(repository.split("/", 1)[1])
        # The pushed image runs: pull it back (after removing the local copy) and run it.
        docker_client.images.remove(f"{repository}:main", force=True)
        docker_client.login(registry.username, registry.password, registry=f"http://{registry.host}")
        docker_client.images.pull(repository, tag="main")
        printed = docker_client.containers.run(f"{repository}:main", remove=True, network_mode="none")
        assert printed.decode().strip() == "hello from main"
        assert registry.password not in flow_log(flow_run_id)

    def test_branch_from_the_run(self, app_repo) -> None:  # type: ignore[no-untyped-def]
        definition = stages(
            [{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main|dev"}},
             script('cat hello.txt; echo "branch=$CICD_GIT_BRANCH"')],
        )
        state, flow_run_id = run_definition(definition, branch="dev")
        assert state.is_completed(), state.message
        output = step_log(flow_run_id, 0, 1)
        assert "hello from dev" in output and "branch=dev" in output

    def test_branch_not_built_by_the_pipeline_fails_the_run(self, app_repo) -> None:  # type: ignore[no-untyped-def]
        definition = stages([{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main"}}])
        state, _ = run_definition(definition, branch="dev")
        assert state.is_failed()
        assert "branch 'dev' is not built by this pipeline" in state.message

    def test_entrypoint_command_and_env(self) -> None:
        definition = stages([{"runScriptConfig": {
            "image": "busybox", "isShell": False, "entrypoint": ["sh", "-c"],
            "command": ['echo "foo=$FOO pwd=$(pwd) event=$CICD_EVENT"'], "env": ["FOO=BAR BAZ"],
        }}])
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        assert "foo=BAR BAZ pwd=/workspace event=manual" in step_log(flow_run_id, 0, 0)

    def test_both_streams_of_a_non_shell_step(self) -> None:
        definition = stages([{"runScriptConfig": {
            "image": "busybox", "isShell": False, "entrypoint": ["sh", "-c"],
            "command": ["echo out; echo err >&2; exit 3"]}}])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed() and "exited with code 3" in state.message
        output = step_log(flow_run_id, 0, 0)
        assert "out" in output.split("\n") and "err" in output.split("\n")

    def test_steps_share_the_workspace(self) -> None:
        definition = stages([script("echo made-in-stage-0 > shared.txt")], [script("cat shared.txt")])
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        assert "made-in-stage-0" in step_log(flow_run_id, 1, 0)

    def test_task_runs_are_named_for_people_and_tagged_by_stage_and_step(self) -> None:
        state, flow_run_id = run_definition(stages([script("true"), script("echo two; true")],
                                                   [script("echo 'stage one'")]))
        assert state.is_completed()
        runs = task_runs(flow_run_id)  # found by their tags
        assert sorted(runs) == [(0, 0), (0, 1), (1, 0)]
        assert {position: run.name for position, run in runs.items()} == {
            (0, 0): "stage0 / 1: busybox true",
            (0, 1): "stage0 / 2: busybox echo two; true",
            (1, 0): "stage1 / 1: busybox echo 'stage one'",
        }
        for (i, j), run in runs.items():
            assert {f"stage:{i}", f"step:{j}"} <= set(run.tags)
            assert run.state_type == StateType.COMPLETED
        # Output records name their step for people too.
        names = {record.name for record in logs(flow_run_id) if record.task_run_id == runs[(0, 1)].id}
        assert "stage0 / 2 output@0" in names, names

    def test_missing_image_fails_with_a_clear_message(self) -> None:
        definition = stages([{"runScriptConfig": {"image": "127.0.0.1:1/nope/none:1", "shellScript": "true"}}])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert "127.0.0.1:1/nope/none:1" in step_log(flow_run_id, 0, 0)

    def test_invalid_definition_fails_the_run_with_the_field(self) -> None:
        state, _ = run_definition({"stages": [{"name": "a", "steps": [{"runScriptConfig": {}}]}]})
        assert state.is_failed()
        assert "stages[0].steps[0].runScriptConfig.image: is required" in state.message


    def test_a_tag_that_cannot_resolve_fails_the_run_before_any_step(self) -> None:
        """The plan is compiled once, before anything runs: a bad tag in the last stage
        fails the run with its path, and the first stage's step never starts."""
        definition = stages([script("true")], [{"publishImageConfig": {"tag": "app:${NOT_A_VARIABLE}"}}])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert ("stages[1].steps[0].publishImageConfig.tag: 'app:${NOT_A_VARIABLE}' uses "
                "${NOT_A_VARIABLE}, which is not set") in state.message
        assert task_runs(flow_run_id) == {}


class TestWhen:
    def test_when_skips_by_event_failure_ignore_goes_on_and_status_failure_cleans_up(self) -> None:
        """A manual run: a push-only step is skipped (its task run says so, nothing runs),
        a `failure: ignore` step fails without failing its stage, a failing stage skips
        the next one but not a `status: failure` one after it."""
        definition = stages(
            [script("echo one"), {**script("echo push-only"), "when": {"event": "push"}},
             {**script("exit 5"), "failure": "ignore"}],
            [script("exit 3")],
            [script("echo never")],
        )
        definition["stages"].insert(2, {"name": "cleanup", "when": {"status": "failure"},
                                        "steps": [script("echo cleaning up")]})
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert state.message == "stage 'stage1' failed: step stage1 / 1: the script exited with code 3"
        runs = task_runs(flow_run_id)
        skipped = runs[(0, 1)]
        assert (skipped.state_type, skipped.state_name) == (StateType.COMPLETED, "Skipped")
        assert skipped.state is not None
        assert skipped.state.message == "skipped: when.event (include ['push']) does not match 'manual'"
        assert "push-only" not in step_log(flow_run_id, 0, 1)
        assert runs[(0, 2)].state_type == StateType.FAILED  # ignored: stage 1 still ran
        assert runs[(1, 0)].state_type == StateType.FAILED
        assert runs[(2, 0)].state_type == StateType.COMPLETED
        assert "cleaning up" in step_log(flow_run_id, 2, 0)
        assert (3, 0) not in runs

    def test_a_stage_for_another_branch_is_skipped_and_the_pipeline_branch_refuses_others(
            self, app_repo) -> None:  # type: ignore[no-untyped-def]
        definition = stages(
            [{"sourceCodeConfig": {"url": app_repo["url"], "branchCondition": "all"}}],
            [script("echo release")],
            branch={"include": ["main", "dev*"], "exclude": ["dev-old"]},
        )
        definition["stages"][1]["when"] = {"branch": "release/*"}
        state, flow_run_id = run_definition(definition, branch="main")
        assert state.is_completed(), state.message
        assert task_runs(flow_run_id)[(1, 0)].state_name == "Skipped"
        state, flow_run_id = run_definition(definition, branch="dev-old")
        assert state.is_failed()
        assert "branch: branch 'dev-old' is not built by this pipeline (branch: include" in state.message
        assert task_runs(flow_run_id) == {}


class TestFailures:
    def test_failing_step_fails_the_run_and_skips_later_stages(self) -> None:
        definition = stages([script("echo before; exit 3")], [script("echo never")])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert state.message == "stage 'stage0' failed: step stage0 / 1: the script exited with code 3"
        runs = task_runs(flow_run_id)
        assert runs[(0, 0)].state_type == StateType.FAILED
        assert (1, 0) not in runs
        assert "stage 1 'stage1' skipped" in flow_log(flow_run_id)

    def test_a_failure_aborts_the_running_siblings(self, docker_client) -> None:  # type: ignore[no-untyped-def]
        definition = stages([script("sleep 60"), script("sleep 1; exit 1"), script("sleep 60")])
        started = time.monotonic()
        state, flow_run_id = run_definition(definition)
        assert time.monotonic() - started < 30
        assert state.is_failed()
        runs = task_runs(flow_run_id)
        assert runs[(0, 1)].state_type == StateType.FAILED
        for sibling in (0, 2):
            assert runs[(0, sibling)].state_type == StateType.CANCELLED
            assert "aborted: step stage0/1 of this stage failed" in step_log(flow_run_id, 0, sibling)
        assert containers_of(docker_client, str(flow_run_id)) == []

    def test_step_timeout(self) -> None:
        definition = stages([{**script("echo start; sleep 60"), "timeout": 0.05}])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert "timed out after 0.05 minute(s)" in state.message
        assert "timed out after 0.05 minute(s)" in step_log(flow_run_id, 0, 0)

    def test_pipeline_timeout(self) -> None:
        definition = stages([script("true")], [script("sleep 60")], timeout=0.08)
        state, _ = run_definition(definition)
        assert state.is_failed()
        assert "timed out after 0.08 minute(s) (the pipeline's timeout)" in state.message


class TestLimits:
    def test_a_step_over_its_memory_limit_fails_out_of_memory(self) -> None:
        # dd's 200 MiB block is allocated and written: past the 64Mi limit, swap included.
        definition = stages([{**script("echo allocating\ndd if=/dev/zero of=/dev/null bs=200M count=1"),
                              "memoryLimit": "64Mi"}])
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert state.message == "stage 'stage0' failed: step stage0 / 1: out of memory (limit 64Mi)"
        assert "out of memory (limit 64Mi)" in step_log(flow_run_id, 0, 0)
        assert "exit" not in task_runs(flow_run_id)[(0, 0)].state.message
        ok = stages([{**script("dd if=/dev/zero of=/dev/null bs=16M count=1 && echo fits"),
                      "memoryLimit": "64Mi", "cpuLimit": "500m", "cpuRequest": "250m"}])
        state, flow_run_id = run_definition(ok)
        assert state.is_completed(), state.message
        assert "fits" in step_log(flow_run_id, 0, 0)

    def test_privileged_reaches_the_container(self) -> None:
        # The effective capabilities say whether the container is privileged. This
        # machine's sandbox refuses privileged containers: then the step fails with the
        # engine's own message (and elsewhere it runs with every capability).
        plain = "grep CapEff /proc/self/status"
        state, flow_run_id = run_definition(stages([script(plain)]))
        assert state.is_completed(), state.message
        default_caps = step_log(flow_run_id, 0, 0).split("CapEff:")[1].split()[0]
        state, flow_run_id = run_definition(stages([{**script(plain), "privileged": True}]))
        if state.is_completed():
            caps = step_log(flow_run_id, 0, 0).split("CapEff:")[1].split()[0]
            assert int(caps, 16) > int(default_caps, 16)
        else:
            assert "could not create the container" in state.message or "the container failed" in state.message
            assert "operation not permitted" in state.message, state.message


class TestCaches:
    CACHE = [{"path": "/root/.cache/tool"}, {"path": "deps", "key": "${CICD_GIT_BRANCH}"}]

    def test_a_second_run_finds_what_the_first_cached_and_a_failed_run_saves_nothing(self) -> None:
        pipeline = f"cached-{uuid.uuid4().hex[:6]}"

        def go(text: str, branch: str = "main") -> tuple[Any, Any]:
            return run_definition(stages([script(text)], cache=self.CACHE, branch=["*"]),
                                  pipeline_id=pipeline, project_id="c-cache:p-one", branch=branch)

        state, first = go("ls /root/.cache/tool deps; echo one > /root/.cache/tool/stamp; "
                          "mkdir -p deps/lib && echo main-deps > deps/lib/a")
        assert state.is_completed(), state.message
        assert "nothing saved yet" in flow_log(first)
        state, second = go("cat /root/.cache/tool/stamp deps/lib/a; echo two >> /root/.cache/tool/stamp")
        assert state.is_completed(), state.message
        assert step_log(second, 0, 0).split() == ["one", "main-deps"]
        assert "cache /root/.cache/tool: restored" in flow_log(second)
        # A failed run's changes are not kept; another key (branch) is another copy.
        state, _ = go("echo three > /root/.cache/tool/stamp; exit 1")
        assert state.is_failed()
        state, fourth = go("cat /root/.cache/tool/stamp; ls deps 2>/dev/null || echo no-deps", branch="dev")
        assert state.is_completed(), state.message
        assert step_log(fourth, 0, 0).split() == ["one", "two", "no-deps"]
        # Another project's pipeline of the same name, path and key sees none of it.
        state, other = run_definition(stages([script("ls -A /root/.cache/tool | wc -l")], cache=self.CACHE,
                                             branch=["*"]),
                                      pipeline_id=pipeline, project_id="c-cache:p-two", branch="main")
        assert state.is_completed(), state.message
        assert step_log(other, 0, 0).strip() == "0"

    def test_runs_at_once_never_see_a_half_written_cache(self) -> None:
        pipeline = f"racing-{uuid.uuid4().hex[:6]}"
        # Each run writes 4 MiB of its own byte and the digest of it; whichever saves last
        # wins, whole: the next run finds a file that matches its digest.
        write = ("c=$(echo $CICD_EXECUTION_ID | md5sum | cut -c1-2); "
                 "if [ -f /root/.cache/blob ]; then md5sum -c /root/.cache/blob.md5 || exit 9; fi; "
                 "head -c 4194304 /dev/zero | tr '\\0' \"\\x$c\" > /root/.cache/blob; "
                 "sleep 1; md5sum /root/.cache/blob > /root/.cache/blob.md5")
        definition = stages([script(write)], cache=[{"path": "/root/.cache"}])
        state, _ = run_definition(definition, pipeline_id=pipeline, project_id="c-cache:p-one")
        assert state.is_completed(), state.message
        runs = [BackgroundRun(definition, pipeline_id=pipeline, project_id="c-cache:p-one")
                for _ in range(3)]
        for background in runs:
            state, flow_run_id = background.join(120)
            assert state.is_completed(), (state.message, step_log(flow_run_id, 0, 0))
        check = stages([script("md5sum -c /root/.cache/blob.md5")], cache=[{"path": "/root/.cache"}])
        state, flow_run_id = run_definition(check, pipeline_id=pipeline, project_id="c-cache:p-one")
        assert state.is_completed(), step_log(flow_run_id, 0, 0)
        assert "blob: OK" in step_log(flow_run_id, 0, 0)


class TestCancellation:
    def test_cancelling_stops_the_containers(self, docker_client) -> None:  # type: ignore[no-untyped-def]
        pipeline_id = f"cancel-{uuid.uuid4().hex[:8]}"
        definition = stages([script("echo started; sleep 120"), script("sleep 120")], [script("echo never")])
        background = BackgroundRun(definition, pipeline_id=pipeline_id)
        flow_run_id = wait_for(lambda: running_flow_run(docker_client, f"{pipeline_id}-0"),
                               timeout=60, what="the step container")
        wait_for(lambda: len(containers_of(docker_client, flow_run_id)) == 2, timeout=30,
                 what="both step containers")
        asked = time.monotonic()
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(uuid.UUID(flow_run_id), Cancelling(message="stop it"))
        wait_for(lambda: containers_of(docker_client, flow_run_id) == [], timeout=15,
                 what="the containers to go")
        assert time.monotonic() - asked < 10
        state, _ = background.join(timeout=30)
        assert state.type == StateType.CANCELLED
        runs = task_runs(uuid.UUID(flow_run_id))
        assert {runs[(0, 0)].state_type, runs[(0, 1)].state_type} == {StateType.CANCELLED}
        assert (1, 0) not in runs


class TestCredentials:
    def test_private_clone_with_a_source_code_credential(self, git_server) -> None:  # type: ignore[no-untyped-def]
        from prefect_pipelines.blocks import SourceCodeCredential

        token = f"gho_{uuid.uuid4().hex}"
        # The repository happens to hold the token itself: the step prints it, masked.
        git_server.create_repo("private-app", {"main": {"secret.txt": "private content\n",
                                                        "token.txt": f"token:{token}\n"}},
                               private_token=token)
        SourceCodeCredential(credential_id="u-test-github-octo", user_id="u-test",
                             access_token=token).save(credential_block_name("u-test-github-octo"),
                                                      overwrite=True)
        url = git_server.repo_url("private-app")
        definition = stages([
            {"sourceCodeConfig": {"url": url, "branch": "main", "sourceCodeCredentialId": "u-test-github-octo"}},
            script("cat secret.txt token.txt"),
        ])
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        text = flow_log(flow_run_id)
        assert "private content" in text
        assert token not in text and f"token:{MASK}" in text
        # Without the credential the clone is refused by the server, and says so.
        bare = stages([{"sourceCodeConfig": {"url": url, "branch": "main"}}])
        state, flow_run_id = run_definition(bare)
        assert state.is_failed()
        assert "git fetch failed" in state.message

    def test_unknown_credential_is_a_clear_failure(self, app_repo) -> None:  # type: ignore[no-untyped-def]
        definition = stages([{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main",
                                                    "sourceCodeCredentialId": "nobody-github-x"}}])
        state, _ = run_definition(definition)
        assert state.is_failed()
        assert "source code credential 'nobody-github-x' does not exist" in state.message

    def test_push_without_a_login_fails_clearly(self, app_repo, registry) -> None:  # type: ignore[no-untyped-def]
        definition = stages(
            [{"sourceCodeConfig": {"url": app_repo["url"], "branch": "main"}}],
            [{"publishImageConfig": {"tag": f"{registry.host}/demo/nologin:1"}}],
        )
        state, flow_run_id = run_definition(definition)
        assert state.is_failed()
        assert "the push failed" in state.message
        assert "no registry credentials match" in step_log(flow_run_id, 1, 0)


class TestUntrustedValues:
    def test_branch_names_reach_steps_only_as_values(self, tmp_path: Path) -> None:
        target = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"
        branch = f"$(touch${{IFS}}{target})"
        definition = stages([script('echo "branch=$CICD_GIT_BRANCH"')])
        state, flow_run_id = run_definition(definition, branch=branch)
        assert state.is_completed(), state.message
        assert f"branch={branch}" in step_log(flow_run_id, 0, 0)
        assert not target.exists()

    def test_commit_must_be_a_hash(self) -> None:
        state, _ = run_definition(stages([script("true")]), trigger={"commit": "--upload-pack=x"})
        assert state.is_failed()
        assert "is not a commit hash" in state.message


class TestLogs:
    def test_output_is_visible_while_the_step_runs(self, docker_client) -> None:  # type: ignore[no-untyped-def]
        # The step prints a line, then waits until the test lets it go: the line has to reach
        # Prefect while the step still runs, however slow this machine is at the moment.
        marker = uuid.uuid4().hex
        pipeline_id = f"live-{uuid.uuid4().hex[:8]}"
        definition = stages([script(f"echo {marker}; until [ -e /tmp/go ]; do sleep 0.2; done; echo done")])
        background = BackgroundRun(definition, pipeline_id=pipeline_id)
        container = wait_for(lambda: _running_container(docker_client, f"{pipeline_id}-0"),
                             timeout=60, what="the container")
        flow_run_id = uuid.UUID(container.labels["io.prefect-pipelines.flow-run-id"])
        try:
            wait_for(lambda: marker in step_log(flow_run_id, 0, 0), timeout=30, what="the line in Prefect")
            container.reload()
            assert container.status == "running"  # seen while the step still runs
            assert "done" not in step_log(flow_run_id, 0, 0)
        finally:
            assert container.exec_run(["touch", "/tmp/go"]).exit_code == 0
        assert background.join(timeout=60)[0].is_completed()
        assert step_log(flow_run_id, 0, 0).splitlines()[-1].endswith("done")

    def test_many_lines_arrive_complete_and_in_order(self) -> None:
        definition = stages([script("i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done")])
        state, flow_run_id = run_definition(definition)
        assert state.is_completed()
        lines = [line for line in step_log(flow_run_id, 0, 0).splitlines() if line.startswith("line-")]
        assert lines == [f"line-{i}" for i in range(20000)]


class TestSecretEnv:
    def test_env_from_secret_blocks_is_masked_in_the_log(self) -> None:
        from prefect.blocks.system import Secret

        from tests.support.secret_scan import scan

        plain, nested = f"pw-{uuid.uuid4().hex}", f"api-{uuid.uuid4().hex}"
        scan.add(plain, "a Secret block value")
        scan.add(nested, "a Secret block JSON value")
        name = f"db-{uuid.uuid4().hex[:8]}"
        Secret(value=plain).save(name)
        Secret(value={"token": nested, "user": "svc"}).save(f"{name}-json")
        definition = stages([{"runScriptConfig": {
            "image": "busybox", "shellScript": 'echo "pw=$DB_PASS token=$API_TOKEN user=$API_USER"',
            "envFrom": [{"sourceName": name, "targetKey": "DB_PASS"},
                        {"sourceName": f"{name}-json", "sourceKey": "token", "targetKey": "API_TOKEN"},
                        {"sourceName": f"{name}-json", "sourceKey": "user", "targetKey": "API_USER"}],
        }}])
        state, flow_run_id = run_definition(definition)
        assert state.is_completed(), state.message
        output = step_log(flow_run_id, 0, 0)
        assert f"pw={MASK} token={MASK} user={MASK}" in output  # every value of a Secret is secret
        assert plain not in flow_log(flow_run_id) and nested not in flow_log(flow_run_id)

    def test_missing_secret_or_key_fails_the_step_clearly(self) -> None:
        from prefect.blocks.system import Secret

        name = f"k-{uuid.uuid4().hex[:8]}"
        Secret(value={"a": "b"}).save(name)
        for env_from, message in (
            ({"sourceName": f"none-{uuid.uuid4().hex[:6]}", "targetKey": "X"}, "does not exist"),
            ({"sourceName": name, "sourceKey": "zzz", "targetKey": "X"}, "has no key 'zzz'"),
        ):
            definition = stages([{"runScriptConfig": {"image": "busybox", "shellScript": "true",
                                                      "envFrom": [env_from]}}])
            state, _ = run_definition(definition)
            assert state.is_failed() and message in state.message

    def test_pull_request_runs_get_no_secrets(self) -> None:
        from prefect.blocks.system import Secret

        name = f"pr-{uuid.uuid4().hex[:8]}"
        Secret(value="never-for-prs").save(name)
        definition = stages([{"runScriptConfig": {"image": "busybox", "shellScript": 'echo "v=[$S]"',
                                                  "envFrom": [{"sourceName": name, "targetKey": "S"}]}}])
        state, flow_run_id = run_definition(definition, trigger={"triggeredBy": "webhook",
                                                                 "event": "pull_request"})
        assert state.is_completed(), state.message
        output = step_log(flow_run_id, 0, 0)
        assert "v=[]" in output and "not given to pull_request runs" in output

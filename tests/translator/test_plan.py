"""The compiled run plan: order, labels, timeouts, the CICD_* environment, image tags."""

from __future__ import annotations

import pytest

from prefect_pipelines.translator import RunIdentity, Trigger, compile_plan, parse_pipeline
from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator.plan import (
    StepDefaults,
    StepLimits,
    expand_image_reference,
    repo_name,
    split_reference,
)

CONFIG = parse_pipeline({
    "stages": [
        {"name": "build", "steps": [
            {"sourceCodeConfig": {"url": "https://git.example.com/team/app.git", "branch": "main|dev"}},
            {"runScriptConfig": {"image": "busybox", "shellScript": "true"}, "timeout": 2},
        ]},
        {"name": "publish", "steps": [{"publishImageConfig": {}}]},
    ],
    "timeout": 30,
})
IDENTITY = RunIdentity(pipeline_id="app-ci", project_id="c-abc:p-xyz", run=7)


def test_stages_steps_labels_and_timeouts() -> None:
    plan = compile_plan(CONFIG, identity=IDENTITY, branch="dev")
    assert [(s.stage, s.index, s.kind, s.label, s.tags) for s in plan.steps()] == [
        (0, 0, "sourceCode", "build/0", ("stage:0", "step:0")),
        (0, 1, "runScript", "build/1", ("stage:0", "step:1")),
        (1, 0, "publishImage", "publish/0", ("stage:1", "step:0")),
    ]
    # Titles are for people: stage name, step number from 1, what it does, its ${VAR}s
    # expanded where the run knows them before it starts.
    assert [plan.title_of(s) for s in plan.steps()] == [
        "build / 1: clone git.example.com/team/app.git (main|dev)",
        "build / 2: busybox true",
        "publish / 1: publish app:dev",
    ]
    assert plan.steps()[1].timeout_seconds == 120
    assert plan.steps()[0].timeout_seconds is None
    assert plan.timeout_seconds == 1800


def test_cicd_environment() -> None:
    trigger = Trigger(triggered_by="webhook", event="push", commit="a" * 40, ref="refs/heads/dev")
    env = compile_plan(CONFIG, identity=IDENTITY, trigger=trigger, branch="dev").cicd_env()
    assert env == {
        "CICD_GIT_URL": "https://git.example.com/team/app.git",
        "CICD_GIT_REPO_NAME": "app",
        "CICD_GIT_BRANCH": "dev",
        "CICD_GIT_COMMIT": "a" * 40,
        "CICD_GIT_COMMIT_SHORT": "a" * 7,
        "CICD_GIT_REF": "refs/heads/dev",
        "CICD_GIT_TAG": "",
        "CICD_PIPELINE_ID": "app-ci",
        "CICD_EXECUTION_ID": "app-ci-7",
        "CICD_EXECUTION_SEQUENCE": "7",
        "CICD_TRIGGER_TYPE": "webhook",
        "CICD_EVENT": "push",
        "CICD_PROJECT_ID": "c-abc:p-xyz",
        "CICD_CLUSTER_ID": "c-abc",
    }


def test_commit_from_the_clone_wins_and_events_default_by_trigger() -> None:
    plan = compile_plan(CONFIG, identity=IDENTITY, branch="main")
    assert plan.cicd_env("b" * 40)["CICD_GIT_COMMIT"] == "b" * 40
    assert plan.cicd_env()["CICD_EVENT"] == "manual"
    cron = compile_plan(CONFIG, identity=IDENTITY, trigger=Trigger(triggered_by="cron"), branch="main")
    assert cron.cicd_env()["CICD_EVENT"] == "cron"
    tag = Trigger(triggered_by="webhook", event="tag", ref="refs/tags/v1.2")
    assert compile_plan(CONFIG, identity=IDENTITY, trigger=tag, branch="main").cicd_env()["CICD_GIT_TAG"] == "v1.2"


def test_branch_is_required_for_a_regex_pattern() -> None:
    with pytest.raises(e.BranchRequiredError):
        compile_plan(CONFIG, identity=IDENTITY)
    with pytest.raises(e.BranchMismatchError):
        compile_plan(CONFIG, identity=IDENTITY, branch="feature")


def test_pipeline_without_clone_builds_the_given_branch() -> None:
    config = parse_pipeline({"stages": [{"name": "a", "steps": [{"runScriptConfig": {"image": "x", "shellScript": "y"}}]}]})
    plan = compile_plan(config, identity=IDENTITY, branch="topic")
    assert plan.branch == "topic" and plan.cicd_env()["CICD_GIT_URL"] == ""


def _one_stage(*steps: dict[str, object], clone: bool = True) -> object:
    head = [{"sourceCodeConfig": {"url": "https://git.example.com/team/app.git", "branch": "main"}}]
    return parse_pipeline({"stages": [{"name": "get", "steps": head}] * clone + [
        {"name": "work", "steps": list(steps)}]})


def test_resolving_a_step_decides_its_image_argv_env_secrets_and_registry() -> None:
    config = _one_stage(
        {"runScriptConfig": {"image": "reg.example.com:5000/go:${CICD_GIT_BRANCH}", "isShell": False,
                             "entrypoint": "go test", "command": ["./...", "-run", "A B"],
                             "env": ["GOFLAGS=-mod=vendor"],
                             "envFrom": [{"sourceName": "db", "sourceKey": "pw", "targetKey": "PW"}]}},
        {"publishImageConfig": {"tag": "team/${CICD_GIT_REPO_NAME}:${CICD_GIT_COMMIT_SHORT}",
                                "pushRemote": False}})
    plan = compile_plan(config, identity=IDENTITY, branch="main")
    script = plan.resolve(plan.steps()[1], "c" * 40)
    assert script.script is not None and script.publish is None
    assert (script.script.image, script.script.registry) == ("reg.example.com:5000/go:main", "reg.example.com:5000")
    assert (script.script.entrypoint, script.script.command) == (("go", "test"), ("./...", "-run", "A B"))
    assert [item.target_key for item in script.script.secrets] == ["PW"]
    assert not script.script.secrets_withheld and not script.script.is_shell
    assert script.env["GOFLAGS"] == "-mod=vendor" and script.env["CICD_GIT_COMMIT"] == "c" * 40
    assert "PW" not in script.env  # secrets are read when the step starts, never planned
    publish = plan.resolve(plan.steps()[2], "c" * 40).publish
    assert publish is not None
    assert (publish.tag, publish.registry, publish.repository, publish.image_tag, publish.push) == (
        "team/app:ccccccc", "", "team/app", "ccccccc", False)
    assert (publish.dockerfile, publish.context) == ("./Dockerfile", ".")
    pull_request = compile_plan(config, identity=IDENTITY, branch="main",
                                trigger=Trigger(triggered_by="webhook", event="pull_request"))
    withheld = pull_request.resolve(pull_request.steps()[1]).script
    assert withheld is not None and withheld.secrets == () and withheld.secrets_withheld


def test_a_shell_step_merges_stderr_into_one_argument() -> None:
    plan = compile_plan(_one_stage({"runScriptConfig": {"image": "busybox", "shellScript": "echo $X"}},
                                   clone=False), identity=IDENTITY)
    script = plan.resolve(plan.steps()[0]).script
    assert script is not None and script.is_shell and script.shell_script == "echo $X"
    assert (script.entrypoint, script.command) == (("sh", "-c", "exec 2>&1\necho $X"), None)


@pytest.mark.parametrize(("step", "path", "what"), [
    ({"runScriptConfig": {"image": "busybox:${NOPE}", "shellScript": "true"}},
     "stages[1].steps[1].runScriptConfig.image", r"\$\{NOPE\}"),
    ({"publishImageConfig": {"tag": "app:${CICD_GIT_BRANCH}"}},
     "stages[1].steps[1].publishImageConfig.tag", "feature/x"),
])
def test_a_step_that_cannot_resolve_fails_the_compile_naming_it(step: dict[str, object], path: str,
                                                                   what: str) -> None:
    """A bad image or tag in a late stage fails the run before the first step runs."""
    config = parse_pipeline({"stages": [
        {"name": "get", "steps": [{"sourceCodeConfig": {"url": "https://git.example.com/a.git",
                                                        "branch": "feature/x"}}]},
        {"name": "work", "steps": [{"runScriptConfig": {"image": "busybox", "shellScript": "true"}}, step]}]})
    with pytest.raises(e.ImageTagError, match=what) as raised:
        compile_plan(config, identity=IDENTITY, branch="feature/x")
    assert raised.value.path == path


def test_a_commit_the_clone_will_find_resolves_at_compile_and_is_filled_in_later() -> None:
    config = _one_stage({"publishImageConfig": {"tag": "app:${CICD_GIT_COMMIT_SHORT}"}})
    plan = compile_plan(config, identity=IDENTITY, branch="main")  # no commit yet: compiles
    publish = plan.resolve(plan.steps()[1], "d" * 40).publish
    assert publish is not None and publish.tag == "app:ddddddd"
    without_clone = _one_stage({"publishImageConfig": {"tag": "app:${CICD_GIT_COMMIT_SHORT}"}}, clone=False)
    with pytest.raises(e.ImageTagError, match="'app:'"):  # nothing will ever know the commit
        compile_plan(without_clone, identity=IDENTITY, branch="main")


class TestImageReferences:
    ENV = {"CICD_GIT_REPO_NAME": "app", "CICD_GIT_BRANCH": "main", "CICD_GIT_COMMIT": "abc1234"}

    def test_expansion(self) -> None:
        assert expand_image_reference("${CICD_GIT_REPO_NAME}:${CICD_GIT_BRANCH}", self.ENV) == "app:main"
        assert expand_image_reference("127.0.0.1:5000/t/${CICD_GIT_REPO_NAME}:${CICD_GIT_COMMIT}", self.ENV) == "127.0.0.1:5000/t/app:abc1234"

    def test_unknown_variable(self) -> None:
        with pytest.raises(e.ImageTagError, match=r"\$\{NOPE\}"):
            expand_image_reference("app:${NOPE}", self.ENV)

    @pytest.mark.parametrize("bad", ["App:1", "app:feature/x", "app:", ":tag", "reg:5000/", "a b",
                                     "app@sha256:" + "a" * 64])
    def test_invalid_after_expansion(self, bad: str) -> None:
        with pytest.raises(e.ImageTagError):
            expand_image_reference(bad, self.ENV)

    @pytest.mark.parametrize(("ref", "parts"), [
        ("busybox", ("", "busybox", "latest")),
        ("library/busybox:1.36", ("", "library/busybox", "1.36")),
        ("127.0.0.1:5000/demo/hello:main", ("127.0.0.1:5000", "127.0.0.1:5000/demo/hello", "main")),
        ("reg.example.com/rancher/server:dev", ("reg.example.com", "reg.example.com/rancher/server", "dev")),
        ("localhost/x", ("localhost", "localhost/x", "latest")),
        ("localhost:5000/x", ("localhost:5000", "localhost:5000/x", "latest")),
        ("reg:5000/team/app", ("reg:5000", "reg:5000/team/app", "latest")),
        ("index.docker.io/x/y:1", ("index.docker.io", "index.docker.io/x/y", "1")),
    ])
    def test_split(self, ref: str, parts: tuple[str, str, str]) -> None:
        assert split_reference(ref) == parts


@pytest.mark.parametrize(("url", "name"), [
    ("https://github.com/rancher/rancher.git", "rancher"),
    ("git@github.com:o/repo.git", "repo"),
    ("git@host:repo", "repo"),
    ("http://127.0.0.1:9/app.git/", "app"),
])
def test_repo_name(url: str, name: str) -> None:
    assert repo_name(url) == name


def test_step_titles_say_what_runs_briefly_and_keep_credentials_out() -> None:
    config = parse_pipeline({"stages": [
        {"name": "build", "steps": [{"sourceCodeConfig": {
            "url": "https://x-access-token:s3cr3t@git.example.com:8443/team/app.git", "branch": "main"}}]},
        {"name": "test", "steps": [
            {"runScriptConfig": {"image": "golang:1.8", "shellScript": "\n  go test ./...\n  go vet ./...\n"}},
            {"runScriptConfig": {"image": "busybox", "isShell": False, "entrypoint": ["sh", "-c"],
                                 "command": "echo hi"}},
            {"runScriptConfig": {"image": "busybox", "shellScript": "echo " + "x" * 300}},
        ]},
        {"name": "ship", "steps": [{"publishImageConfig": {
            "tag": "reg.example.com:5000/${CICD_GIT_REPO_NAME}:${CICD_GIT_COMMIT_SHORT}", "pushRemote": False}}]},
    ]})
    plan = compile_plan(config, identity=IDENTITY)
    titles = [plan.title_of(s) for s in plan.steps()]
    assert titles[0] == "build / 1: clone git.example.com:8443/team/app.git (main)"
    assert "s3cr3t" not in " ".join(titles) and "x-access-token" not in " ".join(titles)
    assert titles[1] == "test / 1: golang:1.8 go test ./... ..."
    assert titles[2] == "test / 2: busybox sh -c echo hi"
    assert len(titles[3]) == 96 and titles[3].endswith("\u2026")
    # The commit is not known before the clone: that part stays as written.
    assert titles[4] == "ship / 1: publish reg.example.com:5000/app:${CICD_GIT_COMMIT_SHORT} (not pushed)"


def test_rancher_21_step_keys_resolve_like_the_seed_s() -> None:
    """`env` as a map and `envFrom` beside the config (Rancher 2.1+'s file) resolve as the
    seed's `runScriptConfig.env` list and `envFrom` do; every step gets CI=true."""
    config = _one_stage(
        {"runScriptConfig": {"image": "busybox", "shellScript": "true"}, "env": {"A": "1", "CI": "no"},
         "envFrom": [{"sourceName": "db", "targetKey": "PW"}]},
        {"runScriptConfig": {"image": "busybox", "shellScript": "true", "env": ["B=2"]}})
    plan = compile_plan(config, identity=IDENTITY, branch="main")
    mapped, listed = (plan.resolve(step) for step in plan.steps()[1:])
    assert mapped.script is not None and [item.target_key for item in mapped.script.secrets] == ["PW"]
    assert (mapped.env["A"], mapped.env["CI"]) == ("1", "no")  # a step may say otherwise
    assert (listed.env["B"], listed.env["CI"]) == ("2", "true")


@pytest.mark.parametrize(("tag", "registry", "pushed", "error"), [
    ("rancher/rancher:v2.0.0", "reg.example.com", "reg.example.com/rancher/rancher:v2.0.0", None),
    ("app", "127.0.0.1:5000", "127.0.0.1:5000/app", None),
    ("reg.example.com/app:1", "reg.example.com", "reg.example.com/app:1", None),
    ("other.example.com/app:1", "reg.example.com", None, "names the registry other.example.com"),
])
def test_publish_registry_is_where_the_tag_is_pushed(tag: str, registry: str, pushed: str | None,
                                                      error: str | None) -> None:
    config = _one_stage({"publishImageConfig": {"tag": tag, "registry": registry}})
    if error:
        with pytest.raises(e.ImageTagError, match=error) as raised:
            compile_plan(config, identity=IDENTITY, branch="main")
        assert raised.value.path == "stages[1].steps[0].publishImageConfig.registry"
        return
    plan = compile_plan(config, identity=IDENTITY, branch="main")
    publish = plan.resolve(plan.steps()[1]).publish
    assert publish is not None and (publish.tag, publish.registry) == (pushed, registry)


def _limited(step: dict[str, object], defaults: StepDefaults = StepDefaults()) -> StepLimits:
    config = parse_pipeline({"stages": [{"name": "s", "steps": [
        {"runScriptConfig": {"image": "busybox", "shellScript": "true"}, **step}]}]})
    plan = compile_plan(config, identity=RunIdentity("p", "c-1:p-1", 1), defaults=defaults)
    resolved = plan.resolve(plan.steps()[0])
    assert resolved.script is not None
    return resolved.script.limits


def test_a_step_s_limits_are_its_own_else_its_project_s_each_alone() -> None:
    own = _limited({"cpuRequest": "250m", "cpuLimit": 1, "memoryRequest": "32Mi", "memoryLimit": "1Gi"})
    assert own == StepLimits(cpu_request_nanos=250_000_000, cpu_limit_nanos=10**9,
                             memory_request_bytes=32 * 2**20, memory_limit_bytes=2**30,
                             memory_limit="1Gi")
    project = StepDefaults.from_settings({"cpuLimit": "2", "memoryLimit": "512M", "executorQuota": 3})
    mixed = _limited({"memoryLimit": "64Mi"}, project)
    assert (mixed.cpu_limit_nanos, mixed.memory_limit_bytes, mixed.memory_limit) == (
        2 * 10**9, 64 * 2**20, "64Mi")
    assert _limited({}) == StepLimits()


def test_a_request_over_the_project_s_limit_names_the_step_and_the_setting() -> None:
    with pytest.raises(e.StepLimitsError) as caught:
        _limited({"memoryRequest": "128Mi"}, StepDefaults(memory_limit="64Mi"))
    assert caught.value.path == "stages[0].steps[0].memoryRequest"
    assert "settings.memoryLimit" in caught.value.message


def test_privileged_steps_run_only_where_the_project_allows_them() -> None:
    with pytest.raises(e.PrivilegedStepError) as caught:
        _limited({"privileged": True})
    assert caught.value.path == "stages[0].steps[0].privileged"
    assert "allowPrivileged" in caught.value.message
    assert _limited({"privileged": True}, StepDefaults(allow_privileged=True)).privileged
    assert not _limited({}, StepDefaults(allow_privileged=True)).privileged

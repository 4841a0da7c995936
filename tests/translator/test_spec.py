"""Validation of pipeline definitions: every rule, table-driven, with its typed error."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator import dump_yaml, parse_pipeline, parse_pipeline_yaml

RUN = {"runScriptConfig": {"image": "busybox", "shellScript": "echo hi"}}
CLONE = {"sourceCodeConfig": {"url": "https://github.com/rancher/rancher.git", "branch": "master"}}
PUBLISH = {"publishImageConfig": {"tag": "reg.example.com/rancher/server:dev"}}

ISSUE_EXAMPLE = """
stages:
- name: build/test
  steps:
  - sourceCodeConfig: {url: https://github.com/rancher/rancher.git, branch: master, sourceCodeCredentialId: sc-id}
  - runScriptConfig: {image: golang:1.8, isShell: true, shellScript: "go test ./...", env: ["FOO=BAR"]}
- name: publish
  steps:
  - publishImageConfig: {dockerfilePath: ./Dockerfile, buildContext: ., tag: "reg.example.com/rancher/server:dev"}
"""


def pipeline(*stages: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"stages": [{"name": f"s{i}", "steps": list(steps)} for i, steps in enumerate(stages)], **top}


def with_step(step: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a step with its config's fields changed (None removes a field)."""
    step = copy.deepcopy(step)
    (kind,) = [k for k in step if k.endswith("Config")]
    for key, value in changes.items():
        if value is None:
            step[kind].pop(key, None)
        else:
            step[kind][key] = value
    return step


class TestValidDefinitions:
    def test_the_issue_example_parses(self) -> None:
        config = parse_pipeline_yaml(ISSUE_EXAMPLE)
        assert [stage.name for stage in config.stages] == ["build/test", "publish"]
        source = config.stages[0].steps[0].source_code_config
        assert source is not None and source.source_code_credential_id == "sc-id"
        script = config.stages[0].steps[1].run_script_config
        assert script is not None and script.env_map() == {"FOO": "BAR"}
        assert config.timeout == 60

    def test_yaml_round_trip_is_lossless(self) -> None:
        config = parse_pipeline_yaml(ISSUE_EXAMPLE)
        text = dump_yaml(config.to_dict())
        again = parse_pipeline_yaml(text)
        assert again == config
        assert again.to_dict() == config.to_dict()
        # The camelCase names of the API are the names in the file.
        assert "sourceCodeCredentialId: sc-id" in text and "isShell: true" in text

    def test_round_trip_keeps_integers_and_lists(self) -> None:
        data = pipeline(
            [{"runScriptConfig": {"image": "busybox", "isShell": False,
                                  "entrypoint": ["sh", "-c"], "command": "echo hi"},
              "timeout": 5}],
            timeout=30, name="my-pipe", triggerCronExpression="0 3 * * *",
            triggerCronTimezone="Europe/Berlin", triggerWebhook=True,
        )
        assert parse_pipeline(data).to_dict() == data
        assert parse_pipeline_yaml(dump_yaml(data)).to_dict() == data

    def test_defaults(self) -> None:
        config = parse_pipeline(pipeline([RUN], [{"publishImageConfig": {}}]))
        publish = config.stages[1].steps[0].publish_image_config
        assert publish is not None
        assert (publish.dockerfile_path, publish.build_context) == ("./Dockerfile", ".")
        assert publish.tag == "${CICD_GIT_REPO_NAME}:${CICD_GIT_BRANCH}"
        assert config.stages[0].steps[0].run_script_config.is_shell is True  # type: ignore[union-attr]

    def test_clone_may_share_the_first_stage_with_other_steps(self) -> None:
        config = parse_pipeline(pipeline([CLONE, RUN, RUN]))
        assert [step.kind for step in config.stages[0].steps] == ["sourceCode", "runScript", "runScript"]

    def test_branch_condition_all_needs_no_branch(self) -> None:
        clone = {"sourceCodeConfig": {"url": "git@github.com:o/r.git", "branchCondition": "all"}}
        assert parse_pipeline(pipeline([clone])).source.branch is None  # type: ignore[union-attr]


INVALID = [
    # (id, data, error type, path)
    ("not a mapping", ["stages"], e.WrongTypeError, ""),
    ("no stages", {}, e.MissingFieldError, "stages"),
    ("empty stages", {"stages": []}, e.EmptyListError, "stages"),
    ("unknown top-level key", pipeline([RUN], colour="red"), e.UnknownFieldError, "colour"),
    ("stages not a list", {"stages": "build"}, e.WrongTypeError, "stages"),
    ("stage without name", {"stages": [{"steps": [RUN]}]}, e.MissingFieldError, "stages[0].name"),
    ("stage with blank name", {"stages": [{"name": " ", "steps": [RUN]}]}, e.InvalidValueError, "stages[0].name"),
    ("stage without steps", {"stages": [{"name": "a", "steps": []}]}, e.EmptyListError, "stages[0].steps"),
    ("unknown stage key", {"stages": [{"name": "a", "steps": [RUN], "needs": []}]}, e.UnknownFieldError, "stages[0].needs"),
    ("step is a string", pipeline(["echo"]), e.WrongTypeError, "stages[0].steps[0]"),
    ("step with no config", pipeline([{"timeout": 3}]), e.StepKindError, "stages[0].steps[0]"),
    ("step with two configs", pipeline([{**RUN, **PUBLISH}]), e.StepKindError, "stages[0].steps[0]"),
    ("unknown step key", pipeline([{**RUN, "priviliged": True}]), e.UnknownFieldError, "stages[0].steps[0].priviliged"),
    ("memory not a quantity", pipeline([{**RUN, "memoryLimit": "64MB"}]), e.InvalidValueError, "stages[0].steps[0].memoryLimit"),
    ("memory under the engine's least", pipeline([{**RUN, "memoryLimit": "4Mi"}]), e.InvalidValueError, "stages[0].steps[0].memoryLimit"),
    ("cpu in memory units", pipeline([{**RUN, "cpuLimit": "1Gi"}]), e.InvalidValueError, "stages[0].steps[0].cpuLimit"),
    ("cpu under a thousandth", pipeline([{**RUN, "cpuRequest": "0.0001"}]), e.InvalidValueError, "stages[0].steps[0].cpuRequest"),
    ("cpu a boolean", pipeline([{**RUN, "cpuLimit": True}]), e.WrongTypeError, "stages[0].steps[0].cpuLimit"),
    ("memory request over its limit", pipeline([{**RUN, "memoryRequest": "1Gi", "memoryLimit": "512Mi"}]), e.StepLimitsError, "stages[0].steps[0].memoryRequest"),
    ("cpu request over its limit", pipeline([{**RUN, "cpuRequest": "2", "cpuLimit": "500m"}]), e.StepLimitsError, "stages[0].steps[0].cpuRequest"),
    ("limits of a clone", {"stages": [{"name": "c", "steps": [{"sourceCodeConfig": {"url": "https://h/r.git", "branch": "main"}, "memoryLimit": "64Mi"}]}]}, e.InvalidValueError, "stages[0].steps[0].memoryLimit"),
    ("privileged publish", pipeline([{**PUBLISH, "privileged": True}]), e.InvalidValueError, "stages[0].steps[0].privileged"),
    ("config not a mapping", pipeline([{"runScriptConfig": "echo"}]), e.WrongTypeError, "stages[0].steps[0].runScriptConfig"),
    ("missing image", pipeline([with_step(RUN, image=None)]), e.MissingFieldError, "stages[1].steps[0].runScriptConfig.image".replace("stages[1]", "stages[0]")),
    ("image with a space", pipeline([with_step(RUN, image="bad image")]), e.InvalidValueError, "stages[0].steps[0].runScriptConfig.image"),
    ("image not a string", pipeline([with_step(RUN, image=7)]), e.WrongTypeError, "stages[0].steps[0].runScriptConfig.image"),
    ("isShell not a boolean", pipeline([with_step(RUN, isShell="true")]), e.WrongTypeError, "stages[0].steps[0].runScriptConfig.isShell"),
    ("shell without script", pipeline([with_step(RUN, shellScript=None)]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig.shellScript"),
    ("shell with blank script", pipeline([with_step(RUN, shellScript="  ")]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig.shellScript"),
    ("shell with command", pipeline([with_step(RUN, command="ls")]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig.command"),
    ("shell with entrypoint", pipeline([with_step(RUN, entrypoint="ls")]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig.entrypoint"),
    ("not shell with script", pipeline([with_step(RUN, isShell=False)]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig.shellScript"),
    ("not shell with nothing to run", pipeline([with_step(RUN, isShell=False, shellScript=None)]), e.ShellFieldsError, "stages[0].steps[0].runScriptConfig"),
    ("command of numbers", pipeline([with_step(RUN, isShell=False, shellScript=None, command=[1, 2])]), e.WrongTypeError, "stages[0].steps[0].runScriptConfig.command"),
    ("env not a list", pipeline([with_step(RUN, env="A=1")]), e.WrongTypeError, "stages[0].steps[0].runScriptConfig.env"),
    ("env entry without =", pipeline([with_step(RUN, env=["A=1", "B"])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.env[1]"),
    ("env bad name", pipeline([with_step(RUN, env=["1A=x"])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.env[0]"),
    ("env name twice", pipeline([with_step(RUN, env=["A=1", "A=2"])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.env[1]"),
    ("env sets CICD_", pipeline([with_step(RUN, env=["CICD_GIT_COMMIT=x"])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.env[0]"),
    ("envFrom bad name", pipeline([with_step(RUN, envFrom=[{"sourceName": "s", "targetKey": "1X"}])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.envFrom[0].targetKey"),
    ("envFrom reserved name", pipeline([with_step(RUN, envFrom=[{"sourceName": "s", "targetKey": "CICD_X"}])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.envFrom[0].targetKey"),
    ("envFrom also in env", pipeline([with_step(RUN, env=["X=1"], envFrom=[{"sourceName": "s", "targetKey": "X"}])]), e.EnvEntryError, "stages[0].steps[0].runScriptConfig.envFrom[0].targetKey"),
    ("envFrom without source", pipeline([with_step(RUN, envFrom=[{"targetKey": "X"}])]), e.MissingFieldError, "stages[0].steps[0].runScriptConfig.envFrom[0].sourceName"),
    ("envFrom unknown key", pipeline([with_step(RUN, envFrom=[{"sourceName": "s", "targetKey": "X", "x": 1}])]), e.UnknownFieldError, "stages[0].steps[0].runScriptConfig.envFrom[0].x"),
    ("a Kubernetes step", pipeline([{"applyYamlConfig": {"path": "./deployment.yaml"}}]), e.StepKindError, "stages[0].steps[0].applyYamlConfig"),
    ("a catalog step", pipeline([{**RUN, "publishCatalogConfig": {}}]), e.StepKindError, "stages[0].steps[0].publishCatalogConfig"),
    ("env map and env list", pipeline([{**with_step(RUN, env=["A=1"]), "env": {"B": "2"}}]), e.EnvEntryError, "stages[0].steps[0].env"),
    ("env map value a number", pipeline([{**RUN, "env": {"A": 1}}]), e.WrongTypeError, "stages[0].steps[0].env.A"),
    ("env map bad name", pipeline([{**RUN, "env": {"1A": "x"}}]), e.EnvEntryError, "stages[0].steps[0].env.1A"),
    ("env map sets CICD_", pipeline([{**RUN, "env": {"CICD_X": "x"}}]), e.EnvEntryError, "stages[0].steps[0].env.CICD_X"),
    ("env map on a publish step", pipeline([{**PUBLISH, "env": {"A": "1"}}]), e.EnvEntryError, "stages[0].steps[0].env"),
    ("envFrom twice", pipeline([{**with_step(RUN, envFrom=[{"sourceName": "s", "targetKey": "X"}]),
                                 "envFrom": [{"sourceName": "s", "targetKey": "Y"}]}]), e.EnvEntryError, "stages[0].steps[0].envFrom"),
    ("envFrom beside a name of env", pipeline([{**RUN, "env": {"X": "1"}, "envFrom": [{"sourceName": "s", "targetKey": "X"}]}]), e.EnvEntryError, "stages[0].steps[0].envFrom"),
    ("when unknown key", pipeline([{**RUN, "when": {"branches": "main"}}]), e.UnknownFieldError, "stages[0].steps[0].when.branches"),
    ("when unknown event", {"stages": [{"name": "a", "steps": [RUN], "when": {"event": ["push", "pr"]}}]}, e.InvalidValueError, "stages[0].when.event"),
    ("when glob not closed", pipeline([{**RUN, "when": {"branch": {"include": ["feature/[ab"]}}}]), e.InvalidValueError, "stages[0].steps[0].when.branch.include[0]"),
    ("when branch a number", pipeline([{**RUN, "when": {"branch": 3}}]), e.WrongTypeError, "stages[0].steps[0].when.branch"),
    ("when unknown status", pipeline([{**RUN, "when": {"status": "failed"}}]), e.InvalidValueError, "stages[0].steps[0].when.status[0]"),
    ("failure not ignore", pipeline([{**RUN, "failure": "continue"}]), e.InvalidValueError, "stages[0].steps[0].failure"),
    ("registry with a path", pipeline([with_step(PUBLISH, registry="reg.example.com/team")]), e.InvalidValueError, "stages[0].steps[0].publishImageConfig.registry"),
    ("pipeline branch empty glob", pipeline([RUN], branch=""), e.InvalidValueError, "branch.include[0]"),
    ("step timeout zero", pipeline([{**RUN, "timeout": 0}]), e.InvalidValueError, "stages[0].steps[0].timeout"),
    ("step timeout text", pipeline([{**RUN, "timeout": "5m"}]), e.WrongTypeError, "stages[0].steps[0].timeout"),
    ("pipeline timeout negative", pipeline([RUN], timeout=-1), e.InvalidValueError, "timeout"),
    ("pipeline timeout boolean", pipeline([RUN], timeout=True), e.WrongTypeError, "timeout"),
    ("clone without url", pipeline([with_step(CLONE, url=None)]), e.MissingFieldError, "stages[0].steps[0].sourceCodeConfig.url"),
    ("clone url not git", pipeline([with_step(CLONE, url="not a url")]), e.InvalidValueError, "stages[0].steps[0].sourceCodeConfig.url"),
    ("clone url option injection", pipeline([with_step(CLONE, url="--upload-pack=touch /tmp/x")]), e.InvalidValueError, "stages[0].steps[0].sourceCodeConfig.url"),
    ("clone url ext transport", pipeline([with_step(CLONE, url="ext::sh -c touch% /tmp/x")]), e.InvalidValueError, "stages[0].steps[0].sourceCodeConfig.url"),
    ("clone only without branch", pipeline([with_step(CLONE, branch=None)]), e.InvalidValueError, "stages[0].steps[0].sourceCodeConfig"),
    ("clone bad condition", pipeline([with_step(CLONE, branchCondition="some")]), e.InvalidValueError, "stages[0].steps[0].sourceCodeConfig.branchCondition"),
    ("clone bad regex", pipeline([with_step(CLONE, branch="feature/(")]), e.BranchPatternError, "stages[0].steps[0].sourceCodeConfig.branch"),
    ("clone not first", pipeline([RUN, CLONE]), e.SourceStepPlacementError, "stages[0].steps[1].sourceCodeConfig"),
    ("clone in a later stage", pipeline([RUN], [CLONE]), e.SourceStepPlacementError, "stages[1].steps[0].sourceCodeConfig"),
    ("two clones", pipeline([CLONE, CLONE]), e.SourceStepPlacementError, "stages[0].steps[1].sourceCodeConfig"),
    ("dockerfile absolute", pipeline([with_step(PUBLISH, dockerfilePath="/etc/passwd")]), e.UnsafePathError, "stages[0].steps[0].publishImageConfig.dockerfilePath"),
    ("context escapes", pipeline([with_step(PUBLISH, buildContext="src/../../..")]), e.UnsafePathError, "stages[0].steps[0].publishImageConfig.buildContext"),
    ("tag with a space", pipeline([with_step(PUBLISH, tag="a b")]), e.InvalidValueError, "stages[0].steps[0].publishImageConfig.tag"),
    ("pushRemote not boolean", pipeline([with_step(PUBLISH, pushRemote="no")]), e.WrongTypeError, "stages[0].steps[0].publishImageConfig.pushRemote"),
    ("bad pipeline name", pipeline([RUN], name="My Pipeline"), e.InvalidValueError, "name"),
    ("cron every minute", pipeline([RUN], triggerCronExpression="* * * * *"), e.CronTooFrequentError, "triggerCronExpression"),
    ("cron every two minutes", pipeline([RUN], triggerCronExpression="*/2 * * * *"), e.CronTooFrequentError, "triggerCronExpression"),
    ("cron too frequent on one day", pipeline([RUN], triggerCronExpression="0,1 0 29 2 *"), e.CronTooFrequentError, "triggerCronExpression"),
    ("cron with seconds", pipeline([RUN], triggerCronExpression="0 0 * * * *"), e.CronExpressionError, "triggerCronExpression"),
    ("cron out of range", pipeline([RUN], triggerCronExpression="61 * * * *"), e.CronExpressionError, "triggerCronExpression"),
    ("cron gibberish", pipeline([RUN], triggerCronExpression="every day"), e.CronExpressionError, "triggerCronExpression"),
    ("unknown timezone", pipeline([RUN], triggerCronExpression="0 3 * * *", triggerCronTimezone="Mars/Olympus"), e.CronTimezoneError, "triggerCronTimezone"),
    ("timezone without cron", pipeline([RUN], triggerCronTimezone="Nowhere"), e.CronTimezoneError, "triggerCronTimezone"),
    ("good timezone without cron", pipeline([RUN], triggerCronTimezone="Europe/Berlin"), e.CronTimezoneError, "triggerCronTimezone"),
    ("webhook flag not boolean", pipeline([RUN], triggerWebhook="yes"), e.WrongTypeError, "triggerWebhook"),
]


@pytest.mark.parametrize(("data", "error", "path"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_definitions_raise_a_typed_error_naming_the_field(
    data: Any, error: type[e.PipelineSpecError], path: str
) -> None:
    with pytest.raises(error) as info:
        parse_pipeline(data)
    assert type(info.value) is error
    assert info.value.path == path
    assert info.value.message
    assert str(info.value) == (f"{path}: {info.value.message}" if path else info.value.message)


def test_every_problem_is_listed() -> None:
    data = pipeline([with_step(RUN, image=None)], [{"bogus": 1}])
    with pytest.raises(e.PipelineSpecError) as info:
        parse_pipeline(data)
    paths = {err.path for err in info.value.all_errors}  # type: ignore[attr-defined]
    assert "stages[0].steps[0].runScriptConfig.image" in paths
    assert "stages[1].steps[0]" in paths


def test_min_cron_interval_is_a_setting() -> None:
    data = pipeline([RUN], triggerCronExpression="*/2 * * * *")
    parse_pipeline(data, min_cron_interval_seconds=60)
    with pytest.raises(e.CronTooFrequentError):
        parse_pipeline(data, min_cron_interval_seconds=180)
    assert parse_pipeline(pipeline([RUN], triggerCronExpression="*/5 * * * *"))


def test_every_error_kind_is_exercised() -> None:
    """A new error class must come with a row in the table above."""
    used = {case[2] for case in INVALID}
    run_time_only = {e.BranchRequiredError, e.BranchMismatchError, e.ImageTagError, e.PrivilegedStepError,
                     e.YamlSyntaxError, e.YamlLimitError}
    defined = {cls for cls in vars(e).values()
               if isinstance(cls, type) and issubclass(cls, e.PipelineSpecError)
               and cls not in (e.PipelineSpecError, e.YamlError)}
    assert defined - used - run_time_only == set()

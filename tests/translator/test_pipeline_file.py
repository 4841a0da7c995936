"""A pipeline file of a repository (translator/pipeline_file.py): Rancher 2.1+'s format
with its implicit clone, errors that name the file and its own line of stages and steps."""

from __future__ import annotations

import pytest

from prefect_pipelines.translator import RunIdentity, Trigger, compile_plan, parse_pipeline
from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator.pipeline_file import parse_pipeline_file

CLONE = {"url": "https://git.example.com/team/app.git", "branchCondition": "all",
         "sourceCodeCredentialId": "c-1:u-1-github"}
NAME = ".rancher-pipeline.yml"

# Rancher's documented example (rancher/docs, pipelines/example), without its Kubernetes
# step and its notification, which are not supported.
RANCHER_EXAMPLE = """
stages:
  - name: Build something
    when:
      branch: master
      event: [ push, pull_request ]
    steps:
    - runScriptConfig:
        image: busybox
        shellScript: echo ${FIRST_KEY} && echo ${ALIAS_ENV}
      env:
        FIRST_KEY: VALUE
        SECOND_KEY: VALUE2
      envFrom:
      - sourceName: my-secret
        sourceKey: secret-key
        targetKey: ALIAS_ENV
    - runScriptConfig:
        image: busybox
        shellScript: date -R
      when:
        branch: [ master, dev ]
        event: push
  - name: Publish my image
    steps:
    - publishImageConfig:
        dockerfilePath: ./Dockerfile
        buildContext: .
        tag: rancher/rancher:v2.0.0
        pushRemote: true
        registry: reg.example.com
branch:
  include: [ master, feature/*]
  exclude: [ dev ]
timeout: 30
"""


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_pipeline_file(text, file_name=NAME, clone=CLONE)


def test_rancher_s_example_runs_with_its_clone_stage_first() -> None:
    config = parse(RANCHER_EXAMPLE)
    assert [stage.name for stage in config.stages] == ["clone", "Build something", "Publish my image"]
    assert config.source is not None and config.source.url == CLONE["url"]
    assert config.timeout == 30
    push = compile_plan(config, identity=RunIdentity("app", "c-1:p-1", 1), branch="master",
                        trigger=Trigger(triggered_by="webhook", event="push"))
    assert [step.skip for step in push.steps()] == [None, None, None, None]
    script = push.resolve(push.steps()[1], "a" * 40)
    assert script.env["FIRST_KEY"] == "VALUE" and script.script is not None
    assert [item.target_key for item in script.script.secrets] == ["ALIAS_ENV"]
    publish = push.resolve(push.steps()[3], "a" * 40).publish
    assert publish is not None and publish.tag == "reg.example.com/rancher/rancher:v2.0.0"
    pull_request = compile_plan(config, identity=RunIdentity("app", "c-1:p-1", 2), branch="master",
                                trigger=Trigger(triggered_by="webhook", event="pull_request"))
    assert pull_request.steps()[2].skip == "when.event (include ['push']) does not match 'pull_request'"
    with pytest.raises(e.BranchMismatchError):  # the pipeline's branch excludes dev
        compile_plan(config, identity=RunIdentity("app", "c-1:p-1", 3), branch="dev")


def test_an_empty_clone_step_first_is_the_implicit_clone() -> None:
    """Rancher's files carry `sourceCodeConfig: {}` as their first step; its stage's name
    is kept for the clone, so the file's stage numbers are the execution's."""
    config = parse("stages:\n- name: Clone\n  steps:\n  - sourceCodeConfig: {}\n"
                   "- name: test\n  steps:\n  - runScriptConfig: {image: busybox, shellScript: 'true'}\n")
    assert [stage.name for stage in config.stages] == ["Clone", "test"]
    assert config.source is not None and config.source.source_code_credential_id == CLONE["sourceCodeCredentialId"]
    beside = parse("stages:\n- name: a\n  steps:\n  - sourceCodeConfig:\n  - runScriptConfig: {image: busybox, shellScript: 'true'}\n")
    assert [stage.name for stage in beside.stages] == ["clone", "a"]
    assert [step.kind for step in beside.stages[1].steps] == ["runScript"]


@pytest.mark.parametrize(("text", "error", "message"), [
    ("stages:\n- name: a\n  steps:\n  - sourceCodeConfig: {}\n  - runScriptConfig: {image: busybox}\n",
     e.ShellFieldsError, f"{NAME}: stages[0].steps[1].runScriptConfig.shellScript: shellScript is required"),
    ("stages:\n- name: Clone\n  steps:\n  - sourceCodeConfig: {}\n- name: b\n  steps:\n  - runScriptConfig: {shellScript: x}\n",
     e.MissingFieldError, f"{NAME}: stages[1].steps[0].runScriptConfig.image: is required"),
    ("stages:\n- name: a\n  steps:\n  - sourceCodeConfig: {url: 'https://x.example.com/a.git'}\n",
     e.SourceStepPlacementError, f"{NAME}: stages[0].steps[0].sourceCodeConfig: the clone is implicit"),
    ("stages:\n- name: a\n  steps:\n  - runScriptConfig: {image: b, shellScript: x}\n  - sourceCodeConfig: {}\n",
     e.SourceStepPlacementError, f"{NAME}: stages[0].steps[1].sourceCodeConfig"),
    ("name: app\nstages: []\n", e.UnknownFieldError, f"{NAME}: name: name is set on the pipeline"),
    ("triggerWebhook: true\nstages: []\n", e.UnknownFieldError, f"{NAME}: triggerWebhook:"),
    ("stages:\n- name: deploy\n  steps:\n  - applyYamlConfig: {path: ./deployment.yaml}\n",
     e.StepKindError, f"{NAME}: stages[0].steps[0].applyYamlConfig: applyYamlConfig is one of Rancher's Kubernetes steps"),
    ("- just a list\n", e.WrongTypeError, f"{NAME}: a pipeline file must be a mapping"),
    ("stages: [\n", e.YamlSyntaxError, f"{NAME}: "),
    ("stages:\n- name: a\n  steps:\n  - sourceCodeConfig: {}\n", e.EmptyListError, f"{NAME}: stages: must have at least one item"),
])
def test_a_bad_file_is_refused_naming_the_file_and_its_own_path(text: str, error: type[e.PipelineSpecError],
                                                                  message: str) -> None:
    with pytest.raises(error) as raised:
        parse(text)
    assert str(raised.value).startswith(message), str(raised.value)


def test_one_form_of_a_step_s_environment_is_written_back() -> None:
    """Rancher's `env` map and `envFrom` beside the config are written inside it, as the
    seed's list, so view, export and an execution's definition read alike, and what is
    written reads back the same."""
    config = parse(RANCHER_EXAMPLE)
    written = config.to_dict()
    step = written["stages"][1]["steps"][0]
    assert set(step) == {"runScriptConfig"}
    assert step["runScriptConfig"]["env"] == ["FIRST_KEY=VALUE", "SECOND_KEY=VALUE2"]
    assert step["runScriptConfig"]["envFrom"] == [
        {"sourceName": "my-secret", "sourceKey": "secret-key", "targetKey": "ALIAS_ENV"}]
    again = parse_pipeline(written)
    assert again.to_dict() == written
    assert again.stages[1].steps[0].env_map() == config.stages[1].steps[0].env_map()


def test_the_readme_s_complete_file_is_a_valid_pipeline() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("# .rancher-pipeline.yml\n")
    config = parse(readme[start:readme.index("```", start)])
    assert [stage.name for stage in config.stages] == ["Clone", "test", "publish", "tell the team"]

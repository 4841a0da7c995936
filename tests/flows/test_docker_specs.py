"""The docker executor's pure part (flows/executors/docker.py), without an engine: the
container, build and push arguments of each step kind, and the base images a Dockerfile
names (pulled with the project's login before the build). A clone step runs git on the
worker, in no container."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from prefect_pipelines.flows.control import StopToken
from prefect_pipelines.flows.executors.base import StepContext
from prefect_pipelines.flows.executors.docker import (
    build_spec,
    container_spec,
    dockerfile_bases,
    push_spec,
)
from prefect_pipelines.flows.output import StepOutput
from prefect_pipelines.translator import PipelineConfig, RunIdentity, compile_plan
from prefect_pipelines.translator.plan import ResolvedStep, StepDefaults

CTX = StepContext(label="test/0", workspace=Path("/srv/ws/run-1"), env={"CICD_GIT_BRANCH": "main"},
                  output=StepOutput("test/0", flow_run_id=None, task_run_id=None), token=StopToken(),
                  labels={"io.prefect-pipelines.flow-run-id": "0123456789abcdef",
                          "io.prefect-pipelines.step": "1/0"})


def resolved(step: dict[str, object], *, branch: str = "main",
             defaults: StepDefaults = StepDefaults()) -> ResolvedStep:
    """The step compiled and resolved as a run of branch `branch` in a project of
    `defaults` would."""
    config = PipelineConfig.model_validate({"stages": [{"name": "s", "steps": [step]}]})
    plan = compile_plan(config, identity=RunIdentity("p", "c-1:p-1", 3), branch=branch,
                        defaults=defaults)
    return plan.resolve(plan.steps()[0])


def test_a_shell_step_runs_its_script_as_one_argument_writing_its_output_to_a_file() -> None:
    step = resolved({"runScriptConfig": {"image": "golang:1.${CICD_EXECUTION_SEQUENCE}",
                                         "shellScript": "go test ./...", "env": ["GOFLAGS=-mod=vendor"]}})
    assert step.script is not None and step.script.image == "golang:1.3"
    assert step.env["GOFLAGS"] == "-mod=vendor" and step.env["CICD_GIT_BRANCH"] == "main"
    ctx = replace(CTX, env=step.env)  # what the flow gives it (with the secrets it read)
    spec = container_spec(step.script, ctx=ctx, network="none",
                          output=(Path("/tmp/pp-output-x"), "exec >>/pp-output/output.log 2>&1\n"))
    name = spec.pop("name")
    assert name.startswith("pp-01234567-1-0-")
    assert spec == {
        "image": "golang:1.3",
        "command": None,
        "entrypoint": ["sh", "-c", "exec >>/pp-output/output.log 2>&1\ngo test ./..."],
        "environment": step.env,
        "working_dir": "/workspace",
        "volumes": {"/srv/ws/run-1": {"bind": "/workspace", "mode": "rw"},
                    "/tmp/pp-output-x": {"bind": "/.prefect-pipelines", "mode": "rw"}},
        "labels": CTX.labels,
        "network_mode": "none",
        "log_config": {"type": "none"},
        "detach": True,
    }


def test_an_entrypoint_step_gets_its_argv_and_the_engine_stream() -> None:
    step = resolved({"runScriptConfig": {"image": "busybox", "isShell": False,
                                         "entrypoint": "sh -c", "command": ["echo $HOME", "x"]}})
    assert step.script is not None
    spec = container_spec(step.script, ctx=CTX, network=None)
    assert (spec["entrypoint"], spec["command"]) == (["sh", "-c"], ["echo $HOME", "x"])
    assert list(spec["volumes"]) == ["/srv/ws/run-1"]  # no output file: the engine's stream
    assert spec["network_mode"] is None


def test_a_publish_step_builds_then_pushes_its_tag() -> None:
    step = resolved({"publishImageConfig": {"tag": "reg.example.com:5000/team/app:${CICD_GIT_BRANCH}",
                                            "dockerfilePath": "./docker/Dockerfile",
                                            "buildContext": "src"}}, branch="v1")
    publish = step.publish
    assert publish is not None and publish.registry == "reg.example.com:5000"
    assert build_spec(publish, workspace=Path("/srv/ws/run-1"), pull=False, network="host") == {
        "path": "/srv/ws/run-1/src", "dockerfile": "/srv/ws/run-1/docker/Dockerfile",
        "tag": "reg.example.com:5000/team/app:v1", "rm": True, "forcerm": True, "pull": False,
        "decode": True, "network_mode": "host"}
    login = {"username": "ci", "password": "pw", "serveraddress": "reg.example.com:5000"}
    assert push_spec(publish, login) == {
        "repository": "reg.example.com:5000/team/app", "tag": "v1", "stream": True,
        "decode": True, "auth_config": login}
    hub = resolved({"publishImageConfig": {"tag": "team/app"}}).publish
    assert hub is not None and (hub.registry, push_spec(hub, None)["tag"]) == ("", "latest")


def test_limits_and_privilege_reach_the_container_and_the_build() -> None:
    step = resolved({"runScriptConfig": {"image": "busybox", "shellScript": "make"},
                     "cpuRequest": "500m", "cpuLimit": "1.5", "memoryRequest": "32Mi",
                     "privileged": True},
                    defaults=StepDefaults(memory_limit="1Gi", allow_privileged=True))
    assert step.script is not None
    spec = container_spec(step.script, ctx=CTX, network="none")
    assert {key: spec[key] for key in ("nano_cpus", "cpu_shares", "mem_limit", "memswap_limit",
                                       "mem_reservation", "privileged")} == {
        "nano_cpus": 1_500_000_000, "cpu_shares": 512, "mem_limit": 2**30,
        "memswap_limit": 2**30, "mem_reservation": 32 * 2**20, "privileged": True}
    plain = resolved({"runScriptConfig": {"image": "busybox", "shellScript": "make"}})
    assert plain.script is not None
    assert not {"nano_cpus", "cpu_shares", "mem_limit", "memswap_limit", "mem_reservation",
                "privileged"} & set(container_spec(plain.script, ctx=CTX, network=None))
    publish = resolved({"publishImageConfig": {"tag": "team/app"}, "memoryLimit": "256Mi",
                        "cpuRequest": "2", "cpuLimit": "2"}).publish
    assert publish is not None
    assert build_spec(publish, workspace=Path("/w"), pull=False, network=None)["container_limits"] == {
        "memory": 256 * 2**20, "memswap": 256 * 2**20, "cpushares": 2048}


@pytest.mark.parametrize(("text", "bases"), [
    ("FROM busybox\nRUN true\n", ["busybox"]),
    ("from reg.example.com:5000/team/app:1.0 as build\nFROM build\nCOPY --from=build /a /a\n",
     ["reg.example.com:5000/team/app:1.0"]),
    ("FROM --platform=linux/amd64 golang:1.8 AS build\nFROM scratch\nCOPY --from=build /x /x\n",
     ["golang:1.8"]),
    ("FROM a AS one\nFROM one AS two\nFROM two\nFROM b@sha256:" + "0" * 64 + "\n",
     ["a", "b@sha256:" + "0" * 64]),
    ("FROM \\\n  alpine:3\n", ["alpine:3"]),
    ("# FROM commented\nFROM alpine\nFROM alpine\n", ["alpine"]),
    ("RUN echo no base\n", []),
])
def test_bases(text: str, bases: list[str]) -> None:
    assert dockerfile_bases(text) == bases


@pytest.mark.parametrize("text", ["ARG BASE=alpine\nFROM ${BASE}\n", "FROM $IMAGE AS x\n", None])
def test_a_base_only_the_engine_knows(text: str | None) -> None:
    assert dockerfile_bases(text) is None

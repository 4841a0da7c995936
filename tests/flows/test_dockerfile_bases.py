"""The base images a publish step's Dockerfile names (flows/executors/docker.py), read
without an engine: what is pulled with the project's login before the build."""

from __future__ import annotations

import pytest

from prefect_pipelines.flows.executors.docker import dockerfile_bases


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

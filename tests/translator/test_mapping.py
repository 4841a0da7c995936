"""A stored definition is read through one accessor (translator/mapping.py
StoredDefinition) that never trusts its shape: what an earlier version stored, or what
someone wrote through Prefect by hand, reads as far as it makes sense and never raises."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_pipelines.translator.mapping import StoredDefinition

DEFINITION = {
    "stages": [
        {"name": "get", "steps": [{"sourceCodeConfig": {
            "url": "https://git.example.com/a.git", "branch": "main|dev",
            "sourceCodeCredentialId": "c-1:u-1-github"}}]},
        {"name": "work", "steps": [
            {"runScriptConfig": {"image": "reg:5000/go:1", "shellScript": "true",
                                 "envFrom": [{"sourceName": "db", "targetKey": "A"},
                                             {"sourceName": "db", "targetKey": "B"},
                                             {"sourceName": "npm", "targetKey": "C"}]}},
            {"publishImageConfig": {"tag": "team/app:${CICD_GIT_BRANCH}"}},
            {"runScriptConfig": {"image": "busybox", "shellScript": "true"},
             "envFrom": [{"sourceName": "beside", "targetKey": "D"}]},
        ]},
    ],
}


def test_a_definition_read_for_what_the_services_ask() -> None:
    stored = StoredDefinition.of({"pipeline": DEFINITION})
    assert stored.places() == [(0, 0), (1, 0), (1, 1), (1, 2)] and stored.step_count == 4
    assert stored.has_step(1, 2) and not stored.has_step(1, 3) and not stored.has_step(-1, 0)
    assert stored.repository == ("https://git.example.com/a.git", "c-1:u-1-github")
    condition = stored.branch_condition()
    assert condition is not None and condition.matches("dev") and not condition.matches("main2")
    assert stored.secret_names() == {"db", "npm", "beside"}
    assert stored.references() == ["reg:5000/go:1", "busybox", "team/app:${CICD_GIT_BRANCH}"]


@pytest.mark.parametrize("definition", [
    None, [], "stages", {"stages": None}, {"stages": "x"}, {"stages": [None, 3, "a"]},
    {"stages": [{"steps": None}]}, {"stages": [{"steps": [None, {"sourceCodeConfig": "x"}]}]},
    {"stages": [{"steps": [{"runScriptConfig": {"image": 3, "envFrom": "db"}}]}]},
    {"stages": [{"steps": [{"runScriptConfig": {"envFrom": [None, {"sourceName": 1}]}}]}]},
])
def test_anything_stored_reads_without_raising(definition: Any) -> None:
    stored = StoredDefinition(definition)
    assert stored.source is None and stored.repository == ("", "") and stored.branch_condition() is None
    assert stored.secret_names() == set() and stored.references() == []
    assert stored.step_count == len(stored.places()) and not stored.has_step(0, 5)


def test_a_definition_without_a_clone_step_has_no_branch_condition() -> None:
    stored = StoredDefinition({"stages": [{"name": "a", "steps": [
        {"runScriptConfig": {"image": "busybox", "shellScript": "true"}}]}]})
    assert stored.source is None and stored.branch_condition() is None and stored.step_count == 1


@pytest.mark.parametrize(("branch", "value", "allowed"), [
    (None, "anything", True), ("main", "main", True), ("main", "dev", False),
    (["main", "feature/*"], "feature/x", True), ({"exclude": ["dev"]}, "dev", False),
    ({"include": "main"}, "main", True),  # not a list: not a constraint we can read
    ({"include": ["feature/[x"]}, "dev", True),  # does not parse: the compile says why
])
def test_the_pipeline_branch_constraint_as_stored(branch: Any, value: str, allowed: bool) -> None:
    stored = StoredDefinition({"stages": [], **({} if branch is None else {"branch": branch})})
    assert stored.branch_allowed(value)[0] is allowed

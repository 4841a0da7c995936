"""`when` conditions (translator/conditions.py and spec.When): Rancher's globs and
include/exclude rule, the shorthand forms, and what a compiled plan skips and why."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_pipelines.translator import RunIdentity, Trigger, compile_plan, parse_pipeline
from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator.conditions import constraint_allows, glob_matches
from prefect_pipelines.translator.spec import When

RUN = {"runScriptConfig": {"image": "busybox", "shellScript": "true"}}
IDENTITY = RunIdentity("app", "c-1:p-1", 4)


@pytest.mark.parametrize(("pattern", "value", "matches"), [
    ("main", "main", True),
    ("main", "main2", False),
    ("feature/*", "feature/x", True),
    ("feature/*", "feature/x/y", False),  # `*` stops at `/`, as Go's filepath.Match
    ("*", "feature/x", False),
    ("*/*", "feature/x", True),
    ("release-?", "release-1", True),
    ("release-?", "release-10", False),
    ("v[0-9].*", "v1.2", True),
    ("v[!0-9]*", "v1", False),
    ("v[^0-9]*", "vx", True),
    ("a[/]b", "a/b", False),  # a class never matches the separator
    ("a.b", "axb", False),  # `.` is literal
    ("\\*", "*", True),
    ("\\*", "x", False),
    ("[]]", "]", True),
    ("[-a]", "-", True),
])
def test_globs_match_the_whole_value_as_go_does(pattern: str, value: str, matches: bool) -> None:
    assert glob_matches(pattern, value) is matches


@pytest.mark.parametrize("pattern", ["", "feature/[ab", "x\\", "[]"])
def test_a_bad_glob_is_refused(pattern: str) -> None:
    with pytest.raises(e.InvalidValueError):
        glob_matches(pattern, "x")


def test_exclude_wins_and_no_include_means_anything() -> None:
    assert constraint_allows([], [], "anything")
    assert constraint_allows(["main", "feature/*"], ["feature/wip"], "feature/x")
    assert not constraint_allows(["main", "feature/*"], ["feature/wip"], "feature/wip")
    assert not constraint_allows([], ["dev"], "dev") and constraint_allows([], ["dev"], "main")
    assert not constraint_allows(["main"], [], "dev")


@pytest.mark.parametrize(("when", "branch", "event", "skipped"), [
    ({"branch": "main"}, "main", "push", None),
    ({"branch": "main"}, "dev", "push", "when.branch (include ['main']) does not match 'dev'"),
    ({"branch": ["main", "dev"]}, "dev", "push", None),
    ({"branch": {"include": ["feature/*"], "exclude": ["feature/wip"]}}, "feature/wip", "push",
     "when.branch (include ['feature/*'], exclude ['feature/wip']) does not match 'feature/wip'"),
    ({"event": "push"}, "main", "pull_request", "when.event (include ['push']) does not match 'pull_request'"),
    ({"event": ["push", "manual"]}, "main", "manual", None),
    ({"event": {"exclude": ["cron"]}}, "main", "cron", "when.event (exclude ['cron']) does not match 'cron'"),
    ({"branch": "main", "event": "tag"}, "main", "tag", None),
])
def test_when_says_why_it_skips(when: dict[str, Any], branch: str, event: str, skipped: str | None) -> None:
    assert When.model_validate(when).skip_reason(branch, event) == skipped


@pytest.mark.parametrize(("status", "after_success", "after_failure"), [
    (None, True, False), ("success", True, False), (["failure"], False, True),
    ("always", True, True), (["success", "failure"], True, True),
])
def test_status_says_what_it_runs_after(status: Any, after_success: bool, after_failure: bool) -> None:
    when = When.model_validate({} if status is None else {"status": status})
    assert (when.runs_after(False), when.runs_after(True)) == (after_success, after_failure)


def _config() -> Any:
    return parse_pipeline({"stages": [
        {"name": "build", "steps": [RUN, {**RUN, "when": {"event": "push"}}]},
        {"name": "release", "when": {"branch": "release/*"}, "steps": [RUN]},
        {"name": "report", "when": {"status": "always"}, "steps": [{**RUN, "when": {"status": "failure"}}]},
    ], "branch": {"include": ["main", "release/*"], "exclude": ["release/old"]}})


def test_the_plan_knows_what_each_branch_and_event_skips() -> None:
    manual = compile_plan(_config(), identity=IDENTITY, branch="main")
    assert [(s.label, s.skip) for s in manual.steps()] == [
        ("build/0", None),
        ("build/1", "when.event (include ['push']) does not match 'manual'"),
        ("release/0", "when.branch (include ['release/*']) does not match 'main'"),
        ("report/0", None),
    ]
    assert manual.stages[1].skip is not None and manual.stages[0].skip is None
    push = compile_plan(_config(), identity=IDENTITY, branch="release/1",
                        trigger=Trigger(triggered_by="webhook", event="push"))
    assert [s.skip for s in push.steps()] == [None, None, None, None]
    report_stage, report_step = push.stages[2], push.steps()[3]
    assert report_stage.runs_after(True) and report_stage.runs_after(False)
    assert report_step.runs_after(True) and not report_step.runs_after(False)
    assert push.stages[0].runs_after(False) and not push.stages[0].runs_after(True)


def test_the_pipeline_branch_refuses_a_run_of_another_branch() -> None:
    with pytest.raises(e.BranchMismatchError, match="release/old") as raised:
        compile_plan(_config(), identity=IDENTITY, branch="release/old")
    assert raised.value.path == "branch"
    with pytest.raises(e.BranchMismatchError):
        compile_plan(_config(), identity=IDENTITY, branch="dev")


def test_a_skipped_step_is_not_resolved_so_its_bad_tag_does_not_fail_the_run() -> None:
    config = parse_pipeline({"stages": [{"name": "ship", "steps": [
        {"publishImageConfig": {"tag": "app:${ONLY_ON_TAGS}"}, "when": {"event": "tag"}}]}]})
    plan = compile_plan(config, identity=IDENTITY, branch="main")
    assert plan.steps()[0].skip is not None

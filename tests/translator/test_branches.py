"""Branch conditions, in regex way, and the branch a run builds."""

from __future__ import annotations

import pytest

from prefect_pipelines.translator import BranchCondition
from prefect_pipelines.translator import errors as e
from prefect_pipelines.translator.branches import validate_branch_name

MATCHES = [
    # pattern, condition, branch, builds?
    ("main", "only", "main", True),
    ("main", "only", "main2", False),
    ("release-1.0", "only", "release-1x0", False),  # a plain name is literal
    ("release/.*", "only", "release/2024", True),
    ("release/.*", "only", "hotfix/1", False),
    ("feat-[0-9]+", "only", "feat-12", True),
    ("feat-[0-9]+", "only", "feat-12x", False),  # the whole name must match
    ("main", "except", "main", False),
    ("main", "except", "dev", True),
    ("dev|wip/.*", "except", "wip/x", False),
    (None, "all", "anything/at-all", True),
    ("main", "all", "dev", True),
]


@pytest.mark.parametrize(("pattern", "condition", "branch", "builds"), MATCHES)
def test_matches(pattern: str | None, condition: str, branch: str, builds: bool) -> None:
    assert BranchCondition(pattern, condition).matches(branch) is builds


class TestResolve:
    def test_plain_name_is_the_default(self) -> None:
        assert BranchCondition("main").resolve(None) == "main"

    def test_given_branch_wins(self) -> None:
        assert BranchCondition("release/.*").resolve("release/7") == "release/7"

    @pytest.mark.parametrize(("pattern", "condition"), [("release/.*", "only"), ("main", "except"), (None, "all")])
    def test_no_branch_and_no_single_name(self, pattern: str | None, condition: str) -> None:
        with pytest.raises(e.BranchRequiredError, match="give one"):
            BranchCondition(pattern, condition).resolve(None)

    def test_excluded_branch(self) -> None:
        with pytest.raises(e.BranchMismatchError, match="'dev'"):
            BranchCondition("main").resolve("dev")

    @pytest.mark.parametrize("branch", [
        "$(touch /tmp/pwned)", "; rm -rf /", "-x", "a..b", "a b", "x.lock", "a//b", "@{x}", "a\nb",
        "~x", "x^", "x:y", "x?", "x*", "x[", "x\\y", "/x", "x/", ".x",
    ])
    def test_invalid_branch_names(self, branch: str) -> None:
        with pytest.raises(e.InvalidValueError):
            validate_branch_name(branch)

    @pytest.mark.parametrize("branch", ["main", "feature/x-1", "release-1.0", "$(id)", "a_b", "v1.2.3"])
    def test_valid_branch_names(self, branch: str) -> None:
        assert validate_branch_name(branch) == branch

"""Branch conditions: which branches a pipeline builds, and which branch a run builds.

`branch` in `sourceCodeConfig` is matched "in regex way", as in Rancher: a plain name
(letters, digits, `.`, `_`, `/`, `-`) means exactly that branch; anything else is a regular
expression that must match the whole branch name. `branchCondition` turns it around:
`only` builds the matching branches, `except` every other one, `all` any branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from prefect_pipelines.translator.errors import (
    BranchMismatchError,
    BranchPatternError,
    BranchRequiredError,
    InvalidValueError,
)

_PLAIN = re.compile(r"[A-Za-z0-9._/-]+")
MAX_BRANCH_LENGTH = 255
# git check-ref-format, simplified to what matters for a branch given on a run: not
# starting with - / or ., not ending with / . or .lock, no .. @{ // /. or .lock/, no space,
# control character or any of ~^:?*[\ (also the OpenAPI document's pattern of a branch).
BRANCH_NAME_PATTERN = (r"(?![-/.])(?!.*(?:\.\.|@\{|//|/\.|\.lock/|[/.]$|\.lock$))"
                       rf"[^\x00-\x20\x7f~^:?*\[\\]{{1,{MAX_BRANCH_LENGTH}}}")
_BRANCH_NAME = re.compile(BRANCH_NAME_PATTERN)


def is_plain_name(pattern: str) -> bool:
    """True when `pattern` names one branch rather than a regular expression."""
    return bool(_PLAIN.fullmatch(pattern))


@lru_cache(maxsize=256)
def compile_branch_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a branch pattern.

    Raises:
        BranchPatternError: `pattern` is empty or not a valid regular expression.
    """
    if not pattern:
        raise BranchPatternError("the branch pattern is empty")
    if is_plain_name(pattern):
        return re.compile(re.escape(pattern))
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BranchPatternError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def validate_branch_name(branch: str) -> str:
    """Check that `branch` is a name git accepts for a branch.

    Raises:
        InvalidValueError: it is not.
    """
    if not _BRANCH_NAME.fullmatch(branch):
        raise InvalidValueError(f"{branch!r} is not a valid branch name")
    return branch


def repository_branch(asked: str | None, default: str | None) -> str:
    """The branch a run of a pipeline read from its repository builds: the one asked for,
    else the pipeline's default (its file says which branches it allows).

    Raises:
        BranchRequiredError: neither is given.
        InvalidValueError: the branch is not a valid branch name.
    """
    branch = asked or default
    if not branch:
        raise BranchRequiredError("no branch given, and the pipeline has no default branch: give one")
    return validate_branch_name(branch)


@dataclass(frozen=True)
class BranchCondition:
    """A pipeline's branch condition, ready to match branch names."""

    pattern: str | None
    condition: str = "only"

    def matches(self, branch: str) -> bool:
        """True when the pipeline builds `branch`."""
        if self.condition == "all" or self.pattern is None:
            return True
        hit = compile_branch_pattern(self.pattern).fullmatch(branch) is not None
        return hit if self.condition == "only" else not hit

    @property
    def default_branch(self) -> str | None:
        """The branch a run builds when none is asked for, if the condition names one."""
        if self.condition == "only" and self.pattern and is_plain_name(self.pattern):
            return self.pattern
        return None

    def resolve(self, branch: str | None) -> str:
        """The branch a run builds.

        Args:
            branch: the branch asked for, if any.

        Raises:
            BranchRequiredError: none was asked for and the condition names no branch.
            BranchMismatchError: the branch asked for is one the condition excludes.
            InvalidValueError: the branch asked for is not a valid branch name.
        """
        if branch is None or branch == "":
            if self.default_branch is None:
                raise BranchRequiredError(
                    "no branch given, and the pipeline's branch condition "
                    f"({self.describe()}) does not name a single branch: give one"
                )
            return self.default_branch
        validate_branch_name(branch)
        if not self.matches(branch):
            raise BranchMismatchError(
                f"branch {branch!r} is not built by this pipeline ({self.describe()})"
            )
        return branch

    def describe(self) -> str:
        """A short human description, e.g. `only 'main'`."""
        if self.condition == "all" or self.pattern is None:
            return "all branches"
        return f"{self.condition} {self.pattern!r}"

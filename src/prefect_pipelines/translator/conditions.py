"""`when` conditions of Rancher 2.1+'s pipeline file: which branches and events run a
pipeline, a stage or a step.

A constraint is a list of glob patterns to include and one to exclude. Patterns match the
whole value the way Go's `filepath.Match` does (which Rancher used): `*` is any run of
characters but `/`, `?` one character but `/`, `[...]` a class (`[^...]` or `[!...]` its
complement), `\\` quotes the next character. So `feature/*` matches `feature/x` but not
`feature/x/y`, and `*` does not match `feature/x`. An exclude match means no; otherwise
yes when an include matches or there is no include.

Written by hand: Python's `fnmatch` lets `*` match `/`, and `PurePath.match` matches from
the right (`a/b` matches `*`) before Python 3.13's `full_match`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from prefect_pipelines.translator.errors import InvalidValueError


@lru_cache(maxsize=512)
def glob_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a glob, matched against whole values.

    Raises:
        InvalidValueError: an empty pattern, an unclosed `[`, or a `\\` at the end.
    """
    if not pattern:
        raise InvalidValueError("a pattern must not be empty")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if i + 1 == len(pattern):
                raise InvalidValueError(f"{pattern!r} ends with a lone backslash")
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end, klass = _char_class(pattern, i)
            out.append(klass)
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def _char_class(pattern: str, start: int) -> tuple[int, str]:
    """(index of the closing `]`, the class as a regex) of the `[` at `start`."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "^!"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            i += 1
            char = pattern[i]
        items.append(re.escape(char) if char != "-" or first or pattern[i + 1:i + 2] == "]" else "-")
        first = False
        i += 1
    if i >= len(pattern) or not items:
        raise InvalidValueError(f"{pattern!r} has a '[' that is not closed")
    body = "".join(items)
    # A class never matches the separator, as in Go.
    return i, f"(?!/)[^{body}]" if negate else f"(?!/)[{body}]"


def glob_matches(pattern: str, value: str) -> bool:
    """Whether `value` matches the glob `pattern` as a whole."""
    return glob_pattern(pattern).fullmatch(value) is not None


def constraint_allows(include: Sequence[str], exclude: Sequence[str], value: str) -> bool:
    """Rancher's rule: an exclude match says no; else an include match, or no include,
    says yes."""
    if any(glob_matches(pattern, value) for pattern in exclude):
        return False
    return not include or any(glob_matches(pattern, value) for pattern in include)


def runs_after(status: Sequence[str], failed: bool) -> bool:
    """`when.status`: `success` runs after stages that all succeeded, `failure` after one
    failed, `always` either way."""
    return "always" in status or ("failure" if failed else "success") in status


def describe_constraint(include: Sequence[str], exclude: Sequence[str]) -> str:
    """`include ['main', 'feature/*'], exclude ['dev']`."""
    parts = []
    if include:
        parts.append(f"include {list(include)!r}")
    if exclude:
        parts.append(f"exclude {list(exclude)!r}")
    return ", ".join(parts) or "anything"

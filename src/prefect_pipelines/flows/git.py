"""The clone step: real `git`, on the worker host, into the execution's workspace.

The token of a source code credential travels only in git's environment (as an
`http.extraHeader`), never on a command line, in a URL, a log line or an error message.
Every argument is passed as a list, after `--` where git allows it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prefect_pipelines.flows.executors.base import StepContext, StepResult
from prefect_pipelines.flows.executors.process import run_streaming
from prefect_pipelines.gitenv import git_env, host_env, url_scheme
from prefect_pipelines.vocabulary import LABEL_AUTHOR, LABEL_EMAIL, LABEL_MESSAGE


@dataclass
class CloneResult:
    """How a clone ended and the commit it checked out."""

    result: StepResult
    commit: str = ""


def clone(
    url: str,
    branch: str,
    ctx: StepContext,
    *,
    commit: str = "",
    ref: str = "",
    auth: tuple[str, str] | None = None,
    depth: int = 50,
    allowed_schemes: set[str],
) -> CloneResult:
    """Clone `branch` of `url` into the (empty) workspace and check out `commit` or its head.

    A delivered `ref` (`refs/tags/v1`, `refs/pull/7/head`, a pull request's source branch)
    is fetched instead of the branch; the checkout is still named after `branch`.

    Returns:
        The result, with the full commit hash on success.
    """
    scheme = url_scheme(url)
    if scheme not in allowed_schemes:
        return CloneResult(
            StepResult(None, message=f"clones over {scheme} are not allowed "
                       f"(allowed: {', '.join(sorted(allowed_schemes))})")
        )
    header = None
    if auth is not None:
        token, header = auth
        ctx.output.masker.add(token, header, header.split(" ", 1)[-1])
    env = git_env(header, allowed_schemes)
    ws = ctx.workspace
    depth_args = [f"--depth={depth}"] if depth > 0 else []
    # The delivered ref when there is one: a tag, a pull request's head, or (Bitbucket Cloud,
    # which has no pull-request refs) the pull request's source branch.
    source_ref = ref or f"refs/heads/{branch}"
    remote = f"refs/remotes/origin/{branch}"
    steps: list[tuple[str, list[str]]] = [
        ("init", ["git", "init", "-q", "--", str(ws)]),
        ("remote", ["git", "-C", str(ws), "remote", "add", "origin", "--", url]),
        ("fetch", ["git", "-C", str(ws), "fetch", "--no-tags", *depth_args,
                   "origin", f"+{source_ref}:{remote}"]),
    ]
    ctx.output.info(f"cloning {url} ({branch})")
    for what, argv in steps:
        result = _git(argv, ctx, env, ws)
        if not result.ok:
            return CloneResult(_explain(result, what, url, branch))
    target = remote
    if commit:
        if not _has_commit(ws, commit, env):
            result = _git(["git", "-C", str(ws), "fetch", "--no-tags", *depth_args, "origin",
                           commit], ctx, env, ws)
            if not result.ok:
                return CloneResult(_explain(result, "fetch of the commit", url, branch))
        target = commit
    result = _git(["git", "-C", str(ws), "checkout", "-q", "-B", branch, target, "--"], ctx, env, ws)
    if not result.ok:
        return CloneResult(_explain(result, "checkout", url, branch))
    head = subprocess.run(
        ["git", "-C", str(ws), "rev-parse", "HEAD"], capture_output=True, text=True, env=env
    ).stdout.strip()
    ctx.output.info(f"checked out {branch} at {head}")
    return CloneResult(StepResult(0), commit=head)


def existing_checkout(ctx: StepContext) -> CloneResult:
    """Use a non-empty workspace as the source (`exec --workspace` on a working copy)."""
    ws = ctx.workspace
    ctx.output.info(f"the workspace {ws} is not empty: using it as the source, no clone")
    proc = subprocess.run(
        ["git", "-C", str(ws), "rev-parse", "HEAD"], capture_output=True, text=True,
        env=host_env({}),
    )
    commit = proc.stdout.strip() if proc.returncode == 0 else ""
    return CloneResult(StepResult(0), commit=commit)


def _git(argv: list[str], ctx: StepContext, env: dict[str, str], cwd: Path) -> StepResult:
    code, error = run_streaming(argv, ctx, cwd=cwd, env=env)
    if error:
        return StepResult(None, message=error)
    if ctx.token.reason is not None:
        return StepResult(code, stopped=ctx.token.reason)
    return StepResult(code)


def _explain(result: StepResult, what: str, url: str, branch: str) -> StepResult:
    if result.stopped or result.message:
        return result
    return StepResult(
        result.exit_code,
        message=f"git {what} failed (exit code {result.exit_code}) for {url} branch {branch}",
    )


def _has_commit(ws: Path, commit: str, env: dict[str, str]) -> bool:
    return (
        subprocess.run(
            ["git", "-C", str(ws), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            env=env,
        ).returncode
        == 0
    )


def is_empty_dir(path: Path) -> bool:
    """True when `path` does not exist or has no entries."""
    return not path.exists() or not any(os.scandir(path))


def commit_labels(ws: Path) -> dict[str, str]:
    """The subject, author and email of the checkout's HEAD as flow-run labels (cut to
    200 characters); none when git cannot tell."""
    proc = subprocess.run(
        ["git", "-C", str(ws), "log", "-1", "--format=%s%x00%an%x00%ae", "HEAD"],
        capture_output=True, text=True, env=host_env({}), errors="replace",
    )
    parts = proc.stdout.rstrip("\n").split("\x00") if proc.returncode == 0 else []
    if len(parts) != 3:
        return {}
    return {label: value[:200] for label, value in zip((LABEL_MESSAGE, LABEL_AUTHOR, LABEL_EMAIL), parts, strict=True)
            if value}

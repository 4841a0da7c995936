"""A repository's pipeline file, read and written by the facade: the branches of the
repository, the file of a branch or a delivered commit, and a commit that changes it
(Rancher 2.1+'s `branches`, `configs` and `yaml` links, and the look at a webhook's
commit before its run is made).

A repository on the forge of the pipeline's credential goes through that forge's API
(`ForgeSource`); a plain git URL through git itself (`GitSource`), each call in a temporary
directory of its own, the token only in git's environment (gitenv.py).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect_pipelines.errors import (
    ActionNotAvailableError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UpstreamError,
)
from prefect_pipelines.forges import Forge
from prefect_pipelines.gitenv import git_env, url_scheme
from prefect_pipelines.services import sourcecode
from prefect_pipelines.services.pipelines import PipelineRecord
from prefect_pipelines.settings import Settings
from prefect_pipelines.translator import PipelineSpecError
from prefect_pipelines.translator.mapping import StoredDefinition
from prefect_pipelines.translator.pipeline_file import CONFIG_FILES, parse_pipeline_file

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

_TIMEOUT = 60
MAX_BRANCHES = 100
_HEADS = re.compile(r"^[0-9a-f]{40,64}\trefs/heads/(.+)$", re.MULTILINE)
_FILE_NAME = re.compile(r"[A-Za-z0-9._/-]+")
_USERINFO = re.compile(r"://[^/@\s]*@")


@dataclass(frozen=True)
class Remote:
    """A repository as git reaches it: its URL, the Authorization header that reads (or
    writes) it, and the protocols git may use."""

    url: str
    auth_header: str | None = field(repr=False)
    schemes: frozenset[str]

    def env(self) -> dict[str, str]:
        return git_env(self.auth_header, set(self.schemes))

    def check(self) -> None:
        scheme = url_scheme(self.url)
        if scheme not in self.schemes:
            raise InvalidInputError(f"git over {scheme} is not allowed (allowed: "
                                    f"{', '.join(sorted(self.schemes))})", field_name="repositoryUrl")


async def _git(remote: Remote, *argv: str, cwd: Path | None = None, what: str) -> str:
    """Run git; its output. A failure is a 424 saying what failed (never with the token:
    it is not on the command line, and git does not print its headers)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", *argv, cwd=cwd, env=remote.env(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), _TIMEOUT)
    except TimeoutError:
        proc.kill()
        raise UpstreamError(f"git {what} of {_shown(remote.url)} took over {_TIMEOUT} s") from None
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise UpstreamError(f"git {what} of {_shown(remote.url)} failed: {_shown(detail[0])[:300]}")
    return out.decode(errors="replace")


def _shown(text: str) -> str:
    """`text` with the user and password of any URL in it left out."""
    return _USERINFO.sub("://", text)


async def branches(remote: Remote) -> list[str]:
    """The repository's branches, sorted (at most MAX_BRANCHES)."""
    remote.check()
    out = await _git(remote, "ls-remote", "--heads", "--", remote.url, what="ls-remote")
    return sorted(_HEADS.findall(out))[:MAX_BRANCHES]


async def read_file(remote: Remote, branch: str, names: tuple[str, ...], max_bytes: int, *,
                    ref: str = "", commit: str = "") -> tuple[str, bytes, str] | None:
    """(name, content, commit) of the first of `names` at the head of `branch` (or at
    `commit`, fetched with `ref`: a delivery's); None when it has none of them.

    Raises:
        NotFoundError: no such branch (or ref).
        InvalidInputError: the file is over `max_bytes`.
    """
    remote.check()
    with tempfile.TemporaryDirectory(prefix="pp-repo-") as directory:
        await _git(remote, "init", "-q", "--bare", directory, what="init")
        source = ref or f"refs/heads/{branch}"
        try:
            await _git(remote, "-C", directory, "fetch", "-q", f"--depth={50 if commit else 1}",
                       "--no-tags", "--", remote.url, source, what="fetch")
        except UpstreamError as exc:
            if "couldn't find remote ref" in str(exc):
                raise NotFoundError(f"the repository has no {source}") from None
            raise
        if commit and await _object_kind(remote, directory, f"{commit}^{{commit}}") != "commit":
            await _git(remote, "-C", directory, "fetch", "-q", "--depth=1", "--no-tags", "--",
                       remote.url, commit, what="fetch of the commit")
        if not commit:
            commit = (await _git(remote, "-C", directory, "rev-parse", "FETCH_HEAD",
                                 what="rev-parse")).strip()
        for name in names:
            kind = await _object_kind(remote, directory, f"{commit}:{name}")
            if kind != "blob":
                continue
            size = int((await _git(remote, "-C", directory, "cat-file", "-s", f"{commit}:{name}",
                                   what="cat-file")).strip())
            if size > max_bytes:
                raise InvalidInputError(f"{name} is over {max_bytes} bytes")
            content = await _bytes(remote, directory, f"{commit}:{name}")
            return name, content, commit
    return None


async def _object_kind(remote: Remote, directory: str, spec: str) -> str:
    try:
        return (await _git(remote, "-C", directory, "cat-file", "-t", spec, what="cat-file")).strip()
    except UpstreamError:
        return ""


async def _bytes(remote: Remote, directory: str, spec: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", directory, "cat-file", "blob", spec, env=remote.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), _TIMEOUT)
    return out


async def commit_file(remote: Remote, branch: str, name: str, content: bytes, *,
                      author: str) -> str:
    """Commit `content` as `name` on `branch` and push it; the new commit.

    Raises:
        NotFoundError: no such branch.
        UpstreamError: the push was refused (no write access, a commit raced this one).
    """
    remote.check()
    if not _FILE_NAME.fullmatch(name) or ".." in name.split("/"):
        raise InvalidInputError(f"{name!r} is not a file name in the repository", field_name="configPath")
    with tempfile.TemporaryDirectory(prefix="pp-repo-") as directory:
        work = Path(directory) / "work"
        try:
            await _git(remote, "clone", "-q", "--depth=1", "--no-tags", "--single-branch",
                       "--branch", branch, "--", remote.url, str(work), what="clone")
        except UpstreamError as exc:
            if "not found in upstream" in str(exc) or "Remote branch" in str(exc):
                raise NotFoundError(f"the repository has no branch {branch!r}") from None
            raise
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        identity = ["-c", f"user.name={author}", "-c", f"user.email={author}@prefect-pipelines.local"]
        await _git(remote, "-C", str(work), "add", "--", name, what="add")
        await _git(remote, "-C", str(work), *identity, "commit", "-q", "--allow-empty", "-m",
                   f"Update {name}", what="commit")
        await _git(remote, "-C", str(work), "push", "-q", "origin", f"HEAD:refs/heads/{branch}",
                   what="push")
        return (await _git(remote, "-C", str(work), "rev-parse", "HEAD", what="rev-parse")).strip()


# -- where a pipeline's file is read: the forge's API, or git ---------------------------------

class GitSource:
    """A repository read and written through git (a plain git URL)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    async def branches(self) -> list[str]:
        return await branches(self.remote)

    async def read(self, names: tuple[str, ...], max_bytes: int, *, branch: str, ref: str = "",
                   commit: str = "") -> tuple[str, bytes, str] | None:
        return await read_file(self.remote, branch, names, max_bytes, ref=ref, commit=commit)

    async def commit(self, branch: str, name: str, content: bytes, *, author: str) -> str:
        return await commit_file(self.remote, branch, name, content, author=author)


class ForgeSource:
    """A repository of the credential's forge, read and written through its API:
    contents, branches, a commit of one file."""

    def __init__(self, forge: Forge, token: str, full_name: str) -> None:
        self.forge, self.token, self.full_name = forge, token, full_name

    async def branches(self) -> list[str]:
        return sorted(await self.forge.branches(self.token, self.full_name))[:MAX_BRANCHES]

    async def read(self, names: tuple[str, ...], max_bytes: int, *, branch: str, ref: str = "",
                   commit: str = "") -> tuple[str, bytes, str] | None:
        if not commit:
            try:
                commit = await self.forge.branch_head(self.token, self.full_name, branch)
            except NotFoundError:
                raise NotFoundError(f"the repository has no branch {branch!r}") from None
        for name in names:
            found = await self.forge.read_file(self.token, self.full_name, name, commit)
            if found is not None:
                if len(found) > max_bytes:
                    raise InvalidInputError(f"{name} is over {max_bytes} bytes")
                return name, found, commit
        return None

    async def commit(self, branch: str, name: str, content: bytes, *, author: str) -> str:
        return await self.forge.commit_file(self.token, self.full_name, path=name, content=content,
                                            branch=branch, message=f"Update {name}")


# -- a pipeline read from its repository --------------------------------------------------

async def pipeline_source(client: PrefectClient, record: PipelineRecord, settings: Settings, *,
                          writer: str | None = None) -> tuple[GitSource | ForgeSource, StoredDefinition]:
    """Where a pipeline read from its repository is read: the API of its credential's
    forge when the repository is there, else git (a plain git URL).

    Args:
        writer: the user about to commit: the pipeline's credential must be theirs.

    Raises:
        ActionNotAvailableError: the pipeline stores its definition (409).
        PermissionDeniedError: `writer` would commit with someone else's credential.
    """
    stored = StoredDefinition(record.definition)
    if not stored.from_repository:
        raise ActionNotAvailableError(
            f"pipeline {record.pipeline_id} stores its definition: read it with view or export")
    if writer is not None:
        _, credential = stored.repository
        if credential:
            owner = await sourcecode.credential_record(client, credential)
            if owner.user_id != writer:
                raise PermissionDeniedError(
                    f"pipeline {record.pipeline_id} reads its repository with {owner.user_id}'s "
                    "credential: to commit to it with yours, PUT the pipeline with your own "
                    "sourceCodeCredentialId first")
    return await source_of(client, stored, settings), stored


async def source_of(client: PrefectClient, stored: StoredDefinition, settings: Settings
                    ) -> GitSource | ForgeSource:
    url, credential = stored.repository
    header = None
    if credential:
        owner, token = await sourcecode.usable_token(client, credential)
        full_name = owner.forge.repo_name(url)
        if full_name is not None:
            return ForgeSource(owner.forge, token, full_name)
        header = owner.forge.clone_header(token)
    return GitSource(Remote(url, header, frozenset(settings.git_schemes())))


def _names(stored: StoredDefinition) -> tuple[str, ...]:
    path = stored.data.get("configPath")
    return (path,) if isinstance(path, str) and path else CONFIG_FILES


async def pipeline_branches(client: PrefectClient, record: PipelineRecord, settings: Settings
                            ) -> list[str]:
    source, _ = await pipeline_source(client, record, settings)
    return await source.branches()


async def pipeline_file(client: PrefectClient, record: PipelineRecord, settings: Settings,
                        branch: str) -> tuple[str, bytes, str]:
    """(name, content, commit) of the pipeline's file at the head of `branch`.

    Raises:
        NotFoundError: no such branch, or none of the file names on it.
    """
    source, stored = await pipeline_source(client, record, settings)
    found = await source.read(_names(stored), settings.max_pipeline_bytes, branch=branch)
    if found is None:
        raise NotFoundError(f"branch {branch!r} has no {' or '.join(_names(stored))}")
    return found


async def pipeline_configs(client: PrefectClient, record: PipelineRecord, settings: Settings,
                           branch: str | None) -> dict[str, dict[str, Any]]:
    """Per branch (the one given, or every branch): the definition its file describes (its
    clone stage first), or why there is none (`error`), and the commit read."""
    source, stored = await pipeline_source(client, record, settings)
    names = _names(stored)
    out: dict[str, dict[str, Any]] = {}
    for name in [branch] if branch else await source.branches():
        try:
            found = await source.read(names, settings.max_pipeline_bytes, branch=name)
        except NotFoundError as exc:
            if branch:
                raise
            out[name] = {"config": None, "error": exc.message}
            continue
        if found is None:
            out[name] = {"config": None, "error": f"no {' or '.join(names)}"}
            continue
        file_name, content, commit = found
        try:
            config = parse_pipeline_file(content, file_name=file_name, clone=stored.implicit_clone(),
                                         max_bytes=settings.max_pipeline_bytes)
            out[name] = {"config": config.to_dict(), "commit": commit, "file": file_name}
        except PipelineSpecError as exc:
            out[name] = {"config": None, "error": str(exc), "commit": commit, "file": file_name}
    return out


async def save_pipeline_file(client: PrefectClient, record: PipelineRecord, settings: Settings,
                             branch: str, content: bytes, user_id: str) -> tuple[str, str]:
    """Validate a pipeline file and commit it to `branch` with the caller's credential;
    (file name, commit).

    Raises:
        InvalidInputError: the file is not a valid pipeline (422 naming the file and field).
    """
    source, stored = await pipeline_source(client, record, settings, writer=user_id)
    names = _names(stored)
    existing = await source.read(names, settings.max_pipeline_bytes, branch=branch)
    name = existing[0] if existing else names[0]
    try:
        parse_pipeline_file(content, file_name=name, clone=stored.implicit_clone(),
                            max_bytes=settings.max_pipeline_bytes)
    except PipelineSpecError as exc:
        raise InvalidInputError(str(exc), field_name=exc.path or None) from None
    return name, await source.commit(branch, name, content, author=user_id)



async def delivered_file_problem(client: PrefectClient, definition: dict[str, Any], *,
                                 branch: str, ref: str, commit: str, settings: Settings) -> str | None:
    """Why a webhook delivery of a pipeline read from its repository runs nothing: the
    delivered commit has no pipeline file, an invalid one, or one whose `branch` leaves
    this branch out (as Rancher, which made no execution then). None when it runs, or
    when git cannot tell (its run then says what is wrong)."""
    stored = StoredDefinition(definition)
    try:
        source = await source_of(client, stored, settings)
        found = await source.read(_names(stored), settings.max_pipeline_bytes, branch=branch,
                                  ref=ref, commit=commit)
    except (UpstreamError, NotFoundError, InvalidInputError):
        return None
    at = f"commit {commit[:12]}"
    if found is None:
        return f"{at} has no {' or '.join(_names(stored))}: nothing to run"
    name, content, _ = found
    try:
        config = parse_pipeline_file(content, file_name=name, clone=stored.implicit_clone(),
                                     max_bytes=settings.max_pipeline_bytes)
    except PipelineSpecError as exc:
        return f"{at}: invalid pipeline: {exc}"
    if config.branch is not None and not config.branch.allows(branch):
        return f"{at}: {name} does not build {branch!r} (branch: {config.branch.describe()})"
    return None

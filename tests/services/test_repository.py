"""services/repository.py's git side (a plain git URL), on the real git server: branches,
a file at a branch or a commit, a commit of the file; errors that keep a URL's password
out."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from prefect_pipelines.errors import NotFoundError, UpstreamError
from prefect_pipelines.services.repository import Remote, branches, commit_file, read_file

NAMES = (".rancher-pipeline.yml", ".rancher-pipeline.yaml")


@pytest.fixture
def remote(git_server) -> Remote:  # type: ignore[no-untyped-def]
    name = f"repo-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(name, {"dev": {"x": "y\n"}, "main": {".rancher-pipeline.yaml": "stages: []\n"}})
    return Remote(git_server.repo_url(name), None, frozenset({"http"}))


def test_branches_files_and_a_commit(remote: Remote) -> None:
    assert asyncio.run(branches(remote)) == ["dev", "main"]
    name, content, first = asyncio.run(read_file(remote, "main", NAMES, 1000))
    assert (name, content) == (".rancher-pipeline.yaml", b"stages: []\n")
    made = asyncio.run(commit_file(remote, "main", name, b"stages: [x]\n", author="alice"))
    assert made != first
    assert asyncio.run(read_file(remote, "main", NAMES, 1000))[1:] == (b"stages: [x]\n", made)
    # The commit before is still readable by its hash (a webhook's delivered commit).
    assert asyncio.run(read_file(remote, "main", NAMES, 1000, ref="refs/heads/main", commit=first))[1] == b"stages: []\n"
    assert asyncio.run(read_file(remote, "dev", NAMES, 1000)) is None
    with pytest.raises(NotFoundError, match="no refs/heads/gone"):
        asyncio.run(read_file(remote, "gone", NAMES, 1000))


def test_a_failure_never_shows_the_url_s_password() -> None:
    remote = Remote("http://bob:s3cr3t-pw@127.0.0.1:1/app.git", None, frozenset({"http"}))
    with pytest.raises(UpstreamError) as raised:
        asyncio.run(branches(remote))
    assert "s3cr3t-pw" not in str(raised.value) and "127.0.0.1:1/app.git" in str(raised.value)

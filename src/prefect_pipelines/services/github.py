"""GitHub and GitHub Enterprise through PyGithub: OAuth, users, repositories, hooks, statuses.

`CommitStatus` reports a webhook run's state on its commit.

PyGithub is synchronous; the async wrappers run it in a thread. Errors come back as the
API's errors with the cause named (a bad code, wrong credentials, an unreachable host);
no token or secret is ever part of a message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import github
import requests
from github import Auth, Github, GithubException
from prefect.exceptions import ObjectNotFound

from prefect_pipelines.blocks import SourceCodeCredential
from prefect_pipelines.errors import InvalidInputError, NotFoundError, UpstreamError
from prefect_pipelines.translator import RunPlan
from prefect_pipelines.vocabulary import credential_block_name

T = TypeVar("T")
_log = logging.getLogger(__name__)
GITHUB_COM = "github.com"
_TIMEOUT = 15
_OWNER_REPO = re.compile(r"/?([^/]+)/([^/]+?)(?:\.git)?/?$")


def api_base_url(host: str, tls: bool = True) -> str:
    """The REST API of a GitHub host: api.github.com, or `<scheme>://<host>/api/v3`."""
    if host.lower() == GITHUB_COM:
        return "https://api.github.com"
    return f"{'https' if tls else 'http'}://{host}/api/v3"


def web_host(api_url: str) -> str:
    """The web host of an API URL (`api.github.com` -> `github.com`)."""
    netloc = urlsplit(api_url).netloc
    return GITHUB_COM if netloc == "api.github.com" else netloc


def repo_full_name(url: str, api_url: str) -> str | None:
    """`owner/repo` of a clone URL on the credential's host, None for other hosts."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if not parts.scheme or host.lower() != web_host(api_url).lower():
        return None
    match = _OWNER_REPO.search(parts.path)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _client(api_url: str, token: str | None = None) -> Github:
    auth = Auth.Token(token) if token else None
    return Github(auth=auth, base_url=api_url, timeout=_TIMEOUT, retry=None, per_page=100)


async def _call(fn: Callable[[], T], what: str, host: str) -> T:
    """Run a PyGithub call in a thread; turn its failures into API errors."""
    try:
        return await anyio.to_thread.run_sync(fn)
    except github.BadCredentialsException as exc:
        raise InvalidInputError(f"GitHub refused the credentials while {what}: "
                                f"{_github_message(exc)}") from None
    except github.UnknownObjectException:
        raise NotFoundError(f"GitHub found nothing while {what} (or the token may not see it)") from None
    except GithubException as exc:
        raise UpstreamError(f"GitHub answered {exc.status} while {what}: {_github_message(exc)}") from None
    except requests.exceptions.RequestException as exc:
        reason = type(exc).__name__
        raise UpstreamError(f"cannot reach GitHub at {host} while {what} ({reason})") from None


def _github_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("error_description") or data.get("message") or data.get("error")
               or "no details")


@dataclass
class GitHubUser:
    """A GitHub account as the credential resource shows it."""

    login: str
    name: str
    avatar_url: str
    html_url: str


async def exchange_code(*, api_url: str, client_id: str, client_secret: str, code: str) -> str:
    """Trade an OAuth code for an access token with an OAuth app.

    Raises:
        InvalidInputError: the code or the app's credentials were refused (naming which).
        UpstreamError: the host cannot be reached.
    """
    host = web_host(api_url)

    def call() -> str:
        app = _client(api_url).get_oauth_application(client_id, client_secret)
        return app.get_access_token(code).token

    try:
        return await _call(call, "exchanging the OAuth code", host)
    except InvalidInputError:
        raise InvalidInputError("GitHub refused the code: it is wrong, expired or already used",
                                field_name="code") from None
    except UpstreamError as exc:
        if "incorrect" in exc.message or "client_id" in exc.message:
            raise InvalidInputError(
                "GitHub refused the OAuth app's clientId or clientSecret",
                field_name="githubConfig.clientSecret",
            ) from None
        if exc.message.startswith("cannot reach"):
            raise InvalidInputError(f"{exc.message}: check host and tls",
                                    field_name="githubConfig.host") from None
        raise


async def read_user(*, api_url: str, token: str) -> GitHubUser:
    """The account a token belongs to."""

    def call() -> GitHubUser:
        user = _client(api_url, token).get_user()
        return GitHubUser(login=user.login, name=user.name or user.login,
                          avatar_url=user.avatar_url or "", html_url=user.html_url or "")

    return await _call(call, "reading the user", web_host(api_url))


async def list_repositories(*, api_url: str, token: str) -> list[dict[str, Any]]:
    """Every repository the token can see (all pages of /user/repos)."""

    def call() -> list[dict[str, Any]]:
        out = []
        for repo in _client(api_url, token).get_user().get_repos():
            permissions = repo.permissions
            out.append({
                "fullName": repo.full_name,
                "url": repo.clone_url,
                "htmlUrl": repo.html_url,
                "permissions": {"pull": bool(permissions and permissions.pull),
                                "push": bool(permissions and permissions.push),
                                "admin": bool(permissions and permissions.admin)},
                "language": repo.language or "",
                "defaultBranch": repo.default_branch or "",
            })
        return out

    return await _call(call, "listing repositories", web_host(api_url))


async def create_hook(*, api_url: str, token: str, full_name: str, url: str, secret: str) -> int:
    """Create a push + pull_request webhook on a repository; return its id."""

    def call() -> int:
        repo = _client(api_url, token).get_repo(full_name)
        hook = repo.create_hook(
            "web",
            {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            events=["push", "pull_request"], active=True,
        )
        return hook.id

    return await _call(call, f"creating a webhook on {full_name}", web_host(api_url))


async def delete_hook(*, api_url: str, token: str, full_name: str, hook_id: int) -> None:
    """Delete a webhook (one already gone is fine)."""

    def call() -> None:
        repo = _client(api_url, token).get_repo(full_name, lazy=True)
        repo.get_hook(hook_id).delete()

    try:
        await _call(call, f"deleting webhook {hook_id} of {full_name}", web_host(api_url))
    except NotFoundError:
        pass


async def list_branches(*, api_url: str, token: str, full_name: str) -> list[str]:
    """The repository's branches (every page)."""

    def call() -> list[str]:
        return [branch.name for branch in _client(api_url, token).get_repo(full_name, lazy=True).get_branches()]

    return await _call(call, f"listing the branches of {full_name}", web_host(api_url))


async def branch_head(*, api_url: str, token: str, full_name: str, branch: str) -> str:
    """The commit at the head of a branch.

    Raises:
        NotFoundError: no such branch.
    """

    def call() -> str:
        return _client(api_url, token).get_repo(full_name, lazy=True).get_branch(branch).commit.sha

    return await _call(call, f"reading branch {branch!r} of {full_name}", web_host(api_url))


async def read_file(*, api_url: str, token: str, full_name: str, path: str, ref: str
                    ) -> tuple[bytes, str] | None:
    """(content, blob sha) of a file at a commit or branch; None when it has no such file."""

    def call() -> tuple[bytes, str] | None:
        repo = _client(api_url, token).get_repo(full_name, lazy=True)
        try:
            found = repo.get_contents(path, ref=ref)
        except github.UnknownObjectException:
            return None
        if isinstance(found, list) or found.type != "file":
            return None
        return found.decoded_content, found.sha

    return await _call(call, f"reading {path} of {full_name} at {ref}", web_host(api_url))


async def commit_file(*, api_url: str, token: str, full_name: str, path: str, content: bytes,
                      branch: str, message: str) -> str:
    """Create or update a file on a branch (GitHub's contents API); the new commit."""

    def call() -> str:
        repo = _client(api_url, token).get_repo(full_name, lazy=True)
        try:
            current = repo.get_contents(path, ref=branch)
        except github.UnknownObjectException:
            current = None
        if current is None or isinstance(current, list):
            made = repo.create_file(path, message, content, branch=branch)
        else:
            made = repo.update_file(path, message, content, current.sha, branch=branch)
        return made["commit"].sha

    return await _call(call, f"committing {path} to {full_name} ({branch})", web_host(api_url))


def set_commit_status(*, api_url: str, token: str, full_name: str, sha: str, state: str,
                      target_url: str, description: str, context: str) -> None:
    """Set a commit status (synchronous: the flow calls it from its own thread)."""
    repo = _client(api_url, token).get_repo(full_name, lazy=True)
    repo.get_commit(sha).create_status(state=state, target_url=target_url or github.GithubObject.NotSet,
                                       description=description[:140], context=context)


class CommitStatus:
    """Reports an execution's state to GitHub as a commit status (webhook runs only).

    Failures to report are logged and never fail the run.
    """

    def __init__(self, plan: RunPlan, public_url: str) -> None:
        self.plan = plan
        self.enabled = False
        source = plan.config.source
        if plan.trigger.triggered_by != "webhook" or not plan.trigger.commit or source is None:
            return
        if not source.source_code_credential_id:
            return
        try:
            credential = SourceCodeCredential.load(credential_block_name(source.source_code_credential_id))
        except (ValueError, ObjectNotFound) as exc:
            _log.warning("no commit status: credential %s: %s", source.source_code_credential_id, exc)
            return
        self.api_url = credential.api_url
        self.token = credential.access_token.get_secret_value()
        self.full_name = repo_full_name(source.url, credential.api_url)
        identity = plan.identity
        self.target_url = (f"{public_url.rstrip('/')}/v3/projects/{identity.project_id}"
                           f"/pipelineexecutions/{identity.execution_id}")
        self.context = f"prefect-pipelines/{identity.pipeline_id}"
        self.enabled = self.full_name is not None

    def report(self, state: str, description: str) -> None:
        """Set the commit's status: pending, success, failure or error."""
        if not self.enabled:
            return
        try:
            set_commit_status(api_url=self.api_url, token=self.token, full_name=self.full_name,
                              sha=self.plan.trigger.commit, state=state,
                              target_url=self.target_url, description=description,
                              context=self.context)
        except Exception as exc:  # noqa: BLE001 - GitHub being down must not fail a build
            _log.warning("could not set the commit status %s: %s", state, type(exc).__name__)

"""GitHub and GitHub Enterprise, through PyGithub.

OAuth-app tokens do not expire. Hooks are `web` hooks with a JSON body, signed with the
pipeline's secret in `X-Hub-Signature-256`; a pushed tag is a `push` of `refs/tags/...`.
git clones with the token as the password of `x-access-token`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import github
import requests
from github import Auth, Github, GithubException

from prefect_pipelines.errors import InvalidInputError, NotFoundError, UpstreamError
from prefect_pipelines.forges.base import (
    TIMEOUT,
    Delivery,
    DeliveryHeaders,
    Forge,
    ForgeUser,
    OAuthApp,
    Repository,
    Skip,
    Token,
    basic_header,
    branch_or_tag,
    check_hmac,
    commit_at,
    first_line,
    is_zero_commit,
    skip_ci,
    text,
)

GITHUB_COM = "github.com"
PULL_REQUEST_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
SCOPES = "repo,admin:repo_hook"


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("error_description") or data.get("message") or data.get("error")
               or "no details")


class GitHub(Forge):
    kind = "github"
    title = "GitHub"
    config_field = "githubConfig"
    default_host = GITHUB_COM
    token_expires = False
    headers = DeliveryHeaders(event="X-GitHub-Event", delivery="X-GitHub-Delivery")

    @classmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        if app.host.lower() == GITHUB_COM:
            return "https://api.github.com"
        return f"{'https' if app.tls else 'http'}://{app.host}/api/v3"

    @property
    def web_host(self) -> str:
        netloc = super().web_host
        return GITHUB_COM if netloc == "api.github.com" else netloc

    def _web_url(self) -> str:
        if self.web_host == GITHUB_COM:
            return "https://github.com"
        return self.api_url.removesuffix("/api/v3")

    def _client(self, token: str | None = None) -> Github:
        auth = Auth.Token(token) if token else None
        return Github(auth=auth, base_url=self.api_url, timeout=TIMEOUT, retry=None, per_page=100)

    def failure(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, github.BadCredentialsException):
            return InvalidInputError(f"GitHub refused the credentials while {what}: {_message(exc)}")
        if isinstance(exc, github.UnknownObjectException):
            return NotFoundError(f"GitHub found nothing while {what} (or the token may not see it)")
        if isinstance(exc, GithubException):
            return UpstreamError(f"GitHub answered {exc.status} while {what}: {_message(exc)}")
        if isinstance(exc, requests.exceptions.RequestException):
            return self.unreachable(exc, what)
        return exc

    # -- OAuth and the user -------------------------------------------------------------

    authorize_params = {"scope": SCOPES}

    @property
    def authorize_endpoint(self) -> str:
        return f"{self._web_url()}/login/oauth/authorize"

    async def exchange_code(self, app: OAuthApp, code: str) -> Token:
        def call() -> Token:
            oauth = self._client().get_oauth_application(app.client_id, app.client_secret)
            return Token(oauth.get_access_token(code).token)

        try:
            return await self.call(call, "exchanging the OAuth code")
        except InvalidInputError:
            raise InvalidInputError("GitHub refused the code: it is wrong, expired or already used",
                                    field_name="code") from None
        except UpstreamError as exc:
            if "incorrect" in exc.message or "client_id" in exc.message:
                raise InvalidInputError("GitHub refused the OAuth app's clientId or clientSecret",
                                        field_name="githubConfig.clientSecret") from None
            if exc.message.startswith("cannot reach"):
                raise InvalidInputError(f"{exc.message}: check host and tls",
                                        field_name="githubConfig.host") from None
            raise

    def account(self, token: str) -> ForgeUser:
        user = self._client(token).get_user()
        return ForgeUser(login=user.login, name=user.name or user.login,
                         avatar_url=user.avatar_url or "", html_url=user.html_url or "")

    def repository_list(self, token: str) -> list[Repository]:
        out = []
        for repo in self._client(token).get_user().get_repos():
            permissions = repo.permissions
            out.append(Repository(
                full_name=repo.full_name, url=repo.clone_url, html_url=repo.html_url,
                pull=bool(permissions and permissions.pull),
                push=bool(permissions and permissions.push),
                admin=bool(permissions and permissions.admin),
                language=repo.language or "", default_branch=repo.default_branch or ""))
        return out

    # -- hooks and deliveries -----------------------------------------------------------

    def add_hook(self, token: str, repo: str, *, url: str, secret: str,
                 events: frozenset[str]) -> str:
        wanted = sorted({"pull_request" if event == "pull_request" else "push" for event in events})

        hook = self._client(token).get_repo(repo).create_hook(
            "web", {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            events=wanted, active=True)
        return str(hook.id)

    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        return [(str(hook.id), str(hook.config.get("url", ""))) for hook in
                self._client(token).get_repo(repo, lazy=True).get_hooks()]

    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        self._client(token).get_repo(repo, lazy=True).get_hook(int(hook_id)).delete()

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        check_hmac(secret, body, headers.get("x-hub-signature-256"), header="X-Hub-Signature-256",
                   prefix="sha256=")

    event_parsers = {"ping": "_ping", "push": "_push", "pull_request": "_pull_request"}
    pull_request_actions = PULL_REQUEST_ACTIONS

    @staticmethod
    def _ping(payload: dict[str, Any]) -> Delivery:
        raise Skip("pong")

    @staticmethod
    def _push(payload: dict[str, Any]) -> Delivery:
        ref = text(payload, "ref")
        if payload.get("deleted") is True or is_zero_commit(text(payload, "after")):
            raise Skip(f"{ref or 'a ref'} was deleted: nothing to build")
        event, name = branch_or_tag(ref)
        message = text(payload, "head_commit", "message")
        return Delivery(event=event, branch=name, commit=commit_at(payload, "after"), ref=ref,
                        message=first_line(message), skip_ci=skip_ci(message),
                        author=text(payload, "head_commit", "author", "name"),
                        html_link=text(payload, "compare"),
                        email=text(payload, "head_commit", "author", "email"),
                        avatar_url=text(payload, "sender", "avatar_url"))

    # -- commit status, contents, clone ---------------------------------------------------

    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        commit = self._client(token).get_repo(repo, lazy=True).get_commit(sha)
        commit.create_status(state=state, target_url=target_url or github.GithubObject.NotSet,
                             description=description[:140], context=context)

    def branch_names(self, token: str, repo: str) -> list[str]:
        return [branch.name for branch in self._client(token).get_repo(repo, lazy=True).get_branches()]

    def head_of(self, token: str, repo: str, branch: str) -> str:
        return self._client(token).get_repo(repo, lazy=True).get_branch(branch).commit.sha

    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        found = self._client(token).get_repo(repo, lazy=True).get_contents(path, ref=ref)
        return None if isinstance(found, list) or found.type != "file" else found.decoded_content

    def write_file(self, token: str, repo: str, *, path: str, content: bytes,
                   branch: str, message: str) -> str:
        project = self._client(token).get_repo(repo, lazy=True)
        try:
            current = project.get_contents(path, ref=branch)
        except github.UnknownObjectException:
            current = None
        if current is None or isinstance(current, list):
            made = project.create_file(path, message, content, branch=branch)
        else:
            made = project.update_file(path, message, content, current.sha, branch=branch)
        return made["commit"].sha

    def clone_header(self, token: str) -> str:
        return basic_header("x-access-token", token)

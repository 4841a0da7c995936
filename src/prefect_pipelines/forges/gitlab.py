"""GitLab (gitlab.com or self-managed), through python-gitlab.

OAuth: python-gitlab has no OAuth flow, so the code and refresh exchanges are a POST to
`/oauth/token` with httpx; everything else goes through python-gitlab. GitLab's access
tokens expire (two hours) and its refresh tokens are single-use: each refresh gives the
next one. Hooks carry the pipeline's secret itself in `X-Gitlab-Token`; deliveries name
themselves in `X-Gitlab-Event-UUID`. Commit statuses are GitLab's `pending`, `success` and
`failed` (for failure and error). git clones with the token as the password of `oauth2`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import gitlab
import httpx
import requests
from gitlab import exceptions as gitlab_errors

from prefect_pipelines.errors import InvalidInputError, NotFoundError, UpstreamError
from prefect_pipelines.forges.base import (
    TIMEOUT,
    Delivery,
    DeliveryHeaders,
    ForgeUser,
    OAuth2Forge,
    OAuthApp,
    Repository,
    Skip,
    basic_header,
    branch_or_tag,
    check_token,
    commit_at,
    first_line,
    is_zero_commit,
    skip_ci,
    text,
)

GITLAB_COM = "gitlab.com"
SCOPES = "api"  # hooks, commit statuses, contents and clone: GitLab has no narrower scope
MERGE_REQUEST_ACTIONS = {"open", "reopen", "update"}
# GitLab's access levels: Reporter may read, Developer push, Maintainer manage hooks.
_REPORTER, _DEVELOPER, _MAINTAINER = 20, 30, 40


class _Client(gitlab.Gitlab):
    """python-gitlab that answers a rate limit at once instead of sleeping through it (a
    webhook's answer or a run must not wait minutes on the forge)."""

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        return super().http_request(*args, **kwargs)


def _message(exc: gitlab_errors.GitlabError) -> str:
    return str(exc.error_message or "no details")[:300]


class GitLab(OAuth2Forge):
    kind = "gitlab"
    title = "GitLab"
    config_field = "gitlabConfig"
    default_host = GITLAB_COM
    token_expires = True
    headers = DeliveryHeaders(event="X-Gitlab-Event", delivery="X-Gitlab-Event-UUID")
    status_states = {"pending": "pending", "success": "success", "failure": "failed",
                     "error": "failed"}

    token_path = "/oauth/token"

    @classmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        return f"{'https' if app.tls else 'http'}://{app.host}"

    def _client(self, token: str) -> gitlab.Gitlab:
        return _Client(self.api_url, oauth_token=token, timeout=TIMEOUT, per_page=100,
                       retry_transient_errors=False, keep_base_url=True)

    def _project(self, token: str, repo: str) -> Any:
        return self._client(token).projects.get(repo, lazy=True)

    def failure(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, gitlab_errors.GitlabAuthenticationError):
            return InvalidInputError(f"GitLab refused the credentials while {what}: {_message(exc)}")
        if isinstance(exc, gitlab_errors.GitlabError) and exc.response_code == 404:
            return NotFoundError(f"GitLab found nothing while {what} (or the token may not see it)")
        if isinstance(exc, gitlab_errors.GitlabError) and exc.response_code == 403:
            return InvalidInputError(f"GitLab refused {what}: the token may not do it")
        if isinstance(exc, gitlab_errors.GitlabError):
            return UpstreamError(f"GitLab answered {exc.response_code} while {what}: {_message(exc)}")
        if isinstance(exc, (requests.exceptions.RequestException, httpx.HTTPError)):
            return self.unreachable(exc, what)
        return exc

    # -- OAuth and the user -------------------------------------------------------------

    authorize_params = {"response_type": "code", "scope": SCOPES}

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.api_url}/oauth/authorize"

    def account(self, token: str) -> ForgeUser:
        client = self._client(token)
        client.auth()
        user = client.user
        assert user is not None
        return ForgeUser(login=user.username, name=getattr(user, "name", "") or user.username,
                         avatar_url=getattr(user, "avatar_url", "") or "",
                         html_url=getattr(user, "web_url", "") or "")

    def repository_list(self, token: str) -> list[Repository]:
        out = []
        for project in self._client(token).projects.list(
                membership=True, min_access_level=_REPORTER, iterator=True, order_by="id",
                sort="asc"):
            level = _access_level(getattr(project, "permissions", None))
            out.append(Repository(
                full_name=project.path_with_namespace, url=project.http_url_to_repo,
                html_url=project.web_url, pull=level >= _REPORTER, push=level >= _DEVELOPER,
                admin=level >= _MAINTAINER, default_branch=getattr(project, "default_branch", "") or ""))
        return out

    # -- hooks and deliveries -----------------------------------------------------------

    def add_hook(self, token: str, repo: str, *, url: str, secret: str,
                 events: frozenset[str]) -> str:
        hook = self._project(token, repo).hooks.create({
            "url": url, "token": secret, "enable_ssl_verification": url.startswith("https:"),
            "push_events": "push" in events, "tag_push_events": "tag" in events,
            "merge_requests_events": "pull_request" in events})
        return str(hook.id)

    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        return [(str(hook.id), hook.url) for hook in self._project(token, repo).hooks.list(iterator=True)]

    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        self._project(token, repo).hooks.delete(int(hook_id))

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        check_token(secret, headers.get("x-gitlab-token"), header="X-Gitlab-Token")

    event_parsers = {"Push Hook": "_push", "Tag Push Hook": "_push",
                     "Merge Request Hook": "_merge_request"}

    @staticmethod
    def _push(payload: dict[str, Any]) -> Delivery:
        ref = text(payload, "ref")
        after = text(payload, "after")
        if is_zero_commit(after) or payload.get("checkout_sha") is None:
            raise Skip(f"{ref or 'a ref'} was deleted: nothing to build")
        event, name = branch_or_tag(ref)
        commit = commit_at(payload, "checkout_sha")
        commits = payload.get("commits") if isinstance(payload.get("commits"), list) else []
        head = next((c for c in commits if isinstance(c, dict) and c.get("id") == commit), {})
        message = text(head, "message") or text(payload, "message")
        before = text(payload, "before")
        web = text(payload, "project", "web_url")
        link = text(head, "url")
        if event == "push" and web and before and not is_zero_commit(before):
            link = f"{web}/-/compare/{before}...{commit}"
        return Delivery(event=event, branch=name, commit=commit, ref=ref,
                        message=first_line(message), skip_ci=skip_ci(message),
                        author=text(head, "author", "name") or text(payload, "user_name"),
                        email=text(head, "author", "email") or text(payload, "user_email"),
                        html_link=link, avatar_url=text(payload, "user_avatar"))

    @staticmethod
    def _merge_request(payload: dict[str, Any]) -> Delivery:
        attributes = payload.get("object_attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        action = text(attributes, "action")
        if action not in MERGE_REQUEST_ACTIONS or text(attributes, "state") != "opened":
            raise Skip(f"merge request {action or 'event'}: nothing to build")
        if action == "update" and not text(attributes, "oldrev"):
            raise Skip("merge request updated without new commits: nothing to build")
        number = attributes.get("iid")
        if not isinstance(number, int):
            raise InvalidInputError("the merge request has no iid", field_name="object_attributes.iid")
        title = text(attributes, "title")
        return Delivery(event="pull_request", branch=text(attributes, "target_branch"),
                        commit=commit_at(attributes, "last_commit", "id"),
                        ref=f"refs/merge-requests/{number}/head", message=title, title=title,
                        author=text(payload, "user", "username"),
                        email=text(attributes, "last_commit", "author", "email"),
                        html_link=text(attributes, "url"),
                        avatar_url=text(payload, "user", "avatar_url"), skip_ci=skip_ci(title))

    # -- commit status, contents, clone ---------------------------------------------------

    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        commit = self._project(token, repo).commits.get(sha, lazy=True)
        commit.statuses.create({"state": self.status_states[state], "target_url": target_url,
                                "description": description[:140], "name": context})

    def branch_names(self, token: str, repo: str) -> list[str]:
        return [branch.name for branch in self._project(token, repo).branches.list(iterator=True)]

    def head_of(self, token: str, repo: str, branch: str) -> str:
        return str(self._project(token, repo).branches.get(branch).commit["id"])

    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        return bytes(self._project(token, repo).files.raw(file_path=path, ref=ref))

    def write_file(self, token: str, repo: str, *, path: str, content: bytes,
                   branch: str, message: str) -> str:
        project = self._project(token, repo)
        try:
            project.files.head(path, ref=branch)
            action = "update"
        except gitlab_errors.GitlabError as exc:
            if exc.response_code != 404:
                raise
            action = "create"
        made = project.commits.create({
            "branch": branch, "commit_message": message, "actions": [{
                "action": action, "file_path": path, "encoding": "base64",
                "content": base64.b64encode(content).decode()}]})
        return str(made.id)

    def clone_header(self, token: str) -> str:
        return basic_header("oauth2", token)


def _access_level(permissions: Any) -> int:
    """The higher of a project's own and its group's access level for the user."""
    if not isinstance(permissions, dict):
        return 0
    levels = [access.get("access_level") for access in (permissions.get("project_access"),
                                                        permissions.get("group_access"))
              if isinstance(access, dict)]
    return max([level for level in levels if isinstance(level, int)], default=0)

"""Bitbucket Data Center (and Server), through its REST API 1.0 with httpx (as Bitbucket
Cloud, and for the same reasons: forges/bitbucketcloud.py).

OAuth 2: an incoming application link (Data Center 7.20 and later), code and refresh
grants at `/rest/oauth2/latest/token`; Rancher used OAuth 1 consumer keys instead, which
Atlassian has deprecated. Tokens expire and are refreshed. The user is found with
`/plugins/servlet/applinks/whoami` (the REST API has no "myself"). Repositories are named
`PROJECT/slug` and cloned from `/scm/project/slug.git`. Hooks are signed with the
pipeline's secret in `X-Hub-Signature` (`sha256=` + hex HMAC-SHA256). A pull request is
built from `refs/pull-requests/N/from`. Build statuses go to the build-status API. git
sends the token as a Bearer header, as Bitbucket takes HTTP access tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from prefect_pipelines.errors import InvalidInputError, NotFoundError
from prefect_pipelines.forges.base import (
    Delivery,
    DeliveryHeaders,
    ForgeUser,
    OAuthApp,
    Repository,
    Skip,
    branch_or_tag,
    check_hub_signature,
    clone_href,
    commit_at,
    is_zero_commit,
    skip_ci,
    text,
)
from prefect_pipelines.forges.rest import Refused, RestForge

SCOPES = "REPO_ADMIN"  # hooks need it; it includes reading and writing
_PAGE = 100
_SCM_PATH = re.compile(r"^/scm/([^/]+)/([^/]+?)(?:\.git)?/?$")


class BitbucketServer(RestForge):
    kind = "bitbucketserver"
    title = "Bitbucket Data Center"
    config_field = "bitbucketServerConfig"
    default_host = "bitbucket.example.com"
    headers = DeliveryHeaders(event="X-Event-Key", delivery="X-Request-Id")
    token_path = "/rest/oauth2/latest/token"
    authorize_params = {"response_type": "code", "scope": SCOPES}
    status_states = {"pending": "INPROGRESS", "success": "SUCCESSFUL", "failure": "FAILED",
                     "error": "FAILED"}
    event_parsers = {"diagnostics:ping": "_ping", "repo:refs_changed": "_refs_changed",
                     "pr:opened": "_pull_request", "pr:from_ref_updated": "_pull_request"}

    @classmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        return f"{'https' if app.tls else 'http'}://{app.host}"

    @property
    def api_base(self) -> str:
        return f"{self.api_url}/rest/api/1.0"

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.api_url}/rest/oauth2/latest/authorize"

    @staticmethod
    def error_message(body: Any) -> str:
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or "no details")
        return "no details"

    def repo_name(self, url: str) -> str | None:
        """`PROJECT/slug` of a clone URL (`/scm/project/slug.git`) on this host."""
        parts = urlsplit(url)
        if not parts.scheme or parts.netloc.rsplit("@", 1)[-1].lower() != self.web_host.lower():
            return None
        match = _SCM_PATH.match(parts.path)
        if match is None:
            return None
        project = match.group(1)
        return f"{project if project.startswith('~') else project.upper()}/{match.group(2)}"

    def _pages(self, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every value of a paged list (`isLastPage`, `nextPageStart`)."""
        found: list[dict[str, Any]] = []
        start = 0
        while True:
            page = self.request(token, "GET", path, params={"limit": _PAGE, "start": start, **params}).json()
            found.extend(value for value in page.get("values", []) if isinstance(value, dict))
            if page.get("isLastPage", True) or not isinstance(page.get("nextPageStart"), int):
                return found
            start = page["nextPageStart"]

    @staticmethod
    def _repo_path(repo: str) -> str:
        project, slug = repo.split("/", 1)
        return f"/projects/{quote(project, safe='~')}/repos/{quote(slug, safe='')}"

    # -- the user and the repositories ----------------------------------------------------

    def account(self, token: str) -> ForgeUser:
        whoami = self.request(token, "GET", f"{self.api_url}/plugins/servlet/applinks/whoami")
        login = whoami.text.strip()
        user = self.request(token, "GET", f"/users/{quote(login, safe='')}").json()
        slug = text(user, "slug") or login
        links = user.get("links", {}).get("self", []) if isinstance(user.get("links"), dict) else []
        return ForgeUser(login=login, name=text(user, "displayName") or login,
                         avatar_url=f"{self.api_url}/users/{quote(slug, safe='')}/avatar.png",
                         html_url=text(links, 0, "href") or f"{self.api_url}/users/{slug}")

    def repository_list(self, token: str) -> list[Repository]:
        def names(permission: str) -> set[str]:
            return {self._name_of(repo) for repo in self._pages(token, "/repos", permission=permission)}
        admin, write = names("REPO_ADMIN"), names("REPO_WRITE")
        out = []
        for repo in self._pages(token, "/repos", permission="REPO_READ"):
            name = self._name_of(repo)
            out.append(Repository(
                full_name=name, url=clone_href(repo.get("links"), "http"),
                html_url=text(repo, "links", "self", 0, "href"), pull=True,
                push=name in write or name in admin, admin=name in admin,
                default_branch=self._default_branch(token, name)))
        return out

    @staticmethod
    def _name_of(repo: dict[str, Any]) -> str:
        return f"{text(repo, 'project', 'key')}/{text(repo, 'slug')}"

    def _default_branch(self, token: str, repo: str) -> str:
        try:
            return text(self.request(token, "GET", f"{self._repo_path(repo)}/default-branch").json(), "displayId")
        except Refused:  # an empty repository has none
            return ""

    # -- hooks and deliveries -----------------------------------------------------------

    def add_hook(self, token: str, repo: str, *, url: str, secret: str,
                 events: frozenset[str]) -> str:
        wanted = (["repo:refs_changed"] if events & {"push", "tag"} else []) + (
            ["pr:from_ref_updated", "pr:opened"] if "pull_request" in events else [])

        hook = self.request(token, "POST", f"{self._repo_path(repo)}/webhooks", json={
            "name": "prefect-pipelines", "url": url, "active": True, "events": wanted,
            "configuration": {"secret": secret}}).json()
        return str(hook["id"])

    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        return [(str(hook.get("id")), text(hook, "url"))
                for hook in self._pages(token, f"{self._repo_path(repo)}/webhooks")]

    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        self.request(token, "DELETE", f"{self._repo_path(repo)}/webhooks/{int(hook_id)}")

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        check_hub_signature(secret, headers, body)

    @staticmethod
    def _ping(payload: dict[str, Any]) -> Delivery:
        raise Skip("pong")

    @staticmethod
    def _refs_changed(payload: dict[str, Any]) -> Delivery:
        changes = payload.get("changes") if isinstance(payload.get("changes"), list) else []
        built = [c for c in changes if isinstance(c, dict) and text(c, "type") != "DELETE"
                 and not is_zero_commit(text(c, "toHash"))]
        if not built:
            raise Skip("a deleted branch or tag: nothing to build")
        change = built[-1]
        ref = text(change, "refId") or text(change, "ref", "id")
        event, name = branch_or_tag(ref)
        actor = payload.get("actor") if isinstance(payload.get("actor"), dict) else {}
        return Delivery(event=event, branch=name, commit=commit_at(change, "toHash"), ref=ref,
                        author=text(actor, "displayName") or text(actor, "name"),
                        email=text(actor, "emailAddress"),
                        html_link=text(payload, "repository", "links", "self", 0, "href"))

    @staticmethod
    def _pull_request(payload: dict[str, Any]) -> Delivery:
        pull = payload.get("pullRequest") if isinstance(payload.get("pullRequest"), dict) else {}
        if text(pull, "state") != "OPEN":
            raise Skip(f"pull request {text(pull, 'state').lower() or 'event'}: nothing to build")
        number = pull.get("id")
        if not isinstance(number, int):
            raise InvalidInputError("the pull request has no id", field_name="pullRequest.id")
        title = text(pull, "title")
        return Delivery(event="pull_request", branch=text(pull, "toRef", "displayId"),
                        commit=commit_at(pull, "fromRef", "latestCommit"),
                        ref=f"refs/pull-requests/{number}/from", message=title, title=title,
                        author=text(pull, "author", "user", "displayName"),
                        email=text(pull, "author", "user", "emailAddress"),
                        html_link=text(pull, "links", "self", 0, "href"), skip_ci=skip_ci(title))

    # -- commit status, contents, clone ---------------------------------------------------

    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        self.request(token, "POST", f"{self.api_url}/rest/build-status/1.0/commits/{sha}", json={
            "key": context[-255:], "name": context, "state": self.status_states[state],
            "url": target_url, "description": description[:255]})

    def branch_names(self, token: str, repo: str) -> list[str]:
        return [text(branch, "displayId") for branch in self._pages(token, f"{self._repo_path(repo)}/branches")]

    def head_of(self, token: str, repo: str, branch: str) -> str:
        for found in self._pages(token, f"{self._repo_path(repo)}/branches", filterText=branch):
            if text(found, "displayId") == branch:
                return text(found, "latestCommit")
        raise NotFoundError(f"{self.title} has no branch {branch!r} in {repo}")

    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        return self.request(token, "GET", f"{self._repo_path(repo)}/raw/{quote(path)}", params={"at": ref}).content

    def write_file(self, token: str, repo: str, *, path: str, content: bytes,
                   branch: str, message: str) -> str:
        fields = {"message": message, "branch": branch}
        current = self.head_of(token, repo, branch)
        if self.file_or_none(token, repo, path, current) is not None:
            fields["sourceCommitId"] = current
        made = self.request(token, "PUT", f"{self._repo_path(repo)}/browse/{quote(path)}",
                            data=fields, files={"content": (path.rsplit("/", 1)[-1], content)})
        return text(made.json(), "id")

    def clone_header(self, token: str) -> str:
        return f"Bearer {token}"

"""Gitea and Forgejo (self-hosted), through their REST API (v1) with httpx.

Why httpx: the one Python client (py-gitea) covers users, organisations and repositories
but neither OAuth, nor hook secrets, nor commit statuses, and its errors drop the status;
the API is small, JSON and GitHub-like. OAuth tokens expire (an hour) and are refreshed
(forges/base.py OAuth2Forge). Hooks are `gitea` hooks signed with the pipeline's secret:
`X-Gitea-Signature` (Forgejo also sends `X-Forgejo-Signature`) is the hex HMAC-SHA256 of
the body. A tag is built from its `create` event, as Woodpecker does (Gitea sends a push
of the tag too, which would run it twice). git clones with the token as the password.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from prefect_pipelines.forges.base import (
    Delivery,
    DeliveryHeaders,
    ForgeUser,
    OAuthApp,
    Repository,
    Skip,
    basic_header,
    branch_or_tag,
    check_hmac,
    commit_at,
    first_line,
    is_zero_commit,
    skip_ci,
    text,
)
from prefect_pipelines.forges.rest import Refused, RestForge

SCOPES = "write:repository read:user"
PULL_REQUEST_ACTIONS = frozenset({"opened", "reopened", "synchronized"})
_PAGE = 50  # Gitea's default maximum page size


class Gitea(RestForge):
    kind = "gitea"
    title = "Gitea"
    config_field = "giteaConfig"
    default_host = "gitea.com"
    headers = DeliveryHeaders(event="X-Gitea-Event", delivery="X-Gitea-Delivery",
                              event_alias="X-Forgejo-Event", delivery_alias="X-Forgejo-Delivery")
    token_path = "/login/oauth/access_token"

    @classmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        return f"{'https' if app.tls else 'http'}://{app.host}"

    auth_scheme = "token"

    @property
    def api_base(self) -> str:
        return f"{self.api_url}/api/v1"

    def _pages(self, token: str, path: str) -> list[dict[str, Any]]:
        """Every item of a paged list (pages of 50 until one is short)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            chunk = self.request(token, "GET", path, params={"page": page, "limit": _PAGE}).json()
            found.extend(item for item in chunk if isinstance(item, dict))
            if len(chunk) < _PAGE:
                return found
            page += 1

    @staticmethod
    def _repo_path(repo: str) -> str:
        owner, name = repo.split("/", 1)
        return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    # -- OAuth and the user -------------------------------------------------------------

    authorize_params = {"response_type": "code", "scope": SCOPES}

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.api_url}/login/oauth/authorize"

    def account(self, token: str) -> ForgeUser:
        user = self.request(token, "GET", "/user").json()
        login = text(user, "login")
        return ForgeUser(login=login, name=text(user, "full_name") or login,
                         avatar_url=text(user, "avatar_url"),
                         html_url=text(user, "html_url") or f"{self.api_url}/{login}")

    def repository_list(self, token: str) -> list[Repository]:
        out = []
        for repo in self._pages(token, "/user/repos"):
            permissions = repo.get("permissions") if isinstance(repo.get("permissions"), dict) else {}
            out.append(Repository(
                full_name=text(repo, "full_name"), url=text(repo, "clone_url"),
                html_url=text(repo, "html_url"), pull=permissions.get("pull") is True,
                push=permissions.get("push") is True, admin=permissions.get("admin") is True,
                language=text(repo, "language"), default_branch=text(repo, "default_branch")))
        return out

    # -- hooks and deliveries -----------------------------------------------------------

    def add_hook(self, token: str, repo: str, *, url: str, secret: str,
                 events: frozenset[str]) -> str:
        wanted = sorted({{"push": "push", "tag": "create", "pull_request": "pull_request"}[event]
                         for event in events})

        hook = self.request(token, "POST", f"{self._repo_path(repo)}/hooks", json={
            "type": "gitea", "active": True, "events": wanted, "branch_filter": "*",
            "config": {"url": url, "content_type": "json", "secret": secret}}).json()
        return str(hook["id"])

    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        return [(str(hook.get("id")), text(hook, "config", "url"))
                for hook in self._pages(token, f"{self._repo_path(repo)}/hooks")]

    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        self.request(token, "DELETE", f"{self._repo_path(repo)}/hooks/{int(hook_id)}")

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        if headers.get("x-gitea-signature") is None and headers.get("x-forgejo-signature") is not None:
            check_hmac(secret, body, headers.get("x-forgejo-signature"), header="X-Forgejo-Signature")
            return
        check_hmac(secret, body, headers.get("x-gitea-signature"), header="X-Gitea-Signature")

    event_parsers = {"push": "_push", "create": "_create", "pull_request": "_pull_request"}
    pull_request_actions = PULL_REQUEST_ACTIONS

    @staticmethod
    def _push(payload: dict[str, Any]) -> Delivery:
        ref = text(payload, "ref")
        if is_zero_commit(text(payload, "after")):
            raise Skip(f"{ref or 'a ref'} was deleted: nothing to build")
        event, name = branch_or_tag(ref)
        if event == "tag":
            raise Skip(f"a push of tag {name}: its create event runs it")
        commit = commit_at(payload, "after")
        commits = payload.get("commits") if isinstance(payload.get("commits"), list) else []
        head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else next(
            (c for c in commits if isinstance(c, dict) and c.get("id") == commit), {})
        message = text(head, "message")
        return Delivery(event="push", branch=name, commit=commit, ref=ref,
                        message=first_line(message), skip_ci=skip_ci(message),
                        author=text(head, "author", "name"), email=text(head, "author", "email"),
                        html_link=text(payload, "compare_url") or text(head, "url"),
                        avatar_url=text(payload, "sender", "avatar_url"))

    @staticmethod
    def _create(payload: dict[str, Any]) -> Delivery:
        if text(payload, "ref_type") != "tag":
            raise Skip("a new branch: its push runs it")
        name = text(payload, "ref").removeprefix("refs/tags/")
        return Delivery(event="tag", branch=name, commit=commit_at(payload, "sha"),
                        ref=f"refs/tags/{name}", author=text(payload, "sender", "login"),
                        avatar_url=text(payload, "sender", "avatar_url"),
                        html_link=text(payload, "repository", "html_url"))

    # -- commit status, contents, clone ---------------------------------------------------

    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        self.request(token, "POST", f"{self._repo_path(repo)}/statuses/{sha}", json={
            "state": self.status_states[state], "target_url": target_url,
            "description": description[:140], "context": context})

    def branch_names(self, token: str, repo: str) -> list[str]:
        return [text(branch, "name") for branch in self._pages(token, f"{self._repo_path(repo)}/branches")]

    def head_of(self, token: str, repo: str, branch: str) -> str:
        found = self.request(token, "GET", f"{self._repo_path(repo)}/branches/{quote(branch, safe='')}")
        return text(found.json(), "commit", "id")

    def _contents(self, token: str, repo: str, path: str, ref: str) -> dict[str, Any] | None:
        try:
            found = self.request(token, "GET", f"{self._repo_path(repo)}/contents/{quote(path)}",
                                  params={"ref": ref}).json()
        except Refused as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) and found.get("type") == "file" else None

    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        found = self._contents(token, repo, path, ref)
        return None if found is None else base64.b64decode(text(found, "content"))

    def write_file(self, token: str, repo: str, *, path: str, content: bytes,
                   branch: str, message: str) -> str:
        current = self._contents(token, repo, path, branch)
        body = {"content": base64.b64encode(content).decode(), "message": message, "branch": branch}
        if current is None:
            made = self.request(token, "POST", f"{self._repo_path(repo)}/contents/{quote(path)}",
                                 json=body)
        else:
            made = self.request(token, "PUT", f"{self._repo_path(repo)}/contents/{quote(path)}",
                                 json={**body, "sha": text(current, "sha")})
        return text(made.json(), "commit", "sha")

    def clone_header(self, token: str) -> str:
        return basic_header("oauth2", token)

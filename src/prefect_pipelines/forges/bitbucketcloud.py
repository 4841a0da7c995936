"""Bitbucket Cloud, through its REST API 2.0 with httpx.

Why httpx: atlassian-python-api's Bitbucket Cloud client makes hooks without a secret
and has no call to commit a file, so both would be raw requests anyway; it also brings
requests-oauthlib, BeautifulSoup and jmespath for none of what is used here.

OAuth: an OAuth consumer of a workspace; the code and refresh grants are posted to
`bitbucket.org/site/oauth2/access_token` with the consumer's key and secret as Basic auth;
tokens last two hours. `apiUrl` (default https://api.bitbucket.org/2.0) points elsewhere
for a proxy or the tests' fake; the OAuth host is then the API's host. Hooks are signed
with the pipeline's secret in `X-Hub-Signature` (`sha256=` + hex HMAC-SHA256). Pull
requests carry 12-character commit hashes, and Bitbucket has no ref for a pull request's
head: its source branch is fetched and the commit checked out. git clones with the token
as the password of `x-token-auth`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from prefect_pipelines.forges.base import (
    Delivery,
    DeliveryHeaders,
    ForgeUser,
    OAuthApp,
    Repository,
    Skip,
    basic_header,
    check_hub_signature,
    clone_href,
    commit_at,
    first_line,
    skip_ci,
    text,
)
from prefect_pipelines.forges.rest import RestForge

API = "https://api.bitbucket.org/2.0"
PULL_REQUEST_EVENTS = {"pullrequest:created": "created", "pullrequest:updated": "updated"}
_PAGE = 100


class BitbucketCloud(RestForge):
    kind = "bitbucketcloud"
    title = "Bitbucket Cloud"
    config_field = "bitbucketCloudConfig"
    config_keys: ClassVar[tuple[str, ...]] = ("apiUrl",)
    default_host = "bitbucket.org"
    headers = DeliveryHeaders(event="X-Event-Key", delivery="X-Request-UUID")
    token_path = "/site/oauth2/access_token"
    client_auth_basic = True
    status_states = {"pending": "INPROGRESS", "success": "SUCCESSFUL", "failure": "FAILED",
                     "error": "FAILED"}
    event_parsers = {"repo:push": "_push", "pullrequest:created": "_pull_request",
                     "pullrequest:updated": "_pull_request"}

    @classmethod
    def api_url_of(cls, app: OAuthApp) -> str:
        return app.api_url or API

    @property
    def web_url(self) -> str:
        """bitbucket.org for its own API, else the API's scheme and host."""
        parts = urlsplit(self.api_url)
        if parts.netloc == "api.bitbucket.org":
            return "https://bitbucket.org"
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def web_host(self) -> str:
        return urlsplit(self.web_url).netloc

    def token_url(self) -> str:
        return f"{self.web_url}{self.token_path}"

    @staticmethod
    def error_message(body: Any) -> str:
        error = body.get("error") if isinstance(body, dict) else None
        return str(error.get("message") or "no details") if isinstance(error, dict) else "no details"

    def _pages(self, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every value of a paged list, following each page's `next` link."""
        found: list[dict[str, Any]] = []
        page = self.request(token, "GET", path, params={"pagelen": _PAGE, **params}).json()
        while True:
            found.extend(value for value in page.get("values", []) if isinstance(value, dict))
            following = page.get("next")
            if not isinstance(following, str) or not following.startswith(self.api_url):
                return found
            page = self.request(token, "GET", following[len(self.api_url):]).json()

    @staticmethod
    def _repo_path(repo: str) -> str:
        workspace, slug = repo.split("/", 1)
        return f"/repositories/{quote(workspace, safe='')}/{quote(slug, safe='')}"

    # -- OAuth and the user -------------------------------------------------------------

    @property
    def authorize_endpoint(self) -> str:
        return f"{self.web_url}/site/oauth2/authorize"

    def account(self, token: str) -> ForgeUser:
        user = self.request(token, "GET", "/user").json()
        login = text(user, "username") or text(user, "nickname")
        return ForgeUser(login=login, name=text(user, "display_name") or login,
                         avatar_url=text(user, "links", "avatar", "href"),
                         html_url=text(user, "links", "html", "href"))

    def repository_list(self, token: str) -> list[Repository]:
        levels = {text(item, "repository", "full_name"): text(item, "permission")
                  for item in self._pages(token, "/user/permissions/repositories")}
        out = []
        for repo in self._pages(token, "/repositories", role="member"):
            full_name = text(repo, "full_name")
            level = levels.get(full_name, "read")
            out.append(Repository(
                full_name=full_name, url=clone_href(repo.get("links"), "https"),
                html_url=text(repo, "links", "html", "href"),
                pull=True, push=level in ("write", "admin"), admin=level == "admin",
                language=text(repo, "language"), default_branch=text(repo, "mainbranch", "name")))
        return out

    # -- hooks and deliveries -----------------------------------------------------------

    def add_hook(self, token: str, repo: str, *, url: str, secret: str,
                 events: frozenset[str]) -> str:
        wanted = sorted({"repo:push"} if events & {"push", "tag"} else set())
        if "pull_request" in events:
            wanted += sorted(PULL_REQUEST_EVENTS)

        hook = self.request(token, "POST", f"{self._repo_path(repo)}/hooks", json={
            "description": "prefect-pipelines", "url": url, "active": True, "secret": secret,
            "events": wanted}).json()
        return text(hook, "uuid")

    def hooks_of(self, token: str, repo: str) -> list[tuple[str, str]]:
        return [(text(hook, "uuid"), text(hook, "url")) for hook in self._pages(token, f"{self._repo_path(repo)}/hooks")]

    def remove_hook(self, token: str, repo: str, hook_id: str) -> None:
        self.request(token, "DELETE", f"{self._repo_path(repo)}/hooks/{quote(hook_id, safe='')}")

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        check_hub_signature(secret, headers, body)

    @staticmethod
    def _push(payload: dict[str, Any]) -> Delivery:
        changes = payload.get("push", {}).get("changes") if isinstance(payload.get("push"), dict) else None
        built = [c for c in changes or [] if isinstance(c, dict) and isinstance(c.get("new"), dict)]
        if not built:
            raise Skip("a deleted branch or tag: nothing to build")
        new = built[-1]["new"]
        kind, name = text(new, "type"), text(new, "name")
        if kind not in ("branch", "tag"):
            raise Skip(f"a push of a {kind or 'ref'}: nothing to build")
        message = (text(new, "target", "message") or text(new, "target", "summary", "raw")).strip()
        author = new.get("target", {}).get("author", {}) if isinstance(new.get("target"), dict) else {}
        raw = text(author, "raw")
        email = raw[raw.find("<") + 1:raw.rfind(">")] if "<" in raw and raw.endswith(">") else ""
        return Delivery(
            event="push" if kind == "branch" else "tag", branch=name,
            commit=commit_at(new, "target", "hash"),
            ref=f"refs/heads/{name}" if kind == "branch" else f"refs/tags/{name}",
            message=first_line(message), skip_ci=skip_ci(message),
            author=text(author, "user", "display_name") or raw.split(" <", 1)[0], email=email,
            html_link=text(new, "target", "links", "html", "href"),
            avatar_url=text(payload, "actor", "links", "avatar", "href"))

    @staticmethod
    def _pull_request(payload: dict[str, Any]) -> Delivery:
        pull = payload.get("pullrequest") if isinstance(payload.get("pullrequest"), dict) else {}
        if text(pull, "state") != "OPEN":
            raise Skip(f"pull request {text(pull, 'state').lower() or 'event'}: nothing to build")
        title = text(pull, "title")
        source = text(pull, "source", "branch", "name")
        return Delivery(event="pull_request", branch=text(pull, "destination", "branch", "name"),
                        commit=commit_at(pull, "source", "commit", "hash"), ref=f"refs/heads/{source}",
                        message=title, title=title, author=text(pull, "author", "display_name"),
                        html_link=text(pull, "links", "html", "href"),
                        avatar_url=text(pull, "author", "links", "avatar", "href"), skip_ci=skip_ci(title))

    # -- commit status, contents, clone ---------------------------------------------------

    def set_status(self, token: str, repo: str, sha: str, *, state: str, target_url: str,
                   description: str, context: str) -> None:
        self.request(token, "POST", f"{self._repo_path(repo)}/commit/{sha}/statuses/build", json={
            "key": context[-40:], "name": context, "state": self.status_states[state],
            "url": target_url, "description": description[:140]})

    def branch_names(self, token: str, repo: str) -> list[str]:
        return [text(branch, "name") for branch in self._pages(token, f"{self._repo_path(repo)}/refs/branches")]

    def head_of(self, token: str, repo: str, branch: str) -> str:
        found = self.request(token, "GET", f"{self._repo_path(repo)}/refs/branches/{quote(branch, safe='')}")
        return text(found.json(), "target", "hash")

    def file_content(self, token: str, repo: str, path: str, ref: str) -> bytes | None:
        return self.request(token, "GET", f"{self._repo_path(repo)}/src/{quote(ref, safe='')}/{quote(path)}").content

    def write_file(self, token: str, repo: str, *, path: str, content: bytes,
                   branch: str, message: str) -> str:
        # A form field named after the file is its content (the API also takes
        # multipart; a pipeline file is text).
        made = self.request(token, "POST", f"{self._repo_path(repo)}/src", data={
            path: content.decode("utf-8"), "message": message, "branch": branch})
        return made.headers.get("location", "").rstrip("/").rsplit("/", 1)[-1]

    def clone_header(self, token: str) -> str:
        return basic_header("x-token-auth", token)

"""A fake Bitbucket Data Center over real HTTP: the endpoints of its REST API 1.0, build
status API and OAuth 2 (an incoming application link) that prefect-pipelines calls.

The forge's client (httpx, forges/bitbucketserver.py) talks to it as to any Data Center
(`http://127.0.0.1:<port>`). Tokens expire after `token_lifetime` seconds and a refresh
revokes the old pair. Lists are paged the Data Center way (`values`, `isLastPage`,
`nextPageStart`). Each user's repositories live in a project whose key is their login in
capitals, and are real bare git repositories served over smart HTTP at
`/scm/<project>/<slug>.git`, to a Bearer token.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse

from tests.fakes.base import ExpiringTokensForge, FakeUser
from tests.support.secret_scan import scan

STATES = {"INPROGRESS", "SUCCESSFUL", "FAILED"}
LEVELS = ["REPO_READ", "REPO_WRITE", "REPO_ADMIN"]


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status, detail={"errors": [{"context": None, "message": message,
                                                     "exceptionName": None}]})


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (no python-multipart here)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {str(part.get_param("name", header="content-disposition")): part.get_payload(decode=True)
            for part in message.iter_parts()}


class FakeBitbucketServer(ExpiringTokensForge):
    """The state of the fake, and the app that serves it."""

    title = "Bitbucket Data Center"
    token_prefixes = ("bbdc-", "bbdr-")

    @staticmethod
    def project_of(login: str) -> str:
        return login.upper()

    def add_repo(self, login: str, name: str, *, level: str = "REPO_ADMIN",
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A repository of `login`'s project where they have `level`; with `branches` a
        real git repository served here."""
        user = self.users[login]
        key = self.project_of(login)
        full_name = f"{key}/{name}"
        commits = self.make_repo(f"scm/{key.lower()}", name, branches)
        clone_url = f"http://{self.host}/scm/{key.lower()}/{name}.git"
        repo = {"slug": name, "name": name, "project": {"key": key, "name": key},
                "links": {"clone": [{"name": "http", "href": clone_url.replace("://", f"://{login}@")},
                                    {"name": "ssh", "href": f"ssh://git@{self.host}/{key.lower()}/{name}.git"}],
                          "self": [{"href": f"http://{self.host}/projects/{key}/repos/{name}/browse"}]},
                "_level": level, "_default": default_branch}
        user.repos.append(repo)
        return {**repo, "commits": commits, "full_name": full_name, "clone_url": clone_url}

    def _user_for(self, authorization: str | None) -> FakeUser:
        scheme, _, token = (authorization or "").partition(" ")
        user = self.token_user(token.strip()) if scheme == "Bearer" else None
        if user is None:
            raise _error(401, "Authentication failed. Please check your credentials and try again.")
        return user

    def _repo(self, key: str, slug: str, authorization: str | None, need: str = "REPO_READ") -> dict[str, Any]:
        user = self._user_for(authorization)
        for repo in user.repos:
            if repo["project"]["key"] == key.upper() and repo["slug"] == slug:
                if LEVELS.index(repo["_level"]) < LEVELS.index(need):
                    raise _error(403, f"You are not permitted to access this resource ({need})")
                return repo
        raise _error(404, f"Repository {key}/{slug} does not exist.")

    @staticmethod
    def _page(request: Request, values: list[Any]) -> dict[str, Any]:
        start = int(request.query_params.get("start", "0"))
        limit = min(int(request.query_params.get("limit", "25")), 1000)
        chunk = values[start:start + limit]
        last = start + limit >= len(values)
        body: dict[str, Any] = {"size": len(chunk), "limit": limit, "start": start,
                                "isLastPage": last, "values": chunk}
        if not last:
            body["nextPageStart"] = start + limit
        return body

    @staticmethod
    def _shown(repo: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in repo.items() if not k.startswith("_")}

    def routes(self, app: FastAPI) -> None:
        api = "/rest/api/1.0/projects/{key}/repos/{slug}"
        app.post("/rest/oauth2/latest/token")(self.token_endpoint)

        @app.get("/plugins/servlet/applinks/whoami")
        async def whoami(authorization: str | None = Header(default=None)) -> PlainTextResponse:
            return PlainTextResponse(self._user_for(authorization).login)

        @app.get("/rest/api/1.0/users/{slug}")
        async def user(slug: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._user_for(authorization)
            found = self.users.get(slug)
            if found is None:
                raise _error(404, f"User {slug} does not exist.")
            return {"name": found.login, "slug": found.login, "displayName": found.name, "id": found.id,
                    "emailAddress": f"{found.login}@example.com", "type": "NORMAL", "active": True,
                    "links": {"self": [{"href": f"http://{self.host}/users/{found.login}"}]}}

        @app.get("/rest/api/1.0/repos")
        async def repos(request: Request, permission: str = "REPO_READ",
                        authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            return self._page(request, [self._shown(r) for r in found.repos
                                        if LEVELS.index(r["_level"]) >= LEVELS.index(permission)])

        @app.get(f"{api}/default-branch")
        async def default_branch(key: str, slug: str, authorization: str | None = Header(default=None)
                                 ) -> dict[str, Any]:
            repo = self._repo(key, slug, authorization)
            return {"id": f"refs/heads/{repo['_default']}", "displayId": repo["_default"], "type": "BRANCH"}

        @app.post(f"{api}/webhooks", status_code=201)
        async def create_hook(key: str, slug: str, request: Request,
                              authorization: str | None = Header(default=None)) -> dict[str, Any]:
            repo = self._repo(key, slug, authorization, "REPO_ADMIN")
            body = await request.json()
            hook_id = next(self._ids)
            hook = {"id": hook_id, "name": body.get("name"), "url": body["url"], "active": body.get("active"),
                    "events": body.get("events", []), "configuration": dict(body.get("configuration") or {})}
            self.hooks.setdefault(f"{repo['project']['key']}/{slug}", {})[hook_id] = hook
            scan.add(hook["configuration"].get("secret"), f"the webhook token of hook {hook_id}")
            return {**hook, "configuration": {}}

        @app.get(f"{api}/webhooks")
        async def list_hooks(key: str, slug: str, request: Request,
                             authorization: str | None = Header(default=None)) -> dict[str, Any]:
            repo = self._repo(key, slug, authorization, "REPO_ADMIN")
            return self._page(request, [{**h, "configuration": {}} for h in
                                        self.hooks.get(f"{repo['project']['key']}/{slug}", {}).values()])

        @app.delete(f"{api}/webhooks/{{hook_id}}", status_code=204)
        async def delete_hook(key: str, slug: str, hook_id: int,
                              authorization: str | None = Header(default=None)) -> Response:
            repo = self._repo(key, slug, authorization, "REPO_ADMIN")
            if self.hooks.get(f"{repo['project']['key']}/{slug}", {}).pop(hook_id, None) is None:
                raise _error(404, f"Webhook {hook_id} does not exist.")
            return Response(status_code=204)

        @app.post("/rest/build-status/1.0/commits/{sha}", status_code=204)
        async def build_status(sha: str, request: Request,
                               authorization: str | None = Header(default=None)) -> Response:
            user = self._user_for(authorization)
            body = await request.json()
            if body.get("state") not in STATES or not body.get("key") or not body.get("url"):
                raise _error(400, "state, key and url are required")
            repo = next((r for r in user.repos if self.rev(f"scm/{r['project']['key'].lower()}", r["slug"],
                                                           f"{sha}^{{commit}}")), None)
            if repo is None:
                raise _error(404, f"No repository of yours has commit {sha}")
            self.statuses.setdefault(f"{repo['project']['key']}/{repo['slug']}@{sha}", []).append(
                {"state": body["state"], "key": body["key"], "name": body.get("name"), "url": body["url"],
                 "description": body.get("description")})
            return Response(status_code=204)

        @app.get(f"{api}/branches")
        async def branches(key: str, slug: str, request: Request, filterText: str = "",  # noqa: N803
                           authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(key, slug, authorization)
            found = [{"id": f"refs/heads/{name}", "displayId": name, "type": "BRANCH", "latestCommit": sha}
                     for name, sha in self.heads(f"scm/{key.lower()}", slug) if filterText in name]
            return self._page(request, found)

        @app.get(f"{api}/raw/{{path:path}}")
        async def raw(key: str, slug: str, path: str, at: str = "",
                      authorization: str | None = Header(default=None)) -> Response:
            repo = self._repo(key, slug, authorization)
            owner = f"scm/{key.lower()}"
            commit = self.rev(owner, slug, f"{at or repo['_default']}^{{commit}}")
            content = None if commit is None else self.blob(owner, slug, f"{commit}:{path}")
            if content is None:
                raise _error(404, f"The path \"{path}\" does not exist at revision \"{at}\"")
            return Response(content, media_type="text/plain")

        @app.put(f"{api}/browse/{{path:path}}")
        async def browse(key: str, slug: str, path: str, request: Request,
                         authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(key, slug, authorization, "REPO_WRITE")
            fields = _multipart(request.headers.get("content-type", ""), await request.body())
            branch = fields.get("branch", b"").decode()
            owner = f"scm/{key.lower()}"
            head = self.rev(owner, slug, f"refs/heads/{branch}")
            exists = head is not None and self.blob(owner, slug, f"{head}:{path}") is not None
            given = fields.get("sourceCommitId", b"").decode()
            if exists and given != head:
                raise _error(409, f"{path} was changed since {given or 'its last read'}")
            if not exists and given:
                raise _error(409, f"{path} does not exist")
            try:
                made = self.commit_file(owner, slug, branch, path, fields["content"],
                                        fields.get("message", b"Update").decode())
            except KeyError:
                raise _error(404, f"branch {branch} does not exist") from None
            return {"id": made, "displayId": made[:11], "message": fields.get("message", b"").decode()}

        @app.api_route("/scm/{project}/{rest:path}", methods=["GET", "POST"])
        async def git(project: str, rest: str, request: Request) -> Response:
            """Smart HTTP: a Bearer token of the project's owner."""

            def allowed(repo_name: str, password: str | None) -> bool:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                member = self.token_user(token) if scheme == "Bearer" else None
                return member is not None and any(
                    r["project"]["key"] == project.upper() and r["slug"] == repo_name for r in member.repos)

            return await self.serve_git(request, f"scm/{project}", rest, allowed)

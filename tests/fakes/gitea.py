"""A fake Gitea over real HTTP: the endpoints of its API v1 prefect-pipelines calls.

The forge's own client (httpx, forges/gitea.py) talks to it as to any Gitea
(`http://127.0.0.1:<port>`); the OAuth token endpoint is Gitea's
(`/login/oauth/access_token`, code and refresh grants), tokens expire after an hour
(`token_lifetime`) and a refresh revokes the old pair. Repositories are real bare git
repositories served over smart HTTP, with a token as the password of any user name.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.base import ExpiringTokensForge, FakeUser
from tests.support.secret_scan import scan

STATES = {"pending", "success", "error", "failure", "warning"}
MAX_LIMIT = 50


class FakeGitea(ExpiringTokensForge):
    """The state of the fake, and the app that serves it."""

    title = "Gitea"
    token_prefixes = ("gta-", "gtr-")

    def add_repo(self, login: str, name: str, *, admin: bool = True, push: bool = True,
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A repository of `login`; with `branches` a real git repository served here."""
        user = self.users[login]
        full_name = f"{login}/{name}"
        commits = self.make_repo(login, name, branches)
        repo = {"id": next(self._ids), "name": name, "full_name": full_name,
                "owner": {"id": user.id, "login": login}, "private": True,
                "html_url": f"http://{self.host}/{full_name}",
                "clone_url": f"http://{self.host}/{full_name}.git", "language": "Go",
                "default_branch": default_branch,
                "permissions": {"admin": admin, "push": push, "pull": True}}
        user.repos.append(repo)
        return {**repo, "commits": commits}

    def _user_for(self, authorization: str | None) -> FakeUser:
        scheme, _, token = (authorization or "").partition(" ")
        user = self.token_user(token.strip()) if scheme.lower() in ("token", "bearer") else None
        if user is None:
            raise HTTPException(401, detail={"message": "token is required"})
        return user

    def _repo(self, owner: str, name: str, authorization: str | None, need: str = "pull") -> dict[str, Any]:
        user = self._user_for(authorization)
        for repo in user.repos:
            if repo["full_name"] == f"{owner}/{name}":
                if not repo["permissions"][need]:
                    raise HTTPException(403, detail={"message": "user should have specific permission"})
                return repo
        raise HTTPException(404, detail={"message": "The target couldn't be found."})

    def _page(self, request: Request, items: list[Any], page: int, limit: int) -> JSONResponse:
        limit = min(limit, MAX_LIMIT)
        start = (page - 1) * limit
        headers = {"X-Total-Count": str(len(items))}
        if start + limit < len(items):
            url = request.url.replace_query_params(page=str(page + 1), limit=str(limit))
            headers["Link"] = f'<{url}>; rel="next"'
        return JSONResponse(items[start:start + limit], headers=headers)

    def _file(self, owner: str, name: str, path: str, ref: str) -> dict[str, Any] | None:
        commit = self.rev(owner, name, f"{ref}^{{commit}}")
        content = None if commit is None else self.blob(owner, name, f"{commit}:{path}")
        if content is None:
            return None
        return {"type": "file", "name": path.rsplit("/", 1)[-1], "path": path, "encoding": "base64",
                "sha": self.git_of(owner, name, "rev-parse", f"{commit}:{path}"),
                "content": base64.b64encode(content).decode(), "size": len(content)}

    def routes(self, app: FastAPI) -> None:
        api = "/api/v1/repos/{owner}/{name}"
        app.post("/login/oauth/access_token")(self.token_endpoint)

        @app.get("/api/v1/user")
        async def user(authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            return {"id": found.id, "login": found.login, "full_name": found.name,
                    "avatar_url": f"http://{self.host}/avatars/{found.id}",
                    "html_url": f"http://{self.host}/{found.login}"}

        @app.get("/api/v1/user/repos")
        async def repos(request: Request, authorization: str | None = Header(default=None),
                        page: int = 1, limit: int = 30) -> JSONResponse:
            return self._page(request, self._user_for(authorization).repos, page, limit)

        @app.post(f"{api}/hooks", status_code=201)
        async def create_hook(owner: str, name: str, request: Request,
                              authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, name, authorization, "admin")
            body = await request.json()
            if body.get("type") != "gitea" or not body.get("config", {}).get("url"):
                raise HTTPException(422, detail={"message": "Invalid hook type or missing url"})
            hook_id = next(self._ids)
            hook = {"id": hook_id, "type": "gitea", "active": body.get("active", False),
                    "events": body.get("events", []), "config": dict(body["config"]),
                    "branch_filter": body.get("branch_filter", "")}
            self.hooks.setdefault(f"{owner}/{name}", {})[hook_id] = hook
            scan.add(hook["config"].get("secret"), f"the webhook token of hook {hook_id}")
            return {**hook, "config": {k: v for k, v in hook["config"].items() if k != "secret"}}

        @app.get(f"{api}/hooks")
        async def list_hooks(owner: str, name: str, request: Request, page: int = 1, limit: int = 30,
                             authorization: str | None = Header(default=None)) -> JSONResponse:
            self._repo(owner, name, authorization, "admin")
            hooks = [{**h, "config": {k: v for k, v in h["config"].items() if k != "secret"}}
                     for h in self.hooks.get(f"{owner}/{name}", {}).values()]
            return self._page(request, hooks, page, limit)

        @app.delete(f"{api}/hooks/{{hook_id}}", status_code=204)
        async def delete_hook(owner: str, name: str, hook_id: int,
                              authorization: str | None = Header(default=None)) -> Response:
            self._repo(owner, name, authorization, "admin")
            if self.hooks.get(f"{owner}/{name}", {}).pop(hook_id, None) is None:
                raise HTTPException(404, detail={"message": "The target couldn't be found."})
            return Response(status_code=204)

        @app.post(f"{api}/statuses/{{sha}}", status_code=201)
        async def create_status(owner: str, name: str, sha: str, request: Request,
                                authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, name, authorization, "push")
            body = await request.json()
            if body.get("state") not in STATES:
                raise HTTPException(422, detail={"message": "invalid state"})
            status = {"id": next(self._ids), "status": body["state"], "context": body.get("context"),
                      "target_url": body.get("target_url"), "description": body.get("description")}
            self.statuses.setdefault(f"{owner}/{name}@{sha}", []).append(status)
            return status

        @app.get(f"{api}/branches")
        async def branches(owner: str, name: str, request: Request, page: int = 1, limit: int = 30,
                           authorization: str | None = Header(default=None)) -> JSONResponse:
            self._repo(owner, name, authorization)
            found = [{"name": branch, "commit": {"id": sha}} for branch, sha in self.heads(owner, name)]
            return self._page(request, found, page, limit)

        @app.get(f"{api}/branches/{{branch:path}}")
        async def branch(owner: str, name: str, branch: str,
                         authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, name, authorization)
            sha = self.rev(owner, name, f"refs/heads/{branch}")
            if sha is None:
                raise HTTPException(404, detail={"message": "branch does not exist"})
            return {"name": branch, "commit": {"id": sha}}

        @app.get(f"{api}/contents/{{path:path}}")
        async def get_contents(owner: str, name: str, path: str, ref: str = "",
                               authorization: str | None = Header(default=None)) -> dict[str, Any]:
            repo = self._repo(owner, name, authorization)
            found = self._file(owner, name, path, ref or repo["default_branch"])
            if found is None:
                raise HTTPException(404, detail={"message": "object does not exist"})
            return found

        @app.api_route(f"{api}/contents/{{path:path}}", methods=["POST", "PUT"])
        async def put_contents(owner: str, name: str, path: str, request: Request,
                               authorization: str | None = Header(default=None)) -> JSONResponse:
            repo = self._repo(owner, name, authorization, "push")
            body = await request.json()
            branch = body.get("branch") or repo["default_branch"]
            current = self._file(owner, name, path, branch)
            if request.method == "POST" and current is not None:
                raise HTTPException(422, detail={"message": "repository file already exists"})
            if request.method == "PUT" and (current is None or body.get("sha") != current["sha"]):
                raise HTTPException(422, detail={"message": "sha does not match"})
            try:
                commit = self.commit_file(owner, name, branch, path, base64.b64decode(body["content"]),
                                          body.get("message") or f"Update {path}")
            except KeyError:
                raise HTTPException(404, detail={"message": "branch does not exist"}) from None
            return JSONResponse({"content": self._file(owner, name, path, commit),
                                 "commit": {"sha": commit}}, status_code=201 if current is None else 200)

        @app.api_route("/{owner}/{rest:path}", methods=["GET", "POST"])
        async def git(owner: str, rest: str, request: Request) -> Response:
            """Smart HTTP: any user name, a token of a collaborator as the password."""

            def allowed(repo_name: str, password: str | None) -> bool:
                member = self.token_user(password or "")
                return member is not None and any(
                    r["full_name"] == f"{owner}/{repo_name}" for r in member.repos)

            return await self.serve_git(request, owner, rest, allowed)

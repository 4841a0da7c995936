"""A fake self-managed GitLab over real HTTP: the endpoints prefect-pipelines calls.

python-gitlab talks to it as to any GitLab (`http://127.0.0.1:<port>`, API v4); the OAuth
token endpoint is GitLab's (`/oauth/token`, code and refresh grants). Tokens expire after
`token_lifetime` seconds, and a refresh revokes the old access and refresh tokens, as
GitLab's do. Repositories are real bare git repositories served over smart HTTP, where a
token is the password of any user name (GitLab recommends `oauth2`).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.base import ExpiringTokensForge, FakeUser
from tests.support.secret_scan import scan

GUEST, REPORTER, DEVELOPER, MAINTAINER = 10, 20, 30, 40
STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}


class FakeGitLab(ExpiringTokensForge):
    """The state of the fake, and the app that serves it."""

    title = "GitLab"

    # -- setting the scene ------------------------------------------------------------

    token_prefixes = ("glpat-", "glrt-")
    default_lifetime = 7200.0  # GitLab's two hours

    def add_repo(self, login: str, name: str, *, level: int = MAINTAINER,
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A project of `login` with their access `level`; with `branches` a real git repo."""
        user = self.users[login]
        path = f"{login}/{name}"
        commits = self.make_repo(login, name, branches)
        project = {
            "id": next(self._ids), "name": name, "path": name, "path_with_namespace": path,
            "namespace": {"path": login, "kind": "user"},
            "http_url_to_repo": f"http://{self.host}/{path}.git",
            "web_url": f"http://{self.host}/{path}", "default_branch": default_branch,
            "visibility": "private",
            "permissions": {"project_access": {"access_level": level, "notification_level": 3},
                            "group_access": None},
        }
        user.repos.append(project)
        return {**project, "commits": commits, "full_name": path, "clone_url": project["http_url_to_repo"]}

    # -- who is asking ------------------------------------------------------------------

    def _user_for(self, authorization: str | None) -> FakeUser:
        user = self.token_user((authorization or "").removeprefix("Bearer ").strip())
        if user is None:
            raise HTTPException(401, detail={"message": "401 Unauthorized"})
        return user

    def _project(self, owner: str, name: str, authorization: str | None,
                 level: int = REPORTER) -> dict[str, Any]:
        user = self._user_for(authorization)
        for project in user.repos:
            if project["path_with_namespace"] == f"{owner}/{name}":
                if project["permissions"]["project_access"]["access_level"] < level:
                    raise HTTPException(403, detail={"message": "403 Forbidden"})
                return project
        raise HTTPException(404, detail={"message": "404 Project Not Found"})

    def _page(self, request: Request, items: list[Any], page: int, per_page: int) -> JSONResponse:
        start = (page - 1) * per_page
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items))}
        if start + per_page < len(items):
            query = dict(request.query_params, page=str(page + 1), per_page=str(per_page))
            url = request.url.replace_query_params(**query)
            headers["Link"] = f'<{url}>; rel="next"'
            headers["X-Next-Page"] = str(page + 1)
        return JSONResponse(items[start:start + per_page], headers=headers)

    # -- serving ----------------------------------------------------------------------

    def routes(self, app: FastAPI) -> None:
        api = "/api/v4/projects/{owner}/{name}"

        app.post("/oauth/token")(self.token_endpoint)

        @app.get("/api/v4/user")
        async def user(authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            return {"id": found.id, "username": found.login, "name": found.name, "state": "active",
                    "avatar_url": f"http://{self.host}/uploads/-/system/user/avatar/{found.id}/avatar.png",
                    "web_url": f"http://{self.host}/{found.login}"}

        @app.get("/api/v4/projects")
        async def projects(request: Request, authorization: str | None = Header(default=None),
                           membership: bool = False, min_access_level: int = 0, page: int = 1,
                           per_page: int = 20) -> JSONResponse:
            found = self._user_for(authorization)
            if not membership:
                raise HTTPException(400, detail={"message": "the fake lists members' projects only"})
            listed = [p for p in found.repos
                      if p["permissions"]["project_access"]["access_level"] >= min_access_level]
            return self._page(request, listed, page, per_page)

        @app.post(f"{api}/hooks", status_code=201)
        async def create_hook(owner: str, name: str, request: Request,
                              authorization: str | None = Header(default=None)) -> dict[str, Any]:
            project = self._project(owner, name, authorization, MAINTAINER)
            body = await request.json()
            hook_id = next(self._ids)
            hook = {"id": hook_id, "url": body["url"], "project_id": project["id"],
                    "push_events": body.get("push_events", True),
                    "tag_push_events": body.get("tag_push_events", False),
                    "merge_requests_events": body.get("merge_requests_events", False),
                    "enable_ssl_verification": body.get("enable_ssl_verification", True),
                    "token": body.get("token")}
            self.hooks.setdefault(f"{owner}/{name}", {})[hook_id] = hook
            scan.add(hook["token"], f"the webhook token of hook {hook_id}")
            return {k: v for k, v in hook.items() if k != "token"}  # GitLab never shows it

        @app.get(f"{api}/hooks")
        async def list_hooks(owner: str, name: str, request: Request, page: int = 1, per_page: int = 20,
                             authorization: str | None = Header(default=None)) -> JSONResponse:
            self._project(owner, name, authorization, MAINTAINER)
            hooks = [{k: v for k, v in h.items() if k != "token"} for h in self.hooks.get(f"{owner}/{name}", {}).values()]
            return self._page(request, hooks, page, per_page)

        @app.delete(f"{api}/hooks/{{hook_id}}", status_code=204)
        async def delete_hook(owner: str, name: str, hook_id: int,
                              authorization: str | None = Header(default=None)) -> Response:
            self._project(owner, name, authorization, MAINTAINER)
            if self.hooks.get(f"{owner}/{name}", {}).pop(hook_id, None) is None:
                raise HTTPException(404, detail={"message": "404 Not found"})
            return Response(status_code=204)

        @app.post(f"{api}/statuses/{{sha}}", status_code=201)
        async def create_status(owner: str, name: str, sha: str, request: Request,
                                authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._project(owner, name, authorization, DEVELOPER)
            body = await request.json()
            if body.get("state") not in STATES:
                raise HTTPException(400, detail={"message": "state does not have a valid value"})
            status = {"id": next(self._ids), "sha": sha, "status": body["state"],
                      "name": body.get("name") or body.get("context") or "default",
                      "target_url": body.get("target_url"), "description": body.get("description")}
            self.statuses.setdefault(f"{owner}/{name}@{sha}", []).append(status)
            return status

        @app.get(f"{api}/repository/branches")
        async def branches(owner: str, name: str, request: Request, page: int = 1, per_page: int = 20,
                           authorization: str | None = Header(default=None)) -> JSONResponse:
            self._project(owner, name, authorization)
            found = [{"name": branch, "commit": {"id": sha}, "protected": False}
                     for branch, sha in self.heads(owner, name)]
            return self._page(request, found, page, per_page)

        @app.get(f"{api}/repository/branches/{{branch:path}}")
        async def branch(owner: str, name: str, branch: str,
                         authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._project(owner, name, authorization)
            sha = self.rev(owner, name, f"refs/heads/{branch}")
            if sha is None:
                raise HTTPException(404, detail={"message": "404 Branch Not Found"})
            return {"name": branch, "commit": {"id": sha}, "protected": False}

        @app.api_route(f"{api}/repository/files/{{rest:path}}", methods=["GET", "HEAD"])
        async def files(owner: str, name: str, rest: str, ref: str,
                        authorization: str | None = Header(default=None)) -> Response:
            self._project(owner, name, authorization)
            path = rest.removesuffix("/raw")
            commit = self.rev(owner, name, f"{ref}^{{commit}}")
            content = None if commit is None else self.blob(owner, name, f"{commit}:{path}")
            if content is None:
                raise HTTPException(404, detail={"message": "404 File Not Found"})
            return Response(content, headers={"X-Gitlab-File-Path": path, "X-Gitlab-Ref": ref,
                                              "X-Gitlab-Commit-Id": commit or ""})

        @app.post(f"{api}/repository/commits", status_code=201)
        async def commit(owner: str, name: str, request: Request,
                         authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._project(owner, name, authorization, DEVELOPER)
            body = await request.json()
            [action] = body["actions"]
            head = self.rev(owner, name, f"refs/heads/{body['branch']}")
            if head is None:
                raise HTTPException(400, detail={"message": "You can only create or edit files "
                                                 "when you are on a branch"})
            exists = self.blob(owner, name, f"{head}:{action['file_path']}") is not None
            if exists != (action["action"] == "update"):
                raise HTTPException(400, detail={"message": "A file with this name already exists"
                                                 if exists else "A file with this name doesn't exist"})
            content = action["content"].encode()
            if action.get("encoding") == "base64":
                content = base64.b64decode(content)
            made = self.commit_file(owner, name, body["branch"], action["file_path"], content,
                                    body["commit_message"])
            return {"id": made, "short_id": made[:8], "title": body["commit_message"]}

        @app.api_route("/{owner}/{rest:path}", methods=["GET", "POST"])
        async def git(owner: str, rest: str, request: Request) -> Response:
            """Smart HTTP: any user name, a token of a member as the password."""

            def allowed(repo_name: str, password: str | None) -> bool:
                member = self.token_user(password or "")
                return member is not None and any(
                    p["path_with_namespace"] == f"{owner}/{repo_name}" for p in member.repos)

            return await self.serve_git(request, owner, rest, allowed)

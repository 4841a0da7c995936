"""A fake GitHub Enterprise over real HTTP: just the endpoints prefect-pipelines calls.

PyGithub talks to it as to any GitHub Enterprise server (`http://127.0.0.1:<port>/api/v3`).
State lives in memory: OAuth apps and their one-time codes, users and tokens,
repositories, hooks and commit statuses, so tests can set it up and inspect it.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeForge, FakeUser
from tests.support.secret_scan import scan


class FakeGitHub(FakeForge):
    """The state of the fake, and the app that serves it."""

    title = "GitHub"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}/api/v3"

    # -- setting the scene ------------------------------------------------------------

    def add_app(self, prefix: str = "Iv1.") -> tuple[str, str]:
        return super().add_app(prefix)

    def add_user(self, login: str, name: str = "") -> FakeUser:
        return self.new_user(login, name, f"gho_{secrets.token_hex(18)}")

    def add_repo(self, login: str, name: str, *, admin: bool = True, language: str = "Go",
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A repository of `login`; with `branches` it is a real git repo served here."""
        user = self.users[login]
        full_name = f"{login}/{name}"
        commits = self.make_repo(login, name, branches)
        repo = {
            "id": next(self._ids), "name": name, "full_name": full_name,
            "owner": {"login": login, "id": user.id},
            "private": True, "html_url": f"http://{self.host}/{full_name}",
            "clone_url": f"http://{self.host}/{full_name}.git",
            "url": f"{self.api_url}/repos/{full_name}",
            "language": language, "default_branch": default_branch,
            "permissions": {"admin": admin, "push": True, "pull": True},
        }
        user.repos.append(repo)
        return {**repo, "commits": commits}

    def _user_for(self, authorization: str | None) -> FakeUser:
        token = (authorization or "").split(" ", 1)[-1].strip()
        for user in self.users.values():
            if token and secrets.compare_digest(user.token, token):
                return user
        raise HTTPException(401, detail={"message": "Bad credentials"})

    def _repo(self, owner: str, repo: str, user: FakeUser) -> dict[str, Any]:
        for candidate in user.repos:
            if candidate["full_name"] == f"{owner}/{repo}":
                return candidate
        raise HTTPException(404, detail={"message": "Not Found"})

    def routes(self, app: FastAPI) -> None:
        @app.post("/login/oauth/access_token")
        async def access_token(request: Request) -> dict[str, Any]:
            if request.headers.get("content-type", "").startswith("application/json"):
                body = await request.json()
            else:
                body = dict(await request.form())
            client_id, client_secret, code = (body.get(k, "") for k in ("client_id", "client_secret", "code"))
            if not self.app_matches(client_id, client_secret):
                return {"error": "incorrect_client_credentials",
                        "error_description": "The client_id and/or client_secret passed are incorrect."}
            login = self.take_code(client_id, code)
            if login is None:
                return {"error": "bad_verification_code",
                        "error_description": "The code passed is incorrect or expired."}
            user = self.users[login]
            return {"access_token": user.token, "token_type": "bearer", "scope": "repo,admin:repo_hook"}

        @app.get("/api/v3/user")
        async def user(authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            return {"login": found.login, "id": found.id, "name": found.name, "type": "User",
                    "avatar_url": f"http://{self.host}/avatars/{found.login}",
                    "html_url": f"http://{self.host}/{found.login}",
                    "url": f"{self.api_url}/users/{found.login}"}

        @app.get("/api/v3/user/repos")
        async def repos(request: Request, authorization: str | None = Header(default=None),
                        page: int = 1, per_page: int = 30) -> Response:
            found = self._user_for(authorization)
            start = (page - 1) * per_page
            chunk = found.repos[start:start + per_page]
            headers = {}
            links = []
            if start + per_page < len(found.repos):
                links.append(f'<{self.api_url}/user/repos?page={page + 1}&per_page={per_page}>; rel="next"')
                last = (len(found.repos) + per_page - 1) // per_page
                links.append(f'<{self.api_url}/user/repos?page={last}&per_page={per_page}>; rel="last"')
            if links:
                headers["Link"] = ", ".join(links)
            return JSONResponse(chunk, headers=headers)

        @app.get("/api/v3/repos/{owner}/{repo}")
        async def get_repo(owner: str, repo: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
            return self._repo(owner, repo, self._user_for(authorization))

        @app.post("/api/v3/repos/{owner}/{repo}/hooks", status_code=201)
        async def create_hook(owner: str, repo: str, request: Request,
                              authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._repo(owner, repo, self._user_for(authorization))
            if not found["permissions"]["admin"]:
                raise HTTPException(404, detail={"message": "Not Found"})
            body = await request.json()
            hook_id = next(self._ids)
            hook = {"id": hook_id, "type": "Repository", "name": body.get("name", "web"),
                    "active": body.get("active", True), "events": body.get("events", ["push"]),
                    "config": body.get("config", {}),
                    "url": f"{self.api_url}/repos/{owner}/{repo}/hooks/{hook_id}"}
            self.hooks.setdefault(f"{owner}/{repo}", {})[hook_id] = hook
            scan.add(hook["config"].get("secret"), f"the webhook token of hook {hook_id}")
            shown = dict(hook)
            shown["config"] = {k: ("********" if k == "secret" else v) for k, v in hook["config"].items()}
            return shown

        @app.get("/api/v3/repos/{owner}/{repo}/hooks")
        async def list_hooks(owner: str, repo: str, authorization: str | None = Header(default=None)
                             ) -> list[dict[str, Any]]:
            self._repo(owner, repo, self._user_for(authorization))
            return [{**hook, "config": {k: ("********" if k == "secret" else v) for k, v in hook["config"].items()}}
                    for hook in self.hooks.get(f"{owner}/{repo}", {}).values()]

        @app.get("/api/v3/repos/{owner}/{repo}/hooks/{hook_id}")
        async def get_hook(owner: str, repo: str, hook_id: int,
                           authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, repo, self._user_for(authorization))
            hook = self.hooks.get(f"{owner}/{repo}", {}).get(hook_id)
            if hook is None:
                raise HTTPException(404, detail={"message": "Not Found"})
            return hook

        @app.delete("/api/v3/repos/{owner}/{repo}/hooks/{hook_id}", status_code=204)
        async def delete_hook(owner: str, repo: str, hook_id: int,
                              authorization: str | None = Header(default=None)) -> Response:
            self._repo(owner, repo, self._user_for(authorization))
            if self.hooks.get(f"{owner}/{repo}", {}).pop(hook_id, None) is None:
                raise HTTPException(404, detail={"message": "Not Found"})
            return Response(status_code=204)

        @app.get("/api/v3/repos/{owner}/{repo}/commits/{sha}")
        async def get_commit(owner: str, repo: str, sha: str,
                             authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, repo, self._user_for(authorization))
            return {"sha": sha, "url": f"{self.api_url}/repos/{owner}/{repo}/commits/{sha}"}

        @app.post("/api/v3/repos/{owner}/{repo}/statuses/{sha}", status_code=201)
        async def create_status(owner: str, repo: str, sha: str, request: Request,
                                authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, repo, self._user_for(authorization))
            body = await request.json()
            if body.get("state") not in ("pending", "success", "failure", "error"):
                raise HTTPException(422, detail={"message": "Validation Failed"})
            status = {"id": next(self._ids), "state": body["state"],
                      "target_url": body.get("target_url"), "description": body.get("description"),
                      "context": body.get("context", "default")}
            self.statuses.setdefault(f"{owner}/{repo}@{sha}", []).append(status)
            return status

        @app.get("/api/v3/repos/{owner}/{repo}/branches")
        async def list_branches(owner: str, repo: str, page: int = 1, per_page: int = 30,
                                authorization: str | None = Header(default=None)) -> Response:
            self._repo(owner, repo, self._user_for(authorization))
            heads = self.heads(owner, repo)
            start = (page - 1) * per_page
            chunk = [{"name": name, "protected": False,
                      "commit": {"sha": sha, "url": f"{self.api_url}/repos/{owner}/{repo}/commits/{sha}"}}
                     for name, sha in heads[start:start + per_page]]
            headers = {}
            if start + per_page < len(heads):
                headers["Link"] = (f'<{self.api_url}/repos/{owner}/{repo}/branches?page={page + 1}'
                                   f'&per_page={per_page}>; rel="next"')
            return JSONResponse(chunk, headers=headers)

        @app.get("/api/v3/repos/{owner}/{repo}/branches/{branch:path}")
        async def get_branch(owner: str, repo: str, branch: str,
                             authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, repo, self._user_for(authorization))
            sha = self.rev(owner, repo, f"refs/heads/{branch}")
            if sha is None:
                raise HTTPException(404, detail={"message": "Branch not found"})
            return {"name": branch, "protected": False,
                    "commit": {"sha": sha, "url": f"{self.api_url}/repos/{owner}/{repo}/commits/{sha}"},
                    "_links": {"self": f"{self.api_url}/repos/{owner}/{repo}/branches/{branch}"}}

        @app.get("/api/v3/repos/{owner}/{repo}/contents/{path:path}")
        async def get_contents(owner: str, repo: str, path: str, ref: str = "",
                               authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._repo(owner, repo, self._user_for(authorization))
            spec = f"{ref or found['default_branch']}:{path}"
            content = self.blob(owner, repo, spec)
            if content is None:
                raise HTTPException(404, detail={"message": "Not Found"})
            sha = self.git_of(owner, repo, "rev-parse", spec)
            url = f"{self.api_url}/repos/{owner}/{repo}/contents/{path}"
            return {"type": "file", "encoding": "base64", "size": len(content), "name": path.rsplit("/", 1)[-1],
                    "path": path, "sha": sha, "content": base64.b64encode(content).decode(),
                    "url": url, "git_url": None, "html_url": None, "download_url": None,
                    "_links": {"self": url}}

        @app.put("/api/v3/repos/{owner}/{repo}/contents/{path:path}")
        async def put_contents(owner: str, repo: str, path: str, request: Request,
                               authorization: str | None = Header(default=None)) -> JSONResponse:
            found = self._repo(owner, repo, self._user_for(authorization))
            if not found["permissions"]["push"]:
                raise HTTPException(404, detail={"message": "Not Found"})
            body = await request.json()
            branch = body.get("branch") or found["default_branch"]
            parent = self.rev(owner, repo, f"refs/heads/{branch}")
            if parent is None:
                raise HTTPException(404, detail={"message": f"Branch {branch} not found"})
            current = self.rev(owner, repo, f"{parent}:{path}")
            if current is not None and body.get("sha") != current:
                raise HTTPException(409, detail={"message": f"{path} does not match {body.get('sha')}"})
            commit = self.commit_file(owner, repo, branch, path, base64.b64decode(body["content"]),
                                      body.get("message") or f"Update {path}")
            return JSONResponse({"content": {"path": path, "sha": self.git_of(owner, repo, "rev-parse",
                                                                               f"{commit}:{path}")},
                                 "commit": {"sha": commit, "message": body.get("message")}},
                                status_code=201 if current is None else 200)

        @app.api_route("/{owner}/{rest:path}", methods=["GET", "POST"])
        async def git(owner: str, rest: str, request: Request) -> Response:
            """Smart HTTP for the repositories: like GitHub, a token as the password."""
            user = self.users.get(owner)

            def allowed(repo_name: str, password: str | None) -> bool:
                repo = next((r for r in (user.repos if user else []) if r["name"] == repo_name), None)
                return (repo is not None and password is not None
                        and secrets.compare_digest(password, user.token))

            return await self.serve_git(request, owner, rest, allowed)

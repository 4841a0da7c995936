"""A fake GitHub Enterprise over real HTTP: just the endpoints prefect-pipelines calls.

PyGithub talks to it as to any GitHub Enterprise server (`http://127.0.0.1:<port>/api/v3`).
State lives in memory: OAuth apps and their one-time codes, users and tokens,
repositories, hooks and commit statuses, so tests can set it up and inspect it.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from tests.support.gitserver import basic_password, http_backend, make_repo, push_commit
from tests.support.procs import free_port, wait_for
from tests.support.secret_scan import scan


@dataclass
class FakeUser:
    login: str
    name: str
    id: int
    token: str
    repos: list[dict[str, Any]] = field(default_factory=list)


class FakeGitHub:
    """The state of the fake, and the app that serves it."""

    def __init__(self, git_root: Path) -> None:
        self.git_root = git_root
        self.apps: dict[str, str] = {}  # client_id -> client_secret
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (client_id, login)
        self.users: dict[str, FakeUser] = {}  # login -> user
        self.hooks: dict[str, dict[int, dict[str, Any]]] = {}  # "owner/repo" -> id -> hook
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # "owner/repo@sha" -> statuses
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.api_url = f"http://{self.host}/api/v3"
        self.app = self._build()
        self._server: uvicorn.Server | None = None

    # -- setting the scene ------------------------------------------------------------

    def add_app(self) -> tuple[str, str]:
        client_id = f"Iv1.{secrets.token_hex(8)}"
        client_secret = secrets.token_hex(20)
        self.apps[client_id] = client_secret
        scan.add(client_secret, f"the client secret of {client_id}")
        return client_id, client_secret

    def add_user(self, login: str, name: str = "") -> FakeUser:
        user = FakeUser(login=login, name=name or login.title(), id=next(self._ids),
                        token=f"gho_{secrets.token_hex(18)}")
        self.users[login] = user
        scan.add(user.token, f"the GitHub token of {login}")
        return user

    def add_repo(self, login: str, name: str, *, admin: bool = True, language: str = "Go",
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A repository of `login`; with `branches` it is a real git repo served here."""
        user = self.users[login]
        full_name = f"{login}/{name}"
        commits = make_repo(self.git_root / login, name, branches) if branches else {}
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

    def push(self, login: str, name: str, ref: str, files: dict[str, str]) -> str:
        """Push a new commit to `ref` (a branch, a tag or refs/pull/N/head); return it."""
        return push_commit(self.git_root / login, name, ref, files)

    def new_code(self, client_id: str, login: str) -> str:
        code = secrets.token_hex(10)
        self.codes[code] = (client_id, login)
        return code

    # -- serving ----------------------------------------------------------------------

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        wait_for(lambda: self._server is not None and self._server.started, timeout=30,
                 what="the fake GitHub to start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

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

    def _bare(self, owner: str, repo: str) -> Path:
        return self.git_root / owner / f"{repo}.git"

    def _git_of(self, owner: str, repo: str, *argv: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["git", "--git-dir", str(self._bare(owner, repo)), *argv], check=True,
                              capture_output=True, text=True, env=env).stdout.strip()

    def _commit_file(self, owner: str, repo: str, parent: str, path: str, content: bytes,
                     message: str) -> str:
        """A commit on `parent` with `path` set to `content`, made with git's plumbing in the
        bare repository (as GitHub's contents API commits without a work tree)."""
        with tempfile.TemporaryDirectory() as directory:
            env = {**os.environ, "GIT_INDEX_FILE": f"{directory}/index", "GIT_AUTHOR_NAME": "Fake GitHub",
                   "GIT_AUTHOR_EMAIL": "fake@github.test", "GIT_COMMITTER_NAME": "Fake GitHub",
                   "GIT_COMMITTER_EMAIL": "fake@github.test"}
            blob = subprocess.run(["git", "--git-dir", str(self._bare(owner, repo)), "hash-object", "-w",
                                   "--stdin"], input=content, check=True, capture_output=True).stdout.decode().strip()
            self._git_of(owner, repo, "read-tree", parent, env=env)
            self._git_of(owner, repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._git_of(owner, repo, "write-tree", env=env)
            return self._git_of(owner, repo, "commit-tree", tree, "-p", parent, "-m", message, env=env)

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next):  # type: ignore[no-untyped-def]
            self.requests.append((request.method, request.url.path))
            return await call_next(request)

        @app.exception_handler(HTTPException)
        async def error(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse(exc.detail, status_code=exc.status_code)

        @app.post("/login/oauth/access_token")
        async def access_token(request: Request) -> dict[str, Any]:
            if request.headers.get("content-type", "").startswith("application/json"):
                body = await request.json()
            else:
                body = dict(await request.form())
            client_id, client_secret, code = (body.get(k, "") for k in ("client_id", "client_secret", "code"))
            if self.apps.get(client_id) is None or not secrets.compare_digest(
                    self.apps[client_id], client_secret):
                return {"error": "incorrect_client_credentials",
                        "error_description": "The client_id and/or client_secret passed are incorrect."}
            with self._lock:
                grant = self.codes.pop(code, None)
            if grant is None or grant[0] != client_id:
                return {"error": "bad_verification_code",
                        "error_description": "The code passed is incorrect or expired."}
            user = self.users[grant[1]]
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
            heads = self._git_of(owner, repo, "for-each-ref", "--format=%(refname:short) %(objectname)",
                                 "refs/heads").splitlines()
            start = (page - 1) * per_page
            chunk = [{"name": name, "protected": False,
                      "commit": {"sha": sha, "url": f"{self.api_url}/repos/{owner}/{repo}/commits/{sha}"}}
                     for name, sha in (line.split(" ") for line in heads[start:start + per_page])]
            headers = {}
            if start + per_page < len(heads):
                headers["Link"] = (f'<{self.api_url}/repos/{owner}/{repo}/branches?page={page + 1}'
                                   f'&per_page={per_page}>; rel="next"')
            return JSONResponse(chunk, headers=headers)

        @app.get("/api/v3/repos/{owner}/{repo}/branches/{branch:path}")
        async def get_branch(owner: str, repo: str, branch: str,
                             authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(owner, repo, self._user_for(authorization))
            try:
                sha = self._git_of(owner, repo, "rev-parse", "--verify", f"refs/heads/{branch}")
            except subprocess.CalledProcessError:
                raise HTTPException(404, detail={"message": "Branch not found"}) from None
            return {"name": branch, "protected": False,
                    "commit": {"sha": sha, "url": f"{self.api_url}/repos/{owner}/{repo}/commits/{sha}"},
                    "_links": {"self": f"{self.api_url}/repos/{owner}/{repo}/branches/{branch}"}}

        @app.get("/api/v3/repos/{owner}/{repo}/contents/{path:path}")
        async def get_contents(owner: str, repo: str, path: str, ref: str = "",
                               authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._repo(owner, repo, self._user_for(authorization))
            spec = f"{ref or found['default_branch']}:{path}"
            try:
                kind = self._git_of(owner, repo, "cat-file", "-t", spec)
            except subprocess.CalledProcessError:
                raise HTTPException(404, detail={"message": "Not Found"}) from None
            if kind != "blob":
                raise HTTPException(404, detail={"message": "Not Found"})
            sha = self._git_of(owner, repo, "rev-parse", spec)
            content = subprocess.run(["git", "--git-dir", str(self._bare(owner, repo)), "cat-file",
                                      "blob", sha], check=True, capture_output=True).stdout
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
            with self._lock:
                try:
                    parent = self._git_of(owner, repo, "rev-parse", f"refs/heads/{branch}")
                except subprocess.CalledProcessError:
                    raise HTTPException(404, detail={"message": f"Branch {branch} not found"}) from None
                try:
                    current = self._git_of(owner, repo, "rev-parse", f"{parent}:{path}")
                except subprocess.CalledProcessError:
                    current = None
                if current is not None and body.get("sha") != current:
                    raise HTTPException(409, detail={"message": f"{path} does not match {body.get('sha')}"})
                commit = self._commit_file(owner, repo, parent, path, base64.b64decode(body["content"]),
                                           body.get("message") or f"Update {path}")
                self._git_of(owner, repo, "update-ref", f"refs/heads/{branch}", commit, parent)
            return JSONResponse({"content": {"path": path, "sha": self._git_of(owner, repo, "rev-parse",
                                                                                f"{commit}:{path}")},
                                 "commit": {"sha": commit, "message": body.get("message")}},
                                status_code=201 if current is None else 200)

        @app.api_route("/{owner}/{rest:path}", methods=["GET", "POST"])
        async def git(owner: str, rest: str, request: Request) -> Response:
            """Smart HTTP for the repositories: like GitHub, a token as the password."""
            repo_name = rest.split(".git/", 1)[0]
            user = self.users.get(owner)
            repo = next((r for r in (user.repos if user else []) if r["name"] == repo_name), None)
            password = basic_password(request.headers.get("authorization", ""))
            if repo is None or ".git/" not in rest:
                raise HTTPException(404, detail={"message": "Not Found"})
            if password is None or not secrets.compare_digest(password, user.token):
                return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="GitHub"'})
            environ = {"PATH_INFO": request.url.path, "REQUEST_METHOD": request.method,
                       "QUERY_STRING": request.url.query,
                       "CONTENT_TYPE": request.headers.get("content-type", ""),
                       "HTTP_GIT_PROTOCOL": request.headers.get("git-protocol", ""),
                       "HTTP_CONTENT_ENCODING": request.headers.get("content-encoding", "")}
            status, headers, payload = http_backend(self.git_root, environ, await request.body())
            return Response(payload, status_code=int(status.split()[0]), headers=dict(headers))

        return app

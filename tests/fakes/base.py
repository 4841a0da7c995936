"""What every fake forge shares: real bare git repositories served over smart HTTP (the
real `git http-backend`), OAuth apps with one-time codes, users with tokens, hooks and
commit statuses kept in memory for the tests to inspect, and a uvicorn server on loopback.

Each forge's fake (github.py, gitlab.py) adds its own API routes on top, in its own shape,
so that the real client library talks to it as to the forge.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from tests.support.gitserver import (
    basic_credentials,
    basic_password,
    http_backend,
    make_repo,
    push_commit,
)
from tests.support.procs import free_port, wait_for
from tests.support.secret_scan import scan


@dataclass
class FakeUser:
    login: str
    name: str
    id: int
    token: str
    repos: list[dict[str, Any]] = field(default_factory=list)


class FakeForge:
    """The state a fake forge keeps, and the server that serves its app."""

    title = "forge"

    def __init__(self, git_root: Path) -> None:
        self.git_root = git_root
        self.apps: dict[str, str] = {}  # client_id -> client_secret
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (client_id, login)
        self.users: dict[str, FakeUser] = {}  # login -> user
        self.hooks: dict[str, dict[int, dict[str, Any]]] = {}  # "owner/repo" -> id -> hook
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # "owner/repo@sha" -> statuses
        self.requests: list[tuple[str, str]] = []
        self.failing: dict[str, int] = {}  # path -> the status every request to it gets
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.app = self._build()
        self._server: uvicorn.Server | None = None

    # -- setting the scene ------------------------------------------------------------

    def add_app(self, prefix: str = "") -> tuple[str, str]:
        client_id = f"{prefix}{secrets.token_hex(8)}"
        client_secret = secrets.token_hex(20)
        self.apps[client_id] = client_secret
        scan.add(client_secret, f"the client secret of {client_id}")
        return client_id, client_secret

    def new_user(self, login: str, name: str, token: str) -> FakeUser:
        user = FakeUser(login=login, name=name or login.title(), id=next(self._ids), token=token)
        self.users[login] = user
        scan.add(token, f"the {self.title} token of {login}")
        return user

    def make_repo(self, login: str, name: str, branches: dict[str, dict[str, str]] | None
                  ) -> dict[str, str]:
        """A real bare repository (with `branches`) served here; its commits by branch."""
        return make_repo(self.git_root / login, name, branches) if branches else {}

    def push(self, login: str, name: str, ref: str, files: dict[str, str]) -> str:
        """Push a new commit to `ref` (a branch, a tag or a pull/merge request ref); return it."""
        return push_commit(self.git_root / login, name, ref, files)

    def location(self, host: str) -> dict[str, Any]:
        """Where a `<kind>Config` says the forge is, for a forge at `host` (over http)."""
        return {"host": host, "tls": False}

    def new_code(self, client_id: str, login: str) -> str:
        code = secrets.token_hex(10)
        self.codes[code] = (client_id, login)
        return code

    def take_code(self, client_id: str, code: str) -> str | None:
        """The login a code was made for, once (None: not a code of this app)."""
        with self._lock:
            grant = self.codes.pop(code, None)
        return grant[1] if grant is not None and grant[0] == client_id else None

    def app_matches(self, client_id: str, client_secret: str) -> bool:
        known = self.apps.get(client_id)
        return known is not None and secrets.compare_digest(known, client_secret)

    # -- serving ----------------------------------------------------------------------

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        wait_for(lambda: self._server is not None and self._server.started, timeout=30,
                 what=f"the fake {self.title} to start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(request: Request, call_next):  # type: ignore[no-untyped-def]
            self.requests.append((request.method, request.url.path))
            status = self.failing.get(request.url.path)
            if status is not None:
                return JSONResponse({"message": f"{status} (as the test asked)"}, status_code=status)
            return await call_next(request)

        @app.exception_handler(HTTPException)
        async def error(request: Request, exc: HTTPException) -> JSONResponse:
            return JSONResponse(exc.detail, status_code=exc.status_code)

        self.routes(app)
        return app

    def routes(self, app: FastAPI) -> None:
        """The forge's own API routes (each fake's)."""
        raise NotImplementedError

    # -- the repositories -----------------------------------------------------------------

    def bare(self, owner: str, repo: str) -> Path:
        return self.git_root / owner / f"{repo}.git"

    def git_of(self, owner: str, repo: str, *argv: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["git", "--git-dir", str(self.bare(owner, repo)), *argv], check=True,
                              capture_output=True, text=True, env=env).stdout.strip()

    def rev(self, owner: str, repo: str, spec: str) -> str | None:
        try:
            return self.git_of(owner, repo, "rev-parse", "--verify", "--quiet", spec)
        except subprocess.CalledProcessError:
            return None

    def blob(self, owner: str, repo: str, spec: str) -> bytes | None:
        """The content of `<rev>:<path>` when it is a file, else None."""
        try:
            if self.git_of(owner, repo, "cat-file", "-t", spec) != "blob":
                return None
        except subprocess.CalledProcessError:
            return None
        return subprocess.run(["git", "--git-dir", str(self.bare(owner, repo)), "cat-file", "-p",
                               spec], check=True, capture_output=True).stdout

    def heads(self, owner: str, repo: str) -> list[tuple[str, str]]:
        """(branch, commit) of every branch."""
        lines = self.git_of(owner, repo, "for-each-ref", "--format=%(refname:short) %(objectname)",
                            "refs/heads").splitlines()
        return [(name, sha) for name, sha in (line.split(" ") for line in lines)]

    def commit_file(self, owner: str, repo: str, branch: str, path: str, content: bytes,
                    message: str) -> str:
        """A commit on `branch` with `path` set to `content`, made with git's plumbing in the
        bare repository (as forges' contents APIs commit without a work tree); the branch
        moves to it. KeyError: no such branch."""
        with self._lock:
            parent = self.rev(owner, repo, f"refs/heads/{branch}")
            if parent is None:
                raise KeyError(branch)
            with tempfile.TemporaryDirectory() as directory:
                env = {**os.environ, "GIT_INDEX_FILE": f"{directory}/index",
                       "GIT_AUTHOR_NAME": f"Fake {self.title}", "GIT_AUTHOR_EMAIL": "fake@forge.test",
                       "GIT_COMMITTER_NAME": f"Fake {self.title}",
                       "GIT_COMMITTER_EMAIL": "fake@forge.test"}
                blob = subprocess.run(["git", "--git-dir", str(self.bare(owner, repo)), "hash-object",
                                       "-w", "--stdin"], input=content, check=True,
                                      capture_output=True).stdout.decode().strip()
                self.git_of(owner, repo, "read-tree", parent, env=env)
                self.git_of(owner, repo, "update-index", "--add", "--cacheinfo",
                            f"100644,{blob},{path}", env=env)
                tree = self.git_of(owner, repo, "write-tree", env=env)
                commit = self.git_of(owner, repo, "commit-tree", tree, "-p", parent, "-m", message,
                                     env=env)
            self.git_of(owner, repo, "update-ref", f"refs/heads/{branch}", commit, parent)
            return commit

    async def serve_git(self, request: Request, owner: str, rest: str,
                        allowed: Callable[[str, str | None], bool]) -> Response:
        """Smart HTTP for `/<owner>/<repo>.git/...`; `allowed(repo, password)` says whether
        the Basic password given (a token) may read the repository."""
        repo_name = rest.split(".git/", 1)[0]
        if ".git/" not in rest or not self.bare(owner, repo_name).exists():
            raise HTTPException(404, detail={"message": "Not Found"})
        password = basic_password(request.headers.get("authorization", ""))
        if not allowed(repo_name, password):
            return Response(status_code=401, headers={"WWW-Authenticate": f'Basic realm="{self.title}"'})
        environ = {"PATH_INFO": request.url.path, "REQUEST_METHOD": request.method,
                   "QUERY_STRING": request.url.query,
                   "CONTENT_TYPE": request.headers.get("content-type", ""),
                   "HTTP_GIT_PROTOCOL": request.headers.get("git-protocol", ""),
                   "HTTP_CONTENT_ENCODING": request.headers.get("content-encoding", "")}
        status, headers, payload = http_backend(self.git_root, environ, await request.body())
        return Response(payload, status_code=int(status.split()[0]), headers=dict(headers))


@dataclass
class Grant:
    login: str
    expires_at: float


class ExpiringTokensForge(FakeForge):
    """A fake whose OAuth tokens expire after `token_lifetime` seconds and whose refresh
    tokens are single-use: a refresh revokes the old access and refresh tokens (GitLab's
    and Gitea's)."""

    token_prefixes = ("at-", "rt-")
    default_lifetime = 3600.0

    def __init__(self, git_root: Path) -> None:
        self.tokens: dict[str, Grant] = {}  # access token -> grant
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> login
        self.refreshes: list[str] = []  # the logins whose tokens were refreshed, in order
        self.token_lifetime = self.default_lifetime
        super().__init__(git_root)

    def add_user(self, login: str, name: str = "") -> FakeUser:
        user = self.new_user(login, name, "")
        user.token = self.issue(login)["access_token"]
        return user

    def issue(self, login: str) -> dict[str, Any]:
        """A new token pair for `login` (the OAuth answer)."""
        access = f"{self.token_prefixes[0]}{secrets.token_hex(16)}"
        refresh = f"{self.token_prefixes[1]}{secrets.token_hex(16)}"
        scan.add(access, f"a {self.title} token of {login}")
        scan.add(refresh, f"a {self.title} refresh token of {login}")
        self.tokens[access] = Grant(login, time.time() + self.token_lifetime)
        self.refresh_tokens[refresh] = login
        self.users[login].token = access
        return {"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                "expires_in": int(self.token_lifetime), "created_at": int(time.time())}

    def revoke_refresh_tokens(self, login: str) -> None:
        """The user revoked the app: its refresh tokens stop working."""
        for refresh in [r for r, owner in self.refresh_tokens.items() if owner == login]:
            del self.refresh_tokens[refresh]

    def token_user(self, token: str) -> FakeUser | None:
        """The user of a live access token."""
        grant = next((g for t, g in self.tokens.items() if token and secrets.compare_digest(t, token)), None)
        if grant is None or grant.expires_at < time.time():
            return None
        return self.users[grant.login]

    async def token_endpoint(self, request: Request) -> JSONResponse:
        """The OAuth token endpoint: the code and refresh grants, as a form."""
        form = dict(parse_qsl((await request.body()).decode()))  # no python-multipart here
        if "client_id" not in form:  # the app's credentials as Basic auth (Bitbucket's way)
            client_id, client_secret = basic_credentials(request.headers.get("authorization", "")) or ("", "")
            form.update(client_id=client_id, client_secret=client_secret)
        if not self.app_matches(str(form.get("client_id", "")), str(form.get("client_secret", ""))):
            return JSONResponse({"error": "invalid_client", "error_description":
                                 "Client authentication failed due to unknown client."}, 401)
        if form.get("grant_type") == "authorization_code":
            login = self.take_code(str(form["client_id"]), str(form.get("code", "")))
        elif form.get("grant_type") == "refresh_token":
            login = self.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            if login is not None:
                self.refreshes.append(login)
                for access in [t for t, g in self.tokens.items() if g.login == login]:
                    del self.tokens[access]
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if login is None:
            return JSONResponse({"error": "invalid_grant", "error_description":
                                 "The provided authorization grant is invalid, expired, revoked, "
                                 "does not match the redirection URI used in the authorization "
                                 "request, or was issued to another client."}, 400)
        return JSONResponse(self.issue(login))

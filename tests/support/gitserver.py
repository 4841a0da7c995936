"""A real git server on 127.0.0.1: `git http-backend` behind a small WSGI app.

Repositories are bare repos under `root`. A repository can be made private with a token:
clones then need HTTP basic auth whose password is that token (as GitHub accepts
`x-access-token:<token>`); every Authorization header seen is recorded for the tests.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tests.support.procs import free_port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "CI Test", "GIT_AUTHOR_EMAIL": "ci@example.com",
           "GIT_COMMITTER_NAME": "CI Test", "GIT_COMMITTER_EMAIL": "ci@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(root: Path, name: str, branches: dict[str, dict[str, str]]) -> dict[str, str]:
    """Create the bare repo `<root>/<name>.git` with one commit per branch.

    Returns:
        branch -> commit hash.
    """
    work = root / f"{name}-work"
    if work.exists():
        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = branches
    _git("init", "-q", "-b", first, str(work))
    commits: dict[str, str] = {}
    for branch in [first, *rest]:
        if branch != first:
            _git("checkout", "-q", "-b", branch, first, cwd=work)
        for path, content in branches[branch].items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "--allow-empty", "-m", f"{branch} commit", cwd=work)
        commits[branch] = _git("rev-parse", "HEAD", cwd=work)
    bare = root / f"{name}.git"
    if bare.exists():
        shutil.rmtree(bare)
    _git("clone", "-q", "--bare", str(work), str(bare))
    _git("config", "http.receivepack", "true", cwd=bare)
    return commits


def push_commit(root: Path, name: str, ref: str, files: dict[str, str]) -> str:
    """Commit files in the work copy of `name` and push them to `ref` of the bare repo."""
    work = root / f"{name}-work"
    for path, content in files.items():
        (work / path).write_text(content)
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "--allow-empty", "-m", f"commit for {ref}", cwd=work)
    _git("push", "-q", "-f", str(root / f"{name}.git"), f"HEAD:{ref}", cwd=work)
    return _git("rev-parse", "HEAD", cwd=work)


def http_backend(root: Path, environ: dict, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:  # type: ignore[type-arg]
    """Answer one smart-HTTP request with `git http-backend` (CGI)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": environ.get("PATH_INFO", ""),
        "REQUEST_METHOD": environ.get("REQUEST_METHOD", "GET"),
        "QUERY_STRING": environ.get("QUERY_STRING", ""),
        "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": "ci",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if environ.get("HTTP_GIT_PROTOCOL"):
        env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
    if environ.get("HTTP_CONTENT_ENCODING"):
        env["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
    proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    status = "200 OK"
    headers = []
    for line in head.decode("latin-1").split("\r\n"):
        if not line:
            continue
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = value.strip()
        else:
            headers.append((key.strip(), value.strip()))
    return status, headers, payload


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an HTTP basic Authorization header."""
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def basic_password(header: str) -> str | None:
    """The password of an HTTP basic Authorization header."""
    found = basic_credentials(header)
    return None if found is None else found[1]


class GitServer:
    """Serves bare repositories over smart HTTP."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.tokens: dict[str, str] = {}
        self.seen_auth: list[str] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, self._app,
                                   server_class=_ThreadingServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- repositories -----------------------------------------------------------------

    def create_repo(self, name: str, branches: dict[str, dict[str, str]],
                    private_token: str | None = None) -> dict[str, str]:
        """Create `<name>.git` (branch -> files); return branch -> commit."""
        from tests.support.secret_scan import scan

        commits = make_repo(self.root, name, branches)
        if private_token:
            self.tokens[name] = private_token
            scan.add(private_token, f"the clone token of {name}")
        return commits

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    # -- the WSGI app -----------------------------------------------------------------

    def _app(self, environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        repo = path.lstrip("/").split(".git", 1)[0]
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth:
            self.seen_auth.append(auth)
        token = self.tokens.get(repo)
        if token is not None and not self._authorized(auth, token):
            start_response("401 Unauthorized",
                           [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Length", "0")])
            return [b""]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        status, headers, payload = http_backend(self.root, environ, body)
        start_response(status, headers)
        return [payload]

    @staticmethod
    def _authorized(header: str, token: str) -> bool:
        return basic_password(header) == token

"""A fake Bitbucket Cloud over real HTTP: the endpoints of its API 2.0 prefect-pipelines calls.

The forge's client (httpx, forges/bitbucketcloud.py) talks to it with `apiUrl`
`http://127.0.0.1:<port>/2.0`, and to its OAuth endpoints at the same host
(`/site/oauth2/access_token`, the consumer's key and secret as Basic auth). Tokens expire
after two hours (`token_lifetime`) and a refresh revokes the old pair. Lists are paged the
Bitbucket way (`values` and a `next` URL). Repositories are real bare git repositories
served over smart HTTP, where a token is the password of `x-token-auth`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Header, HTTPException, Request, Response

from tests.fakes.base import ExpiringTokensForge, FakeUser
from tests.support.gitserver import basic_credentials
from tests.support.secret_scan import scan

STATES = {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"}


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status, detail={"type": "error", "error": {"message": message}})


class FakeBitbucketCloud(ExpiringTokensForge):
    """The state of the fake, and the app that serves it."""

    title = "Bitbucket Cloud"
    token_prefixes = ("bbat-", "bbrt-")
    default_lifetime = 7200.0

    @property
    def api_url(self) -> str:
        return f"http://{self.host}/2.0"

    def location(self, host: str) -> dict[str, Any]:
        return {"apiUrl": f"http://{host}/2.0"}

    def add_repo(self, login: str, name: str, *, permission: str = "admin",
                 branches: dict[str, dict[str, str]] | None = None,
                 default_branch: str = "main") -> dict[str, Any]:
        """A repository of workspace `login`, where the user has `permission` (read, write,
        admin); with `branches` a real git repository served here."""
        user = self.users[login]
        full_name = f"{login}/{name}"
        commits = self.make_repo(login, name, branches)
        repo = {"type": "repository", "full_name": full_name, "name": name, "is_private": True,
                "uuid": f"{{{uuid.uuid4()}}}", "language": "python",
                "mainbranch": {"type": "branch", "name": default_branch},
                "links": {"html": {"href": f"http://{self.host}/{full_name}"},
                          "clone": [{"name": "https", "href": f"http://{login}@{self.host}/{full_name}.git"},
                                    {"name": "ssh", "href": f"git@{self.host}:{full_name}.git"}]},
                "_permission": permission}
        user.repos.append(repo)
        return {**repo, "commits": commits, "clone_url": f"http://{self.host}/{full_name}.git"}

    def _user_for(self, authorization: str | None) -> FakeUser:
        scheme, _, token = (authorization or "").partition(" ")
        user = self.token_user(token.strip()) if scheme == "Bearer" else None
        if user is None:
            raise _error(401, "Access token expired. Use your refresh token to obtain a new access token.")
        return user

    def _repo(self, workspace: str, slug: str, authorization: str | None,
              need: str = "read") -> dict[str, Any]:
        user = self._user_for(authorization)
        order = ["read", "write", "admin"]
        for repo in user.repos:
            if repo["full_name"] == f"{workspace}/{slug}":
                if order.index(repo["_permission"]) < order.index(need):
                    raise _error(403, "Your credentials lack one or more required privilege scopes.")
                return repo
        raise _error(404, f"Repository {workspace}/{slug} not found")

    def _page(self, request: Request, values: list[Any]) -> dict[str, Any]:
        page = int(request.query_params.get("page", "1"))
        size = min(int(request.query_params.get("pagelen", "10")), 100)
        start = (page - 1) * size
        body: dict[str, Any] = {"pagelen": size, "page": page, "size": len(values),
                                "values": values[start:start + size]}
        if start + size < len(values):
            body["next"] = str(request.url.include_query_params(page=str(page + 1), pagelen=str(size)))
        return body

    def routes(self, app: FastAPI) -> None:
        api = "/2.0/repositories/{workspace}/{slug}"
        app.post("/site/oauth2/access_token")(self.token_endpoint)

        @app.get("/2.0/user")
        async def user(authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            return {"type": "user", "username": found.login, "nickname": found.login,
                    "display_name": found.name, "account_id": f"557058:{found.id}",
                    "links": {"avatar": {"href": f"http://{self.host}/account/{found.login}/avatar/"},
                              "html": {"href": f"http://{self.host}/{found.login}/"}}}

        @app.get("/2.0/user/permissions/repositories")
        async def permissions(request: Request, authorization: str | None = Header(default=None)
                              ) -> dict[str, Any]:
            found = self._user_for(authorization)
            return self._page(request, [{"type": "repository_permission", "permission": r["_permission"],
                                         "repository": {"type": "repository", "full_name": r["full_name"]}}
                                        for r in found.repos])

        @app.get("/2.0/repositories")
        async def repositories(request: Request, role: str = "",
                               authorization: str | None = Header(default=None)) -> dict[str, Any]:
            found = self._user_for(authorization)
            if role != "member":
                raise _error(400, "the fake lists members' repositories only")
            return self._page(request, [{k: v for k, v in r.items() if not k.startswith("_")}
                                        for r in found.repos])

        @app.post(f"{api}/hooks", status_code=201)
        async def create_hook(workspace: str, slug: str, request: Request,
                              authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(workspace, slug, authorization, "admin")
            body = await request.json()
            if not body.get("url") or not body.get("events"):
                raise _error(400, "url and events are required")
            hook = {"uuid": f"{{{uuid.uuid4()}}}", "type": "webhook_subscription", "url": body["url"],
                    "description": body.get("description", ""), "active": body.get("active", True),
                    "events": body["events"], "secret": body.get("secret"),
                    "secret_set": bool(body.get("secret"))}
            self.hooks.setdefault(f"{workspace}/{slug}", {})[hook["uuid"]] = hook  # type: ignore[index]
            scan.add(hook["secret"], f"the webhook token of hook {hook['uuid']}")
            return {k: v for k, v in hook.items() if k != "secret"}

        @app.get(f"{api}/hooks")
        async def list_hooks(workspace: str, slug: str, request: Request,
                             authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(workspace, slug, authorization, "admin")
            return self._page(request, [{k: v for k, v in h.items() if k != "secret"}
                                        for h in self.hooks.get(f"{workspace}/{slug}", {}).values()])

        @app.delete(f"{api}/hooks/{{uid}}", status_code=204)
        async def delete_hook(workspace: str, slug: str, uid: str,
                              authorization: str | None = Header(default=None)) -> Response:
            self._repo(workspace, slug, authorization, "admin")
            if self.hooks.get(f"{workspace}/{slug}", {}).pop(uid, None) is None:  # type: ignore[call-overload]
                raise _error(404, "Webhook not found")
            return Response(status_code=204)

        @app.post(f"{api}/commit/{{sha}}/statuses/build", status_code=201)
        async def create_status(workspace: str, slug: str, sha: str, request: Request,
                                authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(workspace, slug, authorization, "read")
            body = await request.json()
            if body.get("state") not in STATES or not body.get("key") or len(body["key"]) > 40:
                raise _error(400, "state and key (at most 40 characters) are required")
            status = {"type": "build", "key": body["key"], "name": body.get("name"),
                      "state": body["state"], "url": body.get("url"), "description": body.get("description")}
            self.statuses.setdefault(f"{workspace}/{slug}@{sha}", []).append(status)
            return status

        @app.get(f"{api}/refs/branches")
        async def branches(workspace: str, slug: str, request: Request,
                           authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(workspace, slug, authorization)
            return self._page(request, [{"type": "branch", "name": name, "target": {"hash": sha}}
                                        for name, sha in self.heads(workspace, slug)])

        @app.get(f"{api}/refs/branches/{{name:path}}")
        async def branch(workspace: str, slug: str, name: str,
                         authorization: str | None = Header(default=None)) -> dict[str, Any]:
            self._repo(workspace, slug, authorization)
            sha = self.rev(workspace, slug, f"refs/heads/{name}")
            if sha is None:
                raise _error(404, f"Branch not found: {name}")
            return {"type": "branch", "name": name, "target": {"hash": sha, "type": "commit"}}

        @app.get(f"{api}/src/{{ref}}/{{path:path}}")
        async def source(workspace: str, slug: str, ref: str, path: str,
                         authorization: str | None = Header(default=None)) -> Response:
            self._repo(workspace, slug, authorization)
            commit = self.rev(workspace, slug, f"{ref}^{{commit}}")
            content = None if commit is None else self.blob(workspace, slug, f"{commit}:{path}")
            if content is None:
                raise _error(404, f"No such file or directory: {path}")
            return Response(content, media_type="application/octet-stream")

        @app.post(f"{api}/src", status_code=201)
        async def commit(workspace: str, slug: str, request: Request,
                         authorization: str | None = Header(default=None)) -> Response:
            self._repo(workspace, slug, authorization, "write")
            if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                raise _error(400, "the fake takes form-urlencoded commits only")
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            message, branch = form.pop("message", "Update"), form.pop("branch", "")
            if len(form) != 1:
                raise _error(400, "the fake commits one file at a time")
            [(path, content)] = form.items()
            try:
                made = self.commit_file(workspace, slug, branch, path, content.encode(), message)
            except KeyError:
                raise _error(400, f"branch {branch} does not exist") from None
            return Response(status_code=201, headers={"Location": f"{self.api_url}/repositories/"
                                                                  f"{workspace}/{slug}/commit/{made}"})

        @app.api_route("/{workspace}/{rest:path}", methods=["GET", "POST"])
        async def git(workspace: str, rest: str, request: Request) -> Response:
            """Smart HTTP: `x-token-auth` and a token of a member as the password."""

            def allowed(repo_name: str, password: str | None) -> bool:
                user, _ = basic_credentials(request.headers.get("authorization", "")) or ("", "")
                member = self.token_user(password or "") if user == "x-token-auth" else None
                return member is not None and any(
                    r["full_name"] == f"{workspace}/{repo_name}" for r in member.repos)

            return await self.serve_git(request, workspace, rest, allowed)

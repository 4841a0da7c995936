"""Who may call each route, and for which project: the one table of access rules.

Every route of the facade has a rule here; `check_routes` refuses to build an app with a
route that has none, and tests/api/test_access.py calls every route as every role and
compares the answers with this table. The rule is enforced by `enforce`, a dependency of
every route: for a route under `/v3/projects/{project_id}` a caller with no role in the
project is answered 404 (as if it did not exist), one whose role is too weak 403. A
`public` rule lets a request without a token through to its handler, which serves only
what the pipeline made public (its badge) and answers 401 otherwise. Admins
hold every role everywhere. Routes whose project is not in the path (role bindings) name
`HANDLER`, and their handler calls `require` once it knows the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from prefect_pipelines.errors import NotFoundError, PermissionDeniedError, UnauthorizedError
from prefect_pipelines.services import projects
from prefect_pipelines.services.projects import check_project_id


class Need(str, Enum):
    """What a caller needs."""

    ANYONE = "anyone"  # no token: the webhook receiver (signed), the API root
    USER = "user"  # any valid token
    READ = "read-only"  # a role in the project
    MEMBER = "project-member"
    OWNER = "project-owner"
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    """A route's rule: one need, or one per `?action=` (`need` for any other action)."""

    need: Need
    actions: dict[str, Need] = field(default_factory=dict)
    project: str = "path"  # where the project comes from: "path", "handler", or "none"
    # The one public read: without a token the handler serves what its pipeline made
    # public (a badge with publicBadge: true) and answers 401 for anything else.
    public: bool = False

    def need_for(self, action: str | None) -> Need:
        return self.actions.get(action or "", self.need)


P = "/v3/projects/{project_id}"
PIPELINE_ACTIONS = {"run": Need.MEMBER, "activate": Need.MEMBER, "deactivate": Need.MEMBER,
                    "clearcache": Need.MEMBER}
CLUSTER_ACTIONS = {"authuser": Need.USER, "authapp": Need.ADMIN, "deploy": Need.ADMIN,
                   "destroy": Need.ADMIN, "revokeapp": Need.ADMIN}
HANDLER = "handler"
NONE = "none"

RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/v3"): Rule(Need.ANYONE, project=NONE),
    ("GET", "/healthz"): Rule(Need.ANYONE, project=NONE),
    ("POST", "/hooks"): Rule(Need.ANYONE, project=NONE),
    # Norman's discovery: the types outside projects, and a project's
    ("GET", "/v3/schemas"): Rule(Need.USER, project=NONE),
    ("GET", "/v3/schemas/{schema_id}"): Rule(Need.USER, project=NONE),
    ("GET", f"{P}/schemas"): Rule(Need.READ),
    ("GET", f"{P}/schemas/{{schema_id}}"): Rule(Need.READ),
    # notifiers: admins make them, anyone names them (their secrets are never shown)
    ("GET", "/v3/notifiers"): Rule(Need.USER, project=NONE),
    ("POST", "/v3/notifiers"): Rule(Need.ADMIN, project=NONE),
    ("GET", "/v3/notifiers/{notifier_id}"): Rule(Need.USER, project=NONE),
    ("PUT", "/v3/notifiers/{notifier_id}"): Rule(Need.ADMIN, project=NONE),
    ("DELETE", "/v3/notifiers/{notifier_id}"): Rule(Need.ADMIN, project=NONE),
    # projects
    ("GET", "/v3/projects"): Rule(Need.USER, project=NONE),
    ("POST", "/v3/projects"): Rule(Need.USER, project=NONE),
    ("GET", P): Rule(Need.READ),
    ("PUT", P): Rule(Need.OWNER),
    ("DELETE", P): Rule(Need.OWNER),
    # pipelines
    ("GET", f"{P}/pipelines"): Rule(Need.READ),
    ("POST", f"{P}/pipelines"): Rule(Need.MEMBER),
    ("GET", f"{P}/pipelines/{{pipeline_id}}"): Rule(Need.READ),
    ("PUT", f"{P}/pipelines/{{pipeline_id}}"): Rule(Need.MEMBER),
    ("DELETE", f"{P}/pipelines/{{pipeline_id}}"): Rule(Need.MEMBER),
    ("POST", f"{P}/pipelines/{{pipeline_id}}"): Rule(Need.MEMBER, PIPELINE_ACTIONS),
    ("GET", f"{P}/pipelines/{{pipeline_id}}/view"): Rule(Need.READ),
    ("GET", f"{P}/pipelines/{{pipeline_id}}/export"): Rule(Need.READ),
    ("GET", f"{P}/pipelines/{{pipeline_id}}/badge.svg"): Rule(Need.READ, public=True),
    # a pipeline read from its repository: its branches and file (read), a commit (member)
    ("GET", f"{P}/pipelines/{{pipeline_id}}/branches"): Rule(Need.READ),
    ("GET", f"{P}/pipelines/{{pipeline_id}}/configs"): Rule(Need.READ),
    ("GET", f"{P}/pipelines/{{pipeline_id}}/yaml"): Rule(Need.READ),
    ("PUT", f"{P}/pipelines/{{pipeline_id}}/yaml"): Rule(Need.MEMBER),
    # executions and their logs
    ("GET", f"{P}/pipelineexecutions"): Rule(Need.READ),
    ("GET", f"{P}/pipelineexecutions/{{execution_id}}"): Rule(Need.READ),
    ("POST", f"{P}/pipelineexecutions/{{execution_id}}"): Rule(
        Need.MEMBER, {"stop": Need.MEMBER, "rerun": Need.MEMBER}),
    ("GET", f"{P}/pipelineexecutionlogs"): Rule(Need.READ),
    ("GET", f"{P}/pipelineexecutionlogs/{{log_id}}"): Rule(Need.READ),
    # a project's secrets: its owners (values are never shown, to anyone)
    ("GET", f"{P}/secrets"): Rule(Need.OWNER),
    ("POST", f"{P}/secrets"): Rule(Need.OWNER),
    ("GET", f"{P}/secrets/{{name}}"): Rule(Need.OWNER),
    ("PUT", f"{P}/secrets/{{name}}"): Rule(Need.OWNER),
    ("DELETE", f"{P}/secrets/{{name}}"): Rule(Need.OWNER),
    # its registry logins: its owners (passwords are never shown, to anyone)
    ("GET", f"{P}/dockercredentials"): Rule(Need.OWNER),
    ("POST", f"{P}/dockercredentials"): Rule(Need.OWNER),
    ("GET", f"{P}/dockercredentials/{{name}}"): Rule(Need.OWNER),
    ("PUT", f"{P}/dockercredentials/{{name}}"): Rule(Need.OWNER),
    ("DELETE", f"{P}/dockercredentials/{{name}}"): Rule(Need.OWNER),
    # role bindings: the project is in the body or the binding id
    ("GET", "/v3/projectroletemplatebindings"): Rule(Need.USER, project=HANDLER),
    ("POST", "/v3/projectroletemplatebindings"): Rule(Need.OWNER, project=HANDLER),
    ("GET", "/v3/projectroletemplatebindings/{binding_id}"): Rule(Need.READ, project=HANDLER),
    ("DELETE", "/v3/projectroletemplatebindings/{binding_id}"): Rule(Need.OWNER, project=HANDLER),
    # cluster pipelines: the forges' OAuth apps of a cluster (admins), linking one's own account (anyone)
    ("GET", "/v3/clusters/{cluster_id}/clusterpipelines"): Rule(Need.USER, project=NONE),
    ("POST", "/v3/clusters/{cluster_id}/clusterpipelines"): Rule(Need.ADMIN, project=NONE),
    ("GET", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): Rule(Need.USER, project=NONE),
    ("PUT", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): Rule(Need.ADMIN, project=NONE),
    ("POST", "/v3/clusters/{cluster_id}/clusterpipelines/{pipeline_id}"): Rule(
        Need.ADMIN, CLUSTER_ACTIONS, project=NONE),
    # a user's own forge accounts and repositories (each sees only their own)
    ("GET", "/v3/sourcecodecredentials"): Rule(Need.USER, project=NONE),
    ("GET", "/v3/sourcecodecredentials/{credential_id}"): Rule(Need.USER, project=NONE),
    ("DELETE", "/v3/sourcecodecredentials/{credential_id}"): Rule(Need.USER, project=NONE),
    ("POST", "/v3/sourcecodecredentials/{credential_id}"): Rule(Need.USER, project=NONE),
    ("GET", "/v3/sourcecoderepositories"): Rule(Need.USER, project=NONE),
    ("GET", "/v3/sourcecoderepositories/{repository_id}"): Rule(Need.USER, project=NONE),
}


def rule_of(method: str, path: str) -> Rule | None:
    return RULES.get((method, path))


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves: its OpenAPI document's, and the
    routes left out of it."""
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
             for method in operations}
    found.update((method, route.path) for route in app.routes if isinstance(route, APIRoute)
                 for method in route.methods)
    return sorted(found)


def check_routes(app: FastAPI) -> None:
    """Refuse routes without a rule (a new route must say who may call it)."""
    missing = [f"{method} {path}" for method, path in routes_of(app) if (method, path) not in RULES]
    if missing:
        raise RuntimeError(f"routes without an access rule in api/access.py: {', '.join(missing)}")


@dataclass(frozen=True)
class Caller:
    """Who calls: their user id, and whether they are an admin."""

    user_id: str
    admin: bool


async def caller(request: Request) -> Caller:
    """The caller of the request (authenticated once per request)."""
    known = getattr(request.state, "caller", None)
    if known is not None:
        return known
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("send Authorization: Bearer <token> (prefect-pipelines token create)")
    client = request.app.state.prefect_client
    user = await request.app.state.tokens.user(client, token.strip())
    if user is None:
        raise UnauthorizedError("the token is not valid (unknown or revoked)")
    found = Caller(user, await request.app.state.access.admin(client, user))
    request.state.caller = found
    return found


async def enforce(request: Request) -> None:
    """The route's rule, for the caller (a dependency of every route)."""
    route = request.scope.get("route")
    rule = rule_of(request.method, getattr(route, "path", ""))
    if rule is None:  # check_routes makes this unreachable; refuse rather than allow
        raise PermissionDeniedError("this route has no access rule")
    need = rule.need_for(request.query_params.get("action"))
    if need is Need.ANYONE or (rule.public and "authorization" not in request.headers):
        return
    who = await caller(request)
    if need is Need.ADMIN and not who.admin:
        raise PermissionDeniedError("only an admin may do this")
    if rule.project == "path" and need in (Need.READ, Need.MEMBER, Need.OWNER):
        await require(request, request.path_params.get("project_id", ""), need)


async def require(request: Request, project_id: str, need: Need) -> str:
    """The caller's role in a project, when it grants `need`: 404 for a project that does
    not exist or in which the caller holds no role, 403 for a role too weak."""
    who = await caller(request)
    client = request.app.state.prefect_client
    try:
        check_project_id(project_id)
    except Exception:  # noqa: BLE001 - a malformed id names no project
        raise NotFoundError(f"project {project_id!r} not found") from None
    if who.admin:
        # A project whose pipelines an operator made with `prefect deploy` after the
        # facade started is adopted when an admin first asks for it.
        if await projects.read_project(client, project_id) is None:
            await projects.adopt(client, project_id)
            if await projects.read_project(client, project_id) is None:
                raise NotFoundError(f"project {project_id!r} not found")
        return "admin"
    role = await request.app.state.access.role(client, project_id, who.user_id)
    if role is None:
        raise NotFoundError(f"project {project_id!r} not found")
    if not projects.at_least(role, need.value):
        raise PermissionDeniedError(f"{who.user_id} is {role} in {project_id}: this needs {need.value}")
    return role

"""The `prefect-pipelines` command."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

# Each command imports what it needs inside its function, not here: `prefect-pipelines
# --help` starts without loading Prefect, docker or FastAPI (seconds), and each command
# loads only what it uses.

app = typer.Typer(
    name="prefect-pipelines",
    help="Rancher-2-style CI/CD pipelines on Prefect 3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Rancher-2-style CI/CD pipelines on Prefect 3."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@app.command("exec")
def exec_(
    pipeline_file: Annotated[Optional[Path], typer.Argument(
        help="The pipeline YAML file. Without one: the .rancher-pipeline.yml (or .yaml) of "
        "the workspace (--workspace, else this directory), which is then the source.")] = None,
    branch: Annotated[
        Optional[str], typer.Option("--branch", "-b", help="The branch to build.")
    ] = None,
    workspace: Annotated[
        Optional[Path],
        typer.Option(
            "--workspace",
            "-w",
            help="Use this directory as the workspace and keep it. If it is not empty, "
            "it is the source: the clone step uses it instead of cloning.",
        ),
    ] = None,
    pipeline_id: Annotated[
        Optional[str], typer.Option("--id", help="The pipeline id (default: its name or file name).")
    ] = None,
) -> None:
    """Run a pipeline file once, as a Prefect flow run, printing each step's output."""
    from prefect_pipelines.settings import get_settings
    from prefect_pipelines.translator import PipelineSpecError, parse_pipeline_yaml
    from prefect_pipelines.translator.pipeline_file import CONFIG_FILES, parse_pipeline_file

    settings = get_settings()
    clone: dict[str, str] | None = None  # the implicit clone of a repository's own file
    if pipeline_file is None:  # a repository's own file: the directory is the source
        source = (workspace or Path.cwd()).resolve()
        found = [source / name for name in CONFIG_FILES if (source / name).is_file()]
        if not found:
            raise _fail(f"no {' or '.join(CONFIG_FILES)} in {source}: name a pipeline file")
        pipeline_file, workspace = found[0], source
        branch = branch or _git_out(source, "rev-parse", "--abbrev-ref", "HEAD").replace("HEAD", "") or None
        clone = {"url": _git_out(source, "remote", "get-url", "origin") or source.as_uri(),
                 "branchCondition": "all"}
    try:
        text = pipeline_file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {pipeline_file}: {exc.strerror or exc}") from None
    try:
        if clone is not None:
            config = parse_pipeline_file(text, file_name=pipeline_file.name,
                                         clone=clone, max_bytes=settings.max_pipeline_bytes)
        else:
            config = parse_pipeline_yaml(
                text, min_cron_interval_seconds=settings.min_cron_interval,
                max_bytes=settings.max_pipeline_bytes,
            )
    except PipelineSpecError as exc:
        raise _fail(str(exc) if exc.file else f"{pipeline_file}: {exc}") from None

    from prefect_pipelines.flows import LocalOptions, local_options, run_pipeline
    from prefect_pipelines.flows.executors import describe_executor, pin_executor, resolve_executor
    from prefect_pipelines.flows.output import console

    choice = resolve_executor(settings)
    typer.echo(describe_executor(settings, choice))
    pin_executor(choice)
    console.enabled = True
    _quiet_prefect_console()
    stem = pipeline_file.parent.name if clone is not None else pipeline_file.stem
    default_id = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "pipeline"
    local_options.set(LocalOptions(workspace=workspace.resolve() if workspace else None))
    state = run_pipeline(
        pipeline=config.to_dict(),
        pipeline_id=pipeline_id or config.name or default_id,
        branch=branch,
        return_state=True,
    )
    if state.is_completed():
        raise typer.Exit(0)
    typer.secho(f"{state.name}: {state.message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _git_out(directory: Path, *argv: str) -> str:
    """What `git -C directory argv...` prints, stripped; "" when it fails."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(directory), *argv], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


@app.command()
def worker(
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="The work pool (default: the setting).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="The worker's name.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-l", help="Most executions at once.")] = None,
) -> None:
    """Run a worker that executes pipeline runs (woken by Prefect events, warm process)."""
    import asyncio

    from prefect_pipelines.settings import get_settings
    from prefect_pipelines.worker import run_worker

    settings = get_settings()
    asyncio.run(run_worker(pool or settings.work_pool, name=name, limit=limit,
                           poll_seconds=settings.worker_poll_seconds))


@app.command()
def api(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the /v3 facade (needs PREFECT_API_URL)."""
    import uvicorn

    from prefect_pipelines.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "prefect_pipelines.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        lifespan="on",
        # Longer than the idle timeouts of clients and load balancers (60 s is common),
        # so a client never sends on a connection the facade is closing.
        timeout_keep_alive=75,
    )


@app.command()
def server(
    host: Annotated[Optional[str], typer.Option(help="Address of the /v3 facade.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port of the /v3 facade.")] = None,
) -> None:
    """Start everything on this machine: Prefect server (unless PREFECT_API_URL is set),
    a worker and the /v3 facade. Ctrl-C stops all of it."""
    from prefect_pipelines.embedded import serve

    raise typer.Exit(serve(api_host=host, api_port=port))


token_app = typer.Typer(help="API tokens of the /v3 facade (only their hashes are stored).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


def _with_client(work):  # type: ignore[no-untyped-def]
    """Run `work(client)` against the configured Prefect server, errors as messages."""
    import asyncio

    from prefect.settings import PREFECT_API_URL

    from prefect_pipelines.errors import ApiError
    from prefect_pipelines.services.client import pipelines_client

    if not PREFECT_API_URL.value():
        raise _fail("PREFECT_API_URL is not set: point it at the Prefect server")

    async def run():  # type: ignore[no-untyped-def]
        async with pipelines_client() as client:
            return await work(client)

    try:
        return asyncio.run(run())
    except ApiError as exc:
        raise _fail(exc.message) from None


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", "-u", help="The user id the token stands for.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin (every role "
                                        "in every project, cluster pipelines).")] = False,
) -> None:
    """Create a token for a user and print it (it cannot be shown again)."""
    from prefect_pipelines.services.projects import set_admin
    from prefect_pipelines.services.tokens import create_token

    async def make(client):  # type: ignore[no-untyped-def]
        token = await create_token(client, user)
        if admin:
            await set_admin(client, user, True)
        return token

    typer.echo(_with_client(make))


@token_app.command("revoke")
def token_revoke(
    token: Annotated[Optional[str], typer.Argument(help="The token to revoke.")] = None,
    user: Annotated[Optional[str], typer.Option("--user", "-u", help="Revoke every token of this user.")] = None,
) -> None:
    """Revoke one token, or every token of a user."""
    from prefect_pipelines.services.tokens import revoke_token, revoke_user_tokens

    if (token is None) == (user is None):
        raise _fail("give a token, or --user USER")
    if token is not None:
        owner = _with_client(lambda client: revoke_token(client, token))
        typer.echo(f"revoked a token of {owner}")
    else:
        from prefect_pipelines.services.projects import is_admin, set_admin

        async def revoke(client):  # type: ignore[no-untyped-def]
            count = await revoke_user_tokens(client, user)
            was_admin = await is_admin(client, user)
            if was_admin:  # a user whose every token is revoked is an admin no more
                await set_admin(client, user, False)
            return count, was_admin

        count, was_admin = _with_client(revoke)
        typer.echo(f"revoked {count} token(s) of {user}" + ("; no longer an admin" if was_admin else ""))


@token_app.command("list")
def token_list(
    user: Annotated[Optional[str], typer.Option("--user", "-u", help="Only this user's tokens.")] = None,
) -> None:
    """List tokens: user, creation time, the start of the hash (never the token)."""
    from prefect_pipelines.services.projects import admins
    from prefect_pipelines.services.tokens import list_tokens

    async def read(client):  # type: ignore[no-untyped-def]
        return await list_tokens(client, user), await admins(client)

    infos, admin_users = _with_client(read)
    for info in infos:
        role = "admin" if info.user_id in admin_users else "user"
        typer.echo(f"{info.user_id}\t{role}\t{info.created}\tsha256:{info.digest_prefix}...")


project_app = typer.Typer(help="Projects (operators; talks to Prefect directly).", no_args_is_help=True)
member_app = typer.Typer(help="Who holds which role in a project.", no_args_is_help=True)
secret_app = typer.Typer(help="A project's secrets, for envFrom (values are never shown).",
                         no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(member_app, name="member")
app.add_typer(secret_app, name="secret")
_ROLE = typer.Option("--role", "-r", help="project-owner, project-member or read-only.")


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="The project's name.")],
    owner: Annotated[str, typer.Option("--owner", "-o", help="The user who owns it.")],
    cluster: Annotated[str, typer.Option("--cluster", "-c", help="Its cluster.")] = "local",
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Create a project owned by a user; print its id."""
    from prefect_pipelines.services.projects import create_project

    project = _with_client(lambda client: create_project(
        client, cluster_id=cluster, name=name, description=description, creator_id=owner))
    typer.echo(project.id)


@project_app.command("list")
def project_list() -> None:
    """Every project: id, name, owners."""
    from prefect_pipelines.services.projects import bindings, projects_of

    async def read(client):  # type: ignore[no-untyped-def]
        found = await projects_of(client, "", admin=True)
        every = await bindings(client)
        return found, every

    found, every = _with_client(read)
    for project in found:
        owners = sorted(b.user_id for b in every if b.project_id == project.id and b.role == "project-owner")
        typer.echo(f"{project.id}\t{project.name}\towners: {', '.join(owners) or '-'}")


@member_app.command("add")
def member_add(
    project: Annotated[str, typer.Argument(help="The project id.")],
    user: Annotated[str, typer.Argument(help="The user id.")],
    role: Annotated[str, _ROLE] = "project-member",
) -> None:
    """Give a user a role in a project."""
    from prefect_pipelines.services.projects import grant, read_project

    async def add(client):  # type: ignore[no-untyped-def]
        if await read_project(client, project) is None:
            from prefect_pipelines.errors import NotFoundError

            raise NotFoundError(f"project {project!r} not found")
        return await grant(client, project, user, role)

    binding = _with_client(add)
    typer.echo(f"{binding.user_id} is {binding.role} in {binding.project_id}")


@member_app.command("list")
def member_list(project: Annotated[str, typer.Argument(help="The project id.")]) -> None:
    """The members of a project and their roles."""
    from prefect_pipelines.services.projects import bindings

    for binding in _with_client(lambda client: bindings(client, project_id=project)):
        typer.echo(f"{binding.user_id}\t{binding.role}")


@member_app.command("remove")
def member_remove(
    project: Annotated[str, typer.Argument(help="The project id.")],
    user: Annotated[str, typer.Argument(help="The user id.")],
) -> None:
    """Take a user's role in a project away (the last owner stays)."""
    from prefect_pipelines.errors import NotFoundError
    from prefect_pipelines.services.projects import bindings, remove_binding

    async def remove(client):  # type: ignore[no-untyped-def]
        found = await bindings(client, project_id=project, user_id=user)
        if not found:
            raise NotFoundError(f"{user} holds no role in {project}")
        await remove_binding(client, found[0])

    _with_client(remove)
    typer.echo(f"{user} holds no role in {project} any more")


@secret_app.command("set")
def secret_set(
    project: Annotated[str, typer.Argument(help="The project id.")],
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    pairs: Annotated[list[str], typer.Argument(help="KEY=value ... (or KEY=- to read the value from stdin).")],
) -> None:
    """Create or replace a secret of a project."""
    from prefect_pipelines.services.secrets import SECRETS, put_secret

    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise _fail(f"{pair!r} is not KEY=value")
        data[key] = sys.stdin.read().rstrip("\n") if value == "-" else value

    async def put(client):  # type: ignore[no-untyped-def]
        exists = await SECRETS.exists(client, project, name)
        return await put_secret(client, project, name, data, create=not exists)

    info = _with_client(put)
    typer.echo(f"secret {info.name} of {info.project_id}: {', '.join(info.keys)}")


@secret_app.command("list")
def secret_list(project: Annotated[str, typer.Argument(help="The project id.")]) -> None:
    """A project's secrets: names and keys (never values)."""
    from prefect_pipelines.services.secrets import list_secrets

    for info in _with_client(lambda client: list_secrets(client, project)):
        typer.echo(f"{info.name}\t{', '.join(info.keys)}")


@secret_app.command("delete")
def secret_delete(
    project: Annotated[str, typer.Argument(help="The project id.")],
    name: Annotated[str, typer.Argument(help="The secret's name.")],
) -> None:
    """Delete a secret of a project."""
    from prefect_pipelines.services.secrets import delete_secret

    _with_client(lambda client: delete_secret(client, project, name))
    typer.echo(f"deleted secret {name} of {project}")


def _quiet_prefect_console() -> None:
    """Step output is printed by `exec` itself; Prefect's run loggers still go to the API."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).propagate = False


def main() -> None:
    """Entry point of the `prefect-pipelines` script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

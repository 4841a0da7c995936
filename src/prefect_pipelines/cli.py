"""The `prefect-pipelines` command."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

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
    pipeline_file: Annotated[Path, typer.Argument(help="The pipeline YAML file.")],
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

    try:
        text = pipeline_file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {pipeline_file}: {exc.strerror or exc}") from None
    settings = get_settings()
    try:
        config = parse_pipeline_yaml(
            text, min_cron_interval_seconds=settings.min_cron_interval,
            max_bytes=settings.max_pipeline_bytes,
        )
    except PipelineSpecError as exc:
        raise _fail(f"{pipeline_file}: {exc}") from None

    from prefect_pipelines.flows import LocalOptions, local_options, run_pipeline
    from prefect_pipelines.flows.executors import describe_executor, pin_executor, resolve_executor
    from prefect_pipelines.flows.output import console

    choice = resolve_executor(settings)
    typer.echo(describe_executor(settings, choice))
    pin_executor(choice)
    console.enabled = True
    _quiet_prefect_console()
    default_id = re.sub(r"[^a-z0-9-]+", "-", pipeline_file.stem.lower()).strip("-") or "pipeline"
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
        count = _with_client(lambda client: revoke_user_tokens(client, user))
        typer.echo(f"revoked {count} token(s) of {user}")


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


def _quiet_prefect_console() -> None:
    """Step output is printed by `exec` itself; Prefect's run loggers still go to the API."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).propagate = False


def main() -> None:
    """Entry point of the `prefect-pipelines` script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Where steps run: `docker` (a container per step) and `process` (the host's shell).

The choice is made once, when a worker or `exec` starts (`resolve_executor`), and handed
to its runs as the setting `PREFECT_PIPELINES_EXECUTOR` (`pin_executor`). A run that
still finds `auto` (one a stock Prefect worker started) uses docker, never the host.
"""

from __future__ import annotations

import getpass
import os
import socket
from typing import Literal

from prefect_pipelines.settings import Settings, get_settings

EXECUTOR_ENV = "PREFECT_PIPELINES_EXECUTOR"
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
ExecutorName = Literal["docker", "process"]


def resolve_executor(settings: Settings) -> ExecutorName:
    """The executor a worker or `exec` uses from its start on.

    `docker` and `process` are taken as set; `auto` is docker when an engine answers a
    ping now (waiting at most 10 s), else process. Call it once, at start.
    """
    if settings.executor != "auto":
        return settings.executor
    # Here, not at the top: docker.py imports this module, and the docker SDK is loaded
    # only when an engine is to be pinged (the CLI and `server` import this module).
    from prefect_pipelines.flows.executors.docker import engine_answers

    return "docker" if engine_answers(settings.docker_host) else "process"


def pin_executor(choice: ExecutorName) -> None:
    """Make `choice` the setting of this process's runs (and of processes it starts
    from `os.environ`), and re-read the settings."""
    os.environ[EXECUTOR_ENV] = choice
    get_settings.cache_clear()


def engine_url(docker_host: str | None) -> str:
    """The docker engine URL a client uses: the setting, DOCKER_HOST, or the socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def host_user() -> str:
    """The user steps of the process executor run as."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def process_notice() -> str:
    """The line every run on the process executor starts its log with."""
    return (f"executor process: steps run on the host {socket.gethostname()} as "
            f"{host_user()}; images are not used")


def describe_executor(settings: Settings, choice: ExecutorName) -> str:
    """The line a worker or `exec` prints at start about the executor it chose."""
    url = engine_url(settings.docker_host)
    if choice == "process":
        why = (f"no docker engine answered at {url}" if settings.executor == "auto"
               else f"{EXECUTOR_ENV}=process")
        return f"executor: process ({why}): steps run on this host as {host_user()}"
    # Not at the top: see resolve_executor.
    from prefect_pipelines.flows.executors.docker import engine_answers

    if settings.executor == "docker" and not engine_answers(settings.docker_host):
        return (f"executor: docker (engine {url}, which does not answer now: runs fail "
                "until it does)")
    return f"executor: docker (engine {url})"


__all__ = [
    "DEFAULT_ENGINE_URL",
    "EXECUTOR_ENV",
    "ExecutorName",
    "describe_executor",
    "engine_url",
    "host_user",
    "pin_executor",
    "process_notice",
    "resolve_executor",
]

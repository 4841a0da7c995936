"""Settings of prefect-pipelines, read from `PREFECT_PIPELINES_*` environment variables.

Credentials never live here: they are Prefect blocks. Read settings through
`get_settings()`, which caches one instance; `get_settings.cache_clear()` re-reads them.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of prefect-pipelines, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="PREFECT_PIPELINES_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    # Where runs go
    work_pool: str = Field(
        default="pipelines",
        description="The Prefect work pool pipelines run on (Prefect reserves names "
        "that start with 'prefect').",
    )
    worker_poll_seconds: float = Field(
        default=5.0, gt=0,
        description="How often a worker polls for runs besides being woken by events.",
    )
    flow_name: str = Field(
        default="run-pipeline", description="The Prefect flow every pipeline deploys."
    )

    # Executing steps
    executor: Literal["auto", "docker", "process"] = Field(
        default="auto",
        description="How steps run: in containers (docker), on the host (process), or "
        "auto: chosen once when a worker or `exec` starts (docker if an engine answers then); "
        "a run that finds auto uses docker.",
    )
    docker_host: str | None = Field(
        default=None, description="The docker engine URL; unset means DOCKER_HOST or the socket."
    )
    docker_network: str | None = Field(
        default=None,
        description="Network mode of step containers and image builds (none, host, a "
        "network name); unset means the engine's default.",
    )
    workspace_root: Path = Field(
        default=Path(tempfile.gettempdir()) / "prefect-pipelines" / "workspaces",
        description="Where each execution's workspace directory is made.",
    )
    clone_depth: int = Field(
        default=50, ge=0, description="History depth of clones; 0 clones everything."
    )
    allowed_git_schemes: str = Field(
        default="https,http,ssh,git",
        description="Comma-separated URL schemes a clone may use (file is off by default).",
    )
    cancel_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often a run checks whether it was cancelled."
    )
    heartbeat_seconds: int = Field(
        default=10, ge=1, description="How often a running execution tells Prefect it is "
        "alive (a flow-run heartbeat event, sent by the run itself).",
    )
    lost_after_seconds: int = Field(
        default=50, ge=10, description="Silence after which a running execution's worker "
        "counts as lost and the execution is marked failed (at least 10 s, Prefect's "
        "shortest proactive automation, and at least three heartbeats; a "
        "Prefect server that is down for longer than this minus one heartbeat may have "
        "live runs marked lost when it comes back).",
    )
    reap_seconds: float = Field(
        default=10, gt=0, description="How often a worker removes containers that runs "
        "which are over left behind (a lost worker's, say).",
    )
    log_flush_seconds: float = Field(
        default=0.2, gt=0, description="Longest time a step's output waits before it is logged."
    )
    log_chunk_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest step-output record sent to Prefect."
    )

    # The /v3 API
    api_host: str = Field(default="127.0.0.1", description="Address the /v3 facade listens on.")
    api_port: int = Field(default=8080, description="Port the /v3 facade listens on.")
    public_url: str = Field(
        default="",
        description="The facade's URL as forges and browsers reach it (webhooks, commit "
        "status links); default http://API_HOST:API_PORT.",
    )
    log_limit_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest step log the API returns (latest part)."
    )
    executor_quota: int = Field(
        default=2,
        description="Most executions of one project that run at once; the rest queue "
        "(0 or less: no limit). Applied as the project's Prefect work-queue limit.",
    )
    run_queue_seconds: float = Field(
        default=20, gt=0, description="Longest a `run` call waits for its turn to start a "
        "run in one facade before it is answered 503 with Retry-After.",
    )
    notify_sweep_seconds: float = Field(
        default=30, gt=0, description="How often a facade looks for finished executions "
        "whose notifications nobody sent (no facade ran as they ended, or the one that "
        "claimed them stopped), and sends them.")
    notify_window_minutes: float = Field(
        default=60, gt=0, description="How far back a starting facade looks for finished "
        "executions whose notifications were not sent.")
    notify_attempts: int = Field(
        default=3, ge=1, le=10, description="How often a notification is tried before it "
        "is given up (logged on the execution).")
    notify_timeout_seconds: float = Field(
        default=15, gt=0, description="How long one try of a notification may take.")
    delivery_sweep_seconds: float = Field(
        default=30, gt=0, description="How often a facade looks for recorded webhook "
        "deliveries whose facade stopped before making their runs, and makes them; a "
        "facade that stops unasked is noticed within two of these.",
    )
    min_cron_interval: float = Field(
        default=300, ge=0, description="Shortest gap (seconds) a cron trigger may have."
    )
    token_cache_seconds: float = Field(
        default=5, ge=0, description="How long the facade trusts a token it has checked; a "
        "revoked token stops working within this time (0: check every request).",
    )
    max_pipeline_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest pipeline definition accepted."
    )

    # The embedded Prefect server started by `prefect-pipelines server`
    prefect_host: str = Field(default="127.0.0.1", description="Embedded Prefect server address.")
    prefect_port: int = Field(default=4200, description="Embedded Prefect server port.")

    @model_validator(mode="after")
    def _lost_after_three_beats(self) -> Settings:
        if self.lost_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                f"lost_after_seconds ({self.lost_after_seconds}) must be at least three "
                f"heartbeats (3 x heartbeat_seconds = {3 * self.heartbeat_seconds}): a run "
                "must miss more than one beat before it counts as lost")
        return self

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://{self.api_host}:{self.api_port}"
        return self

    def git_schemes(self) -> set[str]:
        """`allowed_git_schemes` as a set."""
        return {part.strip() for part in self.allowed_git_schemes.split(",") if part.strip()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once."""
    return Settings()

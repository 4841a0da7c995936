"""What every executor gets for a step, and what it gives back."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from prefect_pipelines.flows.control import StopReason, StopToken, start_thread
from prefect_pipelines.flows.output import StepOutput
from prefect_pipelines.translator.spec import PublishImageConfig, RunScriptConfig

LABEL_PREFIX = "io.prefect-pipelines"
LABEL_FLOW_RUN = f"{LABEL_PREFIX}.flow-run-id"
LABEL_EXECUTION = f"{LABEL_PREFIX}.execution-id"
LABEL_STEP = f"{LABEL_PREFIX}.step"


class ExecutorError(RuntimeError):
    """A step could not be run at all (no engine, image missing, ...)."""


@dataclass
class StepContext:
    """One step about to run."""

    label: str
    workspace: Path
    env: dict[str, str]
    output: StepOutput
    token: StopToken
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    """How a step ended.

    `stopped` says why it was stopped from outside (cancelled, aborted, timeout), if it
    was; otherwise `exit_code` decides.
    """

    exit_code: int | None
    stopped: StopReason | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the step succeeded."""
        return self.stopped is None and self.exit_code == 0


class Executor(Protocol):
    """Runs steps somewhere: in containers, or on the host."""

    name: str

    def run_script(self, config: RunScriptConfig, ctx: StepContext) -> StepResult:
        """Run a runScriptConfig step and stream its output."""
        ...

    def publish_image(self, config: PublishImageConfig, ctx: StepContext) -> StepResult:
        """Build and push an image."""
        ...

    def cleanup(self, flow_run_id: str) -> int:
        """Remove whatever the run left behind; return how many things were removed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# Prepended to shell scripts: stderr joins stdout, so the log keeps the order the script
# wrote its lines in (two pipes, read separately by the engine, would not).
MERGE_STDERR = "exec 2>&1\n"


def script_argv(config: RunScriptConfig) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, command) of a runScriptConfig step.

    With isShell the script runs as `sh -c <script>`; the script is one argument, so
    nothing from outside is ever spliced into it (values reach it as environment only).
    """
    if config.is_shell:
        return ["sh", "-c", MERGE_STDERR + (config.shell_script or "")], None
    return _argv(config.entrypoint), _argv(config.command)


def _argv(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else list(value)


def watch(token: StopToken, on_stop: Callable[[], None]) -> threading.Thread:
    """Call `on_stop` in a thread as soon as `token` is stopped or times out.

    The thread ends without calling it when the token is finished first.
    """

    def run() -> None:
        if token.wait() is not None:
            on_stop()

    return start_thread(run, "step-watch")


def stop_message(reason: StopReason, token: StopToken, timeout_seconds: float | None) -> str:
    """The sentence a step's log and state get when it was stopped."""
    if reason == "timeout":
        minutes = (timeout_seconds or 0) / 60
        return f"timed out after {minutes:g} minute(s)"
    if reason == "aborted":
        return token.detail or "aborted: another step of this stage failed"
    return f"cancelled: {token.detail}" if token.detail else "cancelled"

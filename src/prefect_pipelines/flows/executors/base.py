"""What every executor gets for a step, and what it gives back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from prefect_pipelines.flows.control import StopReason, StopToken, start_thread
from prefect_pipelines.flows.output import StepOutput
from prefect_pipelines.translator.plan import PublishStep, ScriptStep


class ExecutorError(RuntimeError):
    """A step could not be run at all (no engine, image missing, ...)."""


@dataclass
class StepContext:
    """One step about to run."""

    label: str
    workspace: Path
    env: dict[str, str]  # everything the step sees: the resolved step's and its secrets
    output: StepOutput
    token: StopToken
    labels: dict[str, str] = field(default_factory=dict)
    mounts: dict[str, dict[str, str]] = field(default_factory=dict)  # host dir -> bind (caches)


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

    def run_script(self, step: ScriptStep, ctx: StepContext) -> StepResult:
        """Run a resolved runScriptConfig step and stream its output."""
        ...

    def publish_image(self, step: PublishStep, ctx: StepContext) -> StepResult:
        """Build and push an image of a resolved publishImageConfig step."""
        ...

    def cleanup(self, flow_run_id: str) -> int:
        """Remove whatever the run left behind; return how many things were removed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


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

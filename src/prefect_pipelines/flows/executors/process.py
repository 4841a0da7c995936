"""The process executor: scripts run with the host's shell, for hosts with no docker engine."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from prefect_pipelines.flows.executors.base import (
    ExecutorError,
    StepContext,
    StepResult,
    watch,
)
from prefect_pipelines.gitenv import host_env
from prefect_pipelines.translator.plan import PublishStep, ScriptStep


def run_streaming(
    argv: list[str], ctx: StepContext, *, cwd: Path, env: dict[str, str]
) -> tuple[int | None, str]:
    """Run a host process in its own process group, streaming its output to the step.

    A stop of the step kills the whole group.

    Returns:
        (exit code, error text); the exit code is None when the process did not start.
    """
    if ctx.token.stopped:
        return None, ""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return None, f"could not start {argv[0]}: {exc.strerror or exc}"
    watcher = watch(ctx.token, lambda: _kill_group(proc))
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            ctx.output.write_bytes(chunk)
        return proc.wait(), ""
    finally:
        ctx.token.finish()
        watcher.join(timeout=5)
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class ProcessExecutor:
    """Runs scripts on the host, in the workspace; cannot build images."""

    name = "process"

    def run_script(self, step: ScriptStep, ctx: StepContext) -> StepResult:
        """Run the script with the host's `sh` (or the entrypoint and command)."""
        ctx.output.info(
            f"process executor: the image {step.image!r} is not used; "
            "the script runs on the host in the workspace"
        )
        argv = [*(step.entrypoint or ()), *(step.command or ())]
        if not argv:
            return StepResult(None, message="isShell is false and the image's entrypoint is "
                              "unknown on the host: give entrypoint or command")
        code, error = run_streaming(
            argv, ctx, cwd=ctx.workspace, env=host_env(ctx.env)
        )
        if error:
            return StepResult(None, message=error)
        if ctx.token.reason is not None:
            return StepResult(code, stopped=ctx.token.reason)
        return StepResult(code, message="" if code == 0 else f"the script exited with code {code}")

    def publish_image(self, step: PublishStep, ctx: StepContext) -> StepResult:
        """Refuse: building images needs a docker engine."""
        raise ExecutorError(
            "publishImageConfig needs the docker executor, and this run uses the process "
            "executor (no docker engine answered when the worker or exec started, or "
            "PREFECT_PIPELINES_EXECUTOR=process)"
        )

    def cleanup(self, flow_run_id: str) -> int:
        """Nothing outlives a step here: its process group is killed when it ends."""
        return 0

    def close(self) -> None:
        """Nothing to release."""

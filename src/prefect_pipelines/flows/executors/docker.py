"""The docker executor: every step in its own container, through the docker SDK."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from prefect_pipelines.flows.executors import engine_url
from prefect_pipelines.flows.executors.base import (
    ExecutorError,
    StepContext,
    StepResult,
    watch,
)
from prefect_pipelines.translator.errors import ImageTagError
from prefect_pipelines.translator.plan import (
    PublishStep,
    ScriptStep,
    StepLimits,
    split_reference,
    workspace_path,
)
from prefect_pipelines.vocabulary import CONTAINER_FLOW_RUN, CONTAINER_STEP

CONTAINER_WORKSPACE = "/workspace"
OUTPUT_DIRECTORY = "/.prefect-pipelines"
_READ_SIZE = 1 << 20
_ENGINE_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ReadTimeout,
    ConnectionError,
)

class RegistryLogins(Protocol):
    """The registry logins of a run (flows/credentials.py)."""

    def login(self, registry: str) -> dict[str, str] | None:
        """The engine's auth config for a registry host ('' is Docker Hub), if any."""

    def private(self, registry: str) -> bool:
        """Whether the registry's images are pulled every time, with the run's login."""

    def has_private(self) -> bool:
        """Whether any registry is private."""


class NoLogins:
    """No registry logins; every registry is public."""

    def login(self, registry: str) -> dict[str, str] | None:
        return None

    def private(self, registry: str) -> bool:
        return False

    def has_private(self) -> bool:
        return False


def engine_answers(base_url: str | None = None, timeout: float = 10) -> bool:
    """True when a docker engine answers a ping within `timeout` seconds."""
    try:
        client = _client(base_url, timeout=timeout)
    except (docker.errors.DockerException, *_ENGINE_ERRORS):
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, *_ENGINE_ERRORS):
        return False
    finally:
        client.close()


def _client(base_url: str | None, timeout: float = 60) -> docker.DockerClient:
    if base_url:
        return docker.DockerClient(base_url=base_url, timeout=timeout, max_pool_size=64)
    return docker.from_env(timeout=timeout, max_pool_size=64)


_clients: dict[str | None, docker.DockerClient] = {}
_clients_lock = threading.Lock()


def shared_client(base_url: str | None) -> docker.DockerClient:
    """One client per engine for the whole process (its connection pool is thread-safe);
    a worker's runs share it instead of opening one each."""
    with _clients_lock:
        client = _clients.get(base_url)
        if client is None:
            client = _clients[base_url] = _client(base_url)
        return client


def _api_client(base_url: str | None, timeout: float = 600) -> docker.APIClient:
    """A client of its own, so closing it interrupts only the call it serves."""
    if base_url:
        return docker.APIClient(base_url=base_url, timeout=timeout)
    return docker.APIClient(timeout=timeout, **docker.utils.kwargs_from_env())


class DockerExecutor:
    """Runs script steps in containers and builds and pushes images.

    Args:
        base_url: the engine; None uses DOCKER_HOST or the default socket.
        network: network mode for containers and builds (None: the engine's default).
        logins: the run's registry logins: what a pull and a push log in with, and which
            registries' images are pulled every time (the engine's copy may have been
            pulled by a run with another login).
    """

    name = "docker"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        network: str | None = None,
        logins: RegistryLogins | None = None,
    ) -> None:
        self.base_url = base_url
        try:
            self.client = shared_client(base_url)
            self.client.ping()
        except (docker.errors.DockerException, *_ENGINE_ERRORS) as exc:
            raise ExecutorError(
                f"the docker engine does not answer at {engine_url(base_url)}: {exc}"
            ) from None
        self.network = network
        self.logins = logins or NoLogins()
        self._built: set[str] = set()  # tags this run built: its own, never pulled

    # -- run script -------------------------------------------------------------------

    def run_script(self, step: ScriptStep, ctx: StepContext) -> StepResult:
        """Run the step in a container of its image, streaming its output.

        A shell script's output goes to a file the worker reads as it grows (through a
        bind mount): the container writes at the speed of a file, where the engine's own
        output stream costs about twice the time of a busy step. Other steps' output is
        read from the container's attached stream. The engine keeps no copy either way.
        """
        sink = _OutputFile() if step.is_shell else None
        try:
            self._ensure_image(step.image, ctx)
            container = self.client.containers.create(**container_spec(
                step, ctx=ctx, network=self.network,
                output=(sink.directory, sink.redirect) if sink is not None else None))
        except docker.errors.APIError as exc:
            if sink is not None:
                sink.remove()
            return StepResult(None, message=f"could not create the container: {_explain(exc)}")
        except _ENGINE_ERRORS as exc:
            if sink is not None:
                sink.remove()
            return StepResult(None, message=f"the docker engine stopped answering: {exc}")
        try:
            return self._run_container(container, ctx, sink, step.limits.memory_limit)
        finally:
            if sink is not None:
                sink.remove()

    def _run_container(self, container: Any, ctx: StepContext, sink: _OutputFile | None,
                       memory_limit: str | None = None) -> StepResult:
        if ctx.token.stopped:  # stopped before it started: do not start it at all
            _remove(container)
            return StepResult(None, stopped=ctx.token.reason)
        watcher = None
        try:
            attached = None if sink is not None else container.attach(
                stdout=True, stderr=True, stream=True, logs=False)
            container.start()
            # Watch only once it runs: a kill before the start would be lost.
            watcher = watch(ctx.token, lambda: _kill(container))
            if sink is not None:
                exit_code = sink.follow(container, ctx)
            else:
                for chunk in attached:
                    ctx.output.write_bytes(chunk)
                exit_code = container.wait().get("StatusCode")
            if memory_limit and exit_code and not ctx.token.stopped and _out_of_memory(container):
                # Any process of it killed for memory (the script may go on and end
                # otherwise): the reason, not the code, is what people need to read.
                return StepResult(exit_code, message=f"out of memory (limit {memory_limit})")
            if exit_code in (137, 143) and not ctx.token.stopped:  # SIGKILL, SIGTERM
                killed = self._why_killed(container, exit_code)
                if killed:
                    return StepResult(exit_code, message=killed)
        except docker.errors.APIError as exc:
            if ctx.token.stopped:
                exit_code = None
            else:
                return StepResult(None, message=f"the container failed: {_explain(exc)}")
        except _ENGINE_ERRORS as exc:
            return StepResult(
                None, message=f"the docker engine stopped answering while the step ran: {exc}"
            )
        finally:
            ctx.token.finish()
            if watcher is not None:
                watcher.join(timeout=5)
            # The step is over: remove its container off the step's path (the run's
            # final cleanup removes any that is still there).
            threading.Thread(target=_remove, args=(container,), daemon=True).start()
        if ctx.token.reason is not None:
            return StepResult(exit_code, stopped=ctx.token.reason)
        message = "" if exit_code == 0 else f"the script exited with code {exit_code}"
        return StepResult(exit_code, message=message)

    def _why_killed(self, container: Any, exit_code: int) -> str:
        """Why a container ended by a signal nobody here sent: out of memory, or its engine
        going down (which kills its containers first and then stops answering); else ""."""
        try:
            container.reload()
            if (container.attrs.get("State") or {}).get("OOMKilled"):
                return f"the step ran out of memory: its container was killed (code {exit_code})"
            for _ in range(15):  # an engine going down stops answering within seconds
                self.client.api.info()
                time.sleep(0.2)
            return ""
        except (docker.errors.DockerException, *_ENGINE_ERRORS):
            return (f"the docker engine stopped while the step ran: its container was killed "
                    f"(code {exit_code})")

    def _ensure_image(self, image: str, ctx: StepContext) -> None:
        self.ensure_image(image, ctx.output.info)

    def ensure_image(self, image: str, info: Callable[[str], None]) -> None:
        """Pull `image` unless the engine has it (a private registry's: every time, with
        the run's login), telling `info` how the pull goes."""
        registry, repository, tag = split_reference(image)  # a base may be any reference
        private = image not in self._built and self.logins.private(registry)
        if not private:
            try:
                self.client.images.get(image)
                return
            except docker.errors.ImageNotFound:
                pass
        auth = self.logins.login(registry)
        info(f"pulling {image}" + (
            f" (a private registry's image: pulled every run, {'with' if auth else 'without'} "
            "this project's login)" if private else ""))
        last: dict[str, str] = {}
        for event in self.client.api.pull(
            repository, tag=tag, stream=True, decode=True, auth_config=auth
        ):
            if "error" in event:
                raise docker.errors.APIError(f"could not pull {image}: {event['error']}")
            status = event.get("status", "")
            layer = event.get("id", "")
            if status and last.get(layer) != status:
                last[layer] = status
                info(f"{layer}: {status}" if layer else status)

    # -- publish image ----------------------------------------------------------------

    def publish_image(self, step: PublishStep, ctx: StepContext) -> StepResult:
        """Build `dockerfilePath` in `buildContext`, tag it, and push the tag."""
        tag = step.tag
        dockerfile = workspace_path(str(ctx.workspace), step.dockerfile)
        ctx.output.info(f"building {tag} from {step.dockerfile} in {step.context}")
        # The base images are looked at first: one of a private registry is pulled with
        # this run's login (the engine's copy may be another project's). A base the
        # Dockerfile names through a build argument cannot be looked at: then the engine
        # pulls every base itself, without a login.
        bases = dockerfile_bases(_read_text(dockerfile))
        try:
            for base in bases or ():
                self._ensure_image(base, ctx)
        except (docker.errors.DockerException, ImageTagError) as exc:
            return StepResult(None, message=f"the base image: {exc}")
        pull = bases is None and self.logins.has_private()
        result = self._stream(
            ctx, lambda api: api.build(**build_spec(step, workspace=ctx.workspace, pull=pull,
                                                    network=self.network)),
            what="the build")
        if result.ok:
            self._built.add(tag)
        if not result.ok or not step.push:
            return result
        ctx.output.info(f"pushing {tag}")
        auth = self.logins.login(step.registry)
        if auth is None:
            ctx.output.info(f"no registry credentials match {step.registry or 'docker.io'}; "
                            "pushing without login")
        return self._stream(ctx, lambda api: api.push(**push_spec(step, auth)), what="the push")

    def _stream(
        self, ctx: StepContext, start: Callable[[docker.APIClient], Any], what: str
    ) -> StepResult:
        """Run a streaming engine call (build or push), logging its events.

        The call gets a connection of its own: stopping the step closes it, which makes
        the engine abandon the build or push.
        """
        api = _api_client(self.base_url)
        watcher = watch(ctx.token, api.close)
        last: dict[str, str] = {}
        try:
            for event in start(api):
                if ctx.token.stopped:
                    break
                if "error" in event:
                    detail = event.get("error", "")
                    ctx.output.info(f"error: {detail}")
                    return StepResult(1, message=f"{what} failed: {detail}")
                _log_event(event, ctx, last)
        except docker.errors.APIError as exc:
            if not ctx.token.stopped:
                return StepResult(1, message=f"{what} failed: {_explain(exc)}")
        except Exception as exc:
            # A stop closes the connection under the call: whatever that raises is expected.
            if not ctx.token.stopped:
                if not isinstance(exc, _ENGINE_ERRORS):
                    raise
                return StepResult(
                    None, message=f"the docker engine stopped answering during {what}: {exc}"
                )
        finally:
            ctx.token.finish()
            watcher.join(timeout=5)
            api.close()
        if ctx.token.reason is not None:
            return StepResult(None, stopped=ctx.token.reason)
        return StepResult(0)

    # -- housekeeping -----------------------------------------------------------------

    def cleanup(self, flow_run_id: str) -> int:
        """Remove every container labelled with this flow run."""
        removed = 0
        try:
            containers = self.client.containers.list(
                all=True, filters={"label": f"{CONTAINER_FLOW_RUN}={flow_run_id}"}
            )
        except (docker.errors.DockerException, *_ENGINE_ERRORS):
            return 0
        for container in containers:
            if _remove(container):
                removed += 1
        return removed

    def close(self) -> None:
        """Nothing to close: the engine client is shared by the process."""


class _OutputFile:
    """A host file a shell step writes its output to, followed while it grows."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pp-output-"))
        self.directory.chmod(0o777)  # the step may run as any user
        self.path = self.directory / "output.log"
        self.path.touch()
        self.path.chmod(0o666)
        # Prepended to the script: everything it prints, stderr included, in order.
        self.redirect = f"exec >>{OUTPUT_DIRECTORY}/output.log 2>&1\n"

    def follow(self, container: Any, ctx: StepContext) -> int | None:
        """Feed the file to the step's output until the container exits; its exit code."""
        result: dict[str, Any] = {}
        done = threading.Event()

        def wait() -> None:
            try:
                result["code"] = container.wait().get("StatusCode")
            except Exception as exc:  # noqa: BLE001 - re-raised in the step's thread
                result["error"] = exc
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        with self.path.open("rb") as file:
            while True:
                finished = done.is_set()
                while data := file.read(_READ_SIZE):
                    ctx.output.write_bytes(data)
                if finished:
                    break
                done.wait(0.05)
        if "error" in result:
            raise result["error"]
        return result.get("code")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def container_spec(step: ScriptStep, *, ctx: StepContext, network: str | None,
                   output: tuple[Path, str] | None = None) -> dict[str, Any]:
    """The engine's `containers.create` arguments for a resolved script step: nothing is
    run or looked up here (Woodpecker's `toConfig`, tested without an engine).

    Args:
        ctx: the step's workspace, its whole environment (`ctx.env`) and labels.
        output: with a shell script, (the host directory the output file is written to,
            the shell line that sends the script's output there).
    """
    entrypoint = list(step.entrypoint) if step.entrypoint is not None else None
    volumes = {str(ctx.workspace): {"bind": CONTAINER_WORKSPACE, "mode": "rw"}, **ctx.mounts}
    if output is not None:
        directory, redirect = output
        assert entrypoint is not None and step.is_shell
        entrypoint = [*entrypoint[:-1], redirect + (step.shell_script or "")]
        volumes[str(directory)] = {"bind": OUTPUT_DIRECTORY, "mode": "rw"}
    return {
        "image": step.image,
        "command": list(step.command) if step.command is not None else None,
        "entrypoint": entrypoint,
        "environment": dict(ctx.env),
        "working_dir": CONTAINER_WORKSPACE,
        "volumes": volumes,
        "labels": ctx.labels,
        "network_mode": network,
        "name": _container_name(ctx),
        "log_config": {"type": "none"},  # the output is ours to keep, not the engine's
        "detach": True,
        **limit_spec(step.limits),
    }


def limit_spec(limits: StepLimits) -> dict[str, Any]:
    """The `containers.create` arguments of a step's limits (none for what it does not
    limit): a CPU limit as `nano_cpus` (docker's --cpus), a CPU request as `cpu_shares`
    (1024 a CPU: its share when the host is busy), a memory limit as `mem_limit` with
    swap the same (so the limit is what it may use, swap included), a memory request
    as `mem_reservation`, and `privileged`."""
    spec: dict[str, Any] = {}
    if limits.cpu_limit_nanos is not None:
        spec["nano_cpus"] = limits.cpu_limit_nanos
    if limits.cpu_request_nanos is not None:
        spec["cpu_shares"] = _shares(limits.cpu_request_nanos)
    if limits.memory_limit_bytes is not None:
        spec["mem_limit"] = spec["memswap_limit"] = limits.memory_limit_bytes
    if limits.memory_request_bytes is not None:
        spec["mem_reservation"] = limits.memory_request_bytes
    if limits.privileged:
        spec["privileged"] = True
    return spec


def _shares(nanos: int) -> int:
    return max(2, nanos * 1024 // 10**9)  # the engine's smallest share is 2


def build_spec(step: PublishStep, *, workspace: Path, pull: bool,
               network: str | None) -> dict[str, Any]:
    """The engine's `build` arguments for a resolved publish step in `workspace`
    (intermediate containers always removed, output decoded)."""
    spec = {"path": workspace_path(str(workspace), step.context),
            "dockerfile": workspace_path(str(workspace), step.dockerfile), "tag": step.tag,
            "rm": True, "forcerm": True, "pull": pull, "decode": True, "network_mode": network}
    # The SDK's build takes memory and CPU shares for each container of the build, no
    # CPU limit (the engine's cpuquota is not among its container_limits).
    limits = step.limits
    container_limits: dict[str, int] = {}
    if limits.memory_limit_bytes is not None:
        container_limits["memory"] = container_limits["memswap"] = limits.memory_limit_bytes
    if limits.cpu_request_nanos is not None:
        container_limits["cpushares"] = _shares(limits.cpu_request_nanos)
    if container_limits:
        spec["container_limits"] = container_limits
    return spec


def push_spec(step: PublishStep, auth: dict[str, str] | None) -> dict[str, Any]:
    """The engine's `push` arguments for a publish step's tag (`reg:5000/team/app:1.0`)."""
    return {"repository": step.repository, "tag": step.image_tag, "stream": True, "decode": True,
            "auth_config": auth}


def dockerfile_bases(text: str | None) -> list[str] | None:
    """The base images a Dockerfile's `FROM` lines name (not `scratch`, not its own
    stages); None when one comes from a build argument or the file cannot be read (then
    only the engine knows). A small reading by hand: no kept library parses Dockerfiles
    for this, and only `FROM [--flag=...] image [AS name]` matters here."""
    if text is None:
        return None
    bases: list[str] = []
    stages: set[str] = set()
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        words = [word for word in words[1:] if not word.startswith("--")]
        if not words:
            continue
        image = words[0]
        if "$" in image:
            return None
        if image.lower() not in stages and image != "scratch" and image not in bases:
            bases.append(image)
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
    return bases


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _container_name(ctx: StepContext) -> str:
    run = ctx.labels.get(CONTAINER_FLOW_RUN, "")[:8] or uuid.uuid4().hex[:8]
    step = ctx.labels.get(CONTAINER_STEP, "step").replace("/", "-")
    return f"pp-{run}-{step}-{uuid.uuid4().hex[:6]}"


def _log_event(event: dict[str, Any], ctx: StepContext, last: dict[str, str]) -> None:
    if "stream" in event:
        for line in str(event["stream"]).splitlines():
            if line.strip():
                ctx.output.info(line)
        return
    status = event.get("status")
    if not status:
        return
    layer = event.get("id", "")
    if last.get(layer) == status:
        return  # progress ticks of the same status
    last[layer] = status
    ctx.output.info(f"{layer}: {status}" if layer else status)


def leftover_containers(base_url: str | None) -> dict[str, list[str]]:
    """The ids of the engine's step containers, by the flow run that made them."""
    found: dict[str, list[str]] = {}
    for container in shared_client(base_url).containers.list(
            all=True, filters={"label": CONTAINER_FLOW_RUN}, sparse=True):
        run_id = (container.attrs.get("Labels") or {}).get(CONTAINER_FLOW_RUN, "")
        found.setdefault(run_id, []).append(container.id)
    return found


def remove_containers(base_url: str | None, container_ids: list[str]) -> int:
    """Remove containers (running or not) by id; how many went."""
    client = shared_client(base_url)
    removed = 0
    for container_id in container_ids:
        try:
            client.api.remove_container(container_id, force=True)
            removed += 1
        except (docker.errors.DockerException, *_ENGINE_ERRORS):  # gone already, or busy
            pass
    return removed


def _out_of_memory(container: Any) -> bool:
    """Whether the engine killed a process of the container for going over its memory."""
    try:
        container.reload()
    except (docker.errors.DockerException, *_ENGINE_ERRORS):
        return False
    return bool((container.attrs.get("State") or {}).get("OOMKilled"))


def _kill(container: Any) -> None:
    try:
        container.kill()
    except (docker.errors.DockerException, *_ENGINE_ERRORS):
        pass


def _remove(container: Any) -> bool:
    try:
        container.remove(force=True)
        return True
    except docker.errors.NotFound:
        return False
    except (docker.errors.DockerException, *_ENGINE_ERRORS):
        return False


def _explain(exc: docker.errors.APIError) -> str:
    return str(getattr(exc, "explanation", None) or exc)

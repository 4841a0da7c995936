"""A run's caches on the docker engine: restored before the first step after the clone,
saved when the run succeeds.

Each save is a docker volume of its own (`pp-cache-<digest>-<8 hex>`, labelled with its
digest and project), filled completely before the cache's record (services/caches.py)
points at it. A run copies the save it restores into a directory of its own: a path in
the workspace is filled in place; an absolute one is a directory beside the workspace,
bind-mounted at that path into every script step's container. So steps of runs at once
never share a cache's files, and nothing a run does reaches a save until it succeeds.

The copies go through the engine's archive calls on a container that is created and
never started (any image the engine has serves), so the worker needs no access to the
engine's volume directory and no helper image. Saves a record no longer names are
removed when a run meets them (at its restore and its save); the engine refuses to
remove one that a run is copying from, which is left for the next time.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors

from prefect_pipelines.services.caches import read_pointer, write_pointer
from prefect_pipelines.translator.plan import (
    ResolvedCache,
    RunPlan,
    resolve_caches,
    workspace_path,
)
from prefect_pipelines.vocabulary import CONTAINER_LABEL_PREFIX

_log = logging.getLogger(__name__)
CACHE_LABEL = f"{CONTAINER_LABEL_PREFIX}.cache"
PROJECT_LABEL = f"{CONTAINER_LABEL_PREFIX}.project"
_MOUNT = "/cache"


class RunCaches:
    """The caches of one run (see the module's docstring).

    Args:
        plan: the run's plan (its `cache` entries).
        workspace: the run's workspace on this host.
        client: the docker engine's client.
        image: an image the engine has, for the containers that copy (never started).
        say: where progress and problems are told (the run's log).
    """

    def __init__(self, plan: RunPlan, workspace: Path, client: docker.DockerClient, image: str,
                 say: Any, commit: str = "", labels: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.client = client
        self.image = image
        self.say = say
        self.caches = resolve_caches(plan, commit)
        self.workspace = workspace
        self.private = Path(f"{workspace}.caches")
        self.restored = False
        self.labels = dict(labels or {})

    def host_dir(self, index: int, cache: ResolvedCache) -> Path:
        if cache.in_workspace:
            return Path(workspace_path(str(self.workspace), cache.path))
        return self.private / str(index)

    def mounts(self) -> dict[str, dict[str, str]]:
        """The bind mounts of the absolute caches, for every script step's container."""
        return {str(self.host_dir(index, cache)): {"bind": cache.path, "mode": "rw"}
                for index, cache in enumerate(self.caches) if not cache.in_workspace}

    def restore(self) -> None:
        """Copy each cache's last complete save in (an empty directory when it has none)."""
        self.restored = True
        for index, cache in enumerate(self.caches):
            target = self.host_dir(index, cache)
            if not cache.in_workspace:  # bind-mounted into every step: it must exist
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(0o777)  # steps may run as any user
            try:
                for attempt in range(3):
                    pointer = read_pointer(cache.name)
                    if pointer is None:
                        self.say(f"cache {cache.path}: nothing saved yet" + _key(cache))
                        break
                    target.mkdir(parents=True, exist_ok=True)
                    try:
                        size = self._copy_out(pointer["volume"], target)
                    except docker.errors.NotFound:
                        if attempt == 2:
                            raise
                        continue  # a newer save replaced it between the read and the copy
                    self.say(f"cache {cache.path}: restored {_size(size)} saved by "
                             f"{pointer.get('execution', '?')}" + _key(cache))
                    break
            except Exception as exc:  # noqa: BLE001 - a run without its cache still runs
                self.say(f"cache {cache.path}: not restored ({_describe(exc)}); the run starts without it")

    def save(self) -> None:
        """Save each cache as a new volume, then point its record at it."""
        for index, cache in enumerate(self.caches):
            source = self.host_dir(index, cache)
            if not source.is_dir():
                self.say(f"cache {cache.path}: not saved (the run left no directory there)")
                continue
            volume = f"{cache.name}-{uuid.uuid4().hex[:8]}"
            container = None
            try:
                self.client.volumes.create(volume, labels={
                    CACHE_LABEL: cache.digest, PROJECT_LABEL: self.plan.identity.project_id})
                # The copier holds the new volume until the record names it: until then
                # another run's collection cannot remove it.
                container = self._copier(volume)
                size = self._copy_in(source, container)
                write_pointer(cache.name, {
                    "volume": volume, "size": size, "path": cache.path, "key": cache.key,
                    "saved": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "execution": self.plan.identity.execution_id},
                    project_id=self.plan.identity.project_id, pipeline_id=self.plan.identity.pipeline_id)
                self.say(f"cache {cache.path}: saved {_size(size)}" + _key(cache))
            except Exception as exc:  # noqa: BLE001 - the run succeeded; its cache did not
                self.say(f"cache {cache.path}: not saved ({_describe(exc)})")
                volume = ""
            finally:
                if container is not None:
                    container.remove(force=True)
            # The saves the record does not name (now: the new one, or a later run's).
            pointer = read_pointer(cache.name) if volume else None
            self._collect(cache, keep=pointer["volume"] if pointer else volume or None)

    def close(self) -> None:
        shutil.rmtree(self.private, ignore_errors=True)

    # -- the engine ---------------------------------------------------------------------

    def _copier(self, volume: str) -> Any:
        """A container (never started) with `volume` at /cache, labelled with the run so
        that its cleanup removes it if the run dies before it does."""
        return self.client.containers.create(
            self.image, command=["true"], network_mode="none", detach=True,
            volumes={volume: {"bind": _MOUNT, "mode": "rw"}},
            labels={**self.labels, CACHE_LABEL: "copier"},
            name=f"pp-cache-copy-{uuid.uuid4().hex[:10]}")

    def _copy_out(self, volume: str, target: Path) -> int:
        """Extract a save into `target` (over what the checkout has there); its size."""
        container = self._copier(volume)
        try:
            stream, _ = container.get_archive(f"{_MOUNT}/data")
            with tempfile.TemporaryFile() as spool:
                for chunk in stream:
                    spool.write(chunk)
                spool.seek(0)
                with tarfile.open(fileobj=spool) as archive:
                    size = 0
                    members = []
                    for member in archive.getmembers():
                        if member.name == "data":
                            continue
                        member.name = member.name.removeprefix("data/")
                        size += member.size if member.isfile() else 0
                        members.append(member)
                    archive.extractall(target, members=members, filter="data")
            return size
        finally:
            container.remove(force=True)

    def _copy_in(self, source: Path, container: Any) -> int:
        """Fill a copier's volume with `source` (as `data/`); its size in bytes."""
        size = 0
        with tempfile.TemporaryFile() as spool:
            with tarfile.open(fileobj=spool, mode="w") as archive:
                archive.add(source, arcname="data", recursive=False)
                for root, dirs, files in os.walk(source):
                    for name in [*dirs, *files]:
                        path = Path(root) / name
                        arcname = "data/" + str(path.relative_to(source))
                        archive.add(path, arcname=arcname, recursive=False)
                        if path.is_file() and not path.is_symlink():
                            size += path.stat().st_size
            spool.seek(0)
            if not container.put_archive(_MOUNT, spool):
                raise RuntimeError("the engine did not take the archive")
        return size

    def _collect(self, cache: ResolvedCache, keep: str | None) -> None:
        """Remove the saves of a cache that its record no longer names."""
        try:
            volumes = self.client.volumes.list(filters={"label": f"{CACHE_LABEL}={cache.digest}"})
        except docker.errors.DockerException:
            return
        for volume in volumes:
            if volume.name != keep:
                _remove_volume(self.client, volume.name)


def _remove_volume(client: docker.DockerClient, name: str) -> None:
    try:
        client.api.remove_volume(name)
    except docker.errors.DockerException:  # in use by a run's copy, or gone
        pass


def _key(cache: ResolvedCache) -> str:
    return f" (key {cache.key!r})" if cache.key else ""


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

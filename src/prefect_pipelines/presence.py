"""Which workers on this machine are alive: each holds a lock on a file of its own.

A worker that dies (killed, crashed) leaves its runs Running. Prefect's "worker lost"
automation ends them once their heartbeats have been silent for LOST_AFTER_SECONDS, on
any machine; a worker on the same machine can tell sooner and for certain. Each worker
holds an exclusive `flock` on `<workspace root>/.workers/<host>:<pid>.lock` for as long
as its process lives (the kernel drops the lock when the process goes, however it goes).
Another worker that can take that lock knows its owner is gone. A run whose worker left
no such file (another machine, another container with a filesystem of its own) is never
judged here: only the automation ends it.
"""

from __future__ import annotations

import atexit
import fcntl
import os
from pathlib import Path
from typing import IO


class Presence:
    """This worker's lock file, and the question whether another worker's is orphaned."""

    def __init__(self, root: Path, worker: str) -> None:
        self.dir = root / ".workers"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.worker = worker
        self._file: IO[str] | None = open(self._path(worker), "w")  # noqa: SIM115 - held for life
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        atexit.register(self.close)  # a worker that stops in order leaves no file

    def _path(self, worker: str) -> Path:
        return self.dir / f"{worker.replace('/', '_')}.lock"

    def gone(self, worker: str) -> bool:
        """Whether `worker` (`<host>:<pid>`) held a lock here and its process is gone."""
        if worker == self.worker:
            return False
        try:
            fd = os.open(self._path(worker), os.O_RDWR)
        except OSError:  # no file: not a worker of this machine (or forgotten already)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: it lives
            return False
        finally:
            os.close(fd)  # releases the lock taken
        return True

    def forget(self, worker: str) -> None:
        """Remove a gone worker's file once its runs are dealt with."""
        if worker != self.worker:
            self._path(worker).unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._path(self.worker).unlink(missing_ok=True)
            self._file = None

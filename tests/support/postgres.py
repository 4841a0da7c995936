"""A private PostgreSQL cluster on 127.0.0.1 (Debian's postgresql), for Prefect's database."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from tests.support.procs import Proc, free_port, wait_for


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")


class Postgres:
    """initdb + postgres in `root`, trust auth on loopback, a database per name asked for.

    As root the cluster runs as the `postgres` user (initdb refuses root).
    """

    def __init__(self, root: Path) -> None:
        self.bin = _bindir()
        self.root = root
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            uid = pwd.getpwnam("postgres").pw_uid
            root.mkdir(parents=True, exist_ok=True)
            os.chown(root, uid, -1)
        data = root / "data"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8"])
        self.proc = Proc(
            self._as_user([str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                           "-k", str(root), "-c", "listen_addresses=127.0.0.1",
                           "-c", "fsync=off", "-c", "synchronous_commit=off",
                           "-c", "full_page_writes=off", "-c", "max_connections=300"]),
            log=root / "postgres.log",
        )
        wait_for(self._ready, timeout=60, what="postgres to accept connections")

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def _run(self, argv: list[str]) -> str:
        result = subprocess.run(self._as_user(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr or result.stdout}")
        return result.stdout

    def _ready(self) -> bool:
        return subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                              capture_output=True).returncode == 0

    def create_database(self, name: str) -> str:
        """Create a database with pg_trgm (Prefect needs it); return its SQLAlchemy URL."""
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "-v", "ON_ERROR_STOP=1"]
        subprocess.run([*psql, "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
        subprocess.run([*psql, "-d", name, "-c", "CREATE EXTENSION IF NOT EXISTS pg_trgm"],
                       check=True, capture_output=True)
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.stop(timeout=30)

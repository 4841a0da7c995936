"""A real docker registry (Debian's docker-registry) on 127.0.0.1, with a login."""

from __future__ import annotations

import shutil
from pathlib import Path

import bcrypt
import httpx

from tests.support.procs import Proc, free_port, wait_for


class Registry:
    """`docker-registry serve` with htpasswd auth, on a free loopback port."""

    def __init__(self, root: Path, username: str = "ci", password: str = "registry-pass-7c1e") -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed: apt-get install docker-registry")
        from tests.support.secret_scan import scan

        self.username = username
        self.password = password
        scan.add(password, "the registry password")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (root / "htpasswd").write_text(f"{username}:{hashed}\n")
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.host}'}}\n"
            f"auth: {{htpasswd: {{realm: test-registry, path: {root / 'htpasswd'}}}}}\n"
        )
        self.proc = Proc([binary, "serve", str(root / "config.yml")], log=root / "registry.log")
        wait_for(self._answers, timeout=30, what="the registry to answer")

    def _answers(self) -> bool:
        response = httpx.get(f"http://{self.host}/v2/", timeout=2)
        return response.status_code in (200, 401)

    def tags(self, repository: str) -> list[str]:
        """The tags of a repository, read with the registry's own API."""
        response = httpx.get(
            f"http://{self.host}/v2/{repository}/tags/list",
            auth=(self.username, self.password),
            timeout=10,
        )
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json().get("tags") or []

    def stop(self) -> None:
        self.proc.stop()

"""A docker engine for the tests, and the images they use, all built here (no pulls)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import docker
import docker.errors

from tests.support.procs import Proc, wait_for

BUSYBOX_IMAGE = "busybox:latest"
DOCKERD_FLAGS = ["--bridge=none", "--iptables=false", "--ip-masq=false"]
SOCKET = "/var/run/docker.sock"


def engine_client() -> docker.DockerClient | None:
    """A client of the engine that answers, or None."""
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError, Exception):  # noqa: BLE001
        return None


def start_dockerd(state_dir: Path) -> Proc | None:
    """Start dockerd unless an engine answers; return the process if this started it.

    The engine runs with no bridge network and no iptables rules, so test containers
    (network mode none or host) cannot reach any private-range address.
    """
    if engine_client() is not None:
        return None
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError(
            "no docker engine answers and dockerd is not installed: "
            "apt-get install docker.io (scripts/test does this)"
        )
    if os.geteuid() != 0:
        raise RuntimeError("no docker engine answers, and starting dockerd needs root")
    proc = Proc(
        [dockerd, *DOCKERD_FLAGS, f"--host=unix://{SOCKET}",
         f"--pidfile={state_dir / 'dockerd.pid'}"],
        log=state_dir / "dockerd.log",
    )
    try:
        wait_for(engine_client, timeout=60, interval=0.3, what="dockerd to answer")
    except TimeoutError:
        proc.stop()
        raise RuntimeError(f"dockerd did not start; see {proc.log_path}:\n{proc.log_text()[-2000:]}")
    return proc


def start_private_dockerd(state_dir: Path) -> tuple[Proc, str]:
    """A second engine of its own (socket, data, containerd), to be stopped by a test;
    (the process, its URL). Its short exec root keeps containerd's socket paths legal."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="pp-d2-", dir="/tmp"))
    url = f"unix://{root}/docker.sock"
    proc = Proc([shutil.which("dockerd") or "dockerd", *DOCKERD_FLAGS, f"--host={url}",
                 f"--data-root={root}/data", f"--exec-root={root}/x", f"--pidfile={root}/pid"],
                log=state_dir / "dockerd-private.log")

    def answers() -> bool:
        client = docker.DockerClient(base_url=url, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    try:
        wait_for(answers, timeout=60, interval=0.3, what="the second dockerd to answer")
    except TimeoutError:
        proc.stop()
        raise RuntimeError(f"dockerd did not start:\n{proc.log_text()[-2000:]}")
    return proc, url


def ensure_busybox(client: docker.DockerClient) -> str:
    """Make `busybox:latest` from the host's busybox-static binary if it is not there."""
    try:
        client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    binary = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).exists()), None)
    if binary is None:
        raise RuntimeError("busybox-static is not installed: apt-get install busybox-static")
    client.api.import_image_from_data(
        _busybox_rootfs(Path(binary)),
        repository="busybox",
        tag="latest",
        changes=['CMD ["sh"]', "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    return BUSYBOX_IMAGE


def _busybox_rootfs(binary: Path) -> bytes:
    """A tar of a root filesystem: /bin/busybox and a symlink per applet."""
    import subprocess

    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "root", "workspace"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        data = binary.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buffer.getvalue()


def containers_of(client: docker.DockerClient, flow_run_id: str) -> list:
    """Containers (running or not) labelled with a flow run."""
    return client.containers.list(
        all=True, filters={"label": f"io.prefect-pipelines.flow-run-id={flow_run_id}"}
    )

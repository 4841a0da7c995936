"""The Prefect clients prefect-pipelines uses (services/client.py), against a small HTTP server
on loopback that answers like a Prefect server whose SQLite database is locked."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.services.client import pipelines_client, pipelines_sync_client

pytestmark = pytest.mark.timeout(60)


class LockedPrefect(ThreadingHTTPServer):
    """Answers the first `locked` writes with Prefect's 503 for a locked database, then 204;
    GET /api/health with `true`; anything else 404. Keeps the body of every write."""

    def __init__(self, locked: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.locked = locked
        self.writes: list[Any] = []

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Handler(BaseHTTPRequestHandler):
    server: LockedPrefect

    def do_PATCH(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.writes.append(body)
        if len(self.server.writes) <= self.server.locked:
            self._answer(503, {"exception_message": "Service Unavailable"})
        else:
            self._answer(204)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/api/health":
            self._answer(200, True)
        else:
            self._answer(404, {"detail": "Not Found"})

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serving(server: LockedPrefect) -> Iterator[LockedPrefect]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _label(api: str, flow: str, run_id: uuid.UUID) -> None:
    """Label a flow run through the named client, with Prefect's own retries turned off."""
    labels = {"pipelines.test": "yes"}
    with temporary_settings({PREFECT_API_URL: api, PREFECT_CLIENT_MAX_RETRIES: 0}):
        if flow == "sync":
            with pipelines_sync_client() as client:
                client.update_flow_run_labels(run_id, labels)
        else:
            async def label() -> None:
                async with pipelines_client() as client:
                    await client.update_flow_run_labels(run_id, labels)

            run_coro_as_sync(label())


@pytest.mark.parametrize("flow", ["sync", "async"])
def test_a_write_that_meets_a_lock_is_sent_again(flow: str) -> None:
    """Prefect's client would give up at once (retries off); ours sends the same write again."""
    run_id = uuid.uuid4()
    with _serving(LockedPrefect(locked=3)) as server:
        _label(server.api, flow, run_id)
        assert len(server.writes) == 4
        assert all(body == {"pipelines.test": "yes"} for body in server.writes)


@pytest.mark.parametrize("flow", ["sync", "async"])
def test_a_lock_that_lasts_is_handed_to_prefect(flow: str) -> None:
    with _serving(LockedPrefect(locked=1000)) as server:
        with pytest.raises(PrefectHTTPStatusError) as raised:
            _label(server.api, flow, uuid.uuid4())
        assert raised.value.response.status_code == 503
        assert len(server.writes) == 12


@pytest.mark.parametrize("flow", ["sync", "async"])
def test_prefects_tls_settings_still_apply(flow: str, tmp_path: Path) -> None:
    """A Prefect server behind TLS with a private CA, named by PREFECT_API_SSL_CERT_FILE."""
    cert_file = _self_signed(tmp_path)
    server = LockedPrefect(locked=0)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serving(server):
        api = server.api.replace("http://", "https://")
        with temporary_settings({PREFECT_API_URL: api, PREFECT_API_SSL_CERT_FILE: str(cert_file)}):
            if flow == "sync":
                with pipelines_sync_client() as client:
                    failure = client.api_healthcheck()
            else:
                async def check() -> Exception | None:
                    async with pipelines_client() as client:
                        return await client.api_healthcheck()

                failure = run_coro_as_sync(check())
        assert failure is None, failure


def _self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1, signed by its own key (key.pem beside it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prefect-pipelines test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_file = directory / "cert.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_file

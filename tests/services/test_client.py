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
from urllib.parse import urlsplit

import pytest
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_URL,
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_CLIENT_RETRY_JITTER_FACTOR,
    temporary_settings,
)
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_pipelines.services.client import pipelines_client, pipelines_sync_client, shared_sync_client

pytestmark = pytest.mark.timeout(60)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback server is reached directly, whatever proxies this machine names."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class LockedPrefect(ThreadingHTTPServer):
    """Answers the first `locked` writes with Prefect's 503 for a locked database, then 204;
    GET /api/health with `true`; anything else 404. Keeps the body of every write. It also
    answers requests sent to it as an HTTP proxy, as if it were the server behind."""

    def __init__(self, locked: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.locked = locked
        self.writes: list[Any] = []
        self.peers: list[tuple[str, int]] = []  # the client's address of each write

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Handler(BaseHTTPRequestHandler):
    server: LockedPrefect
    protocol_version = "HTTP/1.1"  # keeps connections open, as Prefect's server does

    def do_PATCH(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.writes.append(body)
        self.server.peers.append(self.client_address)
        if len(self.server.writes) <= self.server.locked:
            self._answer(503, {"exception_message": "Service Unavailable"})
        else:
            self._answer(204)

    def do_GET(self) -> None:  # noqa: N802
        if urlsplit(self.path).path == "/api/health":
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


def _call(flow: str, settings: dict[Any, Any], method: str, *args: Any) -> Any:
    """Call one method of the named client (sync or async), fresh, under these settings."""
    with temporary_settings(settings):
        if flow == "sync":
            with pipelines_sync_client() as client:
                return getattr(client, method)(*args)

        async def call() -> Any:
            async with pipelines_client() as client:
                return await getattr(client, method)(*args)

        return run_coro_as_sync(call())


def _label(api: str, flow: str, run_id: uuid.UUID, prefect_retries: int = 0) -> None:
    """Label a flow run through the named client (Prefect's own retries off by default)."""
    _call(flow, {PREFECT_API_URL: api, PREFECT_CLIENT_MAX_RETRIES: prefect_retries,
                 PREFECT_CLIENT_RETRY_JITTER_FACTOR: 0},
          "update_flow_run_labels", run_id, {"pipelines.test": "yes"})


def _healthcheck(api: str, flow: str, cert_file: Path) -> Exception | None:
    return _call(flow, {PREFECT_API_URL: api, PREFECT_API_SSL_CERT_FILE: str(cert_file)}, "api_healthcheck")


@pytest.mark.parametrize("flow", ["sync", "async"])
def test_a_write_that_meets_a_lock_is_sent_again(flow: str) -> None:
    """Prefect's client would give up at once (retries off); ours sends the same write again."""
    with _serving(LockedPrefect(locked=3)) as server:
        _label(server.api, flow, uuid.uuid4())
        assert len(server.writes) == 4
        assert all(body == {"pipelines.test": "yes"} for body in server.writes)
        assert len(set(server.peers)) == 1  # each 503 read to its end: the connection is kept


def test_the_shared_client_is_one_open_client_per_api_url() -> None:
    with _serving(LockedPrefect(locked=1)) as server, temporary_settings({PREFECT_API_URL: server.api}):
        client = shared_sync_client()
        assert shared_sync_client() is client
        client.update_flow_run_labels(uuid.uuid4(), {"pipelines.test": "yes"})  # open
        assert len(server.writes) == 2
    with _serving(LockedPrefect(locked=0)) as other, temporary_settings({PREFECT_API_URL: other.api}):
        assert shared_sync_client() is not client


@pytest.mark.slow
@pytest.mark.parametrize("flow", ["sync", "async"])
def test_a_lock_that_lasts_is_handed_to_prefects_own_retries(flow: str) -> None:
    """12 quick attempts, then Prefect's back-off (one retry allowed here), then 12 more."""
    with _serving(LockedPrefect(locked=14)) as server:
        _label(server.api, flow, uuid.uuid4(), prefect_retries=1)
        assert len(server.writes) == 15
    with _serving(LockedPrefect(locked=1000)) as server:
        with pytest.raises(PrefectHTTPStatusError) as raised:
            _label(server.api, flow, uuid.uuid4(), prefect_retries=0)
        assert raised.value.response.status_code == 503
        assert len(server.writes) == 12


@pytest.mark.parametrize("flow", ["sync", "async"])
def test_writes_through_a_proxy_are_retried_too(flow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy named by the environment (httpx mounts a transport of its own for it); the
    API's host does not resolve, so only the proxy can answer."""
    with _serving(LockedPrefect(locked=3)) as server:
        monkeypatch.setenv("HTTP_PROXY", server.api.removesuffix("/api"))
        _label("http://prefect.invalid/api", flow, uuid.uuid4())
        assert len(server.writes) == 4


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
        # With another CA the certificate is refused: the check is on.
        (tmp_path / "other").mkdir()
        refused = _healthcheck(api, flow, _self_signed(tmp_path / "other"))
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused)
        assert _healthcheck(api, flow, cert_file) is None


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

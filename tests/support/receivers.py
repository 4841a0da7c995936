"""What notifications are sent to in the tests: an HTTP receiver of webhooks and an SMTP
server (aiosmtpd), both real servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.procs import free_port, wait_for


class WebhookReceiver:
    """Records the JSON of every POST; answers `status` (200 by default)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.attempts += 1
                if receiver.status == 200:
                    receiver.received.append(json.loads(body or b"{}"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def about(self, execution_id: str) -> list[dict[str, Any]]:
        return [item for item in self.received if item.get("execution") == execution_id]

    def wait_for(self, execution_id: str, timeout: float = 60) -> dict[str, Any]:
        found = wait_for(lambda: self.about(execution_id), timeout=timeout,
                         what=f"a notification of {execution_id}")
        return found[0]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """An SMTP server that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = message_from_bytes(envelope.content)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                receiver.messages.append(message)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def about(self, execution_id: str) -> list[Message]:
        return [message for message in self.messages
                if execution_id in message.get_payload(decode=True).decode()]

    def stop(self) -> None:
        self.controller.stop()

"""Step output: split into lines, mask secrets, batch into Prefect log records, echo.

A step can print hundreds of thousands of lines. Sending each line as its own Prefect log
record costs a row and a JSON object per line; instead lines are gathered into records of
up to `log_chunk_bytes` and sent at least every `log_flush_seconds`, so a running step's
output still shows within a fraction of a second. Records of one step get strictly
increasing timestamps (Prefect sorts logs by timestamp alone), so the lines read back in
order.

The records are posted to Prefect's API by a sender thread per step (not through
Prefect's batching log worker, which holds logs for seconds and can only be flushed for
the whole process): when a step ends, its output is stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO
from uuid import UUID

from prefect_pipelines.flows.control import start_thread
from prefect_pipelines.services.client import shared_sync_client
from prefect_pipelines.vocabulary import record_name

MASK = "********"
_log = logging.getLogger(__name__)


class NoEmptyTraceback(logging.Filter):
    """Drops a traceback that is not there. Prefect's task engine logs a failed task run
    with `exc_info=True` even when the step returned a Failed state and nothing was
    raised, and the record then ends with a stray `NoneType: None` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


logging.getLogger("prefect.task_runs").addFilter(NoEmptyTraceback())


class SecretMasker:
    """Replaces known secret values with `********`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Mask these values (and each line of a multi-line one) from now on."""
        for secret in secrets:
            for part in (secret, *secret.splitlines()):
                part = part.strip()
                if len(part) >= 3 and part not in self._secrets:
                    self._secrets.append(part)
        # Longest first, so a secret that contains another is masked whole.
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


class ConsoleEcho:
    """Prints step output to a terminal, each line prefixed with its stage and step.

    `prefect-pipelines exec` turns this on; workers leave it off.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.enabled = False

    def line(self, label: str, text: str) -> None:
        """Print one output line of step `label`."""
        if self.enabled:
            with self._lock:
                self.stream.write(f"[{label}] {text}\n")
                self.stream.flush()

    def status(self, text: str) -> None:
        """Print a status line of the run."""
        if self.enabled:
            with self._lock:
                self.stream.write(f"==> {text}\n")
                self.stream.flush()


console = ConsoleEcho()


_BATCH = 8  # records per request when output comes faster than Prefect stores it
# A batch is tried up to 16 times, with pauses of up to 5 s between the tries (about a
# minute in all: Prefect's server may be restarting), before it is given up with a
# warning. Each try is a call of Prefect's client, which itself backs off on 503s and lost
# connections (after the SQLite-lock retries of services/client.py).
_ATTEMPTS = 16


class _Sender:
    """Posts a step's records to Prefect from a thread of its own, in order.

    The queue is bounded: a step that prints faster than Prefect stores waits (its
    container's output waits in the engine's pipe), so memory stays flat however much it
    prints. `close()` returns once everything queued is stored.
    """

    def __init__(self, label: str, depth: int = 8) -> None:
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=depth)
        self._thread = start_thread(self._run, f"log-sender-{label}")
        self.failed = 0

    def put(self, record: dict[str, Any]) -> None:
        self._queue.put(record)

    def close(self, timeout: float = 60) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        client = None
        done = False
        while not done:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:  # whatever else is waiting goes in the same request
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done = True
                batch = [record for record in batch if record is not None]
            if not batch:
                continue
            for attempt in range(_ATTEMPTS):
                try:
                    client = client or shared_sync_client()
                    client.request("POST", "/logs/", json=batch)
                    break
                except Exception as exc:  # noqa: BLE001 - output must never fail a step
                    if attempt == _ATTEMPTS - 1:
                        self.failed += len(batch)
                        _log.warning("step output could not be stored: %s", type(exc).__name__)
                    else:
                        time.sleep(min(0.1 * 2 ** attempt, 5))


def _terminal_line(line: str) -> str:
    """What a terminal would show of one line: text after a carriage return overwrites."""
    line = line.rstrip("\r")
    if "\r" in line:
        line = next((part for part in reversed(line.split("\r")) if part), "")
    return line


MAX_LINE_BYTES = 1 << 20  # a "line" longer than this is cut (memory stays bounded)


class StepOutput:
    """The sink of one step's output: give it bytes or lines, it does the rest.

    Output is handled a block at a time (whatever the engine hands over), not line by
    line: 200,000 lines cost a few block operations, not 200,000 Python calls.

    Args:
        label: the `stage/step` prefix for the console.
        title: the step as its records name it (`build / 2`); the label by default.
        flow_run_id, task_run_id: the Prefect runs the records belong to; without a
            flow run id nothing is sent to Prefect (console only).
        masker: secrets to mask.
        chunk_bytes: the largest record sent (a single longer line is sent whole).
        flush_seconds: the longest a line waits before it is sent.
    """

    def __init__(
        self,
        label: str,
        *,
        title: str = "",
        flow_run_id: UUID | None,
        task_run_id: UUID | None,
        masker: SecretMasker | None = None,
        chunk_bytes: int = 256 * 1024,
        flush_seconds: float = 0.2,
    ) -> None:
        self.label = label
        self.title = title or label
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id
        self.masker = masker if masker is not None else SecretMasker()
        self.chunk_bytes = chunk_bytes
        self.flush_seconds = flush_seconds
        self.lines_written = 0
        self.bytes_written = 0
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._partial = b""
        self._last_created = 0.0
        self._sent_bytes = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sender = _Sender(label) if flow_run_id else None
        self._flusher = start_thread(self._flush_periodically, f"output-{label}")

    def write_bytes(self, data: bytes) -> None:
        """Feed raw output; complete lines are emitted, a trailing partial line waits."""
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            if len(data) > MAX_LINE_BYTES:
                self._partial = b""
                self._write_text(_terminal_text(data))
            return
        self._partial = data[cut + 1:]
        self._write_text(_terminal_text(data[:cut]))

    def write_line(self, line: str) -> None:
        """Emit one line of output."""
        self._write_text(line)

    def info(self, message: str) -> None:
        """A message of the pipeline itself, shown in the step's log like output."""
        self._write_text(message)

    def _write_text(self, text: str) -> None:
        """Emit one or more lines (joined with newlines, no trailing newline)."""
        text = self.masker(text)
        if console.enabled:
            for line in text.split("\n"):
                console.line(self.label, line)
        size = len(text) + 1
        with self._lock:
            self.lines_written += text.count("\n") + 1
            self.bytes_written += size
            if self._sender is None:
                return
            self._pending.append(text)
            self._pending_bytes += size
            if self._pending_bytes >= self.chunk_bytes:
                self._send_locked()

    def flush(self) -> None:
        """Send what is pending now."""
        with self._lock:
            self._send_locked()

    def close(self) -> None:
        """Emit a trailing partial line, store everything, stop the threads.

        When it returns the step's whole output is in Prefect.
        """
        if self._partial:
            partial, self._partial = self._partial, b""
            self._write_text(_terminal_text(partial))
        self._closed.set()
        self._flusher.join(timeout=5)
        self.flush()
        if self._sender is not None:
            self._sender.close()

    def __enter__(self) -> StepOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush_periodically(self) -> None:
        while not self._closed.wait(self.flush_seconds):
            self.flush()

    def _send_locked(self) -> None:
        if not self._pending or self._sender is None:
            return
        text = "\n".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        for message in _pieces(text, self.chunk_bytes):
            self._send_record(message)

    def _send_record(self, message: str) -> None:
        offset = self._sent_bytes
        self._sent_bytes += len(message.encode("utf-8", errors="replace")) + 1
        # Strictly increasing, millisecond-distinct timestamps keep records in order.
        created = max(time.time(), self._last_created + 0.001)
        self._last_created = created
        self._sender.put({  # type: ignore[union-attr]
            "name": record_name(self.title, offset),
            "level": logging.INFO,
            "message": message,
            "timestamp": _iso(created),
            "flow_run_id": str(self.flow_run_id),
            "task_run_id": str(self.task_run_id) if self.task_run_id else None,
        })


def _pieces(text: str, size: int) -> list[str]:
    """Cut text into pieces of about `size` characters at line boundaries."""
    if len(text) <= size:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        if len(text) - start <= size:
            pieces.append(text[start:])
            break
        cut = text.rfind("\n", start, start + size)
        if cut <= start:  # one line longer than a piece: send it whole
            cut = text.find("\n", start + size)
            if cut < 0:
                pieces.append(text[start:])
                break
        pieces.append(text[start:cut])
        start = cut + 1
    return pieces


def _terminal_text(raw: bytes) -> str:
    """Decode output; where a carriage return redraws a line, keep what a terminal shows."""
    text = raw.decode("utf-8", errors="replace")
    if "\r" in text:
        text = "\n".join(_terminal_line(line) for line in text.split("\n"))
    return text


def _iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat()

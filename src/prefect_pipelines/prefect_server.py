"""`python -m prefect_pipelines.prefect_server`: Prefect's server, without SQLite's 60 s stalls.

This is `prefect server start` (same options, same process, services included), with its
banner saying `export PREFECT_API_URL=...` (as the README does) and one correction to
aiosqlite applied first:

Prefect's read-then-write transactions make SQLite fail writes at once (SQLITE_BUSY) under
concurrent load. Python's `sqlite3` keeps a failed statement un-reset on its cursor, and
the failed cursor stays referenced by the exception's traceback, which SQLAlchemy's
`greenlet_spawn` frame joins in a reference cycle. The garbage collector later frees it
on the event loop's thread, and resetting its statement there needs its connection's
mutex, which that connection's thread holds for as long as it waits (up to SQLite's 60 s
busy timeout) for the write lock, while the lock's holder is a transaction whose
coroutine waits for the (now blocked) loop: the whole server stalls for 60 s. The
correction closes a cursor whose statement or fetch failed on its connection's own
thread before the error goes on, so the garbage collector never has a statement to reset.
(Found with py-spy's native stacks: the loop in `gc_collect_main` -> `cursor_clear` ->
`sqlite3_reset` -> `pthread_mutex_lock`, a connection thread in `sqlite3InvokeBusyHandler`;
the failed cursors were `INSERT INTO flow_run` of concurrent run creations. PostgreSQL is
not affected.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a cursor that cannot be closed (connection gone) is no matter


def _close_failed_cursor(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except BaseException as exc:
            # Queued on the connection's thread after the failed statement: it resets the
            # statement there, so the cursor is freed later without the connection's mutex.
            closing = asyncio.ensure_future(self.close())
            closing.add_done_callback(_retrieve)
            if isinstance(exc, Exception):  # not when cancelled: that goes on at once
                with contextlib.suppress(Exception):
                    await asyncio.wait([closing])
            raise

    wrapper.__pp_fixed__ = True  # type: ignore[attr-defined]
    return wrapper


def fix_aiosqlite_cursors() -> None:
    """Apply the correction (idempotent)."""
    from aiosqlite.cursor import Cursor

    for name in ("execute", "executemany", "fetchone", "fetchmany", "fetchall"):
        method = getattr(Cursor, name)
        if not getattr(method, "__pp_fixed__", False):
            setattr(Cursor, name, _close_failed_cursor(method))


def export_in_banner() -> None:
    """Prefect's start-up banner tells the user to `prefect config set PREFECT_API_URL=...`,
    which changes their profile for good; the README says `export` (this shell only), and
    so does the banner from here on. Cosmetic: a Prefect without the banner function
    keeps its own words (tests/test_prefect_contract.py names it)."""
    from prefect.cli import _server_utils

    original = getattr(_server_utils, "generate_welcome_blurb", None)
    if original is None or getattr(original, "__pp_fixed__", False):
        return

    @functools.wraps(original)
    def blurb(*args: Any, **kwargs: Any) -> str:
        text = str(original(*args, **kwargs))
        return (text.replace("Configure Prefect to communicate with the server with:",
                             "Point Prefect at this server (in the shell that runs it) with:")
                .replace("prefect config set PREFECT_API_URL=", "export PREFECT_API_URL="))

    blurb.__pp_fixed__ = True  # type: ignore[attr-defined]
    _server_utils.generate_welcome_blurb = blurb


def main(argv: list[str] | None = None) -> None:
    """`prefect server start [options]`, with the corrections applied first."""
    import sys

    fix_aiosqlite_cursors()
    export_in_banner()
    from prefect.cli import app

    sys.argv = ["prefect", "server", "start", *(sys.argv[1:] if argv is None else argv)]
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

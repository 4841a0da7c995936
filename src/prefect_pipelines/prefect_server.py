"""`python -m prefect_pipelines.prefect_server`: Prefect's server, without SQLite's 60 s stalls.

This is `prefect server start` (same options, same process, services included), with one
correction to SQLAlchemy's aiosqlite adapter applied first:

SQLAlchemy 2.0's `AsyncAdapt_aiosqlite_cursor.execute` closes its cursor only when the
statement succeeds. Prefect's read-then-write transactions make SQLite fail writes at
once (SQLITE_BUSY) under concurrent load, and each failure leaves a cursor alive in the
exception's reference cycle. The garbage collector later frees it on the event loop's
thread, and freeing it needs its connection's mutex, which that connection's thread may
hold while it waits for the write lock that a coroutine on the (now blocked) loop holds:
a deadlock that only SQLite's 60 s busy timeout ends, stalling the whole server. The
correction drops a failed statement's frames at once, so its cursor is freed while its
connection is idle. (Found with py-spy's native stacks; reproduced with three concurrent
run creators, gone with the correction; PostgreSQL is not affected.)
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any


def _free_failed_cursor(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            # The failed statement's frames hold its cursor; clearing them frees it now.
            traceback.clear_frames(exc.__traceback__)
            raise

    wrapper.__pp_fixed__ = True  # type: ignore[attr-defined]
    return wrapper


def fix_aiosqlite_cursors() -> None:
    """Apply the correction (idempotent)."""
    from sqlalchemy.dialects.sqlite import aiosqlite

    cursor = aiosqlite.AsyncAdapt_aiosqlite_cursor
    for name in ("execute", "executemany"):
        method = getattr(cursor, name)
        if not getattr(method, "__pp_fixed__", False):
            setattr(cursor, name, _free_failed_cursor(method))


def main(argv: list[str] | None = None) -> None:
    """`prefect server start [options]`, with the correction applied first."""
    import sys

    fix_aiosqlite_cursors()
    from prefect.cli import app

    sys.argv = ["prefect", "server", "start", *(sys.argv[1:] if argv is None else argv)]
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

"""The aiosqlite correction of `prefect_pipelines.prefect_server`: a statement that fails on
a lock leaves nothing that the garbage collector must reset on the event loop's thread."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import aiosqlite

from prefect_pipelines.prefect_server import fix_aiosqlite_cursors


async def test_a_failed_write_does_not_block_the_loop_while_its_connection_waits(tmp_path: Path) -> None:
    fix_aiosqlite_cursors()
    path = tmp_path / "t.db"
    holder = await aiosqlite.connect(path, isolation_level=None)
    other = await aiosqlite.connect(path, isolation_level=None)
    try:
        await holder.execute("PRAGMA journal_mode = WAL")
        await holder.execute("CREATE TABLE t (x)")
        await other.execute("PRAGMA busy_timeout = 3000")
        await holder.execute("BEGIN IMMEDIATE")  # a transaction whose coroutine needs the loop
        await holder.execute("INSERT INTO t VALUES (1)")

        # Prefect's read-then-write transaction: its write fails at once (SQLITE_BUSY) and
        # the failed cursor ends up in cyclic garbage, as it does through SQLAlchemy's frames.
        await other.execute("BEGIN")
        cursor = await other.cursor()
        await cursor.execute("SELECT * FROM t")
        await cursor.fetchall()
        try:
            await cursor.execute("INSERT INTO t VALUES (2)")
        except aiosqlite.OperationalError as exc:
            cycle: list[object] = [cursor, exc]
            cycle.append(cycle)
        else:  # pragma: no cover
            raise AssertionError("the write should have met the lock")
        del cursor, cycle
        await other.execute("ROLLBACK")

        # The same connection now waits for the write lock, holding its mutex meanwhile.
        waiting = asyncio.ensure_future(other.execute("BEGIN IMMEDIATE"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        gc.collect()
        took = time.monotonic() - started
        await holder.execute("COMMIT")
        assert took < 1.0, f"the garbage collector blocked the loop for {took:.1f} s"
        await waiting  # the lock passed on once the loop ran, within the busy timeout
        await other.execute("ROLLBACK")
    finally:
        await holder.close()
        await other.close()

"""SQLite on the event loop: waiting for another process's write lock never stops the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage import inline_sqlite
from storage.db import create_engine


async def test_a_transaction_waits_for_another_process_lock_while_the_loop_runs(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/lock.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v INTEGER)"))
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO t VALUES (1)")

    async def write() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    writer = asyncio.create_task(write())
    ticks = 0
    while not writer.done() and ticks < 20:  # the loop keeps turning while the writer waits
        await asyncio.sleep(0)
        ticks += 1
    assert not writer.done() and ticks == 20
    other.execute("COMMIT")
    await asyncio.wait_for(writer, timeout=10)
    async with engine.connect() as conn:
        values = (await conn.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all()
    assert values == [1, 2]
    other.close()
    await engine.dispose()


async def test_a_lock_held_too_long_is_an_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sqlite, "LOCK_WAIT_SECONDS", 0.05)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/lock.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v INTEGER)"))
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="locked"):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
    other.execute("ROLLBACK")
    async with engine.begin() as conn:  # the connection is usable afterwards
        await conn.execute(text("INSERT INTO t VALUES (3)"))
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    other.close()
    await engine.dispose()


async def test_commits_leave_checkpoints_to_a_thread_that_stops_with_the_connection(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/wal.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
        for n in range(2000):  # twice SQLite's automatic checkpoint, had it been on
            await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": f"{n:0>2000}"})
        inline = (await conn.get_raw_connection()).driver_connection
        assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
    assert isinstance(inline, inline_sqlite.InlineConnection)
    checkpointer = inline.checkpointer
    assert checkpointer is not None and checkpointer.running
    own = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    busy, frames, copied = checkpointer.checkpoint(own)  # what the thread does each second
    assert (
        busy == 0 and frames > 1000 and copied == frames
    )  # all in the WAL, none copied in a commit
    own.close()
    await engine.dispose()
    assert not checkpointer.running
    reopened = sqlite3.connect(tmp_path / "wal.db")
    assert reopened.execute("SELECT count(*) FROM t").fetchone() == (2000,)
    reopened.close()

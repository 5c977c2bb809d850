"""SQLite on the event loop: waiting for another process's write lock never stops the loop."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

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


async def _table(engine: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        await conn.execute(
            text(
                "CREATE TABLE t (v INTEGER, parent INTEGER REFERENCES parent(id)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
        )


def _statements(engine_conn: Any) -> list[str]:
    seen: list[str] = []
    engine_conn.set_trace_callback(seen.append)
    return seen


async def test_transactions_that_arrive_together_commit_once_and_each_returns_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sqlite, "GROUP_SECONDS", 60.0)  # however slow the machine
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/group.db")
    await _table(engine)
    async with engine.connect() as conn:
        shared = (await conn.get_raw_connection()).driver_connection.sqlite
    seen = _statements(shared)
    other = sqlite3.connect(tmp_path / "group.db", isolation_level=None)  # another process
    durable: list[int] = []

    async def write(v: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
        # committed means committed: another connection sees it the moment commit returns
        durable.append(other.execute("SELECT count(*) FROM t WHERE v = ?", (v,)).fetchone()[0])

    await asyncio.gather(*(write(v) for v in range(6)))
    assert durable == [1] * 6
    assert seen.count("COMMIT") == 1 and seen.count("SAVEPOINT billbot_turn") == 6
    other.close()
    await engine.dispose()


async def test_a_failed_transaction_in_a_group_undoes_only_its_own_work(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/group.db")
    await _table(engine)

    async def write(v: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
            if v == 2:
                raise RuntimeError("this turn failed")

    results = await asyncio.gather(*(write(v) for v in range(4)), return_exceptions=True)
    assert [isinstance(r, RuntimeError) for r in results] == [False, False, True, False]
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all()
    assert kept == [0, 1, 3]
    await engine.dispose()


async def test_a_group_that_cannot_commit_fails_every_transaction_in_it_and_the_next_works(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/group.db")
    await _table(engine)

    async def write(v: int, parent: int | None) -> None:
        async with engine.begin() as conn:
            values = {"v": v, "p": parent}
            await conn.execute(text("INSERT INTO t (v, parent) VALUES (:v, :p)"), values)

    # the dangling reference is only checked at COMMIT, which the three share
    results = await asyncio.gather(
        write(1, None), write(2, 99), write(3, None), return_exceptions=True
    )
    assert all(isinstance(r, IntegrityError) for r in results), results
    await write(4, None)
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
    assert kept == [4]
    await engine.dispose()


async def test_a_second_transaction_in_the_same_task_is_an_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inline_sqlite, "LOCK_WAIT_SECONDS", 0.05)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/group.db")
    await _table(engine)
    async with engine.begin() as outer:
        await outer.execute(text("INSERT INTO t (v) VALUES (1)"))
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as inner:  # waits for the outer one: never comes
                await inner.execute(text("INSERT INTO t (v) VALUES (2)"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [1]
    await engine.dispose()


@pytest.mark.parametrize("group_commit", [True, False])
async def test_a_paused_transaction_holds_its_group_so_pausing_servers_commit_alone(
    tmp_path: Path, group_commit: bool
) -> None:
    """A transaction that waits on something outside (an order API) in the middle holds the
    group that waits to commit; an engine for such a server commits each one as it ends."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/pause.db", group_commit=group_commit)
    await _table(engine)
    answer = asyncio.Event()
    committed: list[str] = []

    async def quick() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (1)"))
        committed.append("quick")

    async def paused() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (2)"))
            await answer.wait()  # the outside answer, in the middle of the transaction
        committed.append("paused")

    tasks = [asyncio.create_task(quick()), asyncio.create_task(paused())]
    for _ in range(50):  # let the loop run everything that can run
        await asyncio.sleep(0)
    assert committed == ([] if group_commit else ["quick"])
    answer.set()
    await asyncio.gather(*tasks)
    assert sorted(committed) == ["paused", "quick"]
    await engine.dispose()


class _ReleaseFails:
    """The shared sqlite3 connection, except that the next RELEASE fails (as a broken disk
    might make it): what the failing transaction wrote must not be committed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self.armed = True

    def execute(self, sql: str, *args: Any) -> Any:
        if self.armed and sql.startswith("RELEASE"):
            self.armed = False
            raise sqlite3.OperationalError("disk I/O error")
        return self._connection.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


async def test_a_transaction_whose_savepoint_cannot_be_released_is_not_committed(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/release.db")
    await _table(engine)
    async with engine.connect() as conn:
        inline = (await conn.get_raw_connection()).driver_connection
    assert isinstance(inline, inline_sqlite.InlineConnection)
    shared = inline._shared
    real = shared.sqlite
    shared.sqlite = _ReleaseFails(real)  # type: ignore[assignment]
    with pytest.raises(OperationalError, match="disk I/O"):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (1)"))
    shared.sqlite = real
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES (2)"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT v FROM t"))).scalars().all() == [2]
    await engine.dispose()


async def test_a_transaction_cancelled_while_waiting_for_its_turn_leaves_the_queue(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/cancel.db")
    await _table(engine)
    answer = asyncio.Event()

    async def write(v: int, pause: bool = False) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
            if pause:
                await answer.wait()

    holder = asyncio.create_task(write(1, pause=True))
    for _ in range(10):
        await asyncio.sleep(0)
    waiter = asyncio.create_task(write(2))  # waits for the holder's turn
    for _ in range(10):
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    answer.set()
    await holder
    await asyncio.wait_for(write(3), timeout=5)  # the turn was not handed to the cancelled one
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all() == [1, 3]
    await engine.dispose()

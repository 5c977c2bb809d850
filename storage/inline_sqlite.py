"""SQLite called on the event loop, behind the interface SQLAlchemy's aiosqlite dialect expects.

aiosqlite runs every statement on a thread of its own and hands the result back through the
event loop: a turn's dozen statements cost a dozen thread hand-offs, each waiting for the GIL
and a loop iteration, and the single connection is held across all of them. A statement on a
local SQLite file under WAL takes microseconds, so here it simply runs where it is called.

The one wait SQLite can impose is another process's write lock (a `billbot orders import`
beside the server, say). That wait must not stop the loop, so the connection's own busy
timeout is short and `begin_immediate` retries ``BEGIN IMMEDIATE`` with awaited pauses
(``await_`` works here: SQLAlchemy runs its sync layer in a greenlet of the awaiting task).
Once a transaction holds the write lock nothing else in it waits: WAL readers never block.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.util import await_

BUSY_TIMEOUT_MS = 5  # SQLite's own wait for a lock, on the loop: keep it tiny
LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for another process's write lock
RETRY_PAUSE_SECONDS = 0.002


class InlineCursor:
    """aiosqlite's cursor interface over a plain sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """Stands in for aiosqlite's request queue: SQLAlchemy sets the isolation level through it."""

    def put_nowait(self, item: tuple[asyncio.Future[None], Callable[[], None]]) -> None:
        future, function = item
        try:
            function()
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)


class InlineConnection:
    """aiosqlite's connection interface over a plain sqlite3 connection, run in place."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for statements run on the driver (storage/prepared)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Closes at once (SQLAlchemy's terminate); closing twice is harmless."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def connector(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens ``path`` in place."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        return InlineConnection(connection)

    return connect


def begin_immediate(execute: Callable[[str], object]) -> None:
    """``BEGIN IMMEDIATE``, waiting (awaited, never blocking the loop) while another process
    holds SQLite's write lock, for up to ``LOCK_WAIT_SECONDS``."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            execute("BEGIN IMMEDIATE")
            return
        except Exception as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        await_(asyncio.sleep(RETRY_PAUSE_SECONDS))

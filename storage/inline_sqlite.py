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

Nor does a commit wait for a checkpoint: SQLite's automatic one runs inside the commit that
crosses a thousand WAL pages, copying them to the database file and syncing it, on the loop.
Here a thread of the connection's own (``Checkpointer``) does that every second instead,
with a connection of its own; a passive checkpoint never holds up the writer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.util import await_

BUSY_TIMEOUT_MS = 5  # SQLite's own wait for a lock, on the loop: keep it tiny
LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for another process's write lock
RETRY_PAUSE_SECONDS = 0.002
CHECKPOINT_SECONDS = 1.0  # how often the checkpointer copies the WAL into the database
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is truncated to this after a checkpoint

log = logging.getLogger(__name__)


class Checkpointer:
    """Copies the WAL into the database file on a thread, so commits only append to the WAL."""

    def __init__(self, path: str, every: float = CHECKPOINT_SECONDS) -> None:
        self._path = path
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def checkpoint(self, connection: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint: (1 if it could not finish, WAL pages, pages copied)."""
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=1.0, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")
            while not self._stop.wait(self._every):
                try:
                    self.checkpoint(connection)
                except sqlite3.Error as exc:  # the next one tries again
                    log.warning("SQLite checkpoint of %s failed: %s", self._path, exc)
        finally:
            connection.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop_soon(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


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

    def __init__(
        self, connection: sqlite3.Connection, checkpointer: Checkpointer | None = None
    ) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()
        self.checkpointer = checkpointer  # None: SQLite checkpoints in commits, as usual
        if checkpointer is not None:
            weakref.finalize(self, checkpointer.stop_soon)  # dropped unclosed: stop anyway
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

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
            if self.checkpointer is not None:
                self.checkpointer.stop()
            self._conn.close()  # the last connection to close checkpoints what is left


def connector(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens ``path`` in place."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        in_file = path not in ("", ":memory:") and not path.startswith("file::memory:")
        return InlineConnection(connection, Checkpointer(path) if in_file else None)

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

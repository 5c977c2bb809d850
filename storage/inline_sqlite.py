"""SQLite called on the event loop, behind the interface SQLAlchemy's aiosqlite dialect expects.

aiosqlite runs every statement on a thread of its own and hands the result back through the
event loop: a turn's dozen statements cost a dozen thread hand-offs, each waiting for the GIL
and a loop iteration, and the single connection is held across all of them. A statement on a
local SQLite file under WAL takes microseconds, so here it simply runs where it is called.

The one wait SQLite can impose is another process's write lock (a `billbot orders import`
beside the server, say). That wait must not stop the loop, so the connection's own busy
timeout is short and ``Shared.begin`` retries ``BEGIN IMMEDIATE`` with awaited pauses
(SQLAlchemy awaits it from its sync layer, which runs in a greenlet of the awaiting task).
Once a transaction holds the write lock nothing else in it waits: WAL readers never block.

A commit costs more than the rest of a short transaction (on this project's machines, about
110 µs of writing the WAL): transactions that follow each other closely share one
(``Shared``), each in a savepoint of its own, and none returns from its commit before the
shared one is done.

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
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

BUSY_TIMEOUT_MS = 5  # SQLite's own wait for a lock, on the loop: keep it tiny
LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for another process's write lock
RETRY_PAUSE_SECONDS = 0.002
GROUP_TURNS = 16  # transactions committed together at most
GROUP_SECONDS = 0.005  # a group older than this commits when its current turn ends
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


class Shared:
    """The one sqlite3 connection behind every pooled ``InlineConnection`` of an engine, and
    the turns its transactions take on it, committed in groups.

    SQLAlchemy sees a pool of connections; each of its transactions is a turn here, run
    alone on the shared connection inside a savepoint of one open SQLite transaction. A
    turn that ends keeps its work (RELEASE) or undoes it (ROLLBACK TO); either way, if
    another turn is already waiting, that one goes next in the same transaction, and the
    last turn of the group commits for all. A turn's commit returns only once its group is
    committed, so no reply leaves before its turn is durable. A group is at most
    ``GROUP_TURNS`` turns and ``GROUP_SECONDS`` old: its first turn waits no longer.

    A turn that runs on SQLite never pauses (nothing in it waits), so a group is the turns
    that start before the event loop comes back to the commit: the requests that arrived
    together. Under no load a group is one turn, committed one loop iteration later. Where
    a transaction does pause — a turn asking an outside order API — a group would hold the
    turns before it until that answer came, so there each transaction commits alone
    (``group_turns=1``, see ``storage.db.create_engine``).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        checkpointer: Checkpointer | None,
        group_turns: int | None = None,
    ):
        self.sqlite = connection
        # 1: each transaction commits as it ends (nothing waits for a later one)
        self.group_turns = GROUP_TURNS if group_turns is None else group_turns
        self.checkpointer = checkpointer  # None: SQLite checkpoints in commits, as usual
        self.users = 0  # open InlineConnections
        self._holder: InlineConnection | None = None
        self._waiting: deque[tuple[InlineConnection, asyncio.Future[None]]] = deque()
        self._group: asyncio.Future[None] | None = None  # the open group's commit
        self._kept = 0  # turns kept in the open group
        self._opened_at = 0.0
        self._commit_due = False  # the group's commit is scheduled on the event loop
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if checkpointer is not None:
            connection.execute("PRAGMA wal_autocheckpoint=0")
            connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    def holds(self, who: InlineConnection) -> bool:
        return self._holder is who

    async def begin(self, who: InlineConnection) -> None:
        """``who``'s turn: waits for the turns before it, then opens its savepoint (and the
        transaction, ``BEGIN IMMEDIATE``, if no group is open)."""
        if self._holder is None:
            self._holder = who
        else:
            handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((who, handed))
            try:
                await asyncio.wait_for(handed, LOCK_WAIT_SECONDS)
            except TimeoutError:
                self._waiting = deque(w for w in self._waiting if w[0] is not who)
                if self._holder is who:
                    self._pass_on()
                raise sqlite3.OperationalError(
                    f"database is locked: no turn on the connection in {LOCK_WAIT_SECONDS} s"
                ) from None
            except BaseException:
                if self._holder is who:
                    self._pass_on()
                else:
                    self._waiting = deque(w for w in self._waiting if w[0] is not who)
                raise
        try:
            if not self.sqlite.in_transaction:
                await self._begin_immediate()
                self._opened_at = time.monotonic()
            self.sqlite.execute("SAVEPOINT billbot_turn")
        except BaseException:
            self._end_group()
            self._pass_on()
            raise

    async def _begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, waiting (awaited, never blocking the loop) while another
        process holds SQLite's write lock, for up to ``LOCK_WAIT_SECONDS``."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                self.sqlite.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    def finish(self, who: InlineConnection, keep: bool) -> asyncio.Future[None] | None:
        """Ends ``who``'s turn; when kept, the future of its group's commit.

        The group commits once no turn is running: the turns already waiting go first, and
        so do those that start before the event loop comes back to the commit (every
        request that arrived with this one). A group that is full or old commits at once."""
        if self._holder is not who:
            return None
        group = None
        try:
            if keep:
                self.sqlite.execute("RELEASE billbot_turn")
                if self._group is None:
                    self._group = asyncio.get_running_loop().create_future()
                group = self._group
                self._kept += 1
            else:
                self._undo_turn()
        except BaseException:
            if group is None:  # its savepoint is still open: never commit it with the group
                self._undo_turn(quietly=True)
            self._end_group()
            self._pass_on()
            raise
        full = self._kept >= self.group_turns or time.monotonic() - self._opened_at >= GROUP_SECONDS
        if full or not self.sqlite.in_transaction:
            self._end_group()
        elif not self._commit_due:
            self._commit_due = True
            asyncio.get_running_loop().call_soon(self._commit_when_idle)
        self._pass_on()
        return group

    def _undo_turn(self, *, quietly: bool = False) -> None:
        try:
            self.sqlite.execute("ROLLBACK TO billbot_turn")
            self.sqlite.execute("RELEASE billbot_turn")
        except sqlite3.Error:
            if not quietly:
                raise

    def _commit_when_idle(self) -> None:
        self._commit_due = False
        if self._holder is None:
            self._end_group()
        # else a turn is running in the group: its end commits, or schedules this again

    def _end_group(self) -> None:
        """Commits the open group (or rolls back what a failure left), telling its turns."""
        group, self._group, self._kept = self._group, None, 0
        failure: BaseException | None = None
        if self.sqlite.in_transaction:
            try:
                self.sqlite.execute("COMMIT")
            except sqlite3.Error as exc:
                failure = exc
                if self.sqlite.in_transaction:
                    self.sqlite.execute("ROLLBACK")
        if group is not None and not group.done():
            if failure is None:
                group.set_result(None)
            else:
                group.set_exception(failure)
        elif failure is not None:
            raise failure

    def _pass_on(self) -> None:
        while self._waiting:
            who, handed = self._waiting.popleft()
            if not handed.done():
                self._holder = who
                handed.set_result(None)
                return
        self._holder = None

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.sqlite.close()  # the last connection to close checkpoints what is left


class InlineConnection:
    """aiosqlite's connection interface over the engine's one sqlite3 connection, run in
    place; its transactions are turns of the ``Shared`` connection, committed in groups."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._connection: Shared | None = shared  # SQLAlchemy checks it before commit
        self._conn = shared.sqlite  # SQLAlchemy sets the isolation level on it
        self._tx = _RunNow()
        shared.users += 1

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection itself, for statements run on the driver (storage/prepared)."""
        return self._shared.sqlite

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._shared.checkpointer

    @property
    def group_turns(self) -> int:
        return self._shared.group_turns

    @property
    def isolation_level(self) -> str | None:
        return self._shared.sqlite.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._shared.sqlite.cursor())

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._shared.sqlite.create_function(*args, **kw)

    async def begin(self) -> None:
        await self._shared.begin(self)

    async def commit(self) -> None:
        """Returns once this transaction's group is committed (raises if that failed)."""
        group = self._shared.finish(self, keep=True)
        if group is not None:
            await asyncio.shield(group)

    async def rollback(self) -> None:
        self._shared.finish(self, keep=False)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Closes at once (SQLAlchemy's terminate); closing twice is harmless."""
        if self._connection is None:
            return
        self._connection = None
        shared = self._shared
        if shared.holds(self):
            shared.finish(self, keep=False)
        shared.users -= 1
        if shared.users == 0:
            shared.close()


def connector(path: str, group_turns: int | None = None) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: each pooled connection shares one
    sqlite3 connection to ``path``, opened on first use (again after all were closed);
    ``group_turns`` caps its commit groups (``GROUP_TURNS`` unless given)."""
    current: list[Shared] = []

    async def connect() -> InlineConnection:
        if not current or current[0].users == 0:
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            in_file = path not in ("", ":memory:") and not path.startswith("file::memory:")
            checkpointer = Checkpointer(path) if in_file else None
            current[:] = [Shared(connection, checkpointer, group_turns)]
            if checkpointer is not None:  # dropped unclosed: stop anyway
                weakref.finalize(current[0], checkpointer.stop_soon)
        return InlineConnection(current[0])

    return connect

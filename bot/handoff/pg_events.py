"""Live console events between server processes, through PostgreSQL ``LISTEN/NOTIFY``.

With ``billbot serve --workers N`` an agent's console is connected to one worker while the
customer's message may arrive at another. Each process keeps one dedicated connection that
LISTENs on a channel and sends its own events there with NOTIFY; every process, the sender
included, hands what it hears to its local consoles. Events reach local consoles only through
the notification, so each console gets each event once, in the same order on every worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg
from sqlalchemy.engine import make_url

from bot.handoff.events import RESYNC, Event, EventBus

log = logging.getLogger(__name__)

CHANNEL = "billbot_events"
APPLICATION_NAME = "billbot live events"  # how the connection shows in pg_stat_activity
MAX_PAYLOAD = 8000  # bytes; PostgreSQL refuses a NOTIFY payload this long or longer
MAX_OUTGOING = 1000  # events waiting for the connection; past that they become one resync
CONNECT_SECONDS = 10.0
KEEPALIVE_SECONDS = 30.0  # an idle connection is checked this often, so a dead one is noticed
STOP_SECONDS = 2.0  # at shutdown, queued events get this long to go out

RESYNC_PAYLOAD = json.dumps(RESYNC)

# What a dropped connection looks like: the socket, the server ending the session, asyncpg.
CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as asyncpg's own connection string."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def encode(event: Event) -> str:
    """The event as a NOTIFY payload; one too long to send becomes a resync."""
    payload = json.dumps(event, separators=(",", ":"), default=str)
    if len(payload.encode("utf-8")) >= MAX_PAYLOAD:
        log.warning("live event %r too long to NOTIFY; consoles reload instead", event.get("type"))
        return RESYNC_PAYLOAD
    return payload


class PgEventBus(EventBus):
    """``EventBus`` across processes: ``publish`` queues a NOTIFY and returns at once; a
    background task sends it and fans out every notification heard to local listeners.

    If the connection drops, the task reconnects with backoff, and local consoles get a
    resync (they may have missed other workers' events meanwhile). An event whose NOTIFY may
    not have gone out is not sent again (it might arrive twice): every worker gets a resync.
    """

    def __init__(
        self,
        database_url: str,
        *,
        channel: str = CHANNEL,
        max_pending: int = 100,
        max_outgoing: int = MAX_OUTGOING,
        first_retry: float = 0.5,
        last_retry: float = 30.0,
    ) -> None:
        super().__init__(max_pending)
        self._dsn = asyncpg_dsn(database_url)
        self._channel = channel
        self._first_retry = first_retry
        self._last_retry = last_retry
        self._outgoing: deque[str] = deque()
        self._max_outgoing = max_outgoing
        self._lost = False  # events were dropped: every worker needs a resync
        self._wake = asyncio.Event()  # something to send, the connection died, or stopping
        self._stopping = asyncio.Event()
        self._listening = asyncio.Event()
        self._pid: int | None = None

    @property
    def server_pid(self) -> int | None:
        """The listening connection's backend pid, while connected."""
        return self._pid

    def publish(self, event: Event) -> None:
        if self._stopping.is_set():
            return
        if len(self._outgoing) >= self._max_outgoing:
            self._lost = True
        else:
            self._outgoing.append(encode(event))
        self._wake.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen while the server runs; waits (briefly) for the first connection, so what
        is published at once reaches the other workers already listening."""
        task = asyncio.create_task(self._run(), name="billbot live events")
        with suppress(TimeoutError):  # the task keeps trying and says why in the log
            await asyncio.wait_for(self._listening.wait(), CONNECT_SECONDS)
        try:
            yield
        finally:
            self._stopping.set()
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
            except TimeoutError:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        delay = self._first_retry
        reconnecting = False
        while not self._stopping.is_set():
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=CONNECT_SECONDS,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            except Exception as exc:  # a bad URL too: it keeps saying so, and keeps trying
                log.warning(
                    "live console events: cannot connect to PostgreSQL (%s); retrying in %.1f s",
                    _describe(exc),
                    delay,
                    exc_info=not isinstance(exc, CONNECTION_ERRORS),
                )
                await self._pause(delay)
                delay = min(delay * 2, self._last_retry)
                continue
            delay = self._first_retry
            try:
                await self._serve(conn, resync=reconnecting)
            except Exception as exc:
                log.warning(
                    "live console events: lost the PostgreSQL connection (%s); reconnecting,"
                    " consoles will reload",
                    _describe(exc),
                    exc_info=not isinstance(exc, CONNECTION_ERRORS),  # a bug, not a network
                )
            finally:
                self._listening.clear()
                self._pid = None
                if self._stopping.is_set() and not conn.is_closed():
                    with suppress(*CONNECTION_ERRORS):
                        await conn.close(timeout=STOP_SECONDS)
                else:
                    conn.terminate()
            reconnecting = True
            await self._pause(delay)

    async def _serve(self, conn: asyncpg.Connection, *, resync: bool) -> None:
        """Listen on ``conn`` and send what is published, until it fails or the bus stops."""
        conn.add_termination_listener(lambda _conn: self._wake.set())
        await conn.add_listener(self._channel, self._heard)
        self._pid = conn.get_server_pid()
        self._listening.set()
        if resync:
            log.info("live console events: connected to PostgreSQL again")
            if not self._lost:  # (if it is, the resync below reaches this worker too)
                self.deliver(RESYNC)  # its consoles missed what others sent meanwhile
        while True:
            while self._outgoing or self._lost:
                if self._outgoing:
                    payload = self._outgoing.popleft()
                else:  # events were dropped or may not have gone out: every worker reloads
                    payload, self._lost = RESYNC_PAYLOAD, False
                try:
                    await conn.execute("SELECT pg_notify($1, $2)", self._channel, payload)
                except BaseException:
                    self._lost = True  # it may or may not have gone out: never send it twice
                    raise
            if self._stopping.is_set():
                return
            if conn.is_closed():
                raise ConnectionResetError("the server closed it")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await conn.execute("SELECT 1", timeout=CONNECT_SECONDS)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            event = json.loads(str(payload))
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.warning("live console events: ignored a notification that is not an event")
            return
        self.deliver(event)

    async def _pause(self, seconds: float) -> None:
        """Wait before the next try, or less if the bus is stopping."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

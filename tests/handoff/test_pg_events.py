"""Live console events between server processes through PostgreSQL LISTEN/NOTIFY: two buses on
one database stand for two workers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import asyncpg
import pytest

from bot.handoff.events import RESYNC, Event
from bot.handoff.pg_events import MAX_PAYLOAD, PgEventBus, asyncpg_dsn
from tests.conftest import POSTGRES_URL, SKIP_PG

Listener = asyncio.Queue[Event]


async def next_event(listener: Listener) -> Event:
    return await asyncio.wait_for(listener.get(), 10)


@pytest.fixture
def channel() -> str:
    """A channel of this test's own, so nothing another test sent can arrive here."""
    return f"billbot_test_{uuid.uuid4().hex}"


@pytest.fixture
async def workers(channel: str) -> AsyncIterator[tuple[PgEventBus, PgEventBus]]:
    one = PgEventBus(POSTGRES_URL, channel=channel, first_retry=0.05)
    two = PgEventBus(POSTGRES_URL, channel=channel, first_retry=0.05)
    async with one.running(), two.running():
        yield one, two


async def listeners(stack: AsyncExitStack, *buses: PgEventBus) -> list[Listener]:
    return [await stack.enter_async_context(bus.listen()) for bus in buses]


def test_the_sqlalchemy_url_becomes_asyncpgs_own() -> None:
    dsn = asyncpg_dsn("postgresql+asyncpg://billbot:s3cret@db.internal:5433/billbot")
    assert dsn == "postgresql://billbot:s3cret@db.internal:5433/billbot"


@SKIP_PG
async def test_an_event_reaches_a_listener_on_each_worker_exactly_once(
    workers: tuple[PgEventBus, PgEventBus],
) -> None:
    one, two = workers
    async with AsyncExitStack() as stack:
        here, there = await listeners(stack, one, two)
        one.publish({"type": "message", "handoff_id": 7})
        one.publish({"type": "handoff", "handoff_id": 8})  # notifications keep their order:
        for listener in (here, there):  # a second copy of the first would come before this
            assert await next_event(listener) == {"type": "message", "handoff_id": 7}
            assert await next_event(listener) == {"type": "handoff", "handoff_id": 8}
            assert listener.empty()


@SKIP_PG
async def test_an_event_too_long_for_a_notification_makes_consoles_reload(
    workers: tuple[PgEventBus, PgEventBus],
) -> None:
    one, two = workers
    async with AsyncExitStack() as stack:
        (there,) = await listeners(stack, two)
        one.publish({"type": "message", "text": "长" * MAX_PAYLOAD})
        assert await next_event(there) == RESYNC


@SKIP_PG
async def test_events_beyond_what_waits_for_the_connection_become_one_resync(
    channel: str,
) -> None:
    one = PgEventBus(POSTGRES_URL, channel=channel, max_outgoing=2)
    two = PgEventBus(POSTGRES_URL, channel=channel)
    async with two.running(), AsyncExitStack() as stack:
        here, there = await listeners(stack, one, two)
        for handoff_id in (1, 2, 3):  # before one is connected: the third has no room
            one.publish({"type": "message", "handoff_id": handoff_id})
        async with one.running():
            for listener in (here, there):
                assert await next_event(listener) == {"type": "message", "handoff_id": 1}
                assert await next_event(listener) == {"type": "message", "handoff_id": 2}
                assert await next_event(listener) == RESYNC
                assert listener.empty()


@SKIP_PG
async def test_a_killed_connection_is_replaced_consoles_reload_and_events_flow_again(
    workers: tuple[PgEventBus, PgEventBus], caplog: pytest.LogCaptureFixture
) -> None:
    one, two = workers
    killed = one.server_pid
    assert killed is not None
    async with AsyncExitStack() as stack:
        here, there = await listeners(stack, one, two)
        admin = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed)
        finally:
            await admin.close()

        assert await next_event(here) == RESYNC  # sent once it listens again
        assert one.server_pid not in {None, killed}
        one.publish({"type": "message", "handoff_id": 1})  # from the worker that reconnected
        for listener in (here, there):
            assert await next_event(listener) == {"type": "message", "handoff_id": 1}
        two.publish({"type": "message", "handoff_id": 2})  # and to it
        for listener in (here, there):
            assert await next_event(listener) == {"type": "message", "handoff_id": 2}
            assert listener.empty()
    lost = [r for r in caplog.records if "lost the PostgreSQL connection" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING

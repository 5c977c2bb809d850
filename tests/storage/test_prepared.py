"""Hot statements on the driver (sqlite3, asyncpg): the same rows as through SQLAlchemy, in
the same transaction, with SQLAlchemy's errors; a customer's dialogue runs its statements
there. On SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.keys import ENGINE, SESSIONS
from storage.db import run, table_of
from storage.models import Conversation, ProcessedMessage
from storage.records import ConversationData
from storage.repositories import Repositories
from tests.conftest import Customer

NOW = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
_INBOX = table_of(ProcessedMessage)
_BY_KEYS = select(_INBOX.c.dedup_key, _INBOX.c.created_at).where(
    _INBOX.c.dedup_key.in_(bindparam("keys", expanding=True))
)


async def test_a_conversation_saved_on_the_driver_reads_the_same_through_sqlalchemy(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    data = ConversationData(
        order_no="DD20250503123456",
        choices=["DD1", "DD2"],
        held_text="我是张三",
        unknown={"from another version": {"a": None, "b": [1, 2]}},
    )
    async with sessions() as session, session.begin():
        repos = Repositories.on(session)
        conv = await repos.conversations.load_for_update(
            "wechat", "oUser1", "new", NOW, NOW + timedelta(hours=72)
        )
        conv.data, conv.state, conv.last_inbound_at = data, "verify", NOW
        await repos.conversations.save(conv, NOW)
    async with sessions() as session:
        row = await session.get(Conversation, conv.id)
        assert row is not None
        assert (row.data, row.state, row.version) == (data.to_json(), "verify", 1)
        assert row.last_inbound_at == NOW and row.last_inbound_at.tzinfo is not None
        assert row.expires_at == NOW + timedelta(hours=72)
    async with sessions() as session, session.begin():  # and read back on the driver
        again = await Repositories.on(session).conversations.load_for_update(
            "wechat", "oUser1", "new", NOW, NOW
        )
        assert (again.id, again.data, again.version, again.last_inbound_at) == (
            conv.id,
            data,
            1,
            NOW,
        )
    async with sessions() as session:
        stored = (await session.execute(text("SELECT data FROM conversations"))).all()
    assert "张三" not in str(stored)  # sealed at rest, as SQLAlchemy seals it


async def test_an_in_list_of_any_length_and_several_rows_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rows = [{"dedup_key": f"k{n}", "reply": None, "created_at": NOW} for n in range(5)]
    async with sessions() as session, session.begin():
        await run(session, insert(_INBOX), rows)
    async with sessions() as session:
        for keys in (["k1"], ["k0", "k3", "k4", "nope"], ["k2", "k1"]):
            found = (await run(session, _BY_KEYS, {"keys": keys})).all()
            assert sorted(r.dedup_key for r in found) == sorted(k for k in keys if k != "nope")
            assert all(r.created_at == NOW for r in found)


async def test_a_driver_statement_is_rolled_back_with_its_session(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            assert await Repositories.on(session).inbox.claim("wechat:1", NOW)
            raise RuntimeError("the turn failed")
    async with sessions() as session, session.begin():
        assert await Repositories.on(session).inbox.claim("wechat:1", NOW)  # claimable again
        assert not await Repositories.on(session).inbox.claim("wechat:1", NOW)


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    row = {"dedup_key": "same", "reply": None, "created_at": NOW}
    async with sessions() as session, session.begin():
        await run(session, insert(_INBOX), row)
        with pytest.raises(IntegrityError):
            await run(session, insert(_INBOX), row)


def _count_sqlalchemy_statements(engine: AsyncEngine) -> tuple[list[str], Callable[[], None]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:3])[:60])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_dialogue_runs_its_statements_on_the_driver(
    db_url: str,
    clock: FakeClock,
    aiohttp_client: Callable[..., Any],
) -> None:
    """Down to the card, a customer's turns leave SQLAlchemy only the start of their
    transaction (SQLite's BEGIN; on PostgreSQL one SELECT 1 that makes SQLAlchemy send it):
    every statement of a turn runs on the driver."""
    settings = Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": db_url,
            "BILLBOT_PUBLIC_URL": "http://bot.test",
        }
    )
    app = create_app(settings, clock)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    await seed_demo(app[SESSIONS], clock.now())
    customer = Customer(client, settings, clock)
    await customer.say("你好")  # the first turn creates the conversation
    seen, stop = _count_sqlalchemy_statements(app[ENGINE])
    await customer.say("同意")
    await customer.say("DD20250503123456")
    card = await customer.say("128.5")
    stop()
    assert "/card/" in card
    others = [s for s in seen if not s.startswith("BEGIN") and s != "SELECT 1"]
    assert others == []

"""The services are built from the database, the clock, the outbound HTTP client and the
settings alone: they work with no aiohttp application around them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.flows.base import HandoffReason
from bot.keys import ENGINE
from bot.messages import Inbound, InboundKind
from bot.metrics import Metrics
from bot.services import Database, build_services
from storage.db import migrate
from storage.inline_sqlite import InlineConnection

OPENID = "oServices000000000000000001"


async def test_a_customer_reaches_the_queue_through_services_built_without_an_app(
    settings: Settings, clock: FakeClock
) -> None:
    database = Database.at(settings.database_url)
    try:
        await migrate(database.engine)
        await seed_demo(database.sessions, clock.now())
        async with aiohttp.ClientSession() as http:
            services = build_services(settings, clock, database, http, Metrics())
            for n, text in enumerate(("你好", "同意", "转人工")):
                inbound = Inbound("wechat", OPENID, InboundKind.TEXT, text, f"msg:{n}")
                await services.dispatcher.handle(inbound)
            admin, _ = await services.agents.create("boss", "admin")
            [waiting] = await services.handoffs.queue(admin)
        assert waiting.reason == HandoffReason.ASKED
    finally:
        await database.engine.dispose()


async def test_transactions_commit_alone_when_orders_come_from_outside(
    tmp_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[Any]]
) -> None:
    """On SQLite, a commit group would hold earlier customers' replies while one turn waits
    for the outside order API: with one configured, each transaction commits alone."""
    grouped: dict[str, int] = {}
    for api in ("", "http://orders.example/api"):
        settings = Settings.from_env(
            {
                "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/o{len(api)}.db",
                "BILLBOT_ORDER_API_URL": api,
            }
        )
        app = create_app(settings, FakeClock())
        await aiohttp_client(app)  # started, and closed when the test ends
        async with app[ENGINE].connect() as conn:
            inline = (await conn.get_raw_connection()).driver_connection
        assert isinstance(inline, InlineConnection)
        grouped[api] = inline.group_turns
    assert grouped[""] > 1 and grouped["http://orders.example/api"] == 1


async def test_understandings_tables_are_built_when_the_server_starts(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Callable[[web.Application], Awaitable[Any]],
) -> None:
    """Built on first use they would cost the first customer's turn a quarter of a second."""
    from bot.understanding.numerals import _written_numbers
    from bot.understanding.pinyin import _unusual_readings

    _written_numbers.cache_clear()
    _unusual_readings.cache_clear()
    await aiohttp_client(create_app(settings, clock))
    assert _written_numbers.cache_info().currsize == 1
    assert _unusual_readings.cache_info().currsize == 1

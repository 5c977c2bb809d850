"""The services are built from the database, the clock, the outbound HTTP client and the
settings alone: they work with no aiohttp application around them."""

from __future__ import annotations

import aiohttp

from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.flows.base import HandoffReason
from bot.messages import Inbound, InboundKind
from bot.metrics import Metrics
from bot.services import Database, build_services
from storage.db import migrate

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

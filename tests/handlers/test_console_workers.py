"""Several server processes on one PostgreSQL database: what happens on one worker reaches an
agent's console connected to another (two apps on real local servers stand for two workers)."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.keys import SESSIONS
from tests.conftest import POSTGRES_URL, SKIP_PG, Customer, reset_postgres
from tests.handlers.conftest import Browser, ready_agent

pytestmark = SKIP_PG


async def test_a_customer_queued_on_one_worker_reaches_a_console_on_another(
    clock: FakeClock, wechat: TestServer, aiohttp_client: AiohttpClient
) -> None:
    await reset_postgres(POSTGRES_URL)
    settings = Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": POSTGRES_URL,
            "BILLBOT_PUBLIC_URL": "http://bot.test",
            "WECHAT_API_BASE": str(wechat.make_url("")),
        }
    )
    one = await aiohttp_client(create_app(settings, clock))
    two = await aiohttp_client(create_app(settings, clock))
    await seed_demo(one.app[SESSIONS], clock.now())
    agent = await ready_agent(two, Browser(two), "alice")
    try:
        async with agent.http.ws_connect(agent.url("/api/ws")) as ws:
            await ws.send_json({"type": "ping"})  # answered once the feed listens
            assert await asyncio.wait_for(ws.receive_json(), 5) == {"type": "pong"}

            customer = Customer(one, settings, clock)
            for text in ("你好", "同意", "转人工"):
                await customer.say(text)
            event = await asyncio.wait_for(ws.receive_json(), 5)
            assert event["type"] in {"queue", "handoff"}
        queued = (await (await agent.get("/api/queue")).json())["items"]
        assert len(queued) == 1
    finally:
        await agent.http.close()

"""Several server processes on one database: what happens on one worker reaches an agent's
console connected to another, and an agent's consoles count on every worker (two apps on real
local servers stand for two workers)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.keys import HANDOFFS, SESSIONS
from storage.records import HandoffRecord
from storage.repositories import Repositories
from tests.conftest import POSTGRES_URL, SKIP_PG, Customer, reset_postgres
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import PASSWORD, Browser, Client, ready_agent

LEASE = timedelta(seconds=Settings.from_env({}).claim_lease_seconds)


@SKIP_PG
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


async def stored_handoff(api: Client, handoff_id: int) -> HandoffRecord:
    async with api.app[SESSIONS]() as s:
        handoff = await Repositories.on(s).handoffs.get(handoff_id)
    assert handoff is not None
    return handoff


async def answered_handoff(
    one: Client, settings: Settings, clock: FakeClock, wechat: FakeWeChatState, agent: Browser
) -> int:
    """A customer queued on worker one, claimed and answered by the agent: they owe nothing,
    so no lease runs while they have a console open."""
    customer = Customer(one, settings, clock)
    for text in ("你好", "同意", "转人工"):
        await customer.say(text)
    wechat.customer_wrote(customer.openid, clock.now())
    claimed = await agent.post("/api/handoffs/claim-next")
    handoff_id: int = (await claimed.json())["item"]["id"]
    replied = await agent.post(f"/api/handoffs/{handoff_id}/reply", {"text": "稍等"})
    assert replied.status == 200, await replied.text()
    assert (await stored_handoff(one, handoff_id)).lease_until is None
    return handoff_id


async def test_closing_a_console_on_one_worker_keeps_the_agents_console_on_another(
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    aiohttp_client: AiohttpClient,
) -> None:
    """Before, each worker counted only its own consoles: closing the agent's tab on one
    started leases on what they held while their tab on the other was still open."""
    moded = replace(settings, wechat_api_base=str(wechat.make_url("")).rstrip("/"))
    one = await aiohttp_client(create_app(moded, clock))
    two = await aiohttp_client(create_app(moded, clock))
    await seed_demo(one.app[SESSIONS], clock.now())
    here = await ready_agent(one, Browser(one), "alice")
    there = Browser(two)
    try:
        assert (await there.login("alice", PASSWORD)).status == 200
        handoff_id = await answered_handoff(one, moded, clock, wechat_state, here)
        async with there.http.ws_connect(there.url("/api/ws")) as on_two:
            async with here.http.ws_connect(here.url("/api/ws")) as on_one:
                for ws in (on_one, on_two):  # answered once each console is counted
                    await ws.send_json({"type": "ping"})
                    assert await asyncio.wait_for(ws.receive_json(), 5) == {"type": "pong"}
            # closed on worker one (the close is answered once it is recorded)
            assert (await stored_handoff(one, handoff_id)).lease_until is None
            for _ in range(20):  # ten minutes on, the console on worker two still beating
                clock.advance(two.app[HANDOFFS].console_heartbeat)
                await on_two.send_json({"type": "ping"})
                assert await asyncio.wait_for(on_two.receive_json(), 5) == {"type": "pong"}
            assert await one.app[HANDOFFS].forget_stale_consoles() == 0
            assert (await stored_handoff(one, handoff_id)).lease_until is None
        # the agent's last console closed, on worker two: the lease starts
        assert (await stored_handoff(two, handoff_id)).lease_until == clock.now() + LEASE
    finally:
        await here.http.close()
        await there.http.close()


async def test_a_console_on_a_worker_that_stopped_beating_is_forgotten(
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    aiohttp_client: AiohttpClient,
) -> None:
    """A worker killed with SIGKILL never closes its consoles: it only stops their heartbeat.
    Here worker two's console is silent while the clock moves on, as a dead worker's would
    be; worker one's upkeep forgets it and starts the agent's leases."""
    moded = replace(settings, wechat_api_base=str(wechat.make_url("")).rstrip("/"))
    one = await aiohttp_client(create_app(moded, clock))
    two = await aiohttp_client(create_app(moded, clock))
    await seed_demo(one.app[SESSIONS], clock.now())
    here = await ready_agent(one, Browser(one), "alice")
    there = Browser(two)
    try:
        assert (await there.login("alice", PASSWORD)).status == 200
        handoff_id = await answered_handoff(one, moded, clock, wechat_state, here)
        async with there.http.ws_connect(there.url("/api/ws")) as silent:
            await silent.send_json({"type": "ping"})
            assert await asyncio.wait_for(silent.receive_json(), 5) == {"type": "pong"}
            clock.advance(3 * two.app[HANDOFFS].console_heartbeat)
            assert await one.app[HANDOFFS].forget_stale_consoles() == 0  # stale only after
            assert (await stored_handoff(one, handoff_id)).lease_until is None
            clock.advance(timedelta(seconds=1))
            assert await one.app[HANDOFFS].forget_stale_consoles() == 1
            assert (await stored_handoff(one, handoff_id)).lease_until == clock.now() + LEASE
    finally:
        await here.http.close()
        await there.http.close()

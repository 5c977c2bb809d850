"""The merchant's order API as the order source, end to end over real HTTP callbacks: a card
from an order the local table does not hold; a dead backend answered in time, no guess spent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.keys import SESSIONS
from bot.order_api import HttpOrders
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from examples.order_backend import load_orders, make_app
from storage.models import Handoff
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
ZH = Texts("zh")
API_ORDER = "JD2025050388776655"


@pytest.fixture
async def backend(aiohttp_server: AiohttpServer, tmp_path: Path) -> TestServer:
    """The example order API (examples/order_backend.py) serving one order from a CSV."""
    csv = tmp_path / "orders.csv"
    csv.write_text(f"order_no,amount,contact\n{API_ORDER},66.60,alice\n", encoding="utf-8")
    return await aiohttp_server(make_app(load_orders(csv)))


async def test_an_order_only_the_api_knows_gets_its_card(
    settings: Settings, clock: FakeClock, aiohttp_client: AiohttpClient, backend: TestServer
) -> None:
    url = str(backend.make_url("/orders"))
    client = await aiohttp_client(create_app(replace(settings, order_api_url=url), clock))
    await seed_demo(client.app[SESSIONS], clock.now())  # contacts; API_ORDER is not in it
    customer = Customer(client, settings, clock)
    await customer.say("你好")
    await customer.say("同意")
    assert await customer.say(API_ORDER.lower()) == ZH.say(
        "ask_amount", order=mask_order_no(API_ORDER)
    )
    assert "/card/" in await customer.say("66.6")


@pytest.fixture
async def dead_backend(
    aiohttp_server: AiohttpServer,
) -> AsyncIterator[tuple[TestServer, list[str]]]:
    """An order API that takes every request and never answers (it waits on a gate that
    opens only when the test ends)."""
    seen: list[str] = []
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        seen.append(request.query.get("order_no", ""))
        await never.wait()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/orders", hang)
    server = await aiohttp_server(app)
    yield server, seen
    never.set()


async def test_a_dead_backend_opens_the_circuit_and_costs_no_guess(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    dead_backend: tuple[TestServer, list[str]],
) -> None:
    server, seen = dead_backend
    async with aiohttp.ClientSession() as http:
        orders = HttpOrders(http, str(server.make_url("/orders")), clock, timeout=0.2)
        client = await aiohttp_client(create_app(settings, clock, orders=orders))
        await seed_demo(client.app[SESSIONS], clock.now())
        customer = Customer(client, settings, clock)
        await customer.say("你好")
        await customer.say("同意")
        unavailable = ZH.say("orders_unavailable")
        for _ in range(5):  # each lookup: a timeout, one retry, then a clear answer
            assert await customer.say("DD20250503123456") == unavailable
        assert len(seen) == 10 and orders.state == "open"
        assert await customer.say("DD20250503123456") == unavailable  # fails fast now
        assert len(seen) == 10  # the open circuit sent nothing to the backend
        async with client.app[SESSIONS]() as s:
            # six unanswered lookups, and still no guess counted: nobody handed off
            assert await s.scalar(select(func.count()).select_from(Handoff)) == 0


async def test_the_merchants_order_pattern_reads_numbers_the_api_cannot_describe(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: AiohttpClient,
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
) -> None:
    """An order API lists no orders, so no shapes are learned: BILLBOT_ORDER_PATTERN tells
    the bot what this merchant's letter-and-digit numbers look like."""
    csv = tmp_path / "orders.csv"
    csv.write_text("order_no,amount,contact\nSO2025A0503X77,66.60,alice\n", encoding="utf-8")
    backend = await aiohttp_server(make_app(load_orders(csv)))
    url = str(backend.make_url("/orders"))
    asked = ZH.say("ask_amount", order=mask_order_no("SO2025A0503X77"))
    for pattern, reply in ((r"SO\d{4}[A-Z]\d{4}[A-Z]\d{2}", asked), ("", ZH.say("order_hint"))):
        moded = replace(settings, order_api_url=url, order_pattern=pattern)
        client = await aiohttp_client(create_app(moded, clock))
        await seed_demo(client.app[SESSIONS], clock.now())
        openid = f"oPattern{'Set' if pattern else 'Unset'}0000000000000001"
        customer = Customer(
            client, moded, clock, openid=openid, first_msg_id=7000 if pattern else 8000
        )
        await customer.say("你好")
        await customer.say("同意")
        assert await customer.say("我的单号是 so2025a0503x77") == reply

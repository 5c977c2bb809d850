"""A turn slower than WeChat's 5 s: "success" at once, the reply through the message API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.engine.late import DEADLINE_SECONDS
from bot.keys import LATE_REPLIES, SESSIONS
from storage.models import Message
from storage.records import OrderRecord
from tests.conftest import Customer
from tests.fakes.wechat_api import FAKE_STATE, fake_wechat_app

ORDER = "DD20250503123456"


class SlowOrders:
    """An order backend that answers only when the test lets it (no sleeping)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def find(self, order_no: str) -> OrderRecord | None:
        await self.gate.wait()
        return OrderRecord(order_no, 12850, contact="alice") if order_no == ORDER else None

    async def shapes(self) -> list[str]:
        return []

    async def paid_by(self, user_id: str, since: object, limit: int) -> list[OrderRecord]:
        return []


async def test_a_slow_turn_is_answered_through_the_message_api_once(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Callable[
        [web.Application], Awaitable[TestClient[web.Request, web.Application]]
    ],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    fake = fake_wechat_app(clock, settings.wechat.app_id, settings.wechat.app_secret.reveal())
    server = await aiohttp_server(fake, access_log=None)
    moded = replace(settings, wechat_api_base=str(server.make_url("")).rstrip("/"))
    orders = SlowOrders()
    app = create_app(moded, clock, orders=orders)
    client = await aiohttp_client(app)
    await seed_demo(app[SESSIONS], clock.now())
    customer = Customer(client, moded, clock)
    fake[FAKE_STATE].customer_wrote(customer.openid)
    await customer.say("你好")
    await customer.say("同意")

    app[LATE_REPLIES].deadline = 0.01  # the gated lookup below cannot finish in time
    query, body = customer.codec.build_text(customer.openid, ORDER, 777)
    assert await customer.post(query, body) == ""  # "success": WeChat stops waiting
    orders.gate.set()
    await asyncio.gather(*app[LATE_REPLIES].tasks)
    [(to, text)] = fake[FAKE_STATE].sent
    assert to == customer.openid and "****3456" in text and "金额" in text
    async with app[SESSIONS]() as s:  # recorded as an API message: it used WeChat's quota
        lines = await s.execute(select(Message.sender, Message.text))
        senders = [sender for sender, said in lines if said == text]
    assert senders == ["bot-api"]

    assert await customer.post(query, body) == ""  # WeChat's retry: not answered twice
    assert len(fake[FAKE_STATE].sent) == 1
    app[LATE_REPLIES].deadline = DEADLINE_SECONDS
    assert "wx_ab****89" in await customer.say("128.5")  # and the dialogue goes on

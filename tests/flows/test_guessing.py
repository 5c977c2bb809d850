"""Nothing to enumerate: unknown orders cost guesses, guessed-at orders lock for everyone,
cards per customer per day are capped — over real HTTP callbacks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import EVENTS, SESSIONS
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from storage.models import Handoff
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
ORDER = "DD20250503123456"
ZH = Texts("zh")


def customer(client: Client, settings: Settings, clock: FakeClock, n: int) -> Customer:
    return Customer(client, settings, clock, openid=f"oGuess{n:010d}", first_msg_id=n * 1000)


async def agreed(client: Client, settings: Settings, clock: FakeClock, n: int) -> Customer:
    c = customer(client, settings, clock, n)
    await c.say("你好")
    await c.say("同意")
    return c


async def handoff_reasons(client: Client) -> list[str]:
    async with client.app[SESSIONS]() as s:
        return list(await s.scalars(select(Handoff.reason).order_by(Handoff.id)))


async def test_unknown_orders_and_wrong_amounts_share_one_allowance_that_survives_restart(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    c = await agreed(client, settings, clock, 1)
    await c.say("DD20990101000001")
    await c.say("重新开始")
    await c.say("DD20990101000002")
    await c.say(ORDER)
    assert await handoff_reasons(client) == []
    await c.say("1.00")  # the third guess of any kind
    assert await handoff_reasons(client) == ["verify_failed"]


async def test_three_unknown_orders_hand_off_as_not_found(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    c = await agreed(client, settings, clock, 1)
    for n in range(3):
        await c.say(f"DD2099010100000{n}")
    assert await handoff_reasons(client) == ["order_not_found"]


async def test_three_failures_on_one_order_from_anyone_lock_it_and_alert_agents(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    locked = ZH.say("order_locked", order=mask_order_no(ORDER), minutes=30)
    async with client.app[EVENTS].listen() as events:
        replies = []
        for n in range(3):  # three different customers, one wrong amount each
            guesser = await agreed(client, settings, clock, n + 1)
            await guesser.say(ORDER)
            replies.append(await guesser.say(f"{n + 1}.00"))
        assert replies[-1] == locked and locked not in replies[0]
        # on PostgreSQL events travel through NOTIFY: wait for the alert, don't just look
        async with asyncio.timeout(10):
            while await events.get() != {"type": "alert", "alert": "order_locked"}:
                pass

    owner = await agreed(client, settings, clock, 9)
    assert await owner.say(ORDER) == locked  # no question to answer while it is locked
    await owner.say("转人工")  # offered a person, and takes it
    assert await handoff_reasons(client) == ["asked"]

    clock.advance(timedelta(minutes=31))
    latecomer = await agreed(client, settings, clock, 10)
    await latecomer.say(ORDER)
    assert "wx_ab****89" in await latecomer.say("128.5")


async def test_cards_per_customer_per_day_are_capped(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    c = await agreed(client, settings, clock, 1)
    for _ in range(settings.cards_per_day):
        await c.say(ORDER)
        assert "wx_ab****89" in await c.say("128.5")
    await c.say(ORDER)
    assert await c.say("128.5") == ZH.say("cards_capped", cap=settings.cards_per_day)
    clock.advance(timedelta(hours=24, seconds=1))
    await c.say(ORDER)
    assert "wx_ab****89" in await c.say("128.5")

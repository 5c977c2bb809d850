"""Ask less: the customer whose WeChat paid the order gets the card without the amount
question, and "查订单" lists their own orders to pick by number — over real HTTP callbacks."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from storage.models import Card, Conversation, Handoff
from storage.records import OrderRecord
from storage.repositories import Repositories
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
ZH = Texts("zh")
PAYER = "oPayer000000000000000000001"
# newest first is how the list shows them
PAID = (
    OrderRecord("DD20251130000111", 4990, paid_at=datetime(2025, 11, 30, 9, tzinfo=UTC)),
    OrderRecord("DD20251128000222", 12850, paid_at=datetime(2025, 11, 28, 9, tzinfo=UTC)),
    OrderRecord("DD20251101000333", 99900, paid_at=datetime(2025, 11, 1, 9, tzinfo=UTC)),
)


async def seed_paid(client: Client, orders: tuple[OrderRecord, ...], payer: str = PAYER) -> None:
    async with client.app[SESSIONS]() as session, session.begin():
        repos = Repositories.on(session)
        paid = [
            OrderRecord(o.order_no, o.amount_cents, paid_at=o.paid_at, payer_openid=payer)
            for o in orders
        ]
        await repos.orders.upsert_many(paid, datetime(2025, 12, 1, tzinfo=UTC))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 12, 1, 12, tzinfo=UTC))


async def agreed(client: Client, settings: Settings, clock: FakeClock, openid: str) -> Customer:
    # MsgIds are unique across customers, as WeChat's are
    c = Customer(
        client, settings, clock, openid=openid, first_msg_id=zlib.crc32(openid.encode()) % 10**9
    )
    await c.say("你好")
    await c.say("同意")
    return c


async def state_and_cards(client: Client) -> tuple[list[str], int]:
    async with client.app[SESSIONS]() as s:
        states = list(await s.scalars(select(Conversation.state)))
        cards = len(list(await s.scalars(select(Card.id))))
    return states, cards


async def test_the_payer_gets_the_card_without_the_amount_question(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID[:1])
    payer = await agreed(client, settings, clock, PAYER)
    reply = await payer.say(PAID[0].order_no)
    ask = ZH.say("ask_amount", order=mask_order_no(PAID[0].order_no))
    assert ask not in reply
    assert "/card/" in reply
    assert await state_and_cards(client) == (["card_sent"], 1)


async def test_someone_else_with_the_payers_order_number_is_still_asked(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID[:1])
    other = await agreed(client, settings, clock, "oSomeoneElse00000000000002")
    reply = await other.say(PAID[0].order_no)
    assert reply == ZH.say("ask_amount", order=mask_order_no(PAID[0].order_no))
    assert await state_and_cards(client) == (["verify"], 0)


async def test_my_orders_lists_them_numbered_and_a_number_picks_one(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID)
    await seed_paid(client, (OrderRecord("DD20251129000999", 100),), payer="oNotThisCustomer")
    payer = await agreed(client, settings, clock, PAYER)
    listed = await payer.say("查一下我的订单")
    lines = [
        ZH.say("order_choice", n=1, order="****0111", amount="¥49.90", date="11-30"),
        ZH.say("order_choice", n=2, order="****0222", amount="¥128.50", date="11-28"),
        ZH.say("order_choice", n=3, order="****0333", amount="¥999.00", date="11-01"),
    ]
    assert listed == ZH.say("pick_order", choices="\n".join(lines))
    assert "0999" not in listed  # another customer's order is not theirs to see
    assert await state_and_cards(client) == (["pick_order"], 0)

    assert await payer.say("第五个") == ZH.say("pick_order_hint", count=3)
    card = await payer.say("第二个")
    assert "/card/" in card and "0222" in card
    assert await state_and_cards(client) == (["card_sent"], 1)


async def test_one_paid_order_goes_straight_to_its_card_and_none_asks_for_the_number(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID[:1])
    payer = await agreed(client, settings, clock, PAYER)
    assert "/card/" in await payer.say("查订单")
    stranger = await agreed(client, settings, clock, "oStranger0000000000000000003")
    assert await stranger.say("查订单") == ZH.say("no_paid_orders")


async def test_three_unreadable_picks_hand_over_to_a_person(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID)
    payer = await agreed(client, settings, clock, PAYER)
    await payer.say("我的订单")
    for answer in ("嗯？", "哪个都行", "不知道"):
        await payer.say(answer)
    async with client.app[SESSIONS]() as s:
        assert list(await s.scalars(select(Handoff.reason))) == ["not_understood"]


async def test_my_orders_asked_before_consent_is_answered_after_it(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    await seed_paid(client, PAID)
    c = Customer(client, settings, clock, openid=PAYER, first_msg_id=5000)
    await c.say("查订单")  # the notice first; the request is held
    listed = await c.say("同意")
    first = ZH.say("order_choice", n=1, order="****0111", amount="¥49.90", date="11-30")
    assert first in listed and listed.startswith(ZH.say("consent_thanks"))
    assert await state_and_cards(client) == (["pick_order"], 0)
    assert "/card/" in await c.say("1")

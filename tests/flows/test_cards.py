"""Cards as issued over real HTTP: a row with a one-time state per card; no card that can't work."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import Card, Handoff
from storage.records import ContactRecord
from storage.repositories import ContactRepository
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
ORDER = "DD20250503123456"


async def test_each_card_is_recorded_with_its_own_one_time_state(
    client: Client, customer: Customer
) -> None:
    await customer.say(ORDER)
    await customer.say("同意")
    await customer.say("128.5")
    await customer.say(ORDER)
    await customer.say("128.5")
    async with client.app[SESSIONS]() as s:
        cards = list(await s.scalars(select(Card).order_by(Card.id)))
    assert len(cards) == 2
    assert len({c.state for c in cards}) == 2
    assert all(len(c.state) <= 30 and ORDER not in c.state for c in cards)
    assert {(c.order_tail, c.amount_cents) for c in cards} == {("3456", 12850)}
    assert all(c.expires_at - c.created_at == timedelta(minutes=30) for c in cards)


async def test_a_contact_nobody_could_add_sends_the_customer_to_a_person(
    client: Client, settings: Settings, clock: FakeClock, customer: Customer
) -> None:
    async with client.app[SESSIONS]() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [ContactRecord(contact="alice", name="王小美（售后）", wechat_id="wx_ab12cd89")],
            clock.now(),
        )
    await customer.say(ORDER)
    await customer.say("同意")
    reply = await customer.say("128.5")
    assert "wx_ab" not in reply and "/card/" not in reply
    async with client.app[SESSIONS]() as s:
        handoff = await s.scalar(select(Handoff))
        cards = list(await s.scalars(select(Card)))
    assert handoff is not None and handoff.reason == "no_way_to_add"
    assert cards == []

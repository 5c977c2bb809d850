"""BILLBOT_FALLBACK_CONTACT, end to end: an order whose contact is off duty reaches the
fallback contact's card, or without one a person — over the real signed protocol."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import Card, Handoff
from storage.records import ContactRecord
from storage.repositories import ContactRepository
from tests.conftest import Customer, Mode

Client = TestClient[web.Request, web.Application]
ORDER = "DD20250503123456"  # the demo order whose contact is alice


@pytest.fixture
def fallback() -> str:
    return ""


@pytest.fixture
def settings(db_url: str, wechat_encrypt_mode: Mode, fallback: str) -> Settings:
    return Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": db_url,
            "BILLBOT_PUBLIC_URL": "http://bot.test",
            "WECHAT_ENCRYPT_MODE": wechat_encrypt_mode,
            "BILLBOT_FALLBACK_CONTACT": fallback,
        }
    )


async def alice_off_duty_and_carol_on_call(client: Client, clock: FakeClock) -> int:
    async with client.app[SESSIONS]() as s, s.begin():
        contacts = ContactRepository(s)
        await contacts.set_on_duty("alice", False, clock.now())
        await contacts.upsert_many(
            [
                ContactRecord(
                    "carol", "赵敏（值班）", "wx_zhaomin01", qr_url="https://u.wechat.com/ECarol"
                )
            ],
            clock.now(),
        )
        carol = await contacts.find("carol")
    assert carol is not None
    return carol.id


@pytest.mark.parametrize("fallback", ["carol"])
async def test_an_off_duty_contact_s_customer_gets_the_fallback_contact_s_card(
    client: Client, clock: FakeClock, customer: Customer
) -> None:
    carol_id = await alice_off_duty_and_carol_on_call(client, clock)
    await customer.say(ORDER)
    await customer.say("同意")
    reply = await customer.say("128.5")

    assert "赵敏（值班）" in reply and "王小美" not in reply
    async with client.app[SESSIONS]() as s:
        card = await s.scalar(select(Card))
    assert card is not None and card.contact_id == carol_id


async def test_without_a_fallback_an_off_duty_contact_s_customer_is_handed_to_a_person(
    client: Client, clock: FakeClock, customer: Customer
) -> None:
    await alice_off_duty_and_carol_on_call(client, clock)  # carol is on duty, but nobody chose her
    await customer.say(ORDER)
    await customer.say("同意")
    reply = await customer.say("128.5")

    assert reply and "/card/" not in reply and "赵敏" not in reply
    async with client.app[SESSIONS]() as s:
        handoff = await s.scalar(select(Handoff))
        cards = list(await s.scalars(select(Card)))
    assert handoff is not None and handoff.reason == "no_contact"
    assert cards == []

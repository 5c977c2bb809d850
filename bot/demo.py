"""Demo data for `billbot demo`: a few orders and contacts, so a newcomer can chat at once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.records import ContactRecord, OrderRecord
from storage.repositories import Repositories

# qr_url holds what a contact's own WeChat QR code decodes to (WeChat: Me → QR Code → Save
# Image, then read the link out of it), in the u.wechat.com form WeChat's scanner opens.
DEMO_CONTACTS = (
    ContactRecord(
        contact="alice",
        name="王小美（售后）",
        wechat_id="wx_ab12cd89",
        store="旗舰店",
        qr_url="https://u.wechat.com/EDemoAlice-billbot-2025",
    ),
    ContactRecord(
        contact="bob",
        name="李师傅（配送）",
        wechat_id="wx_lishifu2024",
        store="城东店",
        qr_url="https://u.wechat.com/EDemoBob-billbot-2025",
    ),
)
DEMO_ORDERS = (
    OrderRecord(
        order_no="DD20250503123456",
        amount_cents=12850,
        paid_at=datetime(2025, 5, 3, 4, 30, tzinfo=UTC),
        store="旗舰店",
        contact="alice",
        card_last4="6789",
        tracking_no="SF1234567890",
    ),
    OrderRecord(
        order_no="2025050322001456781234567890",
        amount_cents=5680,
        paid_at=datetime(2025, 5, 3, 2, 0, tzinfo=UTC),
        store="城东店",
        card_last4="4321",
        tracking_no="YT9876543210",
    ),
    OrderRecord(
        order_no="4200001234202505031234567890",
        amount_cents=9900,
        paid_at=datetime(2025, 5, 2, 10, 0, tzinfo=UTC),
        store="旗舰店",
    ),
)
# A customer's whole way to the card with the first demo order, as the README's quick start
# and the benchmarks type it: greeting, consent, order number, amount.
DEMO_DIALOGUE = ("你好", "同意", DEMO_ORDERS[0].order_no, "128.5")


async def seed_demo(sessions: async_sessionmaker[AsyncSession], now: datetime) -> bool:
    """Seeds the demo orders and contacts if there are none yet; True if it seeded."""
    async with sessions() as session, session.begin():
        repos = Repositories.on(session)
        if await repos.orders.count() or await repos.contacts.count():
            return False
        await repos.contacts.upsert_many(DEMO_CONTACTS, now)
        await repos.orders.upsert_many(DEMO_ORDERS, now)
    return True

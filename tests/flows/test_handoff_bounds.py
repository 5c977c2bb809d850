"""One customer cannot grow the handoff table without bound: ask-and-cancel reuses rows after
a few an hour, and cancelled handoffs go with the retention job."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import Handoff
from storage.repositories.handoffs import NEW_PER_HOUR
from storage.retention import purge_expired
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]


async def handoffs(client: Client) -> list[tuple[str, str]]:
    async with client.app[SESSIONS]() as s:
        return [(h.ref, h.status) for h in await s.scalars(select(Handoff).order_by(Handoff.id))]


async def test_asking_and_cancelling_over_and_over_reuses_rows(
    client: Client, customer: Customer, clock: FakeClock
) -> None:
    await customer.say("你好")
    await customer.say("同意")
    for _ in range(10):
        await customer.say("转人工")
        await customer.say("重新开始")
    await customer.say("转人工")
    rows = await handoffs(client)
    assert len(rows) == NEW_PER_HOUR
    assert [status for _, status in rows].count("waiting") == 1  # queued, all the same

    clock.advance(timedelta(hours=1, seconds=1))  # a new hour: a new row again
    await customer.say("重新开始")
    await customer.say("转人工")
    assert len(await handoffs(client)) == NEW_PER_HOUR + 1


async def test_cancelled_handoffs_are_purged_after_the_retention_period(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    leaver = Customer(client, settings, clock, openid="oLeaver0000000000001", first_msg_id=500)
    for text in ("你好", "同意", "转人工", "重新开始"):
        await leaver.say(text)
    stayer = Customer(client, settings, clock, openid="oStayer0000000000001", first_msg_id=900)
    for text in ("你好", "同意", "转人工"):
        await stayer.say(text)
    clock.advance(timedelta(hours=73))
    counts = await purge_expired(client.app[SESSIONS], clock.now())
    assert counts["cancelled_handoffs"] == 1
    assert [status for _, status in await handoffs(client)] == ["expired"]

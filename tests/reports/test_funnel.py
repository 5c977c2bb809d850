"""The funnel over real HTTP callbacks: each journey's steps, abandonment at expiry, the report."""

from __future__ import annotations

import re
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.funnel import funnel_report
from bot.keys import SESSIONS
from storage.models import FunnelEvent
from storage.retention import purge_expired
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
ORDER = "DD20250503123456"
CARD_PATH = re.compile(r"http://bot\.test(/card/[A-Za-z0-9_.-]+)")


def customer(client: Client, settings: Settings, clock: FakeClock, n: int) -> Customer:
    return Customer(
        client, settings, clock, openid=f"oFunnelCustomer{n:012d}", first_msg_id=n * 1000
    )


async def steps_of(client: Client) -> dict[str, list[str]]:
    """Each journey's recorded steps, in the order they were recorded."""
    async with client.app[SESSIONS]() as s:
        rows = await s.execute(
            select(FunnelEvent.journey, FunnelEvent.step).order_by(FunnelEvent.id)
        )
        journeys: dict[str, list[str]] = {}
        for journey, step in rows:
            journeys.setdefault(journey, []).append(step)
    return journeys


async def test_a_scripted_mix_gives_exactly_the_expected_funnel(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    n = 0

    def next_customer() -> Customer:
        nonlocal n
        n += 1
        return customer(client, settings, clock, n)

    for _ in range(3):  # decline the notice
        c = next_customer()
        await c.say("你好")
        await c.say("不同意")
    for _ in range(2):  # go silent at the notice
        await next_customer().say("你好")
    for _ in range(2):  # go silent after the order is found
        c = next_customer()
        await c.say(ORDER)
        await c.say("同意")
    for _ in range(1):  # two wrong amounts, then silence
        c = next_customer()
        await c.say(ORDER)
        await c.say("同意")
        await c.say("1.00")
        await c.say("2.00")
    for i in range(4):  # the card; three of them open it, one twice
        c = next_customer()
        await c.say(ORDER)
        await c.say("同意")
        reply = await c.say("128.5")
        match = CARD_PATH.search(reply)
        assert match, reply
        for _ in range(min(i, 2)):
            assert (await client.get(match.group(1))).status == 200
    for _ in range(3):  # ask for a person after agreeing
        c = next_customer()
        await c.say("你好")
        await c.say("同意")
        await c.say("转人工")
    # an unsubscribe (housekeeping) starts no journey
    await next_customer().event("unsubscribe")

    clock.advance(timedelta(hours=73))
    await purge_expired(client.app[SESSIONS], clock.now())

    report = await funnel_report(client.app[SESSIONS])
    counts = {s.name: s.count for s in report.steps}
    assert counts == {
        "started": 15,
        "consent_shown": 15,
        "consented": 10,
        "declined": 3,
        "order_found": 7,
        "verified": 4,
        "card_issued": 4,
        "card_opened": 3,
        "contact_added": 0,
        "handed_off": 3,
        "abandoned": 8,
    }
    assert report.abandoned_at == {"consent_shown": 2, "declined": 3, "order_found": 3}
    by_name = {s.name: s for s in report.steps}
    assert by_name["consented"].conversion == round(10 / 15, 4)
    assert by_name["consented"].drop_off == 5
    assert by_name["verified"].previous == "order_found"
    assert by_name["verified"].conversion == round(4 / 7, 4)
    assert report.by_channel["wechat"]["started"] == 15
    assert report.by_verify_mode["amount"]["card_issued"] == 4
    assert report.time_to_card_seconds["journeys"] == 4
    assert report.time_to_card_seconds["median"] == 0.0  # the fake clock stood still


async def test_journeys_hold_no_personal_data_and_steps_are_counted_once(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    c = customer(client, settings, clock, 1)
    await c.say(ORDER)
    await c.say("同意")
    reply = await c.say("128.5")
    await c.say(ORDER)  # the same order again: a second card, the same journey
    await c.say("128.5")
    path = CARD_PATH.search(reply)
    assert path
    (await client.get(path.group(1))).raise_for_status()
    journeys = await steps_of(client)
    [(journey, steps)] = journeys.items()
    assert steps == [
        "started",
        "consent_shown",
        "consented",
        "order_found",
        "verified",
        "card_issued",
        "card_opened",
    ]
    assert c.openid not in journey and ORDER not in journey
    # a finished journey is not abandoned when it expires
    clock.advance(timedelta(hours=73))
    await purge_expired(client.app[SESSIONS], clock.now())
    assert "abandoned" not in (await steps_of(client))[journey]


async def test_a_returning_customer_passes_consent_at_once_and_starts_a_new_journey(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    c = customer(client, settings, clock, 1)
    await c.say("你好")
    await c.say("同意")
    clock.advance(timedelta(hours=73))  # the session lapses; consent stays on record
    assert "wx_ab****89" in await c.say(f"订单{ORDER}，金额128.5")
    journeys = await steps_of(client)
    first, second = journeys.values()
    assert second == [
        "started",
        "consent_shown",
        "consented",
        "order_found",
        "verified",
        "card_issued",
    ]
    assert first[-1] == "abandoned"

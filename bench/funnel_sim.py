"""A scripted crowd of customers through the real server, then the funnel report.

    .venv/bin/python bench/funnel_sim.py [--customers 200] [--seed 7] [--json]

Runs billbot in this process on 127.0.0.1 (a fresh SQLite file, demo data, WeCom on against
the local fake WeCom API from the tests), plays a seeded mix of customers over the real
signed, encrypted Official Account protocol — some decline consent, some go silent at each
step, some mistype the order or the amount until a person takes over, some ask for a person,
some get the card, open it, scan it and add the contact (WeCom's encrypted event), a few
delete the contact later — with a fake clock that advances between messages. Then the
sessions lapse (73 h), the retention job decides the abandoned ones, and it prints
`billbot report funnel` for the run. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import create_app  # noqa: E402
from bot.channels.wechat_oa import OAClientCodec  # noqa: E402
from bot.channels.wecom import WeComClientCodec  # noqa: E402
from bot.cli import report_funnel  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.demo import seed_demo  # noqa: E402
from bot.funnel import funnel_report  # noqa: E402
from bot.keys import SESSIONS  # noqa: E402
from storage.records import ContactRecord  # noqa: E402
from storage.repositories import ContactRepository  # noqa: E402
from storage.retention import purge_expired  # noqa: E402
from tests.fakes.wecom_api import FAKE_WECOM_STATE, fake_wecom_app  # noqa: E402

CORP_ID, CORP_SECRET = "wwsimulation0001", "simulation-contact-secret"
WECOM_TOKEN, WECOM_AES_KEY = "simulationtoken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
MEMBER = "wangxm"
ORDER, AMOUNT = "DD20250503123456", "128.5"
# Guessers try another demo order: three failed checks lock an order for everyone (30 min).
GUESSED = "2025050322001456781234567890"
CARD = re.compile(r"https?://[^/\s]+(/card/[A-Za-z0-9_.-]+)")

# (behaviour, weight): what each simulated customer does
BEHAVIOURS = [
    ("declines", 8),
    ("silent_at_notice", 10),
    ("silent_after_consent", 7),
    ("unknown_order_three_times", 5),
    ("silent_after_order", 8),
    ("wrong_amount_three_times", 4),
    ("asks_for_person", 8),
    ("card_not_opened", 10),
    ("card_opened_not_added", 12),
    ("card_added", 24),
    ("card_added_then_deleted", 4),
]


class Simulation:
    def __init__(self, client: TestClient, settings: Settings, clock: FakeClock) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.wecom = WeComClientCodec(CORP_ID, WECOM_TOKEN, WECOM_AES_KEY, clock)
        self.msg_id = 10_000

    async def say(self, codec: OAClientCodec, openid: str, text: str) -> str:
        self.clock.advance(timedelta(seconds=random.randint(4, 40)))  # people take their time
        self.msg_id += 1
        query, body = codec.build_text(openid, text, self.msg_id)
        resp = await self.client.post("/wechat", params=query, data=body)
        assert resp.status == 200, await resp.text()
        return codec.read_reply(await resp.read())

    async def wecom_event(self, change: str, external: str, state: str | None = None) -> None:
        query, body = self.wecom.contact_event(change, MEMBER, external, state=state)
        resp = await self.client.post("/wecom", params=query, data=body)
        assert resp.status == 200, await resp.text()

    async def customer(self, n: int, behaviour: str) -> None:
        codec = OAClientCodec(self.settings.wechat, self.clock, "safe")
        openid = f"oSim{n:024d}"

        async def say(text: str) -> str:
            return await self.say(codec, openid, text)

        if behaviour in ("declines", "silent_at_notice"):
            await say("你好")
            if behaviour == "declines":
                await say("不同意")
            return
        first = {"unknown_order_three_times": "你好", "wrong_amount_three_times": GUESSED}
        await say(first.get(behaviour, ORDER))
        await say("同意")
        if behaviour == "silent_after_consent":
            return
        if behaviour == "asks_for_person":
            await say("转人工")
            return
        if behaviour == "unknown_order_three_times":
            for wrong in ("DD20990101000001", "DD20990101000002", "DD20990101000003"):
                await say(wrong)
            return
        if behaviour == "silent_after_order":
            return
        if behaviour == "wrong_amount_three_times":
            for wrong in ("1.00", "2.00", "3.00"):
                await say(wrong)
            return
        reply = await say(AMOUNT)
        link = CARD.search(reply)
        assert link, reply
        if behaviour == "card_not_opened":
            return
        self.clock.advance(timedelta(seconds=random.randint(5, 60)))
        await self.client.get(link.group(1))
        qr = await self.client.get(f"{link.group(1)}/qr.png")
        assert qr.status == 200
        if behaviour == "card_opened_not_added":
            return
        from sqlalchemy import select

        from storage.models import Card

        async with self.client.app[SESSIONS]() as s:
            state = await s.scalar(select(Card.state).order_by(Card.id.desc()).limit(1))
        external = f"wmSim{n:06d}"
        self.clock.advance(timedelta(seconds=random.randint(10, 90)))
        await self.wecom_event("add_external_contact", external, state)
        if behaviour == "card_added_then_deleted":
            await self.wecom_event("del_external_contact", external)


async def run(customers: int, seed: int, as_json: bool) -> None:
    random.seed(seed)
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        fake = fake_wecom_app(clock, CORP_ID, CORP_SECRET)
        fake[FAKE_WECOM_STATE].add_member(MEMBER)
        async with TestServer(fake) as fake_server:
            settings = Settings.from_env(
                {
                    "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/sim.db",
                    "BILLBOT_PUBLIC_URL": "http://bot.test",
                    "WECOM_CORP_ID": CORP_ID,
                    "WECOM_SECRET": CORP_SECRET,
                    "WECOM_TOKEN": WECOM_TOKEN,
                    "WECOM_AES_KEY": WECOM_AES_KEY,
                    "WECOM_API_BASE": str(fake_server.make_url("")).rstrip("/"),
                }
            )
            app = create_app(settings, clock)
            async with TestClient(TestServer(app)) as client:
                sessions = app[SESSIONS]
                await seed_demo(sessions, clock.now())
                async with sessions() as s, s.begin():
                    await ContactRepository(s).upsert_many(
                        [
                            ContactRecord(
                                contact="alice",
                                name="王小美（售后）",
                                wechat_id="wx_ab12cd89",
                                store="旗舰店",
                                qr_url="https://u.wechat.com/EDemoAlice-billbot-2025",
                                wecom_userid=MEMBER,
                            )
                        ],
                        clock.now(),
                    )
                sim = Simulation(client, settings, clock)
                names = [b for b, _ in BEHAVIOURS]
                weights = [w for _, w in BEHAVIOURS]
                mix = random.choices(names, weights=weights, k=customers)
                for n, behaviour in enumerate(mix):
                    await sim.customer(n, behaviour)
                clock.advance(timedelta(hours=73))
                await purge_expired(sessions, clock.now())
                report = await funnel_report(sessions)
                counts = {b: mix.count(b) for b in names}
        if as_json:
            print(
                json.dumps({"mix": counts, "report": asdict(report)}, ensure_ascii=False, indent=2)
            )
            return
        print(f"{customers} simulated customers (seed {seed}): {counts}")
        await report_funnel(settings, None, None, as_json=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.customers, args.seed, args.json))


if __name__ == "__main__":
    main()

"""How many messages a customer sends from first contact to the card, over scripted journeys.

    .venv/bin/python bench/messages_to_card.py

Runs billbot in this process (a fresh SQLite file, demo data, the fake WeChat API from the
tests for scan codes) and plays each script below as a new customer over the real signed,
encrypted Official Account protocol, counting their messages (a scan counts as one) until a
reply carries the card link. Prints each journey and the median. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import create_app  # noqa: E402
from bot.channels.wechat_oa import OAClientCodec  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.config import DEMO_APP_ID, DEMO_APP_SECRET, Settings  # noqa: E402
from bot.demo import seed_demo  # noqa: E402
from bot.keys import SESSIONS  # noqa: E402
from bot.receipt_qr import make_receipt_qrs  # noqa: E402
from storage.records import OrderRecord  # noqa: E402
from storage.repositories import Repositories  # noqa: E402
from tests.fakes.wechat_api import FAKE_STATE, fake_wechat_app  # noqa: E402

CARD = re.compile(r"/card/[A-Za-z0-9_.-]+")
PAYER = "oBenchPayer0000000000000000001"
LISTER = "oBenchPayer0000000000000000002"  # paid two orders: "查订单" lists them
SCAN = "<scan>"  # the step that scans the receipt's code

# (name, openid, steps): what a customer sends, in order; the first reply with a card ends it.
SCRIPTS: list[tuple[str, str, list[str]]] = [
    ("typed order, then amount", "", ["DD20250503123456", "同意", "128.5"]),
    ("greets first", "", ["你好", "同意", "DD20250503123456", "128.50元"]),
    ("order and amount in one", "", ["DD20250503123456 128.50", "同意"]),
    (
        "voice, digit by digit",
        "",
        ["订单号 D D 二零二五零五零三 幺二三四五六", "同意", "一百二十八块五"],
    ),
    ("look-alike letters", "", ["DD2O25O5O3I23456", "好的", "128.5"]),
    ("English", "", ["my order is DD20250503123456", "ok", "128.50"]),
    (
        "pasted Alipay bill",
        "",
        [
            "账单详情 -56.80 交易成功 支付时间 2025-05-03 10:00:12 交易号 "
            "2025050322001456781234567890 商家订单号 T200P2025050310001200981",
            "同意",
        ],
    ),
    ("wrong amount once", "", ["4200001234202505031234567890", "同意", "98", "99"]),
    ("payer types the order", PAYER, ["DD20251130000111", "同意"]),
    ("payer asks for their orders", LISTER, ["查订单", "同意", "1"]),
    ("scans the receipt (new follower)", "", [SCAN, "同意"]),
]


async def run() -> None:
    clock = FakeClock(datetime(2025, 12, 1, 12, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        wechat = TestServer(fake_wechat_app(clock, DEMO_APP_ID, DEMO_APP_SECRET))
        await wechat.start_server()
        base = str(wechat.make_url("")).rstrip("/")
        settings = replace(
            Settings.from_env({"BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/b.db"}),
            wechat_api_base=base,
        )
        client = TestClient(TestServer(create_app(settings, clock)))
        await client.start_server()
        try:
            await seed_demo(client.app[SESSIONS], clock.now())
            async with client.app[SESSIONS]() as session, session.begin():
                await Repositories.on(session).orders.upsert_many(
                    [
                        OrderRecord(
                            "DD20251130000111",
                            4990,
                            contact="alice",
                            paid_at=clock.now() - timedelta(days=1),
                            payer_openid=PAYER,
                        ),
                        *(
                            OrderRecord(
                                f"DD2025112900022{k}",
                                12850,
                                contact="alice",
                                paid_at=clock.now() - timedelta(days=2 + k),
                                payer_openid=LISTER,
                            )
                            for k in range(2)
                        ),
                    ],
                    clock.now(),
                )
            counts = []
            for n, (name, openid, steps) in enumerate(SCRIPTS):
                codec = OAClientCodec(settings.wechat, clock, "safe")
                user = openid or f"oBench{n:024d}"
                msg_id = zlib.crc32(f"{n}{user}".encode()) % 10**9
                sent = 0
                for step in steps:
                    clock.advance(timedelta(seconds=20))
                    sent += 1
                    if step == SCAN:
                        await make_receipt_qrs(
                            settings, ["DD20250503123456"], Path(tmp) / "qr", clock
                        )
                        scene = wechat.app[FAKE_STATE].qr_scenes[-1]
                        query, body = codec.build_event(user, "subscribe", f"qrscene_{scene}")
                    else:
                        msg_id += 1
                        query, body = codec.build_text(user, step, msg_id)
                    resp = await client.post("/wechat", params=query, data=body)
                    reply = codec.read_reply(await resp.read())
                    if CARD.search(reply):
                        break
                else:
                    raise SystemExit(f"{name}: no card after {steps}")
                counts.append(sent)
                print(f"{sent}  {name}")
            print(f"median messages from first contact to card: {statistics.median(counts)}")
            print(f"mean: {statistics.mean(counts):.2f} over {len(counts)} scripted journeys")
        finally:
            await client.close()
            await wechat.close()


if __name__ == "__main__":
    asyncio.run(run())

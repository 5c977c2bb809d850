"""Fuzzing /wechat in every encryption mode: generated bodies, signed and unsigned. Never a
5xx; a refused request changes no row."""

from __future__ import annotations

import random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import Conversation, FunnelEvent, Message, ProcessedMessage, SignatureUse
from tests.conftest import Customer, Mode

Client = TestClient[web.Request, web.Application]
SEED = 20261202
BODIES_PER_MODE = 60

FRAGMENTS = [
    "<ToUserName>gh_x</ToUserName>",
    "<FromUserName><![CDATA[oFuzz{n}]]></FromUserName>",
    "<FromUserName></FromUserName>",
    "<CreateTime>{t}</CreateTime>",
    "<CreateTime>-1e9</CreateTime>",
    "<MsgType><![CDATA[text]]></MsgType>",
    "<MsgType>event</MsgType>",
    "<MsgType>voice</MsgType>",
    "<Event>subscribe</Event>",
    "<Event>SCAN</Event>",
    "<EventKey><![CDATA[qrscene_x]]></EventKey>",
    "<Content><![CDATA[DD20250503123456]]></Content>",
    "<Content>同意</Content>",
    "<Content><![CDATA[]]]]><![CDATA[>]]></Content>",
    "<Content>&lt;&amp;&gt;</Content>",
    "<Content>&unknown;</Content>",
    "<Recognition>一二三</Recognition>",
    "<MsgId>{n}</MsgId>",
    "<MsgId>abc</MsgId>",
    "<Encrypt>AAAA</Encrypt>",
    "<a><b><c><d><e></e></d></c></b></a>",
    "<x>" * 200 + "</x>" * 200,
    "\x00\x01\x02",
    "\ud7ff\ue000",
    "😀" * 50,
    "</xml>",
    "<xml>",
    "<!-- comment -->",
    "<?pi target?>",
]
PROLOGUES = [
    "",
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<?xml version="1.0" encoding="GBK"?>',
    "<!DOCTYPE xml>",
    '<!DOCTYPE xml [<!ENTITY e "x">]>',
    '<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd">',
]


def random_document(rng: random.Random, n: int, t: int) -> str:
    inner = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 8)))
    inner = inner.replace("{n}", str(n)).replace("{t}", str(t))
    root = rng.choice(["xml", "xml", "xml", "root", ""])
    body = f"<{root}>{inner}</{root}>" if root else inner
    return rng.choice(PROLOGUES) + body


async def rows(client: Client) -> tuple[int, ...]:
    async with client.app[SESSIONS]() as s:
        counts = [
            int(await s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Conversation, Message, ProcessedMessage, SignatureUse, FunnelEvent)
        ]
    return tuple(counts)


@pytest.mark.parametrize(
    ("wechat_encrypt_mode", "mode"), [("plain", "plain"), ("compat", "compat"), ("safe", "safe")]
)
async def test_fuzzed_callbacks_never_5xx_and_refusals_change_nothing(
    client: Client, settings: Settings, clock: FakeClock, mode: Mode
) -> None:
    rng = random.Random(f"{SEED}-{mode}")
    codec = Customer(client, settings, clock, mode=mode).codec
    t = int(clock.now().timestamp())
    statuses: dict[int, int] = {}
    for n in range(BODIES_PER_MODE):
        document = random_document(rng, n, t)
        query, body = codec.build_document(document.encode("utf-8", "surrogatepass"))
        variants = [(query, body)]
        unsigned = {k: v for k, v in query.items() if k not in ("signature", "msg_signature")}
        variants.append((unsigned, body))
        variants.append(({**query, "timestamp": str(t - 10_000)}, body))
        variants.append((query, bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))))
        for params, payload in variants:
            before = await rows(client)
            resp = await client.post("/wechat", params=params, data=payload)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            assert resp.status < 500, (document, resp.status, await resp.text())
            if resp.status >= 400:
                assert await rows(client) == before, (document, resp.status)
    assert any(status >= 400 for status in statuses)  # the fuzzer did reach the refusals

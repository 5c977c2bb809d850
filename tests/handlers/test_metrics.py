"""/metrics over real HTTP: what an operator watches moves with real traffic."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot.clock import FakeClock
from bot.config import Settings
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_traffic(client: Client, settings: Settings, clock: FakeClock) -> None:
    buyer = Customer(client, settings, clock, openid="oMetricsBuyer0001", first_msg_id=100)
    await buyer.say("DD20250503123456")
    await buyer.say("同意")
    await buyer.say("128.5", msg_id=777)
    await buyer.say("128.5", msg_id=777)  # WeChat's redelivery
    asker = Customer(client, settings, clock, openid="oMetricsAsker0001", first_msg_id=200)
    await asker.say("你好")
    await asker.say("同意")
    await asker.say("转人工")
    query, body = buyer.codec.build_text(buyer.openid, "hi", 1)
    await client.post("/wechat", params={**query, "msg_signature": "0" * 40}, data=body)
    plain = Customer(client, settings, clock, mode="plain")
    pq, pb = plain.codec.build_text(plain.openid, "hi", 2)
    await client.post("/wechat", params=pq, data=pb)  # plaintext in safe mode

    samples = await scrape(client)
    assert (
        value(samples, "billbot_messages_total", channel="wechat", direction="in", type="text") == 7
    )
    assert (
        value(samples, "billbot_messages_total", channel="wechat", direction="out", type="reply")
        == 7
    )
    assert value(samples, "billbot_funnel_steps_total", step="started") == 2
    assert value(samples, "billbot_funnel_steps_total", step="card_issued") == 1
    assert value(samples, "billbot_funnel_steps_total", step="handed_off") == 1
    assert value(samples, "billbot_dedup_hits_total", channel="wechat") == 1
    assert (
        value(samples, "billbot_rejected_requests_total", channel="wechat", reason="signature") == 1
    )
    assert value(samples, "billbot_rejected_requests_total", channel="wechat", reason="mode") == 1
    assert value(samples, "billbot_handoffs_waiting") == 1
    assert value(samples, "billbot_turn_seconds_count", channel="wechat") == 7

"""The HTTP order backend against a real local server: the example backend, made to misbehave."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import FakeClock
from bot.order_api import HttpOrders, OrderBackendDown
from bot.privacy.masking import mask_order_no
from examples.order_backend import load_orders, make_app
from storage.records import OrderRecord

ORDER_NO = "20260503123456789"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz12"
CSV = f"""order_no,amount,currency,paid_at,store,contact,payer_openid,card_last4,tracking_no,status
{ORDER_NO},128.5,CNY,2026-05-03T14:30:00+08:00,Jing'an,C01,{OPENID},4321,SF123456789,paid
2026-0503-0001,"1,280.00",,,,,,,,
ABC7,0.10,usd,2026-05-01 09:15,,,,,,
"""
COOLDOWN = timedelta(seconds=30)

# What the misbehaving middleware does with a request: pass it to the example backend,
# answer with a canned (status, body), hang until the client gives up, or wait for the gate.
Behaviour = str | tuple[int, bytes]


class Misbehaviour:
    """Put in front of the example backend: follows a plan, one step per request, and counts
    the requests that reach the server. With the plan used up, requests pass through."""

    def __init__(self) -> None:
        self.plan: list[Behaviour] = []
        self.requests = 0
        self.arrived = asyncio.Event()  # a request waits at the gate
        self.gate = asyncio.Event()
        self.never = asyncio.Event()  # never set: a handler waiting on it only ends if cancelled

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.requests += 1
        behaviour = self.plan.pop(0) if self.plan else "pass"
        if behaviour == "hang":
            await self.never.wait()
        elif behaviour == "gate":
            self.arrived.set()
            await self.gate.wait()
        elif isinstance(behaviour, tuple):
            status, body = behaviour
            return web.Response(status=status, body=body, content_type="application/json")
        return await handler(request)


@pytest.fixture
def misbehaviour() -> Misbehaviour:
    return Misbehaviour()


@pytest.fixture
async def backend(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    misbehaviour: Misbehaviour,
    tmp_path: Path,
) -> TestServer:
    """The example order backend on a real local server, serving CSV above."""
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    app = make_app(load_orders(path))
    app.middlewares.append(misbehaviour.middleware)
    # No access log: its lines hold the query string, and the log test reads every logger.
    return await aiohttp_server(app, access_log=None)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def make_orders(
    session: aiohttp.ClientSession, backend: TestServer, clock: FakeClock
) -> Callable[..., HttpOrders]:
    """HttpOrders pointed at the backend, with the tunables a test sets."""

    def make(
        *, timeout: float = 1.5, failure_threshold: int = 5, cooldown: timedelta = COOLDOWN
    ) -> HttpOrders:
        url = str(backend.make_url("/orders"))
        return HttpOrders(
            session,
            url,
            clock,
            timeout=timeout,
            failure_threshold=failure_threshold,
            cooldown=cooldown,
        )

    return make


def order_body(**fields: object) -> bytes:
    return json.dumps({"order_no": ORDER_NO, "payer_openid": OPENID, **fields}).encode()


# ----------------------------------------------------------------------------- answers


async def test_a_known_order_comes_back_with_every_field_exactly(
    make_orders: Callable[..., HttpOrders],
) -> None:
    found = await make_orders().find(ORDER_NO)

    assert found == OrderRecord(
        order_no=ORDER_NO,
        amount_cents=12850,
        currency="CNY",
        paid_at=datetime(2026, 5, 3, 6, 30, tzinfo=UTC),
        store="Jing'an",
        contact="C01",
        payer_openid=OPENID,
        card_last4="4321",
        tracking_no="SF123456789",
        status="paid",
    )


async def test_amounts_are_whole_cents_and_empty_fields_are_none(
    make_orders: Callable[..., HttpOrders],
) -> None:
    orders = make_orders()

    big = await orders.find("202605030001")
    small = await orders.find("ABC7")

    assert big == OrderRecord(order_no="2026-0503-0001", amount_cents=128000)
    assert small is not None
    assert (small.amount_cents, small.currency) == (10, "USD")
    # Without a zone, the time is China time, as in the CSV import.
    assert small.paid_at == datetime(2026, 5, 1, 1, 15, tzinfo=UTC)


async def test_an_unknown_order_is_none_and_asked_once(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    orders = make_orders()

    assert await orders.find("NOSUCH0001") is None
    assert misbehaviour.requests == 1
    assert orders.state == "closed"
    assert orders.consecutive_failures == 0


async def test_a_json_number_amount_is_read_exactly(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    misbehaviour.plan = [(200, b'{"order_no": "A1", "amount": 0.29}')]

    found = await make_orders().find("A1")

    assert found == OrderRecord(order_no="A1", amount_cents=29)


# ----------------------------------------------------------------------- retry and timeout


async def test_a_timeout_is_retried_once_and_the_retry_answers(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    misbehaviour.plan = ["hang"]
    orders = make_orders(timeout=0.2)

    found = await orders.find(ORDER_NO)

    assert found is not None and found.amount_cents == 12850
    assert misbehaviour.requests == 2
    assert orders.consecutive_failures == 0


async def test_two_5xx_mean_the_backend_is_down(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    misbehaviour.plan = [(500, b"{}"), (503, b"{}")]
    orders = make_orders()

    with pytest.raises(OrderBackendDown) as down:
        await orders.find(ORDER_NO)

    assert "HTTP 503" in down.value.reason
    assert misbehaviour.requests == 2
    assert orders.consecutive_failures == 1


async def test_a_refused_connection_is_retried_then_down(
    session: aiohttp.ClientSession, clock: FakeClock, unused_tcp_port: int
) -> None:
    orders = HttpOrders(session, f"http://127.0.0.1:{unused_tcp_port}/orders", clock)

    with pytest.raises(OrderBackendDown) as down:
        await orders.find(ORDER_NO)

    assert "connection error" in down.value.reason
    assert "2 attempts" in down.value.reason


@pytest.mark.parametrize("status", [400, 401, 429])
async def test_a_4xx_other_than_404_is_a_failure_not_retried(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour, status: int
) -> None:
    misbehaviour.plan = [(status, b'{"error": "no"}')]

    with pytest.raises(OrderBackendDown) as down:
        await make_orders().find(ORDER_NO)

    assert down.value.reason == f"HTTP {status}"
    assert misbehaviour.requests == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Bad gateway</html>",
        b'["not", "an", "object"]',
        order_body(),  # no amount
        json.dumps({"amount": "128.50", "payer_openid": OPENID}).encode(),  # no order number
        order_body(amount="abc"),
        order_body(amount="12.345"),
        order_body(amount="-1.00"),
        order_body(amount="NaN"),
        order_body(amount="1e999999999"),
        order_body(amount=True),
        order_body(amount="1.00", paid_at="yesterday"),
        order_body(amount="1.00", store=12),
        order_body(amount="1.00", currency="yuan"),
    ],
)
async def test_a_malformed_answer_is_a_failure_logged_once_without_the_order(
    make_orders: Callable[..., HttpOrders],
    misbehaviour: Misbehaviour,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
) -> None:
    misbehaviour.plan = [(200, body)]
    orders = make_orders()

    with caplog.at_level(logging.DEBUG), pytest.raises(OrderBackendDown) as down:
        await orders.find(ORDER_NO)

    assert down.value.reason.startswith("malformed response")
    assert misbehaviour.requests == 1  # the same question would get the same answer
    assert orders.consecutive_failures == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert mask_order_no(ORDER_NO) in warnings[0].getMessage()
    assert ORDER_NO not in caplog.text
    assert OPENID not in caplog.text


# ------------------------------------------------------------------------- circuit breaker


async def open_circuit(orders: HttpOrders, misbehaviour: Misbehaviour, failures: int) -> None:
    misbehaviour.plan = [(502, b"")] * (2 * failures)
    for _ in range(failures):
        with pytest.raises(OrderBackendDown):
            await orders.find(ORDER_NO)


async def test_the_circuit_opens_after_n_failures_and_then_fails_fast(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    orders = make_orders(failure_threshold=3, cooldown=COOLDOWN)

    await open_circuit(orders, misbehaviour, 2)
    assert orders.state == "closed"
    await open_circuit(orders, misbehaviour, 1)
    assert orders.state == "open"
    assert misbehaviour.requests == 6

    with pytest.raises(OrderBackendDown) as down:
        await orders.find(ORDER_NO)

    assert "circuit open" in down.value.reason
    assert misbehaviour.requests == 6  # nothing reached the backend


async def test_a_success_resets_the_count_of_failures(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour
) -> None:
    orders = make_orders(failure_threshold=2)

    await open_circuit(orders, misbehaviour, 1)
    assert await orders.find("NOSUCH0001") is None  # 404 is an answer
    await open_circuit(orders, misbehaviour, 1)

    assert orders.state == "closed"


async def test_after_the_cooldown_one_trial_closes_the_circuit(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour, clock: FakeClock
) -> None:
    orders = make_orders(failure_threshold=1, cooldown=COOLDOWN)
    await open_circuit(orders, misbehaviour, 1)

    clock.advance(COOLDOWN - timedelta(seconds=1))
    assert orders.state == "open"
    with pytest.raises(OrderBackendDown):
        await orders.find(ORDER_NO)
    assert misbehaviour.requests == 2

    clock.advance(timedelta(seconds=1))
    assert orders.state == "half_open"
    found = await orders.find(ORDER_NO)

    assert found is not None and found.order_no == ORDER_NO
    assert misbehaviour.requests == 3
    assert orders.state == "closed"


async def test_a_failed_trial_reopens_the_circuit_for_another_cooldown(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour, clock: FakeClock
) -> None:
    orders = make_orders(failure_threshold=1, cooldown=COOLDOWN)
    await open_circuit(orders, misbehaviour, 1)
    clock.advance(COOLDOWN)
    misbehaviour.plan = [(500, b"")]

    with pytest.raises(OrderBackendDown):
        await orders.find(ORDER_NO)

    assert misbehaviour.requests == 3  # the trial is one request, not retried
    assert orders.state == "open"
    clock.advance(COOLDOWN - timedelta(seconds=1))
    with pytest.raises(OrderBackendDown):
        await orders.find(ORDER_NO)
    assert misbehaviour.requests == 3


async def test_while_the_trial_runs_other_lookups_fail_fast(
    make_orders: Callable[..., HttpOrders], misbehaviour: Misbehaviour, clock: FakeClock
) -> None:
    orders = make_orders(failure_threshold=1, cooldown=COOLDOWN)
    await open_circuit(orders, misbehaviour, 1)
    clock.advance(COOLDOWN)
    misbehaviour.plan = ["gate"]

    trial = asyncio.create_task(orders.find(ORDER_NO))
    await misbehaviour.arrived.wait()
    with pytest.raises(OrderBackendDown) as down:
        await orders.find(ORDER_NO)
    assert "trial" in down.value.reason
    assert orders.state == "half_open"
    misbehaviour.gate.set()

    assert await trial is not None
    assert misbehaviour.requests == 3
    assert orders.state == "closed"


async def test_logs_never_hold_the_order_number_or_the_openid(
    make_orders: Callable[..., HttpOrders],
    misbehaviour: Misbehaviour,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    orders = make_orders(timeout=0.2, failure_threshold=3, cooldown=COOLDOWN)
    misbehaviour.plan = [
        "hang",
        (500, order_body(amount="1.00")),
        (200, b"not json " + OPENID.encode()),
        (200, order_body(amount="oops")),
    ]

    with caplog.at_level(logging.DEBUG):
        for _ in range(4):  # timeout + 5xx, then two malformed answers, then the open circuit
            with pytest.raises(OrderBackendDown):
                await orders.find(ORDER_NO)
        clock.advance(COOLDOWN)
        assert await orders.find(ORDER_NO) is not None

    assert orders.state == "closed"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3
    assert ORDER_NO not in caplog.text
    assert OPENID not in caplog.text
    assert mask_order_no(ORDER_NO) in caplog.text


async def test_tunables_out_of_range_are_refused(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with pytest.raises(ValueError):
        HttpOrders(session, "http://127.0.0.1:1/orders", clock, failure_threshold=0)

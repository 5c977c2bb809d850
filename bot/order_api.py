"""The merchant's own order API as the order source (``BILLBOT_ORDER_API_URL``), instead of
the local orders table: orders are looked up live, so nothing has to be imported.

The contract (``examples/order_backend.py`` is a runnable reference server)::

    GET {base_url}?order_no=<the order number, normalised: upper-case, no separators>
    Accept: application/json

    200  {"order_no": "20260503123456", "amount": "128.50", "currency": "CNY",
          "paid_at": "2026-05-03T14:30:00+08:00", "store": "…", "contact": "…",
          "payer_openid": "…", "card_last4": "1234", "tracking_no": "…", "status": "…"}
    404  no such order (any body)

The fields are the CSV import's. ``order_no`` and ``amount`` are required; ``amount`` is a
decimal string in yuan with at most two decimals (a JSON number is read exactly too);
``currency`` defaults to ``CNY``; ``paid_at`` is ISO 8601 or null (without a zone it means
China time); every other field is a string or null. Anything else — a 200 whose body breaks
these rules, another status, no answer within the timeout — means the backend could not answer.

Why the guard rails: a customer waits on every lookup (WeChat waits 5 s for a callback's answer),
so each request has a short timeout (1.5 s) and one immediate retry on a connection error,
a timeout or a 5xx (never on a 4xx: asking again gets the same answer). The worst case is
2 × timeout. After 5 failed lookups in a row the circuit opens: for 30 s (on the injected clock)
lookups fail at once without touching the backend, then one trial request (half-open, not
retried) closes the circuit if it gets an answer or opens it for another cool-down.

A lookup the backend cannot answer raises :class:`OrderBackendDown` — never ``None``, which
means "no such order" and would count against the customer. Logs show an order number only
masked to its last characters, and never an OpenID or a response body.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, DecimalException
from enum import StrEnum
from typing import Any

import aiohttp
from yarl import URL

from bot.clock import Clock
from bot.flows.base import OrdersUnavailable
from bot.flows.verification import CHINA
from bot.privacy.masking import mask_order_no
from storage.records import OrderRecord

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1.5  # seconds per request
DEFAULT_RETRIES = 1
DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_COOLDOWN = timedelta(seconds=30)

_MAX_BODY = 64 * 1024  # one order is a few hundred bytes; more is not an order
_MAX_CENTS = 2**63 - 1  # what the orders table can hold (BIGINT)
_CURRENCY = re.compile(r"[A-Z]{3}")


class CircuitState(StrEnum):
    """The circuit breaker's state, as exported in metrics."""

    CLOSED = "closed"  # lookups go to the backend
    OPEN = "open"  # lookups fail at once until the cool-down ends
    HALF_OPEN = "half_open"  # the cool-down ended: the next lookup is the trial


class OrderBackendDown(OrdersUnavailable):
    """The order API could not say whether the order exists: tell the customer to try again
    later, do not treat it as an unknown order. ``reason`` says why, for operators."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"order API unavailable: {reason}")
        self.reason = reason


class _Failure(Exception):
    """One request got no usable answer; ``retry`` says whether asking again may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class HttpOrders:
    """Finds orders through the merchant's HTTP API (an ``OrderLookup``), behind a timeout,
    one retry and a circuit breaker, so a slow or dead backend never stalls the bot."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        clock: Clock,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown: timedelta = DEFAULT_COOLDOWN,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0 or failure_threshold < 1 or cooldown < timedelta(0):
            raise ValueError(
                "HttpOrders needs timeout > 0, retries >= 0, failure_threshold >= 1"
                " and a cool-down >= 0"
            )
        self._session = session
        self._url = URL(base_url)
        self._clock = clock
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._threshold = failure_threshold
        self._cooldown = cooldown
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._failures = 0  # failed lookups in a row
        self._opened_at: datetime | None = None  # None: the circuit is closed
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._trial_running or self._clock.now() >= self._opened_at + self._cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def find(self, order_no: str) -> OrderRecord | None:
        """The order, or ``None`` if the backend says there is none.

        Raises :class:`OrderBackendDown` when the backend gives no usable answer or the
        circuit is open.
        """
        trial = self._admit()
        attempts = 1 if trial else 1 + self._retries
        try:
            record = await self._ask(order_no, attempts)
        except _Failure as failure:
            self._record_failure(order_no, failure.reason)
            raise OrderBackendDown(failure.reason) from None
        finally:
            self._trial_running = False  # also when cancelled: the next lookup is the trial
        self._record_success()
        return record

    async def shapes(self) -> list[str]:
        """The API does not list orders: messages are read without shapes (or with
        ``BILLBOT_ORDER_PATTERN``)."""
        return []

    async def paid_by(self, user_id: str, since: datetime, limit: int) -> list[OrderRecord]:
        """The API finds orders by number only: "查订单" then asks for the number."""
        return []

    def _admit(self) -> bool:
        """Whether this lookup may go to the backend (else raises), and if it is the trial."""
        if self._opened_at is None:
            return False
        if self._trial_running:
            raise OrderBackendDown("circuit half-open, a trial request is under way")
        left = self._opened_at + self._cooldown - self._clock.now()
        if left > timedelta(0):
            raise OrderBackendDown(
                f"circuit open after {self._failures} failures in a row,"
                f" next try in {left.total_seconds():.0f} s"
            )
        self._trial_running = True
        return True

    def _record_failure(self, order_no: str, reason: str) -> None:
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock.now()
            circuit = f"circuit open for {self._cooldown.total_seconds():g} s"
        else:
            circuit = f"{self._failures} of {self._threshold} failures before the circuit opens"
        log.warning(
            "order API lookup failed: %s (order %s); %s",
            reason,
            mask_order_no(order_no),
            circuit,
        )

    def _record_success(self) -> None:
        if self._opened_at is not None:
            log.info("order API answers again; circuit closed")
        self._failures = 0
        self._opened_at = None

    async def _ask(self, order_no: str, attempts: int) -> OrderRecord | None:
        attempt = 1
        while True:
            try:
                return await self._request(order_no)
            except _Failure as failure:
                if not failure.retry or attempt >= attempts:
                    if attempt > 1:
                        raise _Failure(
                            f"{failure.reason} ({attempt} attempts)", retry=False
                        ) from None
                    raise
                attempt += 1

    async def _request(self, order_no: str) -> OrderRecord | None:
        url = self._url.update_query(order_no=order_no)
        try:
            async with self._session.get(
                url, headers=self._headers, timeout=self._client_timeout
            ) as resp:
                if resp.status == 404:
                    return None
                if resp.status >= 500:
                    raise _Failure(f"HTTP {resp.status}", retry=True)
                if resp.status != 200:
                    raise _Failure(f"HTTP {resp.status}", retry=False)
                body = await _read_body(resp)
        except TimeoutError:
            raise _Failure(f"no answer within {self._timeout:g} s", retry=True) from None
        except aiohttp.ClientError as exc:
            # The exception's text may hold the URL, and so the order number: name its type only.
            raise _Failure(f"connection error ({type(exc).__name__})", retry=True) from None
        return _order_from(body)


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(8192):
        body += chunk
        if len(body) > _MAX_BODY:
            raise _Failure(f"malformed response: larger than {_MAX_BODY} bytes", retry=False)
    return bytes(body)


def _malformed(what: str) -> _Failure:
    return _Failure(f"malformed response: {what}", retry=False)


def _order_from(body: bytes) -> OrderRecord:
    """The order in a 200 response; a ``_Failure`` naming the broken rule (never a value)."""
    try:
        data: Any = json.loads(body, parse_float=Decimal)
    except ValueError:  # also bad UTF-8
        raise _malformed("not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("not a JSON object")
    order_no = data.get("order_no")
    if not isinstance(order_no, str) or not order_no.strip():
        raise _malformed("order_no missing or not a string")
    currency = (_text(data, "currency") or "CNY").upper()
    currency = "CNY" if currency == "RMB" else currency  # as the CSV import reads it
    if not _CURRENCY.fullmatch(currency):
        raise _malformed("currency is not a 3-letter code")
    return OrderRecord(
        order_no=order_no.strip(),
        amount_cents=_amount_cents(data.get("amount")),
        currency=currency,
        paid_at=_paid_at(data.get("paid_at")),
        store=_text(data, "store"),
        contact=_text(data, "contact"),
        payer_openid=_text(data, "payer_openid"),
        card_last4=_text(data, "card_last4"),
        tracking_no=_text(data, "tracking_no"),
        status=_text(data, "status"),
    )


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _malformed(f"{name} is not a string")
    return value.strip() or None


def _amount_cents(value: object) -> int:
    if value is None:
        raise _malformed("amount missing")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _malformed("amount is not a decimal string")
    try:
        cents = Decimal(value) * 100
    except DecimalException:  # not a number, or an exponent beyond any amount
        raise _malformed("amount is not a decimal string") from None
    if not cents.is_finite() or cents < 0 or cents > _MAX_CENTS:
        raise _malformed("amount is out of range")
    if cents != cents.to_integral_value():
        raise _malformed("amount has more than 2 decimals")
    return int(cents)


def _paid_at(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed("paid_at is not a string")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _malformed("paid_at is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CHINA)
    return when.astimezone(UTC)

"""Understand one customer message: order number, amount in yuan, intent, language.

Pure functions, no I/O. Customers type, paste or dictate (WeChat's voice recognition writes
homophones and Chinese digits), so every parser first normalises the text and then looks for
what it needs inside a sentence. Regexes are compiled once and pinyin look-ups are cached:
this runs on the webhook hot path.

Decisions worth knowing:

* An 11-digit number that looks like a mainland mobile number (``1[3-9]…``) is an order number
  only when the message labels it (订单/单号/交易号/order…) and does not call it a phone
  number (手机/电话/phone…). Dates written with separators (``2025-05-03``) are not order
  numbers either.
* A number marked as money (¥/RMB/CNY, 元/块/yuan, 毛/角, or after 金额/付了/amount) is never
  part of an order number. A bare number is an amount only when it is the only number in the
  message and the message has no order number; not when a quantity unit follows it (3件) or an
  order label precedes a whole number (订单号 12345).
* Zero, negative and absurd (> 10,000,000) amounts give ``None``.
* ``"1"`` alone is both intent YES and amount 1.00 (``"2"``: NO and 2.00); ``understand`` keeps
  both and the caller decides by what it asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from bot.understanding.amounts import (
    _ANY_NUMBER_RE,
    _PRIORITY_BARE,
    _Amount,
    _bare_amount,
    _best_amount,
    _valid_amount,
)
from bot.understanding.choices import parse_choice
from bot.understanding.intents import Intent, _detect_intent
from bot.understanding.language import detect_language
from bot.understanding.normalize import normalize_text
from bot.understanding.order_numbers import _best_order, _mask, _ranked_orders
from bot.understanding.order_shapes import OrderShapes
from bot.understanding.reading import Reading, read_message

__all__ = [
    "Intent",
    "OrderShapes",
    "Understood",
    "detect_intent",
    "detect_language",
    "normalize_text",
    "order_candidates",
    "parse_amount",
    "parse_choice",
    "parse_order_no",
    "understand",
    "warm",
]


@dataclass(frozen=True, slots=True)
class Understood:
    """Everything found in one message; any field may be ``None``."""

    order_no: str | None
    amount: Decimal | None
    intent: Intent | None
    # other readings of the order number, most likely first (the flow checks which exist)
    order_options: tuple[str, ...] = ()


def parse_order_no(text: str) -> str | None:
    """The order number in ``text`` (upper-cased, separators removed), else ``None``."""
    best = _best_order(read_message(text).orders)
    return best.value if best else None


def order_candidates(text: str, shapes: OrderShapes | None = None) -> list[str]:
    """Every reading of an order number in ``text``, most likely first: runs of a known shape
    (see ``OrderShapes``), then numbers that merely look like an order number."""
    reading = read_message(text)
    return _ranked_orders(reading.text, reading.masked, reading.orders, shapes)


_BARE_DECIMAL_RE = re.compile(r"(?<![0-9.,])[-−]?\d{1,7}\.\d{1,2}(?![0-9.,])")


def _amount_in(reading: Reading) -> Decimal | None:
    normalized, orders = reading.text, reading.orders
    best = _best_amount(reading.marked)
    if best is None and not orders:
        best = _bare_amount(normalized)
    elif best is None:
        # DD20250503123456 128.50: one decimal number beside the order number is its amount
        rest = _mask(normalized, ((o.start, o.end) for o in orders))
        numbers = _ANY_NUMBER_RE.findall(rest)
        decimal = _BARE_DECIMAL_RE.search(rest)
        if decimal is not None and len(numbers) == 1:
            value = Decimal(decimal.group().lstrip("-−"))
            best = _Amount(decimal.start(), decimal.span(), value, False, _PRIORITY_BARE, False)
    return _valid_amount(best)


def parse_amount(text: str) -> Decimal | None:
    """The amount in yuan, quantised to 0.01, else ``None`` (also for ≤ 0 or > 10,000,000)."""
    return _amount_in(read_message(text))


def detect_intent(text: str) -> Intent | None:
    """What the customer asks the bot to do, if anything.

    Handoff, withdraw-consent, restart and help are found inside a sentence (unless negated:
    不要转人工); yes and no only when the message is nothing else, so a long message with an
    order number is never a yes. Negation wins: 不同意 is NO.
    """
    return _detect_intent(normalize_text(text))


def understand(text: str, shapes: OrderShapes | None = None) -> Understood:
    """Order number, amount and intent at once.

    Money-marked numbers are never read as part of an order number and vice versa. The bare
    ``"1"``/``"2"`` is both an intent (YES/NO) and an amount (1.00/2.00): the caller decides by
    what it asked.
    """
    reading = read_message(text)
    ranked = _ranked_orders(reading.text, reading.masked, reading.orders, shapes)
    return Understood(
        order_no=ranked[0] if ranked else None,
        amount=_amount_in(reading),
        intent=_detect_intent(reading.text),
        order_options=tuple(ranked[1:]),
    )


def warm() -> None:
    """Builds the tables understanding builds on first use (written numbers, phrases that
    read a character otherwise: about a quarter of a second), so no customer's turn waits."""
    from bot.understanding.numerals import _written_numbers
    from bot.understanding.pinyin import _unusual_readings

    _written_numbers()
    _unusual_readings()

"""One message read once: its normalised text, the amounts marked in it and its order-number
candidates, shared by every question a turn asks of the message (its language, then its order
number, amount and intent) instead of each reader normalising and searching again."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from bot.understanding.amounts import _Amount, _marked_amounts
from bot.understanding.normalize import normalize_text
from bot.understanding.numerals import _CN
from bot.understanding.order_numbers import (
    _ORDER_CN_DIGITS,
    _masked_for_orders,
    _Order,
    _orders_in,
)


class Reading(NamedTuple):  # (a tuple: built for every message, cheaper than a dataclass)
    """What every reader starts from. Shared between readers: nothing here is changed."""

    text: str  # normalised
    marked: tuple[_Amount, ...]  # numbers marked as money (never part of an order number)
    masked: str  # ``text`` with money masked and spoken digits as digits: where orders are read
    orders: tuple[_Order, ...]  # numbers that may be order numbers, in ``masked`` order


# Every amount and every order number holds one (digits, Chinese numerals, 洞 for 0).
_ANY_NUMERAL_RE = re.compile(rf"[\d{_CN}{_ORDER_CN_DIGITS}]")


# Small: only the messages in flight (a turn reads its message two or three times).
@lru_cache(maxsize=64)
def read_message(text: str) -> Reading:
    normalized = normalize_text(text)
    if not _ANY_NUMERAL_RE.search(normalized):
        return Reading(normalized, (), normalized, ())  # no number: no amount, no order number
    marked = _marked_amounts(normalized)
    masked = _masked_for_orders(normalized, marked)
    return Reading(normalized, tuple(marked), masked, tuple(_orders_in(normalized, masked)))

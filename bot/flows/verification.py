"""Checking that an order is the customer's by the merchant's rule (BILLBOT_VERIFY_MODE)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

from bot.config import VerifyMode
from bot.understanding import parse_amount
from storage.records import OrderRecord

# Merchants' "transaction date" is the date in China, whatever the server's zone.
CHINA = timezone(timedelta(hours=8))


class Verdict(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    UNREADABLE = "unreadable"  # not an answer to the question: a hint, no strike
    UNAVAILABLE = "unavailable"  # the order lacks what the rule needs: the operator's gap


_LAST4 = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_ISO_DATE = re.compile(r"(?:(\d{4})[-/.年])?\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_EN_DATE = re.compile(r"\b([a-z]{3})[a-z]*\.?\s+(\d{1,2})\b", re.IGNORECASE)


def parse_month_day(text: str) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) from "5月3日", "2025-05-03", "05/03" or "May 3"."""
    m = _ISO_DATE.search(text)
    if m:
        year = int(m.group(1)) if m.group(1) else None
        return year, int(m.group(2)), int(m.group(3))
    e = _EN_DATE.search(text)
    if e and e.group(1).lower() in _MONTHS:
        return None, _MONTHS[e.group(1).lower()], int(e.group(2))
    return None


def check_amount(order: OrderRecord, text: str, amount: Decimal | None = None) -> Verdict:
    """``amount`` is what the caller already understood (the text may hold an order number)."""
    amount = amount if amount is not None else parse_amount(text)
    if amount is None:
        return Verdict.UNREADABLE
    return Verdict.MATCH if int(amount * 100) == order.amount_cents else Verdict.MISMATCH


def check_card_last4_date(order: OrderRecord, text: str) -> Verdict:
    text = unicodedata.normalize("NFKC", text)
    when = parse_month_day(text)
    # the last four digits are the 4-digit group that is not part of the date
    stripped = _ISO_DATE.sub(" ", text) if when else text
    last4 = _LAST4.search(stripped)
    if last4 is None or when is None:
        return Verdict.UNREADABLE
    if order.card_last4 is None or order.paid_at is None:
        return Verdict.UNAVAILABLE
    paid: date = order.paid_at.astimezone(CHINA).date()
    year, month, day = when
    same_day = (month, day) == (paid.month, paid.day) and year in (None, paid.year)
    return Verdict.MATCH if same_day and last4.group(1) == order.card_last4 else Verdict.MISMATCH


def normalize_tracking_no(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", text).upper())


def check_tracking_no(order: OrderRecord, text: str) -> Verdict:
    given = normalize_tracking_no(text)
    if len(given) < 6:
        return Verdict.UNREADABLE
    expected = normalize_tracking_no(order.tracking_no or "")
    if not expected:
        return Verdict.UNAVAILABLE
    return Verdict.MATCH if given.endswith(expected) else Verdict.MISMATCH


def check(
    mode: VerifyMode, order: OrderRecord, text: str, amount: Decimal | None = None
) -> Verdict:
    if mode is VerifyMode.CARD_LAST4_DATE:
        return check_card_last4_date(order, text)
    if mode is VerifyMode.TRACKING_NO:
        return check_tracking_no(order, text)
    return check_amount(order, text, amount)

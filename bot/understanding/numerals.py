"""Chinese numerals as customers write and voice recognition spells them (cn2an reads them,
financial forms included) and numbers as written (1,280.00, 一百二十八点五, 1.5万)."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

import cn2an

_CN_DIGIT_VALUE: dict[str, int] = {
    **dict.fromkeys("零〇", 0),
    **dict.fromkeys("一壹幺", 1),
    **dict.fromkeys("二贰貳两", 2),
    **dict.fromkeys("三叁參", 3),
    **dict.fromkeys("四肆", 4),
    **dict.fromkeys("五伍", 5),
    **dict.fromkeys("六陆陸", 6),
    **dict.fromkeys("七柒", 7),
    **dict.fromkeys("八捌", 8),
    **dict.fromkeys("九玖", 9),
}
_CN_SMALL_UNIT: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG_UNIT: dict[str, int] = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_CN = "".join(_CN_DIGIT_VALUE) + "".join(_CN_SMALL_UNIT) + "".join(_CN_BIG_UNIT)
_CN_UNIT_CHARS = frozenset(_CN_SMALL_UNIT) | frozenset(_CN_BIG_UNIT)


def _digit_value(ch: str) -> int | None:
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    return _CN_DIGIT_VALUE.get(ch)


@lru_cache(maxsize=1024)  # cn2an is slow, and a message often reads one numeral twice
def _parse_cn_integer(text: str) -> int | None:
    """``一百二十八`` → 128, ``3千2百`` → 3200, ``一百五`` → 150, ``二零二五`` → 2025,
    ``壹佰贰拾捌`` → 128 (cn2an reads the numerals, financial forms included)."""
    if not text:
        return None
    try:
        value = cn2an.cn2an(text, "smart")
    except Exception:  # anything a customer types that is no number is "no number", not a 500
        return None
    return int(value) if value == int(value) else None


_ASCII_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_MAX_NUMBER_CHARS = 40  # longer is no amount, and int() refuses thousands of digits
_COEFFICIENT_RE = re.compile(r"(\d+(?:\.\d+)?)([万萬亿億])")


def _parse_number(token: str) -> Decimal | None:
    """A number as written: ``1,280.00``, ``128.5``, ``一百二十八点五``, ``1.5万``."""
    if len(token) > _MAX_NUMBER_CHARS:
        return None
    if _ASCII_NUMBER_RE.fullmatch(token):
        return Decimal(token.replace(",", ""))
    if "," in token:
        return None
    token = token.replace("点", ".")
    if coefficient := _COEFFICIENT_RE.fullmatch(token):
        return Decimal(coefficient[1]) * _CN_BIG_UNIT[coefficient[2]]
    int_part, dot, frac_part = token.partition(".")
    integer = _parse_cn_integer(int_part)
    if integer is None:
        return None
    if not dot:
        return Decimal(integer)
    frac_digits = [_digit_value(ch) for ch in frac_part]
    if not frac_digits or any(d is None for d in frac_digits):
        return None
    return Decimal(f"{integer}.{''.join(str(d) for d in frac_digits)}")

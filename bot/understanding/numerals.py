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


_LOW_FORMS = ("零一二三四五六七八九", "十百千")
_FINANCIAL_FORMS = ("零壹贰叁肆伍陆柒捌玖", "拾佰仟")
_WRITTEN_MAX = 9999


def _written(number: int, digits: str, units: str) -> str:
    """1…9999 written out in full: 一千零一十, 一百零八, 一十五, 壹仟零壹拾."""
    out: list[str] = []
    gap = False
    for power in (3, 2, 1, 0):
        digit = number // 10**power % 10
        if digit == 0:
            gap = gap or bool(out)
            continue
        if gap:
            out.append(digits[0])
            gap = False
        out.append(digits[digit] + (units[power - 1] if power else ""))
    return "".join(out)


@lru_cache(maxsize=1)
def _written_numbers() -> dict[str, int]:
    """Whole numbers up to 9999 as customers write them out: 一百二十八, 两百, 两千零一十九,
    十五, 壹佰贰拾捌 (some 22,000 forms, built on first use). cn2an reads each of them as this
    number (a test checks every one), in a look-up instead of some 40 µs."""
    found: dict[str, int] = {}
    for number in range(1, _WRITTEN_MAX + 1):
        low = _written(number, *_LOW_FORMS)
        forms = {low, _written(number, *_FINANCIAL_FORMS)}
        if 10 <= number <= 19:  # 十五 beside 一十五, 拾伍 beside 壹拾伍
            forms |= {form[1:] for form in forms}
        for place in ("千", "百"):  # 两千, 两百 beside 二千, 二百
            forms |= {form.replace("二" + place, "两" + place) for form in forms}
        found.update(dict.fromkeys(forms, number))
    found["两"] = 2
    return found


@lru_cache(maxsize=1024)  # cn2an is slow, and a message often reads one numeral twice
def _parse_cn_integer(text: str) -> int | None:
    """``一百二十八`` → 128, ``3千2百`` → 3200, ``一百五`` → 150, ``二零二五`` → 2025,
    ``壹佰贰拾捌`` → 128 (cn2an reads the numerals, financial forms included)."""
    if not text:
        return None
    if (written := _written_numbers().get(text)) is not None:
        return written
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

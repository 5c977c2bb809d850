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


def _spoken(number: int) -> set[str]:
    """``number`` (1…9,999) written out as said: in full, with 两 for a 2 before 百 or 千, 十五
    for 一十五 (alone), and short — 一百五 for 一百五十, 一千二 for 一千二百."""
    forms = {_written(number, *_LOW_FORMS)}
    for higher, lower in ("千百", "百十"):
        forms |= {f[:-1] for f in forms if len(f) >= 4 and f[-1] == lower and f[-3] == higher}
    for place in ("千", "百"):
        forms |= {form.replace("二" + place, "两" + place) for form in forms}
    return forms


def _forms(number: int) -> set[str]:
    """How customers write ``number`` (1…99,999) out: as said (``_spoken``), in financial
    figures (壹佰贰拾捌), and with 万 (两万三千五百, 一万零五十)."""
    if number >= 10**4:
        rest = number % 10**4
        tail = {""} if not rest else {"零" * (rest < 1000) + form for form in _spoken(rest)}
        head = _spoken(number // 10**4) | ({"两"} if number // 10**4 == 2 else set())
        return {first + "万" + form for first in head for form in tail}
    forms = _spoken(number) | {_written(number, *_FINANCIAL_FORMS)}
    if 10 <= number <= 19:  # 十五 beside 一十五, 拾伍 beside 壹拾伍
        forms |= {form[1:] for form in forms}
    if number == 2:
        forms.add("两")
    return forms


@lru_cache(maxsize=1)
def _written_numbers() -> dict[str, int]:
    """Whole numbers as customers write them out (``_forms``): every number up to 9,999 and the
    hundreds up to 99,900 (一万二千八, 两万三千五百), some 30,000 forms built on first use.
    cn2an reads each form as this number (a test checks every one): a look-up instead of some
    40 µs."""
    numbers = [*range(1, 10**4), *range(10**4, 10**5, 100)]
    return {form: number for number in numbers for form in _forms(number)}


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

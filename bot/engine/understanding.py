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
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from typing import Literal

import cn2an
from pypinyin import lazy_pinyin
from rapidfuzz import fuzz, process

from bot.engine.order_shapes import OrderShapes
from bot.engine.requests import Verdict, person_verdict, withdraw_verdict


class Intent(StrEnum):
    """What a message asks the bot to do, besides giving it an order number or an amount."""

    HANDOFF = "handoff"
    RESTART = "restart"
    HELP = "help"
    WITHDRAW_CONSENT = "withdraw_consent"
    YES = "yes"
    NO = "no"
    MY_ORDERS = "my_orders"  # 查订单: list the orders this WeChat paid for


@dataclass(frozen=True, slots=True)
class Understood:
    """Everything found in one message; any field may be ``None``."""

    order_no: str | None
    amount: Decimal | None
    intent: Intent | None
    # other readings of the order number, most likely first (the flow checks which exist)
    order_options: tuple[str, ...] = ()


MIN_ORDER_DIGITS = 8
MAX_ORDER_LEN = 40
MAX_AMOUNT = Decimal("10000000")
_CENT = Decimal("0.01")

# --------------------------------------------------------------------------- normalisation

_SPACE_RE = re.compile(r"\s+")


_SPACED_DIGITS_RE = re.compile(r"(?<![0-9A-Za-z])\d(?: ?\. ?\d| \d){2,}(?![0-9A-Za-z])")


def normalize_text(text: str) -> str:
    """NFKC (full-width forms → ASCII, ￥ → ¥), other scripts' decimal digits → ASCII, invisible
    format characters dropped, whitespace collapsed and stripped, digits typed one by one
    joined (1 2 8 . 5 0 → 128.50)."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(_normalize_char(ch) for ch in text)
    text = _SPACE_RE.sub(" ", text).strip()
    return _SPACED_DIGITS_RE.sub(lambda m: m.group().replace(" ", ""), text)


def _normalize_char(ch: str) -> str:
    if ch.isascii():
        return ch
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    return "" if unicodedata.category(ch) == "Cf" else ch


# --------------------------------------------------------------------------- Chinese numerals

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


# --------------------------------------------------------------------------- amounts

_D1 = "0-9零〇一二两三四五六七八九壹贰貳叁參肆伍陆陸柒捌玖"
# A number token: ASCII-led (not glued to letters/digits) or Chinese-led (not glued to numerals).
_NUM_FREE = rf"[0-9{_CN}][0-9{_CN},.点]*"
_NUM = rf"(?:(?<![0-9A-Za-z])(?<![0-9][.,])[0-9]|(?<![0-9A-Za-z{_CN}])[{_CN}])[0-9{_CN},.点]*"
_QUANTITY_UNITS = "件个次天张份位人号年月日点时分秒岁斤瓶杯单笔条期周楼层室栋米%"
_MINOR = (
    rf"(?:零?(?P<jiao>[{_D1}])\s*[角毛](?:\s*零?\s*(?P<fen>[{_D1}])(?:\s*分|(?![{_D1}])))?"
    rf"|零?(?P<fen_only>[{_D1}])\s*分(?!钟)"
    rf"|(?P<tail>[{_D1}]{{1,2}})(?![{_D1}{_CN}.点角毛分{_QUANTITY_UNITS}]))"
)
_CURRENCY = r"(?:¥|(?<![A-Za-z])(?:rmb|cny)|人民币)"

_PREFIXED_AMOUNT_RE = re.compile(
    rf"(?:(?P<neg0>[-−])\s*)?{_CURRENCY}\s*:?\s*(?:(?P<neg>[-−])\s*)?(?P<num>{_NUM_FREE})",
    re.IGNORECASE,
)
_UNIT_AMOUNT_RE = re.compile(
    rf"(?:(?P<neg>[-−]|负)\s*)?(?P<num>{_NUM})\s*"
    r"(?P<unit>元(?![旦宵素件器])|圆|块(?!儿)|塊|(?:yuan|rmb|cny|kuai|bucks?)(?![a-z]))(?:钱)?"
    rf"(?:{_MINOR})?",
    re.IGNORECASE,
)
_MINOR_ONLY_RE = re.compile(
    rf"(?<![0-9A-Za-z{_CN}.])(?:(?P<jiao>[{_D1}])\s*[角毛](?![形度洲落色球])"
    rf"(?:\s*零?\s*(?P<fen>[{_D1}])(?:\s*分|(?![{_D1}])))?|(?P<fen_only>[{_D1}])\s*分钱)(?:钱)?"
)
_KEYWORD_AMOUNT_RE = re.compile(
    r"(?:金额|付了|付款|支付了?|实付款?|实收|花了|扣了|扣款|消费了?|总共|一共|共计|合计|总计|总额|到手价?"
    r"|总价|应付|价格|费用|价钱|收费|(?<![a-z])(?:amount|paid|pay|total|price|cost|charged)(?![a-z]))"
    r"(?:是|为|了|款|:|\s)*"
    rf"(?:(?P<neg>[-−])\s*)?{_CURRENCY}?\s*(?P<num>{_NUM_FREE})"
    rf"(?![0-9{_CN},.点]|\s*[{_QUANTITY_UNITS}])",
    re.IGNORECASE,
)
_BARE_NUMBER_RE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][.,])(?P<neg>[-−])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![0-9A-Za-z]|[.,]\d)"
)
_ANY_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_SPENT_RE = re.compile(
    r"(?<![0-9A-Za-z.])(?P<neg>[-−])\s*(?P<num>\d{1,3}(?:,\d{3})+\.\d{2}|\d+\.\d{2})(?![0-9])"
)
# after a lone number: it counts or measures something; before it: it is not a price
_MEASURE_WORDS = (
    "小时", "分钟", "公斤", "千克", "克", "厘米", "公分", "毫米", "码", "样", "房", "寸", "度",
    "item", "pc", "kg", "cm", "hour", "day", "min", "year", "floor", "room", "size", "%",
)  # fmt: skip
_NOT_MONEY_BEFORE = (
    "第", "#", "尾号", "后四位", "身高", "体重", "年龄", "房间", "房号", "门牌", "楼", "码", "size",
    "room", "floor", "age", "No", "no.",
)  # fmt: skip
# A whole message that is one spelled-out number: 一百二十八, 2万, 一百二十八点五, 是三千吧.
_BARE_SPELLED_RE = re.compile(
    rf"(?:大概|大约|约|是)?\s*(?P<num>[0-9{_CN}][0-9{_CN}点.]*)\s*(?:吧|啊|呀|的|吗)?"
)

# Priorities: a keyword beats a currency sign/元, which beats 块/毛, which beats a bare number.
_PRIORITY_KEYWORD = 4
_PRIORITY_CURRENCY = 3
_PRIORITY_COLLOQUIAL = 2
_PRIORITY_BARE = 1
_COLLOQUIAL_UNITS = frozenset({"块", "塊", "kuai", "buck", "bucks"})


@dataclass(slots=True)
class _Amount:
    num_start: int
    span: tuple[int, int]  # the whole marked phrase, masked before looking for order numbers
    value: Decimal | None
    negative: bool
    priority: int
    marked: bool  # by a currency sign or unit, not only by a keyword


def _digit_or_none(text: str | None) -> int | None:
    return None if text is None else _digit_value(text)


def _minor_value(match: re.Match[str]) -> Decimal:
    """角/毛 and 分 after 元/块, or the colloquial tail of 128块5 / 一块五 / 3块25."""
    jiao = _digit_or_none(match.group("jiao"))
    fen = _digit_or_none(match.groupdict().get("fen") or match.groupdict().get("fen_only"))
    tail = match.groupdict().get("tail")
    value = Decimal(0)
    if jiao is not None:
        value += Decimal(jiao) / 10
    if fen is not None:
        value += Decimal(fen) / 100
    if tail:
        for place, ch in enumerate(tail, start=1):
            value += Decimal(_digit_value(ch) or 0) / (10**place)
    return value


def _trim_list_comma(token: str, start: int) -> tuple[str, int]:
    """``12345678,100`` (a full-width comma between clauses) → ``100``; ``17.50,`` → ``17.50``."""
    token = token.rstrip(",.")
    if "," in token and not _ASCII_NUMBER_RE.fullmatch(token):
        cut = token.rindex(",") + 1
        return token[cut:], start + cut
    return token, start


def _marked_amounts(text: str) -> list[_Amount]:
    """Numbers marked as money, merged by where the number starts."""
    found: dict[int, _Amount] = {}

    def add(
        match: re.Match[str],
        priority: int,
        *,
        marked: bool,
        value: Decimal | None = None,
    ) -> None:
        token, start = _trim_list_comma(match.group("num"), match.start("num"))
        if value is None:
            value = _parse_number(token.rstrip(",."))  # 17.50, (a clause's comma after it)
        trimmed = start != match.start("num")
        groups = match.groupdict()
        negative = not trimmed and bool(groups.get("neg") or groups.get("neg0"))
        span = (start if trimmed else match.start(), match.end())
        current = found.get(start)
        if current is None:
            found[start] = _Amount(start, span, value, negative, priority, marked)
            return
        if span[1] > current.span[1] and value is not None:
            current.value = value  # the longer phrase read more (元 then 5角)
        current.span = (min(current.span[0], span[0]), max(current.span[1], span[1]))
        current.negative = current.negative or negative
        current.priority = max(current.priority, priority)
        current.marked = current.marked or marked

    for match in _PREFIXED_AMOUNT_RE.finditer(text):
        add(match, _PRIORITY_CURRENCY, marked=True)
    for match in _UNIT_AMOUNT_RE.finditer(text):
        token, _ = _trim_list_comma(match.group("num"), match.start("num"))
        major = _parse_number(token)
        value = None if major is None else major + _minor_value(match)
        unit = match.group("unit").lower()
        priority = _PRIORITY_COLLOQUIAL if unit in _COLLOQUIAL_UNITS else _PRIORITY_CURRENCY
        add(match, priority, marked=True, value=value)
    for match in _KEYWORD_AMOUNT_RE.finditer(text):
        add(match, _PRIORITY_KEYWORD, marked=False)
    for match in _SPENT_RE.finditer(text):  # -36.50: how a bill shows what was paid
        add(match, _PRIORITY_CURRENCY, marked=True)
    for match in _MINOR_ONLY_RE.finditer(text):
        start = match.start()
        if any(a.span[0] <= start < a.span[1] for a in found.values()):
            continue
        found[start] = _Amount(
            start, match.span(), _minor_value(match), False, _PRIORITY_COLLOQUIAL, True
        )
    # A keyword followed by a long plain integer is an id ("支付 4200…"), not money.
    return _rank_by_context(
        text,
        [
            a
            for a in found.values()
            if a.marked or a.value is None or a.value != a.value.to_integral() or a.value < 10**7
        ],
    )


# What was actually paid beats every other price in a pasted bill; list prices, discounts,
# shipping and points are money too (never order numbers) but not the answer.
_PAID_BEFORE_RE = re.compile(
    r"(?:实付款?|实收|实际(?:支付|付款|扣款)|合计|总计|到手价?|付款金额|支付金额|交易金额|订单金额"
    r"|实付金额|(?<![a-z])(?:paid|total)(?![a-z]))[^0-9]{0,6}$",
    re.IGNORECASE,
)
_OTHER_PRICE_BEFORE_RE = re.compile(
    r"(?:原价|划线价|标价|市场价|商品(?:总价|金额|总额)|应付款?|优惠|折扣|立减|减免|抵扣|抵用|红包"
    r"|京豆|积分|运费|邮费|配送费|打包费|优惠券|券|(?<![a-z])(?:was|list\s+price|discount"
    r"|shipping|coupon|saved?)(?![a-z]))[^0-9]{0,8}$",
    re.IGNORECASE,
)
_PRIORITY_PAID = 5
_PRIORITY_OTHER_PRICE = 0


def _rank_by_context(text: str, amounts: list[_Amount]) -> list[_Amount]:
    for amount in amounts:
        before = text[max(0, amount.num_start - 12) : amount.num_start]
        if _PAID_BEFORE_RE.search(before):
            amount.priority = _PRIORITY_PAID
        elif _OTHER_PRICE_BEFORE_RE.search(before):
            amount.priority = _PRIORITY_OTHER_PRICE
    return amounts


def _valid_amount(amount: _Amount | None) -> Decimal | None:
    # A minus sign is how bills show money spent (支出 -128.50): the amount is what was paid.
    if amount is None or amount.value is None:
        return None
    try:
        value = amount.value.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    if value <= 0 or value > MAX_AMOUNT:
        return None
    return value


def _bare_amount(text: str) -> _Amount | None:
    """The only number in a message without order number, e.g. ``128.5`` or ``是99吧``."""
    spelled = _BARE_SPELLED_RE.fullmatch(text)
    if spelled is not None:
        token = spelled.group("num")
        # 三点 alone is o'clock and 万一 means "in case"; 一百二十八, 2万 and 三点五 are money.
        if (_CN_UNIT_CHARS & set(token) or "点" in token[:-1]) and token[0] not in _CN_BIG_UNIT:
            value = _parse_number(token)
            return _Amount(
                spelled.start("num"), spelled.span(), value, False, _PRIORITY_BARE, False
            )
    numbers = _ANY_NUMBER_RE.findall(text)
    if len(numbers) != 1:
        return None
    match = _BARE_NUMBER_RE.search(text)
    if match is None:
        return None
    after = text[match.end() :].lstrip()
    before = text[: match.start()].rstrip()
    if (
        (after and after[0] in _QUANTITY_UNITS)
        or after.lower().startswith(_MEASURE_WORDS)
        or before.endswith(_NOT_MONEY_BEFORE)
    ):
        return None
    if "." not in match.group("num") and _ORDER_LABEL_BEFORE_RE.search(before + " "):
        return None  # 订单号 12345: a (too short) order number, not money
    value = Decimal(match.group("num").replace(",", ""))
    return _Amount(
        match.start("num"), match.span(), value, bool(match["neg"]), _PRIORITY_BARE, False
    )


def _best_amount(amounts: Iterable[_Amount]) -> _Amount | None:
    usable = [a for a in amounts if a.value is not None]
    if not usable:
        return None
    return min(usable, key=lambda a: (-a.priority, a.num_start))


# --------------------------------------------------------------------------- order numbers

_ORDER_CN_DIGITS = "零〇洞一幺二两三四五六七八九"
_TO_ASCII_DIGITS = str.maketrans(
    {ch: str(_CN_DIGIT_VALUE.get(ch, 0)) for ch in _ORDER_CN_DIGITS}  # 洞 is 0 on the radio
)
# a spoken number is often split by commas, full stops or spaces (二零二五，零五零三。…)
_CN_DIGIT_RUN_RE = re.compile(f"[{_ORDER_CN_DIGITS}]+(?:[，。、,. ]+[{_ORDER_CN_DIGITS}]+)*")
_MIN_CN_DIGIT_RUN = 4  # 二零二五…; runs of 2-3 only when they touch ASCII digits

_ORDER_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>[A-Z](?: [A-Z]){1,3}|[A-Za-z]{1,4})(?P<psep>[-_]*| )(?=\d)"
    r"(?P<body>\d+(?:[ \-_.—–]+\d+)*)"
    r"|(?<![0-9])(?P<bare>\d+(?:[ \-_.—–]+\d+)*)"
)
_DECIMAL_RE = re.compile(r"\d+\.\d{1,2}")
_DATE_RE = re.compile(r"(?:19|20)\d{2}([-/.])\d{1,2}\1\d{1,2}(?:\s|$)")
_PHONE_LIKE_RE = re.compile(r"1[3-9]\d{9}")
_ORDER_LABEL_RE = re.compile(r"订单|单号|交易号|流水号|编号|order|transaction|txn", re.IGNORECASE)
_ORDER_LABEL_BEFORE_RE = re.compile(
    r"(?:订单号?|单号|交易号|流水号|编号|order|transaction|txn|no|number|ref)"
    r"\s*(?:号码|是|为|:|#|\.)*\s*$",
    re.IGNORECASE,
)
_PHONE_LABEL_RE = re.compile(r"手机|电话|联系方式|phone|mobile|(?<![a-z])tel(?![a-z])", re.I)
# A number right after one of these is what the label says, not an order number.
_OTHER_NUMBER_LABEL_RE = re.compile(
    r"(?:手机|电话|座机|固话|热线|联系方式|qq|q号|扣扣|身份证|证件|会员卡|卡号|银行卡|工号|邮编"
    r"|phone|mobile|(?<![a-z])tel(?![a-z])|call|id\s*card|member)[^0-9a-z]{0,8}"
    r"(?:\(\d{3,4}\)\s*)?$",
    re.IGNORECASE,
)
_COUNTRY_CODE_RE = re.compile(r"(?:\+\s*86|(?<![0-9])0086|(?<![0-9])86)[\s\-]*$")
_LANDLINE_RE = re.compile(r"0\d{2,3}[\s\-)]+\d{3,4}[\s\-]?\d{4}")  # 010-12345678, 0755 8888 6666
# Letters that label a number rather than belong to it (No.12345678, ID12345678).
_NOT_A_PREFIX = frozenset({"NO", "NR", "NUM", "REF", "TXN", "ID", "QQ", "Q", "TEL"})
# Lower-case letters before a space are a prefix only for well-known platforms ("is 2025…").
_KNOWN_PREFIXES = frozenset({"DD", "JD", "TB", "PDD", "WX", "MT", "SN"})
_SPACED_NOT_A_PREFIX = _NOT_A_PREFIX | frozenset(
    {"A", "I", "IS", "MY", "IT", "ITS", "OK", "THE", "AN", "OF", "FOR", "AND", "YES", "HI"}
    | {"RMB", "CNY", "USD", "YUAN", "KUAI", "PLS", "THIS", "WAS", "BE", "TO", "AT", "ON", "IN"}
)


@dataclass(frozen=True, slots=True)
class _Order:
    value: str
    start: int
    end: int
    labelled: bool  # an order label just before it: 订单号：…, order #…


def _convert_cn_digit_runs(text: str) -> str:
    """二零二五零五零三… → 20250503…; a char-for-char swap, so positions stay put."""

    def long_run(match: re.Match[str]) -> str:
        run = match.group()
        digits = sum(ch in _ORDER_CN_DIGITS for ch in run)
        if digits < _MIN_CN_DIGIT_RUN:
            return run
        # separators inside a spoken number become spaces: same length, positions stay put
        return re.sub(r"[，。、,.]", " ", run).translate(_TO_ASCII_DIGITS)

    def touching_digits(match: re.Match[str]) -> str:
        s, start, end = match.string, match.start(), match.end()
        before = s[max(0, start - 2) : start]
        after = s[end : end + 2]
        near = (before[-1:].isdigit() or (before[:1].isdigit() and before[-1:] in " -")) or (
            after[:1].isdigit() or (after[-1:].isdigit() and after[:1] in " -")
        )
        # A lone 一 next to digits is a word (12345678一直没到), not a digit.
        run = match.group()
        return run.translate(_TO_ASCII_DIGITS) if near and len(run) >= 2 else run

    text = _CN_DIGIT_RUN_RE.sub(long_run, text)
    return _CN_DIGIT_RUN_RE.sub(touching_digits, text)


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "|" * (end - start)
    return "".join(chars)


def _order_candidates(text: str, amounts: Iterable[_Amount]) -> list[_Order]:
    masked = _convert_cn_digit_runs(_mask(text, (a.span for a in amounts)))
    labelled_text = _ORDER_LABEL_RE.search(text) is not None
    phone_text = _PHONE_LABEL_RE.search(text) is not None
    orders: list[_Order] = []
    for match in _ORDER_RE.finditer(masked):
        prefix, body = match.group("prefix") or "", match.group("body") or match.group("bare")
        start = match.start() if prefix else match.start("body" if match["body"] else "bare")
        body_start = match.start("body") if match["body"] else match.start("bare")
        if prefix:
            spaced = match.group("psep") == " "
            prefix = prefix.replace(" ", "")  # "D D" as voice recognition spells it
            upper = prefix.upper()
            if spaced:
                keep = upper not in _SPACED_NOT_A_PREFIX and (
                    prefix.isupper() or upper in _KNOWN_PREFIXES
                )
            else:
                keep = upper not in _NOT_A_PREFIX
            if not keep:
                prefix, start = "", body_start
        # A trailing "128.50" after a space is an amount typed next to the number.
        chunks = body.split(" ")
        while len(chunks) > 1 and _DECIMAL_RE.fullmatch(chunks[-1]):
            chunks.pop()
        body = " ".join(chunks)
        end = body_start + len(body)
        if not prefix and (_DECIMAL_RE.fullmatch(body) or _DATE_RE.match(body)):
            continue
        digits = re.sub(r"\D", "", body)
        value = prefix.upper() + digits
        if len(digits) < MIN_ORDER_DIGITS or len(value) > MAX_ORDER_LEN:
            continue
        if not prefix and _PHONE_LIKE_RE.fullmatch(digits) and (phone_text or not labelled_text):
            continue
        labelled = _ORDER_LABEL_BEFORE_RE.search(text[max(0, start - 16) : start]) is not None
        if not prefix and not labelled and _is_other_number(masked, start, body, digits):
            continue
        orders.append(_Order(value, start, end, labelled))
    return orders


def _valid_date(digits: str) -> bool:
    """YYYYMMDD of this century or the last (a birth date, an order date)."""
    if len(digits) != 8 or digits[:2] not in ("19", "20"):
        return False
    month, day = int(digits[4:6]), int(digits[6:8])
    return 1 <= month <= 12 and 1 <= day <= 31


def _is_other_number(text: str, start: int, body: str, digits: str) -> bool:
    """A phone number (also +86 or a landline), QQ or ID-card number, hotline, or a date:
    numbers customers send that are never order numbers."""
    before = text[max(0, start - 14) : start]
    if _OTHER_NUMBER_LABEL_RE.search(before):
        return True
    if _COUNTRY_CODE_RE.search(before) or (
        digits[:2] == "86" and _PHONE_LIKE_RE.fullmatch(digits[2:])
    ):
        return True
    if digits.startswith("0086") or (digits[:1] == "0" and _LANDLINE_RE.fullmatch(body)):
        return True
    if digits[:3] in ("400", "800") and len(digits) == 10:  # service hotlines
        return True
    after = text[start + len(body) : start + len(body) + 1]
    if len(digits) == 18 or (len(digits) == 17 and after in ("X", "x")):
        return _valid_date(digits[6:14])  # an ID-card number: region, birth date, serial
    return _valid_date(digits)


_TOKEN_RE = re.compile(r"[A-Z0-9]+(?:[ \-_.,，。、—–/]{1,3}[A-Z0-9]+)*")
_GROUP_SEP_RE = re.compile(r"[ \-_.,，。、—–/]+")
_MAX_GROUPS = 16  # "S O 2 0 2 5 …" as voice recognition spells it
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _shaped_candidates(text: str, masked: str, shapes: OrderShapes) -> list[_Order]:
    """Runs of letters and digits (their separators dropped) whose shape is one of this
    merchant's; a look-alike letter (O for 0, I or l for 1) after the prefix is read as the
    digit when only that gives a known shape. A run inside a longer known one is dropped."""
    found: list[tuple[_Order, bool]] = []
    prefixes = sorted(shapes.prefixes, key=len, reverse=True)
    for token in _TOKEN_RE.finditer(masked.upper()):
        groups = [
            (m.start() + token.start(), m.group()) for m in re.finditer(r"[A-Z0-9]+", token.group())
        ]
        for i in range(len(groups)):
            for j in range(i, min(len(groups), i + _MAX_GROUPS)):
                value = "".join(g for _, g in groups[i : j + 1])
                if len(value) < MIN_ORDER_DIGITS or len(value) > MAX_ORDER_LEN:
                    continue
                start = groups[i][0]
                end = groups[j][0] + len(groups[j][1])
                lookalike = False
                if not shapes.matches(value):
                    head = next((p for p in prefixes if value.startswith(p)), "")
                    fixed = head + value[len(head) :].translate(_LOOKALIKE_DIGITS)
                    if fixed == value or not shapes.matches(fixed):
                        continue
                    value, lookalike = fixed, True
                labelled = _ORDER_LABEL_BEFORE_RE.search(text[max(0, start - 16) : start])
                digits = re.sub(r"\D", "", value)
                if (
                    labelled is None
                    and digits == value
                    and _is_other_number(masked, start, masked[start:end], digits)
                ):
                    continue
                found.append((_Order(value, start, end, labelled is not None), lookalike))
    kept = [
        (order, lookalike)
        for order, lookalike in found
        if not any(
            o.start <= order.start
            and order.end <= o.end
            and (o.end - o.start) > (order.end - order.start)
            for o, _ in found
        )
    ]
    kept.sort(key=lambda ol: (ol[1], not ol[0].labelled, -len(ol[0].value), ol[0].start))
    return [order for order, _ in kept]


def order_candidates(text: str, shapes: OrderShapes | None = None) -> list[str]:
    """Every reading of an order number in ``text``, most likely first: runs of a known shape
    (see ``OrderShapes``), then numbers that merely look like an order number."""
    normalized = normalize_text(text)
    marked = _marked_amounts(normalized)
    return _ranked_orders(normalized, marked, shapes)


def _ranked_orders(
    normalized: str,
    marked: list[_Amount],
    shapes: OrderShapes | None,
    heuristic: list[_Order] | None = None,
) -> list[str]:
    if heuristic is None:
        heuristic = _order_candidates(normalized, marked)
    values: list[str] = []
    if shapes:
        masked = _convert_cn_digit_runs(_mask(normalized, (a.span for a in marked)))
        values = [o.value for o in _shaped_candidates(normalized, masked, shapes)]
    best = _best_order(heuristic)
    rest = sorted(heuristic, key=lambda o: (not o.labelled, -len(o.value), o.start))
    for order in ([best] if best else []) + rest:
        if order.value not in values:
            values.append(order.value)
    return values


def _best_order(orders: Iterable[_Order]) -> _Order | None:
    return min(orders, key=lambda o: (not o.labelled, -len(o.value), o.start), default=None)


# --------------------------------------------------------------------------- intents

_NEGATED_RE = re.compile(
    r"(?:不要|不用|不需要|不想|无需|不必|别|不|don'?t|do not|no need to|never|not)"
    r"\s*(?:转|找|要|接|叫|联系|呼叫|跟|和|与|去)?\s*$",
    re.IGNORECASE,
)
_STRONG_PATTERNS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        Intent.WITHDRAW_CONSENT,
        re.compile(
            r"(?:撤回|撤销|取消|收回|撤掉)(?:我的|对)?(?:隐私)?(?:同意|授权)|不再同意"
            r"|(?:删除|删掉|清除|清空|抹掉|销毁)掉?(?:我的|我)?(?:所有|全部)?的?(?:个人)?"
            r"(?:信息|数据|资料|隐私)"
            r"|\b(?:withdraw|revoke|cancel|retract|take\s+back)\s+(?:my\s+|the\s+)?"
            r"(?:consent|agreement|authori[sz]ation|permission)\b"
            r"|\b(?:delete|erase|remove|wipe|clear)\s+(?:all\s+)?(?:of\s+)?my\s+(?:personal\s+)?"
            r"(?:data|info|information|details|records?)\b|\bforget\s+me\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.HANDOFF,
        re.compile(
            r"(?<!本)人工(?!智能|作|资|费|成本|湖|合成|降雨)|真人(?!秀)|活人|有人吗|有没有人"
            r"|(?:找|转|要|联系|接|叫|呼叫)(?:一下|个)?客服|客服(?:人员)?(?:在吗|在不在)"
            r"|\b(?:humans?|real\s+person|live\s+person|agent|operator|representative"
            r"|customer\s+(?:service|support)|someone\s+real)\b"
            r"|\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:someone|somebody|anyone|staff"
            r"|(?:a\s+)?(?:person|manager|real\s+person))\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.RESTART,
        re.compile(
            r"重新开始|重新来|重来|从头(?:开始|来|再来)|重头来|重新(?:查|输入|填|发)|换(?:一个|个|一)?(?:订单|单)"
            r"|再来一(?:次|遍)|返回首页|回到(?:开始|开头|第一步)|从第一步|(?:还有|另外|另)(?:一个|一笔|一单)"
            r"(?:订单|单子|账单)?(?:要查)?|(?:查|看)(?:一下)?(?:别的|另外的?|其他的?)(?:订单|单子|账单)"
            r"|另外一个单子|\b(?:new|one\s+more|next)\s+order\b"
            r"|换一笔|再查一(?:个|单|笔)|查另一|另(?:外)?一个订单|重置"
            r"|\bstart\s+(?:over|again|afresh)\b|\brestart\b|\breset\b|\bbegin\s+again\b"
            r"|\bstart\s+from\s+(?:the\s+)?(?:beginning|scratch)\b"
            r"|\b(?:another|different|other)\s+order\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.MY_ORDERS,
        re.compile(
            r"^(?:请|请帮我|帮我|麻烦|我要|我想|想)?(?:查|看|找|查询|查看|查找)(?:一下|下)?"
            r"(?:我的|我)?(?:最近的?)?(?:订单|账单|单子)(?:列表)?[吧呢啊呀哦嘛]?$"
            r"|^(?:我的|最近的?)(?:订单|账单)(?:列表)?$|^订单(?:查询|列表)$"
            r"|^(?:(?:check|show|see|list|find)\s+)?(?:me\s+)?my\s+(?:recent\s+)?orders$",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.HELP,
        re.compile(
            r"帮助|怎么用|咋用|怎样用|如何用|怎么使用|如何使用|怎样使用|怎么操作|如何操作|不会用"
            r"|怎么弄|咋弄|咋整|怎么搞|怎么做|该怎么办|怎么办|下一步|做啥|干啥|干嘛用|干什么用|不会弄"
            r"|(?:该|要|需要)发(?:什么|啥)|发(?:什么|啥)给你|(?:在)?哪(?:里|儿)?(?:看|找|查)|什么是"
            r"|看不懂|不懂|不知道(?:怎么|咋|该)|说明书|指南|介绍|能帮我(?:做|干)(?:什么|啥)"
            r"|\b(?:how\s+do\s+i|what\s+do\s+i|where\s+(?:do|can)\s+i|what\s+is\s+(?:a|an|the)?)\b"
            r"|使用说明|使用方法|操作说明|用法|能做什么|能干什么|能干嘛|可以做什么|有什么功能"
            r"|\bhelp\b|\bhow\s+(?:do|does|can|should)\s+(?:i|you|it|this|we)\s+(?:use|work)\b"
            r"|\bhow\s+to\s+use\b|\bwhat\s+can\s+you\s+do\b|\binstructions?\b|\busage\b|\bmenu\b",
            re.IGNORECASE,
        ),
    ),
)
_THANKS_FOR_HELP_RE = re.compile(
    r"(?:谢谢|感谢|多谢).{0,6}帮助|thank(?:s|\s+you)\b.{0,20}\bhelp\b", re.IGNORECASE
)
# Whole-message phrases: too short or too common to look for inside a sentence.
_WHOLE_PHRASES: dict[str, Intent] = {
    "客服": Intent.HANDOFF,
    "人工": Intent.HANDOFF,
    "说明": Intent.HELP,
    "菜单": Intent.HELP,
    "指南": Intent.HELP,
    "教程": Intent.HELP,
    "求助": Intent.HELP,
    "帮帮我": Intent.HELP,
    "帮忙": Intent.HELP,
    "功能": Intent.HELP,
    "再来": Intent.RESTART,
    "换一个": Intent.RESTART,
    "换个": Intent.RESTART,
    "注销": Intent.WITHDRAW_CONSENT,
}
_QUESTION_ONLY_RE = re.compile(r"[?¿]+")
_WHOLE_FILLER_RE = re.compile(
    r"^(?:我要|我想|我需要|请|请帮我|帮我|给我|麻烦|麻烦你)+|(?:啊|呀|吧|呢|哦|啦|了|嘛|在吗|谢谢)+$"
)

# Voice recognition writes homophones (转人宫, 从新开始): compare by toneless pinyin.
_PINYIN_PHRASES: dict[str, Intent] = {
    "转人工": Intent.HANDOFF,
    "人工客服": Intent.HANDOFF,
    "人工服务": Intent.HANDOFF,
    "找人工": Intent.HANDOFF,
    "要人工": Intent.HANDOFF,
    "找真人": Intent.HANDOFF,
    "真人客服": Intent.HANDOFF,
    "转客服": Intent.HANDOFF,
    "找客服": Intent.HANDOFF,
    "联系客服": Intent.HANDOFF,
    "重新开始": Intent.RESTART,
    "换个订单": Intent.RESTART,
    "换一个订单": Intent.RESTART,
    "从头开始": Intent.RESTART,
    "使用说明": Intent.HELP,
    "撤回同意": Intent.WITHDRAW_CONSENT,
    "撤销同意": Intent.WITHDRAW_CONSENT,
    "取消同意": Intent.WITHDRAW_CONSENT,
    "撤回授权": Intent.WITHDRAW_CONSENT,
    "取消授权": Intent.WITHDRAW_CONSENT,
    "删除我的信息": Intent.WITHDRAW_CONSENT,
    "删除我的数据": Intent.WITHDRAW_CONSENT,
}
# Two-syllable phrases match by sound only when they are (nearly) the whole message.
_PINYIN_SHORT_PHRASES: dict[str, Intent] = {
    "人工": Intent.HANDOFF,
    "真人": Intent.HANDOFF,
    "客服": Intent.HANDOFF,
    "帮助": Intent.HELP,
    "重来": Intent.RESTART,
}
_SHORT_PHRASE_MAX_CJK = 4
_PINYIN_MAX_CJK = 20
_FUZZY_MAX_CJK = 8
_FUZZY_CUTOFF = 88.0
_FUZZY_NEGATORS = frozenset("不别没无")
_HAN_RUN_RE = re.compile(r"[\u4e00-\u9fff]+")

_ENGLISH_FUZZY_PHRASES: dict[str, Intent] = {
    "talk to a human": Intent.HANDOFF,
    "speak to someone": Intent.HANDOFF,
    "talk to someone": Intent.HANDOFF,
    "real person": Intent.HANDOFF,
    "customer service": Intent.HANDOFF,
    "restart": Intent.RESTART,
    "start over": Intent.RESTART,
    "start again": Intent.RESTART,
    "withdraw consent": Intent.WITHDRAW_CONSENT,
    "delete my data": Intent.WITHDRAW_CONSENT,
}
_ENGLISH_FUZZY_MIN_LEN = 6


def _fuzzy_syllable(syllable: str) -> str:
    """Fold the sounds speech recognition confuses most: zh/z, ch/c, sh/s, eng/en, ing/in."""
    if syllable[:2] in ("zh", "ch", "sh"):
        syllable = syllable[0] + syllable[2:]
    if syllable.endswith(("eng", "ing")):
        syllable = syllable[:-1]
    return syllable


@lru_cache(maxsize=4096)
def _char_pinyin(ch: str) -> str:
    syllables: list[str] = lazy_pinyin(ch)
    return _fuzzy_syllable(syllables[0]) if syllables else ch


@lru_cache(maxsize=2048)
def _run_pinyin(run: str) -> tuple[str, ...]:
    """One folded syllable per character; pypinyin reads polyphones (重新 = chong) in context."""
    syllables: list[str] = lazy_pinyin(run)
    if len(syllables) != len(run):
        return tuple(_char_pinyin(ch) for ch in run)
    return tuple(_fuzzy_syllable(s) for s in syllables)


_PinyinKey = tuple[tuple[str, ...], str, Intent]  # folded syllables, the phrase, its intent


_KeyIndex = dict[str, tuple[_PinyinKey, ...]]  # first syllable → keys starting with it


@lru_cache(maxsize=1)
def _pinyin_keys() -> tuple[_KeyIndex, _KeyIndex, dict[str, Intent]]:
    """(long keys, long and short keys, joined long keys for fuzzy scoring), built on first use."""

    def variants(phrases: dict[str, Intent]) -> list[_PinyinKey]:
        keys: dict[tuple[str, ...], _PinyinKey] = {}
        for phrase, intent in phrases.items():
            for syllables in (_run_pinyin(phrase), tuple(_char_pinyin(ch) for ch in phrase)):
                keys.setdefault(syllables, (syllables, phrase, intent))
        return list(keys.values())

    def index(keys: list[_PinyinKey]) -> _KeyIndex:
        by_first: dict[str, list[_PinyinKey]] = {}
        for key in keys:
            by_first.setdefault(key[0][0], []).append(key)
        return {first: tuple(group) for first, group in by_first.items()}

    long_keys = variants(_PINYIN_PHRASES)
    short_keys = variants(_PINYIN_SHORT_PHRASES)
    joined = {"".join(syllables): intent for syllables, _, intent in long_keys}
    return index(long_keys), index(long_keys + short_keys), joined


def _find_keys(
    syllables: tuple[str, ...], keys: dict[str, tuple[_PinyinKey, ...]]
) -> Iterable[tuple[int, str, Intent]]:
    """Where in ``syllables`` each key starts, found through the key's first syllable."""
    for index, first in enumerate(syllables):
        for key, phrase, intent in keys.get(first, ()):
            if syllables[index : index + len(key)] == key:
                yield index, phrase, intent


def _is_negated(text: str, start: int) -> bool:
    return _NEGATED_RE.search(text[max(0, start - 12) : start]) is not None


def _pattern_intent(text: str) -> Intent | None:
    for intent, pattern in _STRONG_PATTERNS:
        for match in pattern.finditer(text):
            if _is_negated(text, match.start()):
                continue
            if intent is Intent.HELP and _THANKS_FOR_HELP_RE.search(text):
                continue
            return intent
    return None


def _pinyin_intent(text: str) -> Intent | None:
    runs = list(_HAN_RUN_RE.finditer(text))
    cjk_count = sum(len(run.group()) for run in runs)
    if not cjk_count or cjk_count > _PINYIN_MAX_CJK:
        return None
    long_keys, all_keys, joined_keys = _pinyin_keys()
    keys = all_keys if cjk_count <= _SHORT_PHRASE_MAX_CJK else long_keys
    for run in runs:
        for index, phrase, intent in _find_keys(_run_pinyin(run.group()), keys):
            start = run.start() + index
            # The literal phrase was already judged by the patterns (人工智能 is not 人工).
            if text.startswith(phrase, start) or _is_negated(text, start):
                continue
            return intent
    if cjk_count > _FUZZY_MAX_CJK or _FUZZY_NEGATORS & set(text) or re.search(r"\d", text):
        return None
    spoken = "".join("".join(_run_pinyin(run.group())) for run in runs)
    best = process.extractOne(
        spoken, joined_keys.keys(), scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF
    )
    return joined_keys[best[0]] if best else None


def _english_fuzzy_intent(words: str) -> Intent | None:
    if len(words) < _ENGLISH_FUZZY_MIN_LEN or not words.isascii():
        return None
    best = process.extractOne(
        words, _ENGLISH_FUZZY_PHRASES.keys(), scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF
    )
    return _ENGLISH_FUZZY_PHRASES[best[0]] if best else None


# fmt: off
_YES_TOKENS = (
    "同意", "我同意", "好", "好的", "好滴", "好哒", "好嘞", "好吧", "好呀", "行", "行的",
    "可以", "可以的", "是", "是的", "是滴", "没错", "对", "对的", "对滴", "我可以", "我确认",
    "我愿意", "我接受", "对头", "嗯", "恩", "嗯呢", "确认", "确认无误", "无误", "确定", "正确",
    "没问题", "就是", "就是这个", "是这个", "接受", "愿意", "当然", "当然可以", "授权", "允许",
    "就是它", "是我的", "中", "thats mine", "its mine", "mine",
    "ok", "okay", "okey", "okk", "kk", "yes", "y", "yeah", "yep", "yup", "ya", "sure", "agree",
    "i agree", "agreed", "correct", "right", "thats right", "that is right", "confirm", "confirmed",
    "fine", "alright", "of course", "absolutely", "i do", "sounds good", "go ahead",
    "yes please",
)
_NO_TOKENS = (
    "不", "不对", "不是", "不是的", "不是这个", "不同意", "我不同意", "否", "不要", "不用",
    "不用了", "不行", "不可以", "不好", "不愿意", "不接受", "错", "错了", "不正确", "拒绝",
    "不是我的", "不不不", "不不", "没有的事", "否认", "并不是", "搞错了", "弄错了", "你弄错了",
    "我没买过这个", "没买过", "我不认识这个订单", "不认识", "thats not it", "not it",
    "thats not mine", "not mine",
    "算了", "取消", "没有", "不需要", "不了", "别", "no", "n", "nope", "nah", "not", "disagree",
    "i disagree", "dont", "do not", "wrong", "incorrect", "cancel", "decline", "refuse",
    "reject", "not this", "not this one", "no thanks", "not right", "not correct",
)
_FILLER_TOKENS = (
    "的", "啊", "呀", "吧", "呢", "哦", "噢", "喔", "哈", "啦", "了", "嘛", "呐", "哎", "这个",
    "那个", "这个订单", "这单", "这笔", "订单", "谢谢", "谢啦", "多谢", "谢谢你", "please",
    "pls", "plz", "thanks", "thank you", "thx", "ty", "it", "is", "this", "one", "that", "the",
    "order", "its", "这", "单子", "这单子", "这个单子",
)
# fmt: on
_YES_NO_KIND: dict[str, Intent | None] = {
    **dict.fromkeys(_FILLER_TOKENS),
    **dict.fromkeys(_YES_TOKENS, Intent.YES),
    **dict.fromkeys(_NO_TOKENS, Intent.NO),
}
# Longest first, so 不同意 is read before 不; an ASCII word must end at a word boundary ("y" is
# not the start of "yo").
_YES_NO_TOKEN_RE = re.compile(
    r" *("
    + "|".join(
        re.escape(token) + (r"(?![a-z0-9])" if token.isascii() else "")
        for token in sorted(_YES_NO_KIND, key=len, reverse=True)
    )
    + r") *"
)
_YES_NO_MAX_LEN = 24
_A_NOT_A_RE = re.compile(r"(?<!不)([^不])不\1")  # 好不好, 对不对: a question, neither yes nor no
_EMOJI_WORDS = {
    "[强]": " 好 ",
    "[ok]": " ok ",
    "[弱]": " 不 ",
    "👍": " 好 ",
    "👌": " ok ",
    "✅": " 好 ",
    "👎": " 不 ",
    "❌": " 不 ",
    "🙅": " 不 ",
}
_EMOJI_RE = re.compile("|".join(re.escape(e) for e in _EMOJI_WORDS))
_PUNCT_RE = re.compile(r"[^\w\s]|_")


def _yes_no_intent(words: str) -> Intent | None:
    """YES or NO when the message is nothing but yes/no words (and politeness); NO wins."""
    if len(words) > _YES_NO_MAX_LEN or _A_NOT_A_RE.search(words):
        return None
    seen: set[Intent] = set()
    pos = 0
    while pos < len(words):
        match = _YES_NO_TOKEN_RE.match(words, pos)
        if match is None:
            return None
        if kind := _YES_NO_KIND[match.group(1)]:
            seen.add(kind)
        pos = match.end()
    if Intent.NO in seen:
        return Intent.NO
    return Intent.YES if Intent.YES in seen else None


def _intent_words(text: str) -> str:
    """Lower-case, emoji mapped to words, punctuation dropped, apostrophes glued (don't)."""
    text = _EMOJI_RE.sub(lambda m: _EMOJI_WORDS[m.group()], text.lower())
    text = text.replace("'", "").replace("’", "")
    return _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text)).strip()


def _detect_intent(text: str) -> Intent | None:
    if not text:
        return None
    person, withdraw = person_verdict(text), withdraw_verdict(text)
    intent = _detect_intent_unscoped(text, person, withdraw)
    if intent is Intent.HANDOFF and person is Verdict.REFUSED:
        return None  # a person mentioned, refused or reported on: not asked for
    if intent is Intent.WITHDRAW_CONSENT and withdraw is Verdict.REFUSED:
        return None
    return intent


def _detect_intent_unscoped(text: str, person: Verdict, withdraw: Verdict) -> Intent | None:
    if _QUESTION_ONLY_RE.fullmatch(text):
        return Intent.HELP
    words = _intent_words(text)
    if words in ("1", "2"):
        return Intent.YES if words == "1" else Intent.NO
    if withdraw is Verdict.ASKED:
        return Intent.WITHDRAW_CONSENT
    if person is Verdict.ASKED:
        return Intent.HANDOFF
    lowered = text.lower()
    if intent := _pattern_intent(lowered):
        return intent
    core = _WHOLE_FILLER_RE.sub("", words.replace(" ", ""))
    if intent := _WHOLE_PHRASES.get(core):
        return intent
    if intent := _pinyin_intent(lowered):
        return intent
    if intent := _yes_no_intent(words):
        return intent
    return _english_fuzzy_intent(words)


# --------------------------------------------------------------------------- choices

_CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}  # ①…⑳
_KEYCAP_RE = re.compile(r"^([1-9])\ufe0f?\u20e3$")  # 1️⃣
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_CHOICE_RE = re.compile(
    r"^(?:我|就|那|那就|要|选|择|挑|选项|第|两个里面|几个里面|里面|的|是|还是|嗯|好|吧)*"
    r"([0-9]{1,2}|[一二两三四五六七八九十幺]|十[一二三四五六七八九]?)"
    r"(?:个|号|条|笔|项|单|个订单|笔订单)?"
    r"(?:吧|呢|啊|哦|的|就行|就好|好了|谢谢|谢啦|那个|这个)*$"
)
_EN_CHOICE_RE = re.compile(
    r"^(?:(?:the|number|no|option|choice|pick|i\s+pick|i\s+choose|choose|id\s+like|i\s+want)\s*)*"
    r"(first|second|third|fourth|fifth|last|[0-9]{1,2})(?:\s*(?:one|order))?"
    r"(?:\s*(?:please|pls|thanks|thank\s+you))?$"
)


def parse_choice(text: str) -> int | None:
    """The number picked from a numbered list (2, 第二个, 选2, ②, 2️⃣, "the second one"); -1
    for "the last one"; else ``None``. Whether it is in range is the caller's business."""
    stripped = text.strip()
    if stripped in _CIRCLED:
        return _CIRCLED[stripped]
    if keycap := _KEYCAP_RE.match(stripped):
        return int(keycap.group(1))
    normalized = normalize_text(text)
    words = _intent_words(normalized)
    if english := _EN_CHOICE_RE.match(words):
        token = english.group(1)
        return int(token) if token.isdigit() else _ORDINALS[token]
    core = _PUNCT_RE.sub("", normalized).replace(" ", "")
    if match := _CHOICE_RE.match(core):
        token = match.group(1)
        if token.isdigit():
            return int(token)
        return _parse_cn_integer(token.replace("两", "二").replace("幺", "一"))
    if core in ("最后一个", "最后那个", "最后一笔", "最后一单"):
        return -1
    return None


# --------------------------------------------------------------------------- language

_CJK_RE = re.compile(
    "[\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"
)
_LATIN_WORD_RE = re.compile(r"(?<![0-9A-Za-z\u00c0-\u024f])[A-Za-z\u00c0-\u024f]+(?![0-9A-Za-z])")
_NOT_LANGUAGE_WORDS = frozenset({"rmb", "cny"})
# A few letters in front of digits are a code's prefix (SF 1234…, JD-…), not an English word.
_CODE_PREFIX_RE = re.compile(r"(?<![A-Za-z])[A-Za-z]{1,4}(?=[\s\-_]*[0-9])")


# --------------------------------------------------------------------------- public API


def parse_order_no(text: str) -> str | None:
    """The order number in ``text`` (upper-cased, separators removed), else ``None``."""
    normalized = normalize_text(text)
    best = _best_order(_order_candidates(normalized, _marked_amounts(normalized)))
    return best.value if best else None


_BARE_DECIMAL_RE = re.compile(r"(?<![0-9.,])[-−]?\d{1,7}\.\d{1,2}(?![0-9.,])")


def _amount_in(normalized: str, marked: list[_Amount], orders: list[_Order]) -> Decimal | None:
    best = _best_amount(marked)
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
    normalized = normalize_text(text)
    marked = _marked_amounts(normalized)
    return _amount_in(normalized, marked, _order_candidates(normalized, marked))


def detect_intent(text: str) -> Intent | None:
    """What the customer asks the bot to do, if anything.

    Handoff, withdraw-consent, restart and help are found inside a sentence (unless negated:
    不要转人工); yes and no only when the message is nothing else, so a long message with an
    order number is never a yes. Negation wins: 不同意 is NO.
    """
    return _detect_intent(normalize_text(text))


def detect_language(text: str) -> Literal["zh", "en"] | None:
    """``"zh"`` if any CJK character, ``"en"`` if Latin words and no CJK, else ``None``.

    The letters of an order number (DD-2025…), of a code's prefix (SF 1234…) and currency codes
    (RMB, CNY) are not words.
    """
    normalized = normalize_text(text)
    if _CJK_RE.search(normalized):
        return "zh"
    orders = _order_candidates(normalized, _marked_amounts(normalized))
    codes = [m.span() for m in _CODE_PREFIX_RE.finditer(normalized)]
    without = _mask(normalized, [*((o.start, o.end) for o in orders), *codes])
    words = (w.lower() for w in _LATIN_WORD_RE.findall(without))
    if any(w not in _NOT_LANGUAGE_WORDS for w in words):
        return "en"
    return None


def understand(text: str, shapes: OrderShapes | None = None) -> Understood:
    """Order number, amount and intent at once.

    Money-marked numbers are never read as part of an order number and vice versa. The bare
    ``"1"``/``"2"`` is both an intent (YES/NO) and an amount (1.00/2.00): the caller decides by
    what it asked.
    """
    normalized = normalize_text(text)
    marked = _marked_amounts(normalized)
    orders = _order_candidates(normalized, marked)
    ranked = _ranked_orders(normalized, marked, shapes, orders)
    return Understood(
        order_no=ranked[0] if ranked else None,
        amount=_amount_in(normalized, marked, orders),
        intent=_detect_intent(normalized),
        order_options=tuple(ranked[1:]),
    )

"""Amounts in yuan: marked by currency, unit or keyword, signs (a minus is money spent),
several prices in one bill (the paid one wins), the lone number of a short answer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from bot.understanding.labels import _ORDER_LABEL_BEFORE_RE
from bot.understanding.numerals import (
    _ASCII_NUMBER_RE,
    _CN,
    _CN_BIG_UNIT,
    _CN_UNIT_CHARS,
    _digit_value,
    _parse_number,
)
from bot.understanding.prefilter import hint

MAX_AMOUNT = Decimal("10000000")
_CENT = Decimal("0.01")

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


# Every number token holds one of these: a message without any has no amount.
_NUMERAL_RE = re.compile(rf"[\d{_CN}]")
_PREFIXED_HINT = hint(_PREFIXED_AMOUNT_RE)  # ¥, RMB…
_UNIT_HINT = hint(_UNIT_AMOUNT_RE)  # 元, 块, yuan…
_KEYWORD_HINT = hint(_KEYWORD_AMOUNT_RE)
_SPENT_HINT = hint(_SPENT_RE)
_MINOR_ONLY_HINT = hint(_MINOR_ONLY_RE)  # 角, 毛, 分
_MARK_HINT = hint(_PREFIXED_AMOUNT_RE, _UNIT_AMOUNT_RE, _KEYWORD_AMOUNT_RE)  # (ignoring case)
_SIGN_HINT = hint(_SPENT_RE, _MINOR_ONLY_RE)


def _marked_amounts(text: str) -> list[_Amount]:
    """Numbers marked as money, merged by where the number starts."""
    if not _NUMERAL_RE.search(text):
        return []
    if not _MARK_HINT.found_in(text) and not _SIGN_HINT.found_in(text):
        return []  # nothing marks a number as money
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

    # (a pattern whose hint is not in the text cannot match: a quick search instead of it)
    if _PREFIXED_HINT.found_in(text):
        for match in _PREFIXED_AMOUNT_RE.finditer(text):
            add(match, _PRIORITY_CURRENCY, marked=True)
    for match in _UNIT_AMOUNT_RE.finditer(text) if _UNIT_HINT.found_in(text) else ():
        token, _ = _trim_list_comma(match.group("num"), match.start("num"))
        major = _parse_number(token)
        value = None if major is None else major + _minor_value(match)
        unit = match.group("unit").lower()
        priority = _PRIORITY_COLLOQUIAL if unit in _COLLOQUIAL_UNITS else _PRIORITY_CURRENCY
        add(match, priority, marked=True, value=value)
    if _KEYWORD_HINT.found_in(text):
        for match in _KEYWORD_AMOUNT_RE.finditer(text):
            add(match, _PRIORITY_KEYWORD, marked=False)
    if _SPENT_HINT.found_in(text):
        for match in _SPENT_RE.finditer(text):  # -36.50: how a bill shows what was paid
            add(match, _PRIORITY_CURRENCY, marked=True)
    for match in _MINOR_ONLY_RE.finditer(text) if _MINOR_ONLY_HINT.found_in(text) else ():
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
    if not _NUMERAL_RE.search(text):
        return None
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

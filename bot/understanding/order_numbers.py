"""Order numbers: candidates read with separators, spoken digits and look-alike letters,
scored against the merchant's order shapes; phone, QQ and ID-card numbers and dates are not
orders."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.understanding.amounts import _Amount
from bot.understanding.labels import _ORDER_LABEL_BEFORE_RE, _ORDER_LABEL_RE
from bot.understanding.numerals import _CN_DIGIT_VALUE
from bot.understanding.order_shapes import OrderShapes

MIN_ORDER_DIGITS = 8
MAX_ORDER_LEN = 40

_ORDER_CN_DIGITS = "零〇洞一幺二两三四五六七八九"
_TO_ASCII_DIGITS = str.maketrans(
    {ch: str(_CN_DIGIT_VALUE.get(ch, 0)) for ch in _ORDER_CN_DIGITS}  # 洞 is 0 on the radio
)
# a spoken number is often split by commas, full stops or spaces (二零二五，零五零三。…)
_CN_DIGIT_RUN_RE = re.compile(f"[{_ORDER_CN_DIGITS}]+(?:[，。、,. ]+[{_ORDER_CN_DIGITS}]+)*")
_CN_DIGIT_RE = re.compile(f"[{_ORDER_CN_DIGITS}]")
_DIGIT_RE = re.compile(r"\d")
_NOT_DIGIT_RE = re.compile(r"\D")
_MIN_CN_DIGIT_RUN = 4  # 二零二五…; runs of 2-3 only when they touch ASCII digits

_ORDER_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>[A-Z](?: [A-Z]){1,3}|[A-Za-z]{1,4})(?P<psep>[-_]*| )(?=\d)"
    r"(?P<body>\d+(?:[ \-_.—–]+\d+)*)"
    r"|(?<![0-9])(?P<bare>\d+(?:[ \-_.—–]+\d+)*)"
)
_DECIMAL_RE = re.compile(r"\d+\.\d{1,2}")
_DATE_RE = re.compile(r"(?:19|20)\d{2}([-/.])\d{1,2}\1\d{1,2}(?:\s|$)")
_PHONE_LIKE_RE = re.compile(r"1[3-9]\d{9}")
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
    chars: list[str] | None = None
    for start, end in spans:
        if chars is None:
            chars = list(text)
        chars[start:end] = "|" * (end - start)
    return text if chars is None else "".join(chars)


def _masked_for_orders(text: str, amounts: Iterable[_Amount]) -> str:
    """Where order numbers are read: money masked, spoken digits written as digits."""
    masked = _mask(text, (a.span for a in amounts))
    return _convert_cn_digit_runs(masked) if _CN_DIGIT_RE.search(masked) else masked


def _orders_in(text: str, masked: str) -> list[_Order]:
    """Numbers in ``masked`` (see ``_masked_for_orders``) that may be order numbers."""
    if not _DIGIT_RE.search(masked):
        return []
    labelled_text: bool | None = None  # whether the message speaks of an order, a phone
    phone_text: bool | None = None
    orders: list[_Order] = []
    for match in _ORDER_RE.finditer(masked):
        prefix, body = match.group("prefix") or "", match.group("body") or match.group("bare")
        if len(body) < MIN_ORDER_DIGITS:
            continue  # fewer digits than any order number has (as below, only sooner)
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
        digits = _NOT_DIGIT_RE.sub("", body)
        value = prefix.upper() + digits
        if len(digits) < MIN_ORDER_DIGITS or len(value) > MAX_ORDER_LEN:
            continue
        if not prefix and _PHONE_LIKE_RE.fullmatch(digits):
            if labelled_text is None or phone_text is None:
                labelled_text = _ORDER_LABEL_RE.search(text) is not None
                phone_text = _PHONE_LABEL_RE.search(text) is not None
            if phone_text or not labelled_text:
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
_GROUP_RE = re.compile(r"[A-Z0-9]+")
_MAX_GROUPS = 16  # "S O 2 0 2 5 …" as voice recognition spells it
_LOOKALIKE_DIGITS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_NOT_ALNUM_RE = re.compile(r"[^A-Z0-9]+")


def _shaped_candidates(text: str, masked: str, shapes: OrderShapes) -> list[_Order]:
    """Runs of letters and digits (their separators dropped) whose shape is one of this
    merchant's; a look-alike letter (O for 0, I or l for 1) after the prefix is read as the
    digit when only that gives a known shape. A run inside a longer known one is dropped."""
    upper = masked.upper()
    if len(_NOT_ALNUM_RE.sub("", upper)) < MIN_ORDER_DIGITS:
        return []  # too few letters and digits for any order number
    found: list[tuple[_Order, bool]] = []
    prefixes = shapes.prefixes_longest_first
    for token in _TOKEN_RE.finditer(upper):
        run = token.group()
        if run.isalnum():  # one group: no separator in it
            groups = [(token.start(), run)]
        else:
            groups = [(m.start() + token.start(), m.group()) for m in _GROUP_RE.finditer(run)]
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
                if (
                    labelled is None
                    and value.isdigit()  # (letters and digits only)
                    and _is_other_number(masked, start, masked[start:end], value)
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


def _ranked_orders(
    text: str, masked: str, heuristic: Sequence[_Order], shapes: OrderShapes | None
) -> list[str]:
    """Every reading of an order number, most likely first: runs of a known shape, then
    numbers that merely look like an order number (``heuristic``, from ``_orders_in``)."""
    values: list[str] = []
    if shapes:
        values = [o.value for o in _shaped_candidates(text, masked, shapes)]
    if not heuristic:
        return values
    best = _best_order(heuristic)
    rest = sorted(heuristic, key=lambda o: (not o.labelled, -len(o.value), o.start))
    for order in ([best] if best else []) + rest:
        if order.value not in values:
            values.append(order.value)
    return values


def _best_order(orders: Iterable[_Order]) -> _Order | None:
    return min(orders, key=lambda o: (not o.labelled, -len(o.value), o.start), default=None)

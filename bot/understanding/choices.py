"""Numbered answers: 2, 第二个, 选2, ②, 2️⃣, "the second one"."""

from __future__ import annotations

import re

from bot.understanding.intents import _PUNCT_RE, _intent_words
from bot.understanding.normalize import normalize_text
from bot.understanding.numerals import _parse_cn_integer

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

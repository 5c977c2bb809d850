"""The customer's language: Chinese if any CJK, English if Latin words beyond codes."""

from __future__ import annotations

import re
from typing import Literal

from bot.understanding.normalize import normalize_text
from bot.understanding.order_numbers import _mask
from bot.understanding.reading import read_message

_CJK_RE = re.compile(
    "[\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"
)
_LATIN_WORD_RE = re.compile(r"(?<![0-9A-Za-z\u00c0-\u024f])[A-Za-z\u00c0-\u024f]+(?![0-9A-Za-z])")
_LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NOT_LANGUAGE_WORDS = frozenset({"rmb", "cny"})
# A few letters in front of digits are a code's prefix (SF 1234…, JD-…), not an English word.
_CODE_PREFIX_RE = re.compile(r"(?<![A-Za-z])[A-Za-z]{1,4}(?=[\s\-_]*[0-9])")


def detect_language(text: str) -> Literal["zh", "en"] | None:
    """``"zh"`` if any CJK character, ``"en"`` if Latin words and no CJK, else ``None``.

    The letters of an order number (DD-2025…), of a code's prefix (SF 1234…) and currency codes
    (RMB, CNY) are not words.
    """
    normalized = normalize_text(text)
    if _CJK_RE.search(normalized):
        return "zh"
    if not _LATIN_LETTER_RE.search(normalized):
        return None  # no letters, no words
    reading = read_message(text)
    codes = [m.span() for m in _CODE_PREFIX_RE.finditer(normalized)]
    without = _mask(normalized, [*((o.start, o.end) for o in reading.orders), *codes])
    words = (w.lower() for w in _LATIN_WORD_RE.findall(without))
    if any(w not in _NOT_LANGUAGE_WORDS for w in words):
        return "en"
    return None

"""Normalisation first: NFKC (full-width → half-width), other scripts' digits, invisible
characters, whitespace, digits typed one by one."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACE_RE = re.compile(r"\s+")


_SPACED_DIGITS_RE = re.compile(r"(?<![0-9A-Za-z])\d(?: ?\. ?\d| \d){2,}(?![0-9A-Za-z])")
# A decimal digit of another script (٣, ३…); re's \d is Unicode's Nd, as str.isdecimal.
_OTHER_DIGIT_RE = re.compile(r"[^\D0-9]")


# A turn asks several questions of one message (its language, then order number, amount and
# intent): each is answered from the same normalised text. Small: only the messages in flight.
@lru_cache(maxsize=64)
def normalize_text(text: str) -> str:
    """NFKC (full-width forms → ASCII, ￥ → ¥), other scripts' decimal digits → ASCII, invisible
    format characters dropped, whitespace collapsed and stripped, digits typed one by one
    joined (1 2 8 . 5 0 → 128.50)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        # A format character (category Cf) is never printable: most messages skip the walk.
        if not text.isascii() and (not text.isprintable() or _OTHER_DIGIT_RE.search(text)):
            text = "".join(_normalize_char(ch) for ch in text)
    if " " not in text and text.isprintable():
        return text  # no whitespace (any other is unprintable): nothing to collapse or join
    text = _SPACE_RE.sub(" ", text).strip()
    return _SPACED_DIGITS_RE.sub(lambda m: m.group().replace(" ", ""), text)


def _normalize_char(ch: str) -> str:
    if ch.isascii():
        return ch
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    return "" if unicodedata.category(ch) == "Cf" else ch

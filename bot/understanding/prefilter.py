"""Hints: for a pattern, a few characters and words of which every match holds at least one.
A message holding none of them cannot match, in whole or in any part (a clause), so one quick
search spares the full pattern — most messages match few of the patterns here, and a full
pattern costs many times the search for its hint.

The hint is read from the pattern itself (Python's own regex parser), so it follows any edit of
the pattern. Where it cannot be told (a pattern that may match the empty string, or whose every
piece may be almost any character) the hint matches every message and spares nothing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# The parser behind re.compile (no public API gives the parsed pattern).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


@dataclass(frozen=True)
class _Needles:
    """Characters (ranges of code points) and words; a match holds one of them."""

    chars: frozenset[tuple[int, int]] = frozenset()
    words: frozenset[str] = frozenset()

    def __or__(self, other: _Needles) -> _Needles:
        return _Needles(self.chars | other.chars, self.words | other.words)

    @property
    def cost(self) -> float:
        """How often a message may hold one: each character counts, a word of two or more
        characters (much rarer than any of its characters) counts half."""
        return sum(high - low + 1 for low, high in self.chars) + len(self.words) / 2


def _is(op: Any, *names: str) -> bool:
    return any(op is getattr(_c, name, None) for name in names)


def _nullable(op: Any, av: Any) -> bool:
    """Whether the item may match without consuming a character."""
    if _is(op, "LITERAL", "NOT_LITERAL", "IN", "ANY"):
        return False
    if _is(op, "BRANCH"):
        return any(_seq_nullable(alternative) for alternative in av[1])
    if _is(op, "SUBPATTERN"):
        return _seq_nullable(av[3])
    if _is(op, *_REPEATS):
        return bool(av[0] == 0) or _seq_nullable(av[2])
    if _is(op, "ATOMIC_GROUP"):
        return _seq_nullable(av)
    return True  # assertions, anchors, and whatever is not known here


def _seq_nullable(items: Sequence[tuple[Any, Any]]) -> bool:
    return all(_nullable(op, av) for op, av in items)


def _item_needles(op: Any, av: Any) -> _Needles | None:
    """Needles any match of this (non-nullable) item holds one of, if that can be told."""
    if _is(op, "LITERAL"):
        return _Needles(chars=frozenset({(av, av)}))
    if _is(op, "IN"):
        ranges: set[tuple[int, int]] = set()
        for member_op, member in av:
            if _is(member_op, "LITERAL"):
                ranges.add((member, member))
            elif _is(member_op, "RANGE"):
                ranges.add(member)
            else:  # a negated class or a category (\d, \s, \w): too wide to help
                return None
        return _Needles(chars=frozenset(ranges))
    if _is(op, "BRANCH"):
        union = _Needles()
        for alternative in av[1]:
            found = _needles(alternative)
            if found is None:
                return None
            union |= found
        return union
    if _is(op, "SUBPATTERN"):
        _group, add_flags, del_flags, items = av
        return None if add_flags or del_flags else _needles(items)
    if _is(op, *_REPEATS):
        return _needles(av[2])
    if _is(op, "ATOMIC_GROUP"):
        return _needles(av)
    return None


def _literal_runs(items: Sequence[tuple[Any, Any]]) -> list[str]:
    """Words spelled by two or more literal characters in a row (人工, human)."""
    runs: list[str] = []
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if _is(op, "LITERAL"):
            run.append(chr(av))
            continue
        if len(run) >= 2:
            runs.append("".join(run))
        run = []
    return runs


def _needles(items: Sequence[tuple[Any, Any]]) -> _Needles | None:
    """The cheapest known needles among the sequence's items that must consume characters."""
    candidates = [_Needles(words=frozenset({word})) for word in _literal_runs(items)]
    for op, av in items:
        if not _nullable(op, av) and (found := _item_needles(op, av)) is not None:
            candidates.append(found)
    return min(candidates, key=lambda needles: needles.cost, default=None)


# re.IGNORECASE takes these for ASCII letters (İ ı for i, ſ for s, K for k); str.lower() does
# not, or not one for one. Every other character lowers as re.IGNORECASE compares it.
_CASE_TRAPS_RE = re.compile("[\u0130\u0131\u017f\u212a]")
_EXPANDED_RANGE = 64  # code points; a wider range stays a class


@dataclass(frozen=True)
class Hint:
    """Found in every text where its patterns match (see ``hint``)."""

    pattern: re.Pattern[str]  # with the patterns' own flags: right for any text
    # The same needles, lower-cased, for ``text.lower()`` without case traps: a case-sensitive
    # alternation of words that re scans for their first characters, several times faster.
    lowered: re.Pattern[str] | None = None

    def found_in(self, text: str) -> bool:
        if self.lowered is not None and (text.isascii() or not _CASE_TRAPS_RE.search(text)):
            return self.lowered.search(text.lower()) is not None
        return self.pattern.search(text) is not None


_EVERYTHING = Hint(re.compile(""))  # search() always finds the empty match


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    parts = (
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in sorted(ranges)
    )
    return "[" + "".join(parts) + "]"


def _alternation(needles: _Needles, *, lower: bool) -> str | None:
    """Every needle as a word of its own (lower-cased if ``lower``), longest first, so each
    alternative starts with a literal character and re scans for those first characters; wide
    ranges stay classes. With ``lower``, ``None`` when lower-casing a needle is not how
    re.IGNORECASE reads it (a cased letter beyond ASCII, a wide range of letters)."""
    words = set(needles.words)
    wide: list[tuple[int, int]] = []
    for low, high in needles.chars:
        if high - low < _EXPANDED_RANGE:
            words.update(chr(code) for code in range(low, high + 1))
        else:
            wide.append((low, high))
    if lower:
        if any(low <= ord("z") and high >= ord("A") for low, high in wide):
            return None
        if not all(c.isascii() or c.lower() == c == c.upper() for word in words for c in word):
            return None
        words = {word.lower() for word in words}
    alternatives = [re.escape(word) for word in sorted(words, key=lambda w: (-len(w), w))]
    if wide:
        alternatives.append(_char_class(wide))
    return "|".join(alternatives)


def hint(*patterns: re.Pattern[str]) -> Hint:
    """What every text where any of ``patterns`` matches (in the text or a part of it) holds:
    when ``hint(...).found_in(text)`` is false, none of them can match."""
    flags = {p.flags for p in patterns}
    if len(flags) != 1:
        raise ValueError(f"patterns with different flags cannot share a hint: {flags}")
    union = _Needles()
    for pattern in patterns:
        try:
            items = _parser.parse(pattern.pattern, pattern.flags)
        except Exception:  # a parser that changed: no hint, only no speed-up
            return _EVERYTHING
        found = None if _seq_nullable(items) else _needles(items)
        if found is None:
            return _EVERYTHING
        union |= found
    exact = re.compile(_alternation(union, lower=False) or "", flags.pop())
    if not exact.flags & re.IGNORECASE:
        return Hint(exact)
    lowered = _alternation(union, lower=True)
    return Hint(exact, None if lowered is None else re.compile(lowered))

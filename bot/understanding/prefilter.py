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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The parser behind re.compile (no public API gives the parsed pattern).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_EVERYTHING = re.compile("")  # search() always finds the empty match
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


def _char_class(ranges: frozenset[tuple[int, int]]) -> str:
    parts = (
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in sorted(ranges)
    )
    return "[" + "".join(parts) + "]"


def hint(*patterns: re.Pattern[str]) -> re.Pattern[str]:
    """A pattern found in every text where any of ``patterns`` matches (in the text or a part
    of it): when ``hint(...).search(text)`` is ``None``, none of them can match."""
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
    alternatives = [_char_class(union.chars)] if union.chars else []
    alternatives += [re.escape(word) for word in sorted(union.words, key=len, reverse=True)]
    return re.compile("|".join(alternatives), flags.pop())

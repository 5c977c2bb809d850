"""The shapes of this merchant's order numbers, learned from the orders they import.

A shape keeps a number's leading letters as they are and reduces the rest to runs of digits
and letters: ``DD20250503123456`` is ``DD|D14``, ``SO2025A0503X77`` is ``SO|D4A1D4A1D2``, a
28-digit Alipay number is ``|D28``. Shapes hold no order number (only lengths and prefixes),
so they can be kept in clear and shared by every worker. Messages are then read against them:
a run of characters with a known shape is very likely an order number, a phone number is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from storage.shapes import shape_of


@dataclass(frozen=True)
class OrderShapes:
    """Known shapes (and the merchant's own ``BILLBOT_ORDER_PATTERN``, if set)."""

    shapes: frozenset[str] = field(default_factory=frozenset)
    pattern: re.Pattern[str] | None = None

    @classmethod
    def learn(cls, order_numbers: Iterable[str], pattern: str = "") -> OrderShapes:
        return cls(
            frozenset(shape_of(n) for n in order_numbers),
            re.compile(pattern, re.IGNORECASE) if pattern else None,
        )

    @classmethod
    def known(cls, shapes: Iterable[str], pattern: str = "") -> OrderShapes:
        """From shapes already computed (the ``order_shapes`` table)."""
        return cls(frozenset(shapes), re.compile(pattern, re.IGNORECASE) if pattern else None)

    def __bool__(self) -> bool:
        return bool(self.shapes) or self.pattern is not None

    def matches(self, value: str) -> bool:
        """``value`` (upper-case letters and digits) has a known shape, or the pattern's."""
        if self.pattern is not None and self.pattern.fullmatch(value):
            return True
        return shape_of(value) in self.shapes

    @cached_property
    def prefixes(self) -> frozenset[str]:
        """The letter prefixes in use (``DD``, ``SO``…); look-alike letters after them are
        read as digits."""
        return frozenset(s.split("|", 1)[0] for s in self.shapes)

    @cached_property
    def prefixes_longest_first(self) -> tuple[str, ...]:
        return tuple(sorted(self.prefixes, key=len, reverse=True))


__all__ = ["OrderShapes", "shape_of"]

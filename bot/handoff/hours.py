"""Service hours: when people are there to take handoffs (China time)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

CHINA = timezone(timedelta(hours=8))
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class ServiceHours:
    """Daily opening hours; ``None`` bounds mean always open."""

    opens: time | None = None
    closes: time | None = None  # exclusive; 24:00 is written as None

    @classmethod
    def parse(cls, text: str) -> ServiceHours:
        """``""`` (always open) or ``"HH:MM-HH:MM"`` in China time, e.g. ``09:00-21:00``."""
        if not text.strip():
            return cls()
        m = _RANGE.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not HH:MM-HH:MM (e.g. 09:00-21:00)")
        oh, om, ch, cm = (int(g) for g in m.groups())
        if oh > 23 or om > 59 or ch > 24 or cm > 59 or (ch == 24 and cm):
            raise ValueError(f"{text!r} has an impossible time")
        closes = None if ch == 24 else time(ch, cm)
        if closes is not None and closes <= time(oh, om):
            raise ValueError(f"{text!r} closes before it opens")
        return cls(time(oh, om), closes)

    def is_open(self, now: datetime) -> bool:
        if self.opens is None:
            return True
        local = now.astimezone(CHINA).time()
        return local >= self.opens and (self.closes is None or local < self.closes)

    def next_opening(self, now: datetime) -> datetime:
        """The next time the service opens, in China time (``now`` if open now)."""
        if self.opens is None or self.is_open(now):
            return now.astimezone(CHINA)
        local = now.astimezone(CHINA)
        today = local.replace(
            hour=self.opens.hour, minute=self.opens.minute, second=0, microsecond=0
        )
        return today if today > local else today + timedelta(days=1)

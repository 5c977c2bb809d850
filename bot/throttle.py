"""Per-address rate limits: at most N requests a minute from one client address.

Fixed windows on the injected clock, kept in process memory (each worker counts its own; the
limits are set so that is still safe). The table is pruned as it grows, so a flood of invented
addresses cannot grow it without bound.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from bot.clock import Clock

PRUNE_AT = 10_000  # addresses held before stale windows are dropped


class AddressThrottle:
    def __init__(self, limit: int, per: timedelta, clock: Clock) -> None:
        self._limit = limit
        self._per = per
        self._clock = clock
        self._windows: dict[str, tuple[datetime, int]] = {}

    def __len__(self) -> int:
        """Addresses currently held."""
        return len(self._windows)

    def retry_after(self, address: str) -> int | None:
        """Counts one request; None if allowed, else the seconds until the window ends."""
        now = self._clock.now()
        start, count = self._windows.get(address, (now, 0))
        if now - start >= self._per:
            start, count = now, 0
        if count >= self._limit:
            return max(1, math.ceil((start + self._per - now).total_seconds()))
        if len(self._windows) >= PRUNE_AT and address not in self._windows:
            self._prune(now)
        self._windows[address] = (start, count + 1)
        return None

    def _prune(self, now: datetime) -> None:
        stale = [a for a, (start, _) in self._windows.items() if now - start >= self._per]
        for address in stale:
            del self._windows[address]
        if len(self._windows) >= PRUNE_AT:  # all fresh: a flood; forget the oldest half
            for address, _ in sorted(self._windows.items(), key=lambda kv: kv[1][0])[
                : PRUNE_AT // 2
            ]:
                del self._windows[address]

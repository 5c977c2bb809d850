"""What a waiting customer is told about their wait."""

from __future__ import annotations

from datetime import timedelta

AVERAGE_HANDLING = timedelta(minutes=3)


def wait_minutes(position: int) -> int:
    return max(1, int(position * AVERAGE_HANDLING.total_seconds() // 60))


def meaningful_move(told: int, now: int) -> bool:
    """Worth a message (and a unit of WeChat's quota): next in line, or halved since told."""
    return now < told and (now == 1 or now <= told // 2)

from __future__ import annotations

import pytest

from bot.durations import say_duration


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (0, "0 秒", "0 s"),
        (-5, "0 秒", "0 s"),
        (37.9, "37 秒", "37 s"),
        (60, "1 分", "1 min"),
        (14 * 60 + 37, "14 分 37 秒", "14 min 37 s"),
        (2 * 3600 + 5 * 60 + 59, "2 小时 5 分", "2 h 5 min"),
        (3 * 3600 + 12, "3 小时", "3 h"),
        (3 * 86400 + 2 * 3600, "3 天 2 小时", "3 d 2 h"),
    ],
)
def test_a_span_reads_in_at_most_two_units(seconds: float, zh: str, en: str) -> None:
    assert say_duration(seconds, "zh") == zh
    assert say_duration(seconds, "en") == en

"""Spans of time said the way people read them: "14 分 37 秒", "2 h 5 min", never bare seconds.

Two units at most, the larger first; the second is left out when it is zero.
"""

from __future__ import annotations

from collections.abc import Sequence

# (seconds in the unit, Chinese, English)
_UNITS: Sequence[tuple[int, str, str]] = (
    (86400, "天", "d"),
    (3600, "小时", "h"),
    (60, "分", "min"),
    (1, "秒", "s"),
)


def say_duration(seconds: float, lang: str = "zh") -> str:
    """``seconds`` in words of ``lang`` ("zh" or "en"); negative spans read as zero."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for size, zh, en in _UNITS:
        count, left = divmod(left, size)
        if count or (parts and len(parts) < 2):
            parts.append(f"{count} {zh if lang == 'zh' else en}")
        if len(parts) == 2:
            break
    if parts and parts[-1].startswith("0 "):
        parts.pop()
    return " ".join(parts) if parts else ("0 秒" if lang == "zh" else "0 s")

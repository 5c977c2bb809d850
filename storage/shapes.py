"""The shape of an order number: its leading letters as they are, the rest as runs of digits
and letters (``DD20250503123456`` → ``DD|D14``). Kept with the orders, read by the bot."""

from __future__ import annotations

import re

_RUN_RE = re.compile(r"[0-9]+|[A-Z]+")
_PREFIX_RE = re.compile(r"^[A-Z]*")


def shape_of(order_no: str) -> str:
    """``DD20250503123456`` → ``DD|D14``; ``SO2025A0503X77`` → ``SO|D4A1D4A1D2``."""
    value = order_no.upper()
    prefix = _PREFIX_RE.match(value)
    head = prefix.group() if prefix else ""
    runs = "".join(
        ("D" if run[0].isdigit() else "A") + str(len(run))
        for run in _RUN_RE.findall(value[len(head) :])
    )
    return f"{head}|{runs}"

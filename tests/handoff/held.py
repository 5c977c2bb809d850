"""Conversations already in agents' hands, written straight to the database (no bot turn):
for tests of what happens to what an agent holds (disabling, lapsing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from storage.records import Owner
from storage.repositories import Repositories


async def held_by(
    repos: Repositories, owners: Sequence[int], now: datetime, lease: timedelta
) -> list[int]:
    """One claimed handoff per entry of ``owners`` (agent ids, repeats allowed), each
    conversation passed to that agent; returns the handoff ids in the same order."""
    held: list[int] = []
    for n, owner in enumerate(owners):
        conv = await repos.conversations.load_for_update(
            "wechat", f"oHeld{n:023d}", "new", now, now + timedelta(hours=72)
        )
        handoff = await repos.handoffs.create(
            conv.id, "asked", now, order_tail=None, amount_confirmed=False, failures=0
        )
        assert await repos.handoffs.claim(handoff.id, owner, now, now + lease)
        await repos.conversations.pass_to(conv.id, Owner.agent(owner))
        held.append(handoff.id)
    return held

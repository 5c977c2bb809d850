"""Per-conversation locks: arrival order within a key, and nothing left behind per user."""

from __future__ import annotations

import asyncio

from bot.engine.locks import KeyedLocks


async def test_waiters_are_served_in_arrival_order_and_locks_are_dropped() -> None:
    locks = KeyedLocks()
    order: list[int] = []
    gate = asyncio.Event()

    async def turn(n: int) -> None:
        async with locks.hold("user-1"):
            if n == 0:
                await gate.wait()  # the first holds the lock while the others queue up
            order.append(n)

    tasks = [asyncio.ensure_future(turn(n)) for n in range(5)]
    await asyncio.sleep(0)  # let every task reach the lock (one loop turn, not a timed wait)
    assert len(locks) == 1
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert len(locks) == 0  # a bot with many customers keeps no lock per customer


async def test_different_conversations_do_not_wait_for_each_other() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        await asyncio.wait_for(_take(locks, "b"), timeout=1)
    assert len(locks) == 0


async def _take(locks: KeyedLocks, key: str) -> None:
    async with locks.hold(key):
        pass

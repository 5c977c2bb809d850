"""In-process events for the live console: the queue changed, a message came or went."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Event = dict[str, Any]  # {"type": "queue" | "message" | "handoff", ...}; JSON-serialisable


class EventBus:
    """Fan-out to every connected console. Slow listeners drop events, never block the bot."""

    def __init__(self, max_pending: int = 100) -> None:
        self._listeners: set[asyncio.Queue[Event]] = set()
        self._max = max_pending

    def publish(self, event: Event) -> None:
        for queue in list(self._listeners):
            if queue.qsize() < self._max:
                queue.put_nowait(event)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

"""Reading a request body: capped in size, cut off when it trickles, quiet when abandoned.

A client that sends its body slower than ``BODY_SECONDS`` in all would otherwise hold a
connection (and a handler) for as long as it likes; one that hangs up half way is not an
error of ours and is logged as one line, never a traceback.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.keys import BODY_DEADLINE

BODY_SECONDS = 10.0  # the whole body must arrive within this (set per app for tests)
CUT_OFF = web.RequestKey("body_cut_off", bool)  # answer, then close the connection


class BodyError(Exception):
    """A body not read: the status to answer, a short reason (safe to log: the caller logs
    it as one line), and a metric label."""

    def __init__(self, status: int, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; BodyError 413 (too large), 408 (too slow) or 400 (abandoned)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, f"body over {limit} bytes", "too_large")
    chunks: list[bytes] = []
    size = 0
    deadline = request.app.get(BODY_DEADLINE, BODY_SECONDS)
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.content.iter_any():  # a body may arrive in pieces
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, f"body over {limit} bytes", "too_large")
                chunks.append(chunk)
    except TimeoutError:
        request[CUT_OFF] = True
        raise BodyError(
            408, f"body not complete after {deadline:g} s ({size} bytes)", "slow_body"
        ) from None
    except ConnectionResetError:
        request[CUT_OFF] = True
        raise BodyError(400, f"client hung up after {size} bytes of the body", "aborted") from None
    return b"".join(chunks)

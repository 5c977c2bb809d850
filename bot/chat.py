"""`billbot chat`: a customer in the terminal, speaking the real Official Account protocol.

Every line typed is sent as WeChat would send it — safe mode, signed, AES-encrypted — to
``{url}/wechat``; the decrypted reply is printed. It is also the end-to-end tests' client.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import aiohttp

from bot.channels.wechat_oa import ChannelError, OAClientCodec
from bot.clock import Clock, SystemClock
from bot.config import Settings

DEFAULT_USER = "oBillbotDemoCustomer00000001"


class ChatClient:
    def __init__(
        self, url: str, settings: Settings, user: str = DEFAULT_USER, clock: Clock | None = None
    ) -> None:
        self._url = url.rstrip("/") + "/wechat"
        self._codec = OAClientCodec(settings.wechat, clock or SystemClock(), "safe")
        self._user = user
        # MsgIds unique across runs of the client: milliseconds, then a counter
        self._ids: Iterator[int] = itertools.count(int(time.time() * 1000) * 1000)

    async def send(self, session: aiohttp.ClientSession, text: str) -> str:
        query, body = self._codec.build_text(self._user, text, next(self._ids))
        return await self._post(session, query, body)

    async def subscribe(self, session: aiohttp.ClientSession) -> str:
        query, body = self._codec.build_event(self._user, "subscribe")
        return await self._post(session, query, body)

    async def _post(
        self, session: aiohttp.ClientSession, query: dict[str, str], body: bytes
    ) -> str:
        async with session.post(self._url, params=query, data=body) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise ChannelError(resp.status, payload.decode("utf-8", "replace"))
            return self._codec.read_reply(payload)


async def run_chat(
    url: str, settings: Settings, user: str, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> int:
    client = ChatClient(url, settings, user)
    interactive = stdin.isatty()
    if interactive:
        print(f"billbot chat → {url} as {user}. Type a message; Ctrl-D to quit.", file=out)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            if interactive:
                print("你> ", end="", file=out, flush=True)
            line = stdin.readline()
            if not line:
                return 0
            text = line.rstrip("\n")
            if not text.strip():
                continue
            try:
                reply = await client.send(session, text)
            except aiohttp.ClientError as exc:
                print(f"! cannot reach {url} ({exc}); is `billbot serve` running?", file=out)
                return 1
            except ChannelError as exc:
                print(f"! the server refused the message ({exc.status}: {exc.reason})", file=out)
                return 1
            print(f"bot> {reply}" if reply else "bot> (no reply)", file=out, flush=True)

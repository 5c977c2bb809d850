"""A local stand-in for the WeChat API: token issuing and expiry, customer-service messages
with the 48-hour window and the 5-replies-per-customer-message quota, and WeChat's error codes.

Tests start it with pytest-aiohttp's ``aiohttp_server`` (pass ``access_log=None``: the request
line carries the secret, as WeChat's own logs would) and point ``WECHAT_API_BASE`` at it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from bot.clock import Clock

REPLY_WINDOW = timedelta(hours=48)
REPLIES_PER_CUSTOMER_MESSAGE = 5
EXPIRES_IN = 7200

Endpoint = Literal["token", "send", "qrcode"]

# What WeChat answers, errmsg text as WeChat words it (minus the request id it appends).
ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    48001: "api unauthorized",
}


def wechat_error(errcode: int) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": ERRMSG.get(errcode, "error")})


@dataclass
class FakeWeChatState:
    """What the fake knows and has done; tests drive it and read it."""

    clock: Clock
    app_id: str
    app_secret: str
    expires_in: int = EXPIRES_IN
    token_requests: int = 0
    send_requests: int = 0
    sent: list[tuple[str, str]] = field(default_factory=list)
    # token -> when WeChat considers it expired; only ``current`` is accepted.
    issued: dict[str, datetime] = field(default_factory=dict)
    current: str | None = None
    last_wrote: dict[str, datetime] = field(default_factory=dict)
    replies_left: dict[str, int] = field(default_factory=dict)
    failures: dict[Endpoint, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    token_gate: asyncio.Event | None = None
    qr_scenes: list[str] = field(default_factory=list)  # scenes of the codes made, in order

    def customer_wrote(self, openid: str, when: datetime | None = None) -> None:
        """The customer sent the account a message: opens the 48 h window, resets the quota."""
        self.last_wrote[openid] = when or self.clock.now()
        self.replies_left[openid] = REPLIES_PER_CUSTOMER_MESSAGE

    def fail_next(self, errcode: int, *, times: int = 1, on: Endpoint = "send") -> None:
        """The next ``times`` calls to the endpoint answer ``errcode`` (after counting them)."""
        self.failures[on].extend([errcode] * times)

    def revoke_tokens(self) -> None:
        """Someone else fetched a token for this app: every token we handed out is now 40001."""
        self.current = None

    def hold_token_requests(self) -> None:
        """Token requests wait, unanswered, until ``release_token_requests``."""
        self.token_gate = asyncio.Event()

    def release_token_requests(self) -> None:
        if self.token_gate is not None:
            self.token_gate.set()

    def issue_token(self) -> str:
        token = "FAKE-" + secrets.token_urlsafe(48)
        self.issued[token] = self.clock.now() + timedelta(seconds=self.expires_in)
        self.current = token
        return token

    def check_token(self, token: str | None) -> int:
        """0 if WeChat would accept the token, else its errcode."""
        if not token:
            return 41001
        if token not in self.issued or token != self.current:
            return 40001
        if self.clock.now() >= self.issued[token]:
            return 42001
        return 0

    def injected_failure(self, endpoint: Endpoint) -> int | None:
        queue = self.failures[endpoint]
        return queue.popleft() if queue else None


FAKE_STATE = web.AppKey("fake_wechat_state", FakeWeChatState)


async def issue_token(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    state.token_requests += 1
    if state.token_gate is not None:
        await state.token_gate.wait()
    if (failure := state.injected_failure("token")) is not None:
        return wechat_error(failure)
    query = request.query
    if query.get("grant_type") != "client_credential":
        return wechat_error(40002)
    if query.get("appid") != state.app_id:
        return wechat_error(40013)
    if query.get("secret") != state.app_secret:
        return wechat_error(40125)
    token = state.issue_token()
    return web.json_response({"access_token": token, "expires_in": state.expires_in})


async def send_custom_message(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    state.send_requests += 1
    if (failure := state.injected_failure("send")) is not None:
        return wechat_error(failure)
    if code := state.check_token(request.query.get("access_token")):
        return wechat_error(code)
    raw = await request.read()
    if not raw:
        return wechat_error(44002)
    try:
        body: Any = json.loads(raw.decode("utf-8"))
        openid = body["touser"]
        if body["msgtype"] != "text":
            return wechat_error(47001)
        text = body["text"]["content"]
    except (ValueError, KeyError, TypeError):
        return wechat_error(47001)
    if not isinstance(openid, str) or not isinstance(text, str):
        return wechat_error(47001)
    last = state.last_wrote.get(openid)
    if last is None:
        return wechat_error(40003)
    if state.clock.now() - last > REPLY_WINDOW:
        return wechat_error(45015)
    if state.replies_left.get(openid, 0) <= 0:
        return wechat_error(45047)
    state.replies_left[openid] -= 1
    state.sent.append((openid, text))
    return wechat_error(0)


async def create_qr_code(request: web.Request) -> web.Response:
    """qrcode/create, as WeChat answers it: a ticket and the URL the code holds."""
    state = request.app[FAKE_STATE]
    if (failure := state.injected_failure("qrcode")) is not None:
        return wechat_error(failure)
    if code := state.check_token(request.query.get("access_token")):
        return wechat_error(code)
    try:
        body: Any = json.loads((await request.read()).decode("utf-8"))
        scene = body["action_info"]["scene"]["scene_str"]
        seconds = int(body.get("expire_seconds", 30))
    except (ValueError, KeyError, TypeError):
        return wechat_error(47001)
    if body.get("action_name") != "QR_STR_SCENE" or not isinstance(scene, str):
        return wechat_error(40053)  # invalid action_info
    if not 1 <= len(scene) <= 64 or not 60 <= seconds <= 2592000:
        return wechat_error(40053)
    n = len(state.qr_scenes)
    state.qr_scenes.append(scene)
    return web.json_response(
        {
            "ticket": f"gQ-fake-ticket-{n}",
            "expire_seconds": seconds,
            "url": f"http://weixin.qq.com/q/fake{n:06d}",
        }
    )


def fake_wechat_app(clock: Clock, app_id: str, app_secret: str) -> web.Application:
    """The fake WeChat API; its state is ``app[FAKE_STATE]``."""
    app = web.Application()
    app[FAKE_STATE] = FakeWeChatState(clock=clock, app_id=app_id, app_secret=app_secret)
    app.router.add_get("/cgi-bin/token", issue_token)
    app.router.add_post("/cgi-bin/message/custom/send", send_custom_message)
    app.router.add_post("/cgi-bin/qrcode/create", create_qr_code)
    return app

"""A local stand-in for the WeCom (企业微信) server API: access tokens and their expiry, the
"contact me" ways (联系我) with their QR codes, remarks on external contacts, and the one-shot
welcome message, all answered with WeCom's ``errcode``/``errmsg`` JSON.

Tests start it with pytest-aiohttp's ``aiohttp_server`` (pass ``access_log=None``: the token
request line carries the corp secret) and point ``WECOM_API_BASE`` at it. They fill
``app[FAKE_WECOM_STATE]`` (members, welcome codes, injected failures) and read back what the
code under test did (contact ways, remarks, welcomes, request counts).

The QR code of a contact way is served by the fake itself, at ``/qr/{config_id}.png``, so a test
can fetch the ``qr_code`` URL it was handed; it is 404 once the way is deleted.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import qrcode
from aiohttp import web
from PIL import Image

from bot.clock import Clock

EXPIRES_IN = 7200
STATE_MAX_CHARS = 30
REMARK_MAX_CHARS = 20
DESCRIPTION_MAX_CHARS = 150
WELCOME_CODE_TTL = timedelta(seconds=20)
MAX_CONTACT_WAYS = 10_000
QR_TARGET = "https://work.weixin.qq.com/u/fake-{config_id}"
QR_BOX_SIZE = 8  # pixels per module
QR_BORDER = 4  # quiet zone, in modules

CONTACT_WAY_TYPES = (1, 2)  # 1: one member, 2: several members
CONTACT_WAY_SCENES = (1, 2)  # 1: in a mini program, 2: by QR code

Endpoint = Literal["token", "add_way", "del_way", "remark", "welcome"]

# What WeCom answers, errmsg text minus the hint, ip and "more info" link WeCom appends.
ERRMSG = {
    0: "ok",
    -1: "system busy",
    40001: "invalid credential",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40058: "invalid parameter",
    41001: "access_token missing",
    41044: "invalid config_id",
    41096: "invalid welcome_code or already used",
    42001: "access_token expired",
    44002: "empty post data",
    45009: "api freq out of limit",
    47001: "data format error",
    48002: "api forbidden",
    84061: "user not found or not licensed for contact ways",
    84074: "contact way count limit exceeded",
}


def wecom_answer(errcode: int, **fields: Any) -> web.Response:
    """WeCom's answer: ``errcode`` and ``errmsg`` always, plus the endpoint's fields."""
    return web.json_response({"errcode": errcode, "errmsg": ERRMSG.get(errcode, "error"), **fields})


class BadRequest(Exception):
    """The request body is not what the endpoint takes; carries WeCom's errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


@dataclass
class ContactWay:
    """A "contact me" way created through ``add_contact_way``."""

    user: list[str]
    state: str | None
    skip_verify: bool
    created_at: datetime
    type: int = 1
    scene: int = 2
    remark: str | None = None


@dataclass
class FakeWeComState:
    """What the fake knows and has done; tests drive it and read it."""

    clock: Clock
    corp_id: str
    corp_secret: str
    expires_in: int = EXPIRES_IN
    max_contact_ways: int = MAX_CONTACT_WAYS
    # Member userids that may be put on a contact way; tests fill it with ``add_member``.
    members: set[str] = field(default_factory=set)
    token_requests: int = 0
    # Requests per endpoint name (the ``Endpoint`` names, plus "qr" for QR image fetches).
    requests: Counter[str] = field(default_factory=Counter)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    deleted_ways: list[str] = field(default_factory=list)
    remarks: list[dict[str, Any]] = field(default_factory=list)
    welcomes: list[tuple[str, str]] = field(default_factory=list)
    # welcome_code -> when the add-contact event carrying it was sent.
    welcome_codes: dict[str, datetime] = field(default_factory=dict)
    used_welcome_codes: set[str] = field(default_factory=set)
    # token -> when WeCom considers it expired; only ``current`` is accepted.
    issued: dict[str, datetime] = field(default_factory=dict)
    current: str | None = None
    failures: dict[Endpoint, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    token_gate: asyncio.Event | None = None
    token_request_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add_member(self, userid: str) -> None:
        """A member of the corp, licensed for contact ways."""
        self.members.add(userid)

    def issue_welcome_code(self, code: str, when: datetime | None = None) -> None:
        """WeCom sent an add-external-contact event carrying ``code`` at ``when`` (default now);
        it can be used once, within 20 seconds."""
        self.welcome_codes[code] = when or self.clock.now()

    def fail_next(self, errcode: int, *, times: int = 1, on: Endpoint) -> None:
        """The next ``times`` calls to the endpoint answer ``errcode`` (after counting them)."""
        self.failures[on].extend([errcode] * times)

    def revoke_tokens(self) -> None:
        """The secret was reset: every token handed out so far is now 40014."""
        self.current = None

    def hold_token_requests(self) -> None:
        """Token requests wait, unanswered, until ``release_token_requests``."""
        self.token_gate = asyncio.Event()

    def release_token_requests(self) -> None:
        if self.token_gate is not None:
            self.token_gate.set()

    def issue_token(self) -> str:
        token = "FAKE-WECOM-" + secrets.token_urlsafe(48)
        self.issued[token] = self.clock.now() + timedelta(seconds=self.expires_in)
        self.current = token
        return token

    def check_token(self, token: str | None) -> int:
        """0 if WeCom would accept the token, else its errcode."""
        if not token:
            return 41001
        if token not in self.issued or token != self.current:
            return 40014
        if self.clock.now() >= self.issued[token]:
            return 42001
        return 0

    def injected_failure(self, endpoint: Endpoint) -> int | None:
        queue = self.failures[endpoint]
        return queue.popleft() if queue else None


FAKE_WECOM_STATE = web.AppKey("fake_wecom_state", FakeWeComState)


def qr_png(data: str) -> bytes:
    """A plain black-on-white PNG of ``data`` as a QR code."""
    qr = qrcode.QRCode(border=QR_BORDER)
    qr.add_data(data)
    qr.make(fit=True)
    matrix: list[list[bool]] = qr.get_matrix()  # includes the quiet zone
    side = len(matrix)
    modules = Image.new("L", (side, side))
    modules.putdata([0 if dark else 255 for row in matrix for dark in row])
    scaled = modules.resize((side * QR_BOX_SIZE, side * QR_BOX_SIZE), Image.Resampling.NEAREST)
    out = io.BytesIO()
    scaled.save(out, format="PNG")
    return out.getvalue()


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object posted; raises ``BadRequest`` with 44002 (empty) or 47001."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest(44002)
    try:
        body: Any = json.loads(raw.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        raise BadRequest(47001) from None
    if not isinstance(body, dict):
        raise BadRequest(47001)
    return body


def required(body: dict[str, Any], key: str, kind: type[Any]) -> Any:
    """``body[key]`` if it is a ``kind``; else ``BadRequest`` 47001, as WeCom answers."""
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(47001)  # missing, or the wrong JSON type (true is no number)
    return value


def optional(body: dict[str, Any], key: str, kind: type[Any]) -> Any:
    """Like ``required``, but an absent key is ``None``."""
    return required(body, key, kind) if key in body else None


async def authorized(request: web.Request, endpoint: Endpoint) -> tuple[FakeWeComState, int]:
    """Counts the request; then the injected failure or token error, if any (else 0)."""
    state = request.app[FAKE_WECOM_STATE]
    state.requests[endpoint] += 1
    if (failure := state.injected_failure(endpoint)) is not None:
        return state, failure
    return state, state.check_token(request.query.get("access_token"))


async def get_token(request: web.Request) -> web.Response:
    state = request.app[FAKE_WECOM_STATE]
    state.token_requests += 1
    state.token_request_arrived.set()
    state.requests["token"] += 1
    if state.token_gate is not None:
        await state.token_gate.wait()
    if (failure := state.injected_failure("token")) is not None:
        return wecom_answer(failure)
    if request.query.get("corpid") != state.corp_id:
        return wecom_answer(40013)
    if request.query.get("corpsecret") != state.corp_secret:
        return wecom_answer(40001)
    token = state.issue_token()
    return wecom_answer(0, access_token=token, expires_in=state.expires_in)


async def add_contact_way(request: web.Request) -> web.Response:
    state, code = await authorized(request, "add_way")
    if code:
        return wecom_answer(code)
    try:
        body = await read_body(request)
        way_type = required(body, "type", int)
        scene = required(body, "scene", int)
        users = required(body, "user", list)
        if not all(isinstance(user, str) for user in users):
            raise BadRequest(47001)
        skip_verify = optional(body, "skip_verify", bool)
        way_state = optional(body, "state", str)
        remark = optional(body, "remark", str)
    except BadRequest as bad:
        return wecom_answer(bad.errcode)
    if way_type not in CONTACT_WAY_TYPES or scene not in CONTACT_WAY_SCENES or not users:
        return wecom_answer(40058)
    if way_type == 1 and len(users) != 1:  # a single-member way has exactly one member
        return wecom_answer(40058)
    if way_state is not None and len(way_state) > STATE_MAX_CHARS:
        return wecom_answer(40058)
    if any(user not in state.members for user in users):
        return wecom_answer(84061)
    if len(state.contact_ways) >= state.max_contact_ways:
        return wecom_answer(84074)
    config_id = secrets.token_hex(16)
    state.contact_ways[config_id] = ContactWay(
        user=list(users),
        state=way_state,
        skip_verify=True if skip_verify is None else skip_verify,
        created_at=state.clock.now(),
        type=way_type,
        scene=scene,
        remark=remark,
    )
    if scene != 2:  # WeCom returns a QR code only for the QR-code scene
        return wecom_answer(0, config_id=config_id)
    qr_url = request.url.origin().with_path(f"/qr/{config_id}.png")
    return wecom_answer(0, config_id=config_id, qr_code=str(qr_url))


async def del_contact_way(request: web.Request) -> web.Response:
    state, code = await authorized(request, "del_way")
    if code:
        return wecom_answer(code)
    try:
        config_id = required(await read_body(request), "config_id", str)
    except BadRequest as bad:
        return wecom_answer(bad.errcode)
    if state.contact_ways.pop(config_id, None) is None:
        return wecom_answer(41044)
    state.deleted_ways.append(config_id)
    return wecom_answer(0)


async def remark(request: web.Request) -> web.Response:
    state, code = await authorized(request, "remark")
    if code:
        return wecom_answer(code)
    try:
        body = await read_body(request)
        required(body, "userid", str)
        required(body, "external_userid", str)
        text = optional(body, "remark", str)
        description = optional(body, "description", str)
    except BadRequest as bad:
        return wecom_answer(bad.errcode)
    if text is not None and len(text) > REMARK_MAX_CHARS:
        return wecom_answer(40058)
    if description is not None and len(description) > DESCRIPTION_MAX_CHARS:
        return wecom_answer(40058)
    state.remarks.append(body)
    return wecom_answer(0)


async def send_welcome_msg(request: web.Request) -> web.Response:
    state, code = await authorized(request, "welcome")
    if code:
        return wecom_answer(code)
    try:
        body = await read_body(request)
        welcome_code = required(body, "welcome_code", str)
        content = required(required(body, "text", dict), "content", str)
    except BadRequest as bad:
        return wecom_answer(bad.errcode)
    issued_at = state.welcome_codes.get(welcome_code)
    if (
        issued_at is None
        or welcome_code in state.used_welcome_codes
        or state.clock.now() - issued_at > WELCOME_CODE_TTL
    ):
        return wecom_answer(41096)
    state.used_welcome_codes.add(welcome_code)
    state.welcomes.append((welcome_code, content))
    return wecom_answer(0)


async def qr_image(request: web.Request) -> web.Response:
    state = request.app[FAKE_WECOM_STATE]
    state.requests["qr"] += 1
    config_id = request.match_info["config_id"]
    if config_id not in state.contact_ways:
        raise web.HTTPNotFound()
    png = qr_png(QR_TARGET.format(config_id=config_id))
    return web.Response(body=png, content_type="image/png")


def fake_wecom_app(clock: Clock, corp_id: str, corp_secret: str) -> web.Application:
    """The fake WeCom API; its state is ``app[FAKE_WECOM_STATE]``."""
    app = web.Application()
    app[FAKE_WECOM_STATE] = FakeWeComState(clock=clock, corp_id=corp_id, corp_secret=corp_secret)
    app.router.add_get("/cgi-bin/gettoken", get_token)
    app.router.add_post("/cgi-bin/externalcontact/add_contact_way", add_contact_way)
    app.router.add_post("/cgi-bin/externalcontact/del_contact_way", del_contact_way)
    app.router.add_post("/cgi-bin/externalcontact/remark", remark)
    app.router.add_post("/cgi-bin/externalcontact/send_welcome_msg", send_welcome_msg)
    app.router.add_get("/qr/{config_id}.png", qr_image)
    return app

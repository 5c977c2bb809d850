"""The agent console over HTTP: the page, its assets, the JSON API under /api and the live feed.

Every /api request passes ``console_api`` first: it finds the session behind the cookie, keeps
agents with a one-time password to the password change, requires the CSRF token on anything
that changes state, and turns every refusal into ``{"error": {"zh": …, "en": …}}``. What an
agent may see or do beyond that is decided by the queue service, in one place for console,
API and CLI alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hmac
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import WSMsgType, web

from bot.console import STATIC_DIR, TEMPLATES_DIR
from bot.console.auth import SESSION_TTL, AgentDirectory
from bot.console.openapi import openapi_document
from bot.handlers.bodies import BodyError, read_body
from bot.handlers.clients import client_address
from bot.handoff.events import Event
from bot.handoff.queue import AgentView, ConsoleConnection, HandoffService
from bot.keys import AGENTS, CONSOLE_SOCKETS, EVENTS, HANDOFFS, LOGIN_THROTTLE, SETTINGS
from bot.refusals import Refusal

log = logging.getLogger(__name__)

COOKIE = "billbot_session"
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/"
API_MAX_BODY = 64 * 1024
# Login attempts a minute from one client address, whatever the name: an office behind one
# address logs in at nine; a guesser spread over many names is slowed down.
LOGINS_PER_MINUTE = 20
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({("POST", "/api/login"), ("GET", "/api/openapi.json")})
# All an agent holding a one-time password may do: see who they are, change it, or leave.
PASSWORD_GATE = frozenset({"/api/me", "/api/password", "/api/logout"})
WS_HEARTBEAT = 30.0  # seconds; aiohttp pings and drops consoles that stop answering

# which login (session token, agent) each live feed belongs to, so logging out or changing the
# password ends the feeds of the sessions that ended with it
_FEED_LOGINS: weakref.WeakKeyDictionary[web.WebSocketResponse, tuple[str, int]] = (
    weakref.WeakKeyDictionary()
)
_ID = r"{id:\d{1,9}}"  # fits PostgreSQL integer ids; a longer one is no route (404)
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")

PAGE_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Customers' words are shown on this page: scripts only from our own files, never inline.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Admission:
    """Who the guard let in: the agent, their session cookie, and its CSRF token."""

    agent: AgentView
    token: str
    csrf: str


# Set by the guard for the request it is handling: each request runs in its own task, so this
# is per request (and needs no string keys on the request mapping).
_ADMITTED: contextvars.ContextVar[Admission] = contextvars.ContextVar("console_admitted")


_NOT_LOGGED_IN = ("请先登录。", "Please log in first.")
_PASSWORD_FIRST = (
    "请先修改一次性密码，然后才能使用控制台。",
    "Change your one-time password before using the console.",
)
_CSRF_MISSING = (
    "请求缺少有效的安全令牌（CSRF），请刷新页面后重试。",
    "The request lacks a valid CSRF token; reload the page and try again.",
)
_FOREIGN_ORIGIN = (
    "请求来自其他网站，已拒绝。",
    "The request came from another site and was refused.",
)
_BAD_JSON = (
    "请求内容不是有效的 JSON 对象。",
    "The request body is not a valid JSON object.",
)
_TOO_MANY_LOGINS = (
    "登录尝试太频繁，请一分钟后再试。",
    "Too many login attempts from here; try again in a minute.",
)
_BODY_WORDS: Mapping[int, tuple[str, str]] = {
    408: (
        "请求内容发送太慢，连接已断开。请重试。",
        "The request body came too slowly; please retry.",
    ),
    413: ("请求内容太大。", "The request body is too large."),
}
_HTTP_WORDS: Mapping[int, tuple[str, str]] = {
    400: ("请求格式不正确。", "The request is malformed."),
    404: ("没有这个接口或对象。", "No such endpoint or object."),
    405: ("这个接口不支持此请求方法。", "This endpoint does not support this method."),
    413: ("请求内容太大。", "The request body is too large."),
}
_UNAVAILABLE = (
    "服务暂时不可用，请稍后再试。",
    "Temporarily unavailable, please retry.",
)


def console_routes() -> list[web.RouteDef]:
    """The console page and assets, and the JSON API (guarded by ``console_api``)."""
    return [
        web.get("/console/static/{name}", console_static),
        web.get("/api/openapi.json", openapi_json),
        web.post("/api/login", login),
        web.post("/api/logout", logout),
        web.get("/api/me", me),
        web.post("/api/password", change_password),
        web.get("/api/queue", queue),
        web.get("/api/mine", mine),
        web.post("/api/handoffs/claim-next", claim_next),
        web.post(f"/api/handoffs/{_ID}/claim", claim),
        web.get(f"/api/handoffs/{_ID}", view),
        web.post(f"/api/handoffs/{_ID}/reply", reply),
        web.post(f"/api/handoffs/{_ID}/note", note),
        web.post(f"/api/handoffs/{_ID}/transfer", transfer),
        web.post(f"/api/handoffs/{_ID}/handback", hand_back),
        web.post(f"/api/handoffs/{_ID}/resolve", resolve),
        web.get("/api/agents", agents),
        web.get("/api/canned", list_canned),
        web.post("/api/canned", add_canned),
        web.delete(f"/api/canned/{_ID}", delete_canned),
        web.get("/api/report/today", report_today),
        web.get("/api/ws", live_events),
    ]


# -- the guard --------------------------------------------------------------------------------


@web.middleware
async def console_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, the password gate, CSRF and JSON errors for everything under /api."""
    if not (request.path.startswith(API_PREFIX) or request.path == "/api"):
        return await handler(request)
    response = await _guarded(request, handler)
    if not response.prepared:  # a WebSocket has sent its headers already
        # what the API answers may hold unmasked personal data: never cached, never sniffed
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    admitted: contextvars.Token[Admission] | None = None
    try:
        admission = await admit(request)
        if admission is not None:
            admitted = _ADMITTED.set(admission)
        return await handler(request)
    except Refusal as exc:
        return error_response(exc.status, exc.zh, exc.en)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        zh, en = _HTTP_WORDS.get(exc.status, (exc.reason, exc.reason))
        resp = error_response(exc.status, zh, en)
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("console API: unhandled error on %s %s", request.method, request.path)
        return error_response(503, *_UNAVAILABLE)
    finally:
        if admitted is not None:
            _ADMITTED.reset(admitted)


async def admit(request: web.Request) -> Admission | None:
    """Who may make this request: None for public endpoints; Refusal (401/403) otherwise."""
    if request.method not in SAFE_METHODS or request.path == "/api/ws":
        _refuse_foreign_origin(request)
    if (request.method, request.path) in PUBLIC:
        return None
    token = request.cookies.get(COOKIE, "")
    found = await request.app[AGENTS].session(token, touch=True) if token else None
    if found is None:
        raise Refusal(401, *_NOT_LOGGED_IN)
    agent, csrf = found
    if agent.must_change_password and request.path not in PASSWORD_GATE:
        raise Refusal(403, *_PASSWORD_FIRST)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode("utf-8"), csrf.encode("utf-8")):
            raise Refusal(403, *_CSRF_MISSING)
    return Admission(agent, token, csrf)


def _refuse_foreign_origin(request: web.Request) -> None:
    """Browsers name the page that sent a request; only our own pages may change things."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser (curl, scripts): the cookie and CSRF token still apply
    ours = {f"{request.scheme}://{request.host}".lower()}
    public = urlsplit(request.app[SETTINGS].public_url)
    if public.scheme and public.netloc:
        ours.add(f"{public.scheme}://{public.netloc}".lower())
    if origin.rstrip("/").lower() not in ours:
        raise Refusal(403, *_FOREIGN_ORIGIN)


def error_response(status: int, zh: str, en: str) -> web.Response:
    return web.json_response({"error": {"zh": zh, "en": en}}, status=status)


def admission() -> Admission:
    """The session of the request being handled (only behind ``console_api``)."""
    return _ADMITTED.get()


def current_agent(request: web.Request) -> AgentView:
    return admission().agent


def _service(request: web.Request) -> HandoffService:
    return request.app[HANDOFFS]


def _directory(request: web.Request) -> AgentDirectory:
    return request.app[AGENTS]


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


# -- JSON in and out --------------------------------------------------------------------------


def jsonable(value: object) -> Any:
    """Dataclasses, datetimes and friends as plain JSON values (datetimes in ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def json_ok(payload: object, status: int = 200) -> web.Response:
    return web.json_response(jsonable(payload), status=status)


async def read_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; a 4xx with plain words for anything else."""
    try:
        raw = await read_body(request, API_MAX_BODY)
    except BodyError as exc:
        log.warning("%s %s refused (%s): %s", request.method, request.path, exc.status, exc.reason)
        raise Refusal(exc.status, *_BODY_WORDS.get(exc.status, _BAD_JSON)) from None
    parsed = json_object(raw)
    if parsed is None:
        raise Refusal(400, *_BAD_JSON)
    return parsed


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object, or None: not UTF-8, not JSON, not an object, or nested
    too deeply for the parser (64 KiB of ``[`` is a RecursionError, not a ValueError)."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def text_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise Refusal(
            400, f"请求需要文本字段「{name}」。", f"The body needs a text field {name!r}."
        )
    return value


def int_field(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise Refusal(
            400, f"请求需要整数字段「{name}」。", f"The body needs a whole-number field {name!r}."
        )
    return value


# -- the page and its assets ------------------------------------------------------------------

_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, enable_async=False
)


async def console_page(request: web.Request) -> web.Response:
    try:
        template = _PAGES.get_template("console.html")
    except jinja2.TemplateNotFound:
        log.error("console page: %s/console.html is missing", TEMPLATES_DIR)
        return web.Response(
            status=503,
            text="控制台页面尚未安装。/ The console page is not installed.",
            headers={"Cache-Control": "no-store"},
        )
    html = template.render(
        api_base="/api",
        static_base="/console/static",
        session_hours=int(SESSION_TTL.total_seconds() // 3600),
    )
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


async def console_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    # One flat folder: no dot-files, no separators, nothing but the files that are there.
    if _STATIC_NAME.fullmatch(name) is None or not path.is_file():
        raise web.HTTPNotFound(text="Not found")
    return web.FileResponse(
        path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[SETTINGS].public_url))


# -- logging in and out -----------------------------------------------------------------------


def _cookie_secure(request: web.Request) -> bool:
    return request.secure or request.app[SETTINGS].public_url.startswith("https")


async def login(request: web.Request) -> web.Response:
    address = client_address(request)
    wait = request.app[LOGIN_THROTTLE].retry_after(address)
    if wait is not None:
        log.warning("console login: too many attempts from one address; refused for %d s", wait)
        response = error_response(429, *_TOO_MANY_LOGINS)
        response.headers["Retry-After"] = str(wait)
        return response
    body = await read_object(request)
    name, password = text_field(body, "name"), text_field(body, "password")
    token, csrf, agent = await _directory(request).login(name, password, address)
    resp = json_ok({"agent": agent, "csrf_token": csrf})
    resp.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        secure=_cookie_secure(request),
        httponly=True,
        samesite="Strict",
    )
    return resp


async def logout(request: web.Request) -> web.Response:
    token = admission().token
    await _directory(request).logout(token)
    await _close_feeds(request, lambda login: login[0] == token)  # the feeds end with the login
    resp = json_ok({"ok": True})
    resp.del_cookie(
        COOKIE, path="/", secure=_cookie_secure(request), httponly=True, samesite="Strict"
    )
    return resp


async def me(request: web.Request) -> web.Response:
    return json_ok({"agent": current_agent(request), "csrf_token": admission().csrf})


async def change_password(request: web.Request) -> web.Response:
    body = await read_object(request)
    old, new = text_field(body, "old_password"), text_field(body, "new_password")
    token, agent_id = admission().token, current_agent(request).id
    agent = await _directory(request).change_password(
        current_agent(request), old, new, keep_session=token, address=client_address(request)
    )
    # the agent's other sessions ended with the old password: so do their live feeds
    await _close_feeds(request, lambda login: login[1] == agent_id and login[0] != token)
    return json_ok({"agent": agent, "csrf_token": admission().csrf})


async def _close_feeds(request: web.Request, ended: Callable[[tuple[str, int]], bool]) -> None:
    sockets: set[web.WebSocketResponse] = request.app[CONSOLE_SOCKETS]
    for ws in list(sockets):
        login = _FEED_LOGINS.get(ws)
        if login is not None and ended(login):
            await ws.close(code=4401, message=b"session ended")


# -- the queue --------------------------------------------------------------------------------


async def queue(request: web.Request) -> web.Response:
    return json_ok({"items": await _service(request).queue(current_agent(request))})


async def mine(request: web.Request) -> web.Response:
    return json_ok({"items": await _service(request).mine(current_agent(request))})


async def claim_next(request: web.Request) -> web.Response:
    return json_ok({"item": await _service(request).claim_next(current_agent(request))})


async def claim(request: web.Request) -> web.Response:
    item = await _service(request).claim(current_agent(request), _id(request))
    return json_ok({"item": item})


async def view(request: web.Request) -> web.Response:
    reason = request.query.get("unmask_reason")
    conversation = await _service(request).view(current_agent(request), _id(request), reason)
    return json_ok(conversation)


async def reply(request: web.Request) -> web.Response:
    text = text_field(await read_object(request), "text")
    return json_ok(await _service(request).reply(current_agent(request), _id(request), text))


async def note(request: web.Request) -> web.Response:
    text = text_field(await read_object(request), "text")
    return json_ok(await _service(request).note(current_agent(request), _id(request), text))


async def transfer(request: web.Request) -> web.Response:
    to_agent = int_field(await read_object(request), "agent_id")
    item = await _service(request).transfer(current_agent(request), _id(request), to_agent)
    return json_ok({"item": item})


async def hand_back(request: web.Request) -> web.Response:
    item = await _service(request).hand_back(current_agent(request), _id(request))
    return json_ok({"item": item})


async def resolve(request: web.Request) -> web.Response:
    item = await _service(request).resolve(current_agent(request), _id(request))
    return json_ok({"item": item})


async def agents(request: web.Request) -> web.Response:
    return json_ok({"agents": await _service(request).list_agents()})


async def list_canned(request: web.Request) -> web.Response:
    return json_ok({"items": await _service(request).list_canned()})


async def add_canned(request: web.Request) -> web.Response:
    body = await read_object(request)
    title, text = text_field(body, "title"), text_field(body, "text")
    item = await _service(request).add_canned(current_agent(request), title, text)
    return json_ok({"item": item}, status=201)


async def delete_canned(request: web.Request) -> web.Response:
    canned_id = _id(request)
    await _service(request).delete_canned(current_agent(request), canned_id)
    return json_ok({"deleted": canned_id})


async def report_today(request: web.Request) -> web.Response:
    return json_ok(await _service(request).today())


# -- the live feed ----------------------------------------------------------------------------


async def live_events(request: web.Request) -> web.WebSocketResponse:
    """Every queue event as a JSON text frame; ``{"type": "ping"}`` is answered with a pong.

    A ping also proves the agent is still there (``last_seen_at``), and re-checks the session:
    a console whose session ended is closed with code 4401. While the feed is open it counts
    as one of the agent's open consoles, in the database for every worker to see.
    """
    service = _service(request)
    # before the upgrade: if the database refuses, the answer is still a JSON error
    console = await service.console_opened(current_agent(request).id)
    # the client's close is answered only once the console is forgotten (see below)
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT, max_msg_size=API_MAX_BODY, autoclose=False)
    sockets = request.app[CONSOLE_SOCKETS]
    try:
        await ws.prepare(request)
        _FEED_LOGINS[ws] = (admission().token, console.agent_id)
        sockets.add(ws)
        await _feed(request, ws, console)
    finally:
        sockets.discard(ws)
        try:
            await service.console_closed(console)
        except Exception:
            log.exception("console close not recorded; it counts until its heartbeat is stale")
        if ws.prepared:
            await ws.close()
    return ws


async def _feed(
    request: web.Request, ws: web.WebSocketResponse, console: ConsoleConnection
) -> None:
    async with request.app[EVENTS].listen() as events:
        forward = asyncio.create_task(_forward(events, ws))
        beat = asyncio.create_task(_beat(_service(request), console))
        try:
            await _answer(request, ws, console)
        except Exception:
            # The upgrade is done: no JSON error can be sent any more, only a close code.
            log.exception("console live feed failed; closing it")
            await ws.close(code=1011, message=b"server error")
        finally:
            for task in (forward, beat):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _beat(service: HandoffService, console: ConsoleConnection) -> None:
    """While the feed is open its row stays fresh, pings or not; a worker killed outright
    stops beating, and its consoles are forgotten a few beats later."""
    while True:
        await asyncio.sleep(service.console_heartbeat.total_seconds())
        try:
            await service.console_alive(console)
        except Exception:
            log.exception("console heartbeat not recorded; the next one tries again")


async def _forward(events: asyncio.Queue[Event], ws: web.WebSocketResponse) -> None:
    while not ws.closed:
        event = await events.get()
        try:
            await ws.send_str(json.dumps(jsonable(event), ensure_ascii=False))
        except ConnectionError:
            return


async def _answer(
    request: web.Request, ws: web.WebSocketResponse, console: ConsoleConnection
) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        frame = json_object(msg.data)
        if frame is None or frame.get("type") != "ping":
            continue
        if await _directory(request).session(admission().token, touch=True) is None:
            await ws.close(code=4401, message=b"session ended")
            return
        await _service(request).console_alive(console)  # the console's own heartbeat
        await ws.send_str(json.dumps({"type": "pong"}))


async def close_console_sockets(app: web.Application) -> None:
    """On shutdown: open consoles would otherwise hold the server for its whole timeout."""
    sockets: set[web.WebSocketResponse] = app[CONSOLE_SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"server shutting down")

"""The agent console over HTTP: the page, its assets, the JSON API under /api and the live feed.

Every /api request passes ``console_api`` first: it finds the session behind the cookie, keeps
agents with a one-time password to the password change, requires the CSRF token on anything
that changes state, and turns every refusal into ``{"error": {"zh": …, "en": …, "key": …}}``.
The route table ``API`` (at the end) registers each operation with its request and response
models and is what ``/api/openapi.json`` describes. What an agent may see or do beyond that is
decided by the queue service, in one place for console, API and CLI alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import hmac
import json
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from bot.console import STATIC_DIR
from bot.console.api_models import (
    AgentOut,
    AgentsOut,
    CannedBody,
    CannedItemOut,
    CannedListOut,
    CannedOut,
    ConfirmBody,
    ContactOut,
    ContactsOut,
    ConversationOut,
    DeletedOut,
    DisabledOut,
    DocumentOut,
    DutyBody,
    EnabledOut,
    Error,
    ErrorWords,
    Frame,
    ItemOut,
    ItemsOut,
    LangBody,
    LangOut,
    LoginBody,
    LoginOut,
    LoginsOut,
    MaybeItemOut,
    MeOut,
    NoInput,
    OkOut,
    PasswordBody,
    PasswordResetOut,
    QueueItemOut,
    SearchQuery,
    SessionOut,
    TextBody,
    TodayOut,
    TransferBody,
    UnlockedOut,
    UnmaskQuery,
    console_lang,
)
from bot.console.auth import SESSION_TTL, AgentDirectory, LoginState
from bot.console.endpoints import Access, Endpoint, Route, Socket, WithCookie, Words, narrow
from bot.console.openapi import openapi_document
from bot.handlers.bodies import BodyError, read_body
from bot.handlers.clients import client_address
from bot.handoff.events import Event
from bot.handoff.queue import AgentView, ConsoleConnection, HandoffService
from bot.keys import (
    AGENTS,
    CONSOLE_SOCKETS,
    EVENTS,
    HANDOFFS,
    LOGIN_THROTTLE,
    ROSTER,
    SESSIONS,
    SETTINGS,
)
from bot.privacy.masking import mask_wechat_id
from bot.refusals import Refusal, TooManyLogins, admins_only, unavailable
from bot.roster import add_ways
from storage.records import ContactRecord
from storage.repositories.agents import AgentRepository

log = logging.getLogger(__name__)

COOKIE = "billbot_session"
CSRF_HEADER = "X-CSRF-Token"
API_PREFIX = "/api/"
API_MAX_BODY = 64 * 1024
# Login attempts a minute from one client address, whatever the name: an office behind one
# address logs in at nine; a guesser spread over many names is slowed down.
LOGINS_PER_MINUTE = 20
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_HEARTBEAT = 30.0  # seconds; aiohttp pings and drops consoles that stop answering

# which login (session token, agent) each live feed belongs to, so logging out or changing the
# password ends the feeds of the sessions that ended with it
_FEED_LOGINS: weakref.WeakKeyDictionary[web.WebSocketResponse, tuple[str, int]] = (
    weakref.WeakKeyDictionary()
)
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
_BODY_WORDS: Mapping[int, tuple[str, str, str]] = {
    408: (
        "请求内容发送太慢，连接已断开。请重试。",
        "The request body came too slowly; please retry.",
        "body_too_slow",
    ),
    413: ("请求内容太大。", "The request body is too large.", "body_too_large"),
}
_HTTP_WORDS: Mapping[int, tuple[str, str, str]] = {
    400: ("请求格式不正确。", "The request is malformed.", "bad_request"),
    404: ("没有这个接口或对象。", "No such endpoint or object.", "not_found"),
    405: (
        "这个接口不支持此请求方法。",
        "This endpoint does not support this method.",
        "method_not_allowed",
    ),
    413: ("请求内容太大。", "The request body is too large.", "body_too_large"),
}
# A field that does not fit, in words naming it (pydantic's error type → Chinese, English).
_FIELD_WORDS: Mapping[str, Words] = {
    "missing": ("缺少字段「{name}」", "the field {name!r} is missing"),
    "string_type": ("字段「{name}」应为文本", "the field {name!r} should be text"),
    "int_type": ("字段「{name}」应为整数", "the field {name!r} should be a whole number"),
    "greater_than": ("字段「{name}」超出允许范围", "the field {name!r} is out of range"),
    "less_than": ("字段「{name}」超出允许范围", "the field {name!r} is out of range"),
    "literal_error": ("字段「{name}」只能是 {expected}", "the field {name!r} must be {expected}"),
}
_FIELD_WRONG: Words = ("字段「{name}」的值不正确", "the field {name!r} is wrong: {msg}")


def console_routes() -> list[web.RouteDef]:
    """The console page and assets, and the JSON API of the route table ``API``."""
    return [
        web.get("/console/static/{name}", console_static),
        *(_route(route) for route in API),
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
    """Runs the handler; every refusal, and anything unforeseen, becomes the one error shape
    here and nowhere else."""
    admitted: contextvars.Token[Admission] | None = None
    try:
        admission = await admit(request)
        if admission is not None:
            admitted = _ADMITTED.set(admission)
        return await handler(request)
    except Refusal as exc:
        return _refused(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        zh, en, key = _HTTP_WORDS.get(exc.status, (exc.reason, exc.reason, "http_error"))
        response = _refused(Refusal(exc.status, zh, en, key=key))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("console API: unhandled error on %s %s", request.method, request.path)
        return _refused(unavailable())
    finally:
        if admitted is not None:
            _ADMITTED.reset(admitted)


def _refused(refusal: Refusal) -> web.Response:
    words = ErrorWords(zh=refusal.zh, en=refusal.en, key=refusal.key)
    payload = Error(error=words).model_dump(mode="json", exclude_none=True)
    response = web.json_response(payload, status=refusal.status)
    if isinstance(refusal, TooManyLogins):
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


async def admit(request: web.Request) -> Admission | None:
    """Who may make this request: None for public endpoints; Refusal (401/403) otherwise."""
    if request.method not in SAFE_METHODS or request.path == "/api/ws":
        _refuse_foreign_origin(request)
    if (request.method, request.path) in PUBLIC:
        return None
    token = request.cookies.get(COOKIE, "")
    found = await request.app[AGENTS].session(token, touch=True) if token else None
    if found is None:
        raise Refusal(401, *_NOT_LOGGED_IN, key="not_logged_in")
    agent, csrf = found
    if agent.must_change_password and request.path not in PASSWORD_GATE:
        raise Refusal(403, *_PASSWORD_FIRST, key="password_first")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode("utf-8"), csrf.encode("utf-8")):
            raise Refusal(403, *_CSRF_MISSING, key="csrf_missing")
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
        raise Refusal(403, *_FOREIGN_ORIGIN, key="foreign_origin")


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


# -- a route of the table: input read through its model, output written through its model ----


def _route(entry: Route) -> web.RouteDef:
    endpoint = narrow(entry)
    if isinstance(endpoint, Socket):
        return web.get(endpoint.routed_path, endpoint.handler)

    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.throttle is not None:
            wait = request.app[endpoint.throttle].retry_after(client_address(request))
            if wait is not None:
                log.warning(
                    "%s: too many attempts from one address; refused for %d s", endpoint.path, wait
                )
                raise TooManyLogins(wait)
        if endpoint.access is Access.ADMIN and not current_agent(request).is_admin:
            raise admins_only()
        result = await endpoint.handler(request, await _input(request, endpoint))
        body = result.body if isinstance(result, WithCookie) else result
        if not isinstance(body, endpoint.gives):  # a handler answering off its table entry
            raise TypeError(f"{endpoint.path} gave {type(body).__name__}")
        response = web.json_response(body.model_dump(mode="json"), status=endpoint.status)
        if isinstance(result, WithCookie):
            set_session_cookie(request, response, result.session)
        return response

    handle.__name__ = endpoint.handler.__name__
    if endpoint.method == "GET":
        return web.get(endpoint.routed_path, handle)  # HEAD comes with it
    return web.route(endpoint.method, endpoint.routed_path, handle)


async def _input(request: web.Request, endpoint: Endpoint[Any, Any]) -> BaseModel:
    if endpoint.reads_body:
        return _validated(endpoint.takes, await read_object(request), ("请求内容", "body"))
    if endpoint.reads_query:
        return _validated(endpoint.takes, dict(request.query), ("查询参数", "query"))
    return NoInput()


def _validated(model: type[BaseModel], given: Mapping[str, Any], where: Words) -> BaseModel:
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise _refuse_fields(exc, where) from None


def _refuse_fields(exc: ValidationError, where: Words) -> Refusal:
    """A 400 naming each field that does not fit and how (the first three)."""
    zh_parts, en_parts = [], []
    for error in exc.errors(include_url=False)[:3]:
        name = ".".join(str(part) for part in error["loc"]) or "?"
        zh, en = _FIELD_WORDS.get(error["type"], _FIELD_WRONG)
        expected = str((error.get("ctx") or {}).get("expected", ""))
        zh_parts.append(zh.format(name=name, expected=expected))
        en_parts.append(en.format(name=name, expected=expected, msg=error["msg"]))
    return Refusal(
        400,
        f"{where[0]}有误：{'；'.join(zh_parts)}。",
        f"The request {where[1]} is wrong: {'; '.join(en_parts)}.",
        key="bad_field",
    )


async def read_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; a 4xx with plain words for anything else."""
    try:
        raw = await read_body(request, API_MAX_BODY)
    except BodyError as exc:
        log.warning("%s %s refused (%s): %s", request.method, request.path, exc.status, exc.reason)
        zh, en, key = _BODY_WORDS.get(exc.status, (*_BAD_JSON, "bad_json"))
        raise Refusal(exc.status, zh, en, key=key) from None
    parsed = json_object(raw) if raw.strip() else {}  # no body: every field at its default
    if parsed is None:
        raise Refusal(400, *_BAD_JSON, key="bad_json")
    return parsed


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object, or None: not UTF-8, not JSON, not an object, or nested
    too deeply for the parser (64 KiB of ``[`` is a RecursionError, not a ValueError)."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _cookie_secure(request: web.Request) -> bool:
    return request.secure or request.app[SETTINGS].public_url.startswith("https")


def set_session_cookie(request: web.Request, response: web.Response, token: str | None) -> None:
    """Starts the session cookie (a token) or ends it (None)."""
    secure = _cookie_secure(request)
    if token is None:
        response.del_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")
        return
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="Strict",
    )


# -- the console's assets ------------------------------------------------------------------


async def console_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    # One flat folder: no dot-files, no separators, nothing but the files that are there.
    if _STATIC_NAME.fullmatch(name) is None or not path.is_file():
        raise web.HTTPNotFound(text="Not found")
    return web.FileResponse(
        path, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


# -- the API's description --------------------------------------------------------------------


async def openapi_json(request: web.Request, _: NoInput) -> DocumentOut:
    return DocumentOut.of(_document(request.app[SETTINGS].public_url))


@functools.cache
def _document(server_url: str) -> dict[str, Any]:
    return openapi_document(API, server_url)


# -- logging in and out, the agent's own settings ---------------------------------------------


def _session(agent: AgentView) -> SessionOut:
    return SessionOut(agent=AgentOut.of(agent), csrf_token=admission().csrf)


async def login(request: web.Request, body: LoginBody) -> WithCookie[SessionOut]:
    address = client_address(request)
    token, csrf, agent = await _directory(request).login(body.name, body.password, address)
    return WithCookie(SessionOut(agent=AgentOut.of(agent), csrf_token=csrf), token)


async def logout(request: web.Request, _: NoInput) -> WithCookie[OkOut]:
    token = admission().token
    await _directory(request).logout(token)
    await close_session_feeds(request, token)
    return WithCookie(OkOut(ok=True), None)


async def me(request: web.Request, _: NoInput) -> MeOut:
    agent = current_agent(request)
    async with request.app[SESSIONS].begin() as session:
        record = await AgentRepository(session).get(agent.id)
    if record is None:  # deleted since the guard looked
        raise Refusal(401, *_NOT_LOGGED_IN, key="not_logged_in")
    return MeOut(
        agent=AgentOut.of(agent), csrf_token=admission().csrf, lang=console_lang(record.lang)
    )


async def set_lang(request: web.Request, body: LangBody) -> LangOut:
    async with request.app[SESSIONS].begin() as session:
        await AgentRepository(session).set_lang(current_agent(request).id, body.lang)
    return LangOut(lang=body.lang)


async def change_password(request: web.Request, body: PasswordBody) -> SessionOut:
    token, agent_id = admission().token, current_agent(request).id
    agent = await _directory(request).change_password(
        current_agent(request),
        body.old_password,
        body.new_password,
        keep_session=token,
        address=client_address(request),
    )
    await close_other_feeds(request, agent_id, token)
    return _session(agent)


async def close_agent_feeds(request: web.Request, agent_id: int) -> None:
    """An admin ended the agent's sessions (disabled, new password): their live feeds on this
    worker close now; on the others, at their next ping."""
    await _close_feeds(request, lambda login: login[1] == agent_id)


async def close_session_feeds(request: web.Request, token: str) -> None:
    """A logout: the live feeds of that session (this worker's) end with it."""
    await _close_feeds(request, lambda login: login[0] == token)


async def close_other_feeds(request: web.Request, agent_id: int, keep_token: str) -> None:
    """A password change: the agent's other sessions ended with the old password, and so do
    their live feeds (on this worker now; on the others, at their next ping)."""
    await _close_feeds(request, lambda login: login[1] == agent_id and login[0] != keep_token)


async def _close_feeds(request: web.Request, ended: Callable[[tuple[str, int]], bool]) -> None:
    sockets: set[web.WebSocketResponse] = request.app[CONSOLE_SOCKETS]
    for ws in list(sockets):
        login = _FEED_LOGINS.get(ws)
        if login is not None and ended(login):
            await ws.close(code=4401, message=b"session ended")


# -- the queue --------------------------------------------------------------------------------


async def queue(request: web.Request, _: NoInput) -> ItemsOut:
    items = await _service(request).queue(current_agent(request))
    return ItemsOut(items=[QueueItemOut.of(i) for i in items])


async def mine(request: web.Request, _: NoInput) -> ItemsOut:
    items = await _service(request).mine(current_agent(request))
    return ItemsOut(items=[QueueItemOut.of(i) for i in items])


async def claim_next(request: web.Request, _: NoInput) -> MaybeItemOut:
    item = await _service(request).claim_next(current_agent(request))
    return MaybeItemOut(item=None if item is None else QueueItemOut.of(item))


async def claim(request: web.Request, _: NoInput) -> ItemOut:
    item = await _service(request).claim(current_agent(request), _id(request))
    return ItemOut(item=QueueItemOut.of(item))


async def view(request: web.Request, query: UnmaskQuery) -> ConversationOut:
    agent, handoff = current_agent(request), _id(request)
    return ConversationOut.of(await _service(request).view(agent, handoff, query.unmask_reason))


async def reply(request: web.Request, body: TextBody) -> ConversationOut:
    agent, handoff = current_agent(request), _id(request)
    return ConversationOut.of(await _service(request).reply(agent, handoff, body.text))


async def note(request: web.Request, body: TextBody) -> ConversationOut:
    agent, handoff = current_agent(request), _id(request)
    return ConversationOut.of(await _service(request).note(agent, handoff, body.text))


async def transfer(request: web.Request, body: TransferBody) -> ItemOut:
    agent, handoff = current_agent(request), _id(request)
    item = await _service(request).transfer(
        agent, handoff, body.agent_id, confirm_held=body.confirm_held
    )
    return ItemOut(item=QueueItemOut.of(item))


async def hand_back(request: web.Request, body: ConfirmBody) -> ItemOut:
    agent, handoff = current_agent(request), _id(request)
    item = await _service(request).hand_back(agent, handoff, confirm_held=body.confirm_held)
    return ItemOut(item=QueueItemOut.of(item))


async def resolve(request: web.Request, body: ConfirmBody) -> ItemOut:
    agent, handoff = current_agent(request), _id(request)
    item = await _service(request).resolve(agent, handoff, confirm_held=body.confirm_held)
    return ItemOut(item=QueueItemOut.of(item))


async def search(request: web.Request, query: SearchQuery) -> ItemsOut:
    found = await _service(request).search(current_agent(request), query.q)
    return ItemsOut(items=[QueueItemOut.of(i) for i in found])


async def agents(request: web.Request, _: NoInput) -> AgentsOut:
    found = await _service(request).list_agents()
    return AgentsOut(agents=[AgentOut.of(a) for a in found])


async def contacts(request: web.Request, _: NoInput) -> ContactsOut:
    wecom = request.app[SETTINGS].wecom_enabled
    found = await request.app[ROSTER].contacts()
    return ContactsOut(items=[contact_out(c, wecom) for c in found])


async def set_on_duty(request: web.Request, body: DutyBody) -> ContactOut:
    actor = f"agent:{current_agent(request).id}"
    change = await request.app[ROSTER].set_on_duty(body.contact, body.on_duty, actor=actor)
    return contact_out(change.after, request.app[SETTINGS].wecom_enabled)


def contact_out(contact: ContactRecord, wecom_enabled: bool) -> ContactOut:
    """A contact as admins see it: the WeChat ID masked, and how customers can add them."""
    return ContactOut(
        contact=contact.contact,
        name=contact.name,
        wechat_id_masked=mask_wechat_id(contact.wechat_id),
        store=contact.store,
        on_duty=contact.on_duty,
        add_by=add_ways(contact, wecom_enabled),
    )


# -- the team's logins (admins) ---------------------------------------------------------------


def _login_out(state: LoginState) -> LoginOut:
    seen = state.seen_seconds
    return LoginOut(
        id=state.id,
        name=state.name,
        role="admin" if state.role == "admin" else "agent",
        status=state.status,
        locked_until=state.locked_until,
        last_seen_at=state.last_seen_at,
        last_seen_seconds=None if seen is None else int(seen),
    )


async def _login_now(request: web.Request, agent_id: int) -> LoginOut:
    return _login_out(await _directory(request).login_state(agent_id))


async def logins(request: web.Request, _: NoInput) -> LoginsOut:
    return LoginsOut(agents=[_login_out(s) for s in await _directory(request).logins()])


async def unlock_login(request: web.Request, _: NoInput) -> UnlockedOut:
    agent_id = _id(request)
    lifted = await _directory(request).unlock(agent_id, actor=current_agent(request))
    return UnlockedOut(agent=await _login_now(request, agent_id), lockouts_lifted=lifted)


async def reset_login_password(request: web.Request, _: NoInput) -> PasswordResetOut:
    agent_id = _id(request)
    reset = await _directory(request).reset_password(agent_id, actor=current_agent(request))
    password, lifted = reset[1], reset[2]
    await close_agent_feeds(request, agent_id)
    return PasswordResetOut(
        agent=await _login_now(request, agent_id),
        one_time_password=password,
        lockouts_lifted=lifted,
    )


async def disable_login(request: web.Request, _: NoInput) -> DisabledOut:
    agent_id = _id(request)
    lapsed = await _directory(request).disable(
        agent_id, actor=current_agent(request), queue=_service(request)
    )
    await close_agent_feeds(request, agent_id)
    return DisabledOut(
        agent=await _login_now(request, agent_id),
        changed=lapsed is not None,
        conversations_returned=lapsed or 0,
    )


async def enable_login(request: web.Request, _: NoInput) -> EnabledOut:
    agent_id = _id(request)
    changed = await _directory(request).enable(agent_id, actor=current_agent(request))
    return EnabledOut(agent=await _login_now(request, agent_id), changed=changed)


async def list_canned(request: web.Request, _: NoInput) -> CannedListOut:
    found = await _service(request).list_canned()
    return CannedListOut(items=[CannedOut.of(c) for c in found])


async def add_canned(request: web.Request, body: CannedBody) -> CannedItemOut:
    item = await _service(request).add_canned(current_agent(request), body.title, body.text)
    return CannedItemOut(item=CannedOut.of(item))


async def delete_canned(request: web.Request, _: NoInput) -> DeletedOut:
    canned_id = _id(request)
    await _service(request).delete_canned(current_agent(request), canned_id)
    return DeletedOut(deleted=canned_id)


async def report_today(request: web.Request, _: NoInput) -> TodayOut:
    return TodayOut.of(await _service(request).today())


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
    async with request.app[EVENTS].listen(console.agent_id) as events:
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
            frame = Frame.of(event).model_dump(mode="json")
            await ws.send_str(json.dumps(frame, ensure_ascii=False))
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


# -- the route table: what /api serves, and what /api/openapi.json says it serves ------------

_ANY_HANDOFF = (403, 409)  # not theirs to touch; someone else changed it first

API: list[Route] = [
    Endpoint(
        "GET", "/api/openapi.json", openapi_json, NoInput, DocumentOut,
        ("本文档", "This document"), access=Access.PUBLIC,
    ),
    Endpoint(
        "POST", "/api/login", login, LoginBody, SessionOut,
        ("登录：设置会话 Cookie 并返回 CSRF 令牌",
         "Log in: sets the session cookie and returns the CSRF token"),
        access=Access.PUBLIC, refusals=(401,), throttle=LOGIN_THROTTLE,
    ),
    Endpoint(
        "POST", "/api/logout", logout, NoInput, OkOut,
        ("退出：结束本次会话", "Log out: ends this session"), one_time_ok=True,
    ),
    Endpoint(
        "GET", "/api/me", me, NoInput, MeOut,
        ("当前登录的客服、CSRF 令牌和控制台语言",
         "Who is logged in, the CSRF token and the console's language"),
        one_time_ok=True,
    ),
    Endpoint(
        "PUT", "/api/me/lang", set_lang, LangBody, LangOut,
        ("选择控制台语言：中文、英文或两者", "Choose the console's language: zh, en or both"),
        one_time_ok=True,
    ),
    Endpoint(
        "POST", "/api/password", change_password, PasswordBody, SessionOut,
        ("修改密码（至少 12 个字符）；该客服的其他会话随之结束",
         "Change the password (at least 12 characters); ends the agent's other sessions"),
        one_time_ok=True, refusals=(422, 429),
    ),
    Endpoint(
        "GET", "/api/queue", queue, NoInput, ItemsOut,
        ("等待中的转人工：先按优先级，再按等待时间",
         "Waiting handoffs: priority first, then the oldest"),
    ),
    Endpoint(
        "GET", "/api/mine", mine, NoInput, ItemsOut,
        ("我领取的或留给我的转人工（管理员：所有已领取的）",
         "Handoffs claimed by or parked for this agent (admin: every claimed one)"),
    ),
    Endpoint(
        "POST", "/api/handoffs/claim-next", claim_next, NoInput, MaybeItemOut,
        ("领取优先级最高、等待最久的转人工（没有则 item 为 null）",
         "Claim the highest-priority, oldest waiting handoff (item is null if none)"),
        refusals=_ANY_HANDOFF,
    ),
    Endpoint(
        "GET", "/api/handoffs/search", search, SearchQuery, ItemsOut,
        ("搜索：按服务编号、订单尾号或客服姓名，查找未结束的和 7 天内已解决的转人工",
         "Search open handoffs and those resolved in the last 7 days by service reference,"
         " order tail or agent name"),
    ),
    Endpoint(
        "GET", "/api/handoffs/{id}", view, UnmaskQuery, ConversationOut,
        ("完整对话（已遮蔽）；管理员可说明理由后查看原文（记入审计日志）",
         "The whole conversation, masked; an admin may unmask with a stated reason (audited)"),
        refusals=(422,),
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/claim", claim, NoInput, ItemOut,
        ("领取这个转人工；已被他人领取时为 409", "Claim this handoff; 409 if another agent has it"),
        refusals=_ANY_HANDOFF,
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/reply", reply, TextBody, ConversationOut,
        ("通过微信回复客户", "Send a reply to the customer through WeChat"),
        refusals=(*_ANY_HANDOFF, 422),
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/note", note, TextBody, ConversationOut,
        ("添加内部备注（不会发给客户）", "Add a private note (never sent to the customer)"),
        refusals=(*_ANY_HANDOFF, 422),
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/transfer", transfer, TransferBody, ItemOut,
        ("把对话转给另一位客服", "Pass the conversation to another agent"),
        refusals=(*_ANY_HANDOFF, 422),
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/handback", hand_back, ConfirmBody, ItemOut,
        ("交还给机器人：客户从机器人停下的地方继续",
         "Hand back to the bot: the customer continues where the bot left off"),
        refusals=_ANY_HANDOFF,
    ),
    Endpoint(
        "POST", "/api/handoffs/{id}/resolve", resolve, ConfirmBody, ItemOut,
        ("标记为已解决：客户下一条消息由机器人重新开始",
         "Resolve: the customer's next message starts afresh with the bot"),
        refusals=_ANY_HANDOFF,
    ),
    Endpoint(
        "GET", "/api/agents", agents, NoInput, AgentsOut,
        ("可接收转接的控制台账号（已停用的除外）",
         "The console logins a conversation can be transferred to (not the disabled ones)"),
    ),
    Endpoint(
        "GET", "/api/admin/agents", logins, NoInput, LoginsOut,
        ("所有控制台账号：角色、状态（正常、须修改密码、锁定、停用）和最后在线时间",
         "Every console login: role, status (active, must change password, locked out,"
         " disabled) and when it was last seen"),
        access=Access.ADMIN,
    ),
    Endpoint(
        "POST", "/api/admin/agents/{id}/unlock", unlock_login, NoInput, UnlockedOut,
        ("解除账号因多次输错密码而产生的锁定（记入审计日志）",
         "Lift a login's lockouts after wrong passwords (audited)"),
        access=Access.ADMIN,
    ),
    Endpoint(
        "POST", "/api/admin/agents/{id}/reset-password", reset_login_password, NoInput,
        PasswordResetOut,
        ("重置密码：返回新的一次性密码（只显示这一次，请私下转交）；该账号的登录全部退出，"
         "锁定解除（记入审计日志）",
         "Reset the password: answers a new one-time password (shown only once; pass it on"
         " privately); the login's sessions end and its lockouts are lifted (audited);"
         " not one's own (409 reset_self: change it instead)"),
        access=Access.ADMIN, refusals=(409,),
    ),
    Endpoint(
        "POST", "/api/admin/agents/{id}/disable", disable_login, NoInput, DisabledOut,
        ("停用账号：不能再登录，登录立即退出，手上的会话回到队列（记入审计日志）；"
         "不能停用自己（409）",
         "Disable a login: it cannot sign in, its sessions end, the conversations it holds go"
         " back to the queue (audited); an admin cannot disable themselves (409)"),
        access=Access.ADMIN, refusals=(409,),
    ),
    Endpoint(
        "POST", "/api/admin/agents/{id}/enable", enable_login, NoInput, EnabledOut,
        ("恢复已停用的账号（用原密码登录；记入审计日志）",
         "Enable a disabled login again (it signs in with its old password; audited)"),
        access=Access.ADMIN,
    ),
    Endpoint(
        "GET", "/api/contacts", contacts, NoInput, ContactsOut,
        ("客服表：在岗情况和客户添加方式（微信号已遮蔽）",
         "The contacts: on duty or not, and how customers add them (WeChat IDs masked)"),
        access=Access.ADMIN,
    ),
    Endpoint(
        "PUT", "/api/contacts/on-duty", set_on_duty, DutyBody, ContactOut,
        ("让客服在岗或离岗（记入审计日志）；离岗客服的订单转给备用客服或人工",
         "Put a contact on or off duty (audited); an off-duty contact's orders go to the"
         " fallback contact or a person"),
        access=Access.ADMIN, refusals=(404,),
    ),
    Endpoint(
        "GET", "/api/canned", list_canned, NoInput, CannedListOut,
        ("快捷回复", "Canned replies"),
    ),
    Endpoint(
        "POST", "/api/canned", add_canned, CannedBody, CannedItemOut,
        ("添加快捷回复", "Add a canned reply"),
        access=Access.ADMIN, refusals=(422,), status=201,
    ),
    Endpoint(
        "DELETE", "/api/canned/{id}", delete_canned, NoInput, DeletedOut,
        ("删除快捷回复", "Delete a canned reply"), access=Access.ADMIN,
    ),
    Endpoint(
        "GET", "/api/report/today", report_today, NoInput, TodayOut,
        ("今日排队数据（不计机器人时间）", "Today's queue figures (bot time not counted)"),
    ),
    Socket(
        "/api/ws", live_events, ("实时事件（WebSocket）", "Live events over a WebSocket"),
        "Upgrade to a WebSocket (the session cookie is required). Every queue event arrives as"
        ' a JSON text frame, e.g. {"type": "queue"}. Send {"type": "ping"} to be answered'
        ' {"type": "pong"}; a ping also keeps the agent marked online. A console whose session'
        " ended is closed with code 4401.",
    ),
]  # fmt: skip

PUBLIC = frozenset((r.method, r.path) for r in API if r.access is Access.PUBLIC)
# All an agent holding a one-time password may do: see who they are, pick the language they
# read the console in, change the password, or leave.
PASSWORD_GATE = frozenset(r.path for r in API if r.one_time_ok)

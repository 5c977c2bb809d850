"""The agent console rendered on the server: the page ``/console`` and its partials.

Each partial is one part of the page that htmx fetches again when something changes: the
queue, the agent's conversations, today's figures, the open conversation. The live feed
(``/api/ws``) only says "something changed"; ``static/console-live.js`` turns that into refreshes.
Every request passes the console's guard (``admit``): posts need the CSRF token, which the
page hands to htmx in ``hx-headers``. What an agent may see or do is the queue service's
decision, as for the JSON API; a refusal is shown in the agent's words, never a blank page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.console import TEMPLATES_DIR
from bot.console.api_models import ContactOut
from bot.console.auth import MIN_PASSWORD
from bot.console.labels import CONSOLE_LANGS, Key, Labels, Span
from bot.durations import say_duration
from bot.handlers.bodies import BodyError, read_body
from bot.handlers.clients import client_address
from bot.handlers.console import (
    PAGE_HEADERS,
    Admission,
    admit,
    close_agent_feeds,
    close_other_feeds,
    close_session_feeds,
    contact_out,
    set_session_cookie,
)
from bot.handoff.hours import CHINA
from bot.handoff.queue import AgentView, CannedView, ConversationView, QueueItem, TodayFigures
from bot.keys import AGENTS, CLOCK, HANDOFFS, LOGIN_THROTTLE, ROSTER, SESSIONS, SETTINGS
from bot.refusals import Refusal, TooManyLogins, unavailable
from bot.refusals import admins_only as admins_only_refusal
from storage.records import HELD_STATUSES, HandoffStatus
from storage.repositories import Repositories
from storage.repositories.agents import AgentRepository

log = logging.getLogger(__name__)

HTMX = "/console/static/htmx-2.0.11.min.js"  # the pinned copy (npm htmx.org 2.0.11, 0BSD)
FORM_MAX_BODY = 16 * 1024
CHANGED = "console-changed"  # the event that makes every part of the page fetch itself again
SOON = 3600  # seconds: a reply window closing within this is shown as closing soon
# The guard knows the password gate, and the one public request (logging in), by the JSON
# API's paths: the same acts on the server-rendered console are admitted as those are.
LOGIN_GATE = "/api/login"
PASSWORD_GATE = "/api/password"
LOGOUT_GATE = "/api/logout"
_ID = r"{id:\d{1,9}}"  # fits PostgreSQL integer ids; a longer one is no route (404)
_BAD_FORM = ("请求内容不是有效的表单。", "The request body is not a valid form.")
_SESSION_ENDED = (
    "登录已过期或已在别处退出，请重新登录。",
    "Your session ended; please sign in again.",
)
# htmx, told once by the page: no eval (the page's scripts are files), no history kept in
# the browser's storage (transcripts hold personal data), and refusals (4xx/5xx) are shown.
HTMX_CONFIG: Mapping[str, object] = {
    "allowEval": False,
    "allowScriptTags": False,
    "includeIndicatorStyles": False,
    "historyCacheSize": 0,
    "refreshOnHistoryMiss": True,
    "selfRequestsOnly": True,
    "responseHandling": [
        {"code": "204", "swap": False},
        {"code": "[23]..", "swap": True},
        {"code": "[45]..", "swap": True, "error": True},
    ],
}

_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_PAGES.globals.update(
    say_duration=say_duration,
    htmx_src=HTMX,
    htmx_config=HTMX_CONFIG,
    min_password=MIN_PASSWORD,
    china=CHINA,  # transcript times as agents read them
    Span=Span,  # a span of time as a label's value: each language says it in its own units
)


def console_page_routes() -> list[web.RouteDef]:
    """The page and its partials; the assets are served by ``console_routes``."""
    return [
        web.get("/console", console_page),
        web.post("/console/login", login),
        web.post("/console/logout", logout),
        web.get("/console/password", password_page),
        web.post("/console/password", change_password),
        web.post("/console/lang", at_desk(set_lang)),
        web.get("/console/queue", at_desk(queue_part)),
        web.get("/console/mine", at_desk(mine_part)),
        web.get("/console/figures", at_desk(figures_part)),
        web.get("/console/search", at_desk(search_part)),
        web.get("/console/conversation", at_desk(no_conversation)),
        web.get("/console/canned", at_desk(canned_part)),
        web.post("/console/canned", at_desk(add_canned)),
        web.delete(f"/console/canned/{_ID}", at_desk(delete_canned)),
        web.post("/console/claim-next", at_desk(claim_next)),
        web.get(f"/console/handoffs/{_ID}", at_desk(conversation_part)),
        web.post(f"/console/handoffs/{_ID}/claim", at_desk(claim)),
        web.post(f"/console/handoffs/{_ID}/reply", at_desk(reply)),
        web.post(f"/console/handoffs/{_ID}/note", at_desk(note)),
        web.post(f"/console/handoffs/{_ID}/transfer", at_desk(transfer)),
        web.post(f"/console/handoffs/{_ID}/handback", at_desk(hand_back)),
        web.post(f"/console/handoffs/{_ID}/resolve", at_desk(resolve)),
        web.get("/console/admin/team", at_desk(admins_only(team_part))),
        web.post(f"/console/admin/agents/{_ID}/unlock", at_desk(admins_only(unlock_login))),
        web.post(
            f"/console/admin/agents/{_ID}/reset-password", at_desk(admins_only(reset_password))
        ),
        web.post(f"/console/admin/agents/{_ID}/disable", at_desk(admins_only(disable_login))),
        web.post(f"/console/admin/agents/{_ID}/enable", at_desk(admins_only(enable_login))),
        web.get("/console/admin/contacts", at_desk(admins_only(contacts_part))),
        web.post("/console/admin/contacts/on-duty", at_desk(admins_only(set_on_duty))),
    ]


# -- who is at the desk -----------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """The request's agent as the guard admitted them, and the words they read."""

    admission: Admission
    t: Labels

    @property
    def agent(self) -> AgentView:
        return self.admission.agent


@dataclass(frozen=True)
class Toast:
    """A short message over the page: what was done, or what was refused."""

    words: Markup
    kind: str  # ok | error | info
    key: str | None = None  # a refusal's stable key, for scripts and tests (the words may change)


PageHandler = Callable[[web.Request, Desk], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def at_desk(handler: PageHandler) -> Handler:
    """The guard for a partial: admitted agents only, with refusals shown as words."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            admission = await admit(request)
        except Refusal as refusal:
            return _not_admitted(request, refusal)
        assert admission is not None  # only /api/login is public
        return await _answer(request, handler, _desk(admission))

    return guarded


def admins_only(handler: PageHandler) -> PageHandler:
    """A partial only admins may use; an agent is told so in words (403)."""

    async def checked(request: web.Request, desk: Desk) -> web.StreamResponse:
        if not desk.agent.is_admin:
            raise admins_only_refusal()
        return await handler(request, desk)

    return checked


async def _answer(request: web.Request, handler: PageHandler, desk: Desk) -> web.StreamResponse:
    try:
        return await handler(request, desk)
    except Refusal as refusal:
        return _refused(request, desk.t, refusal)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console page: unhandled error on %s %s", request.method, request.path)
        return _refused(request, desk.t, unavailable())


def _desk(admission: Admission) -> Desk:
    """The agent as the guard read them this request, language included."""
    return Desk(admission, Labels(admission.agent.lang))


async def _admit_as(request: web.Request, path: str) -> Admission | None:
    return await admit(request.clone(rel_url=path))


def _htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _not_admitted(request: web.Request, refusal: Refusal) -> web.StreamResponse:
    """Not logged in, or the one-time password still to change: the page shows the way."""
    gate = refusal.status == 401 or (refusal.status == 403 and request.method == "GET")
    if gate and _htmx(request):
        return web.Response(status=refusal.status, headers={"HX-Redirect": "/console"})
    if refusal.status == 401:
        return _page(
            Labels("both"), "login", status=401, problem=Labels("both").words(*_SESSION_ENDED)
        )
    return _refused(request, Labels("both"), refusal)


def _refused(request: web.Request, t: Labels, refusal: Refusal) -> web.Response:
    """A refusal as words: over the page for htmx (nothing else changes), else a page."""
    words = t.words(refusal.zh, refusal.en)
    if not _htmx(request):
        return _page(t, "refused", status=refusal.status, problem=words)
    headers = {"HX-Reswap": "none"}
    if request.method != "GET":  # the lists may have moved (someone else was faster)
        headers["HX-Trigger"] = CHANGED
    return _render(
        "console_toast.html",
        status=refusal.status,
        headers=headers,
        t=t,
        toast=Toast(words, "error", refusal.key),
    )


def _render(
    template: str, *, status: int = 200, headers: Mapping[str, str] | None = None, **values: Any
) -> web.Response:
    html = _PAGES.get_template(template).render(**values)
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def _page(t: Labels, screen: str, *, status: int = 200, **values: Any) -> web.Response:
    values.setdefault("csrf", "")
    values.setdefault("problem", None)
    return _render("console.html", status=status, t=t, screen=screen, **values)


def _changed(response: web.Response) -> web.Response:
    """Every part of the page fetches itself again once this answer is in place."""
    response.headers["HX-Trigger-After-Settle"] = CHANGED
    return response


async def _form(request: web.Request) -> dict[str, str]:
    """A urlencoded form, one value per name (the last), read as the JSON API reads bodies."""
    try:
        raw = await read_body(request, FORM_MAX_BODY)
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=32
        )
    except BodyError as exc:
        log.warning("%s %s refused (%s): %s", request.method, request.path, exc.status, exc.reason)
        raise Refusal(exc.status, *_BAD_FORM) from None
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, *_BAD_FORM) from None
    return dict(pairs)


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


# -- the page, signing in and out, the password, the language ---------------------------------


async def console_page(request: web.Request) -> web.StreamResponse:
    """Not logged in: the login form; a one-time password: the password form; else the desk."""
    try:
        admission = await _admit_as(request, PASSWORD_GATE)
    except Refusal:  # a GET is refused only for want of a session
        return _page(Labels("both"), "login")
    assert admission is not None
    desk = _desk(admission)
    if desk.agent.must_change_password:
        return _password_page(desk, required=True)
    return await _answer(request, _main_page, desk)


async def _main_page(request: web.Request, desk: Desk) -> web.StreamResponse:
    service, agent = request.app[HANDOFFS], desk.agent
    admin = agent.is_admin
    return _page(
        desk.t,
        "main",
        csrf=desk.admission.csrf,
        agent=agent,
        queue=await service.queue(agent),
        mine=await service.mine(agent),
        open_id=None,
        figures=await service.today(),
        canned=await service.list_canned(),
        canned_open=False,
        team=await request.app[AGENTS].logins() if admin else [],
        contacts=await _contacts(request) if admin else [],
        opened=None,
        closed_words=None,
        toast=None,
    )


def _password_page(
    desk: Desk,
    *,
    required: bool,
    old_password: str = "",
    problem: Markup | None = None,
    status: int = 200,
    whole: bool = True,
) -> web.Response:
    values: dict[str, Any] = {
        "csrf": desk.admission.csrf,
        "agent": desk.agent,
        "required": required,
        "old_password": old_password,
        "problem": problem,
    }
    if whole:
        return _page(desk.t, "password", status=status, **values)
    return _render("console_password.html", status=status, t=desk.t, **values)


async def login(request: web.Request) -> web.StreamResponse:
    t = Labels("both")  # nobody is known yet: Chinese first, English second
    try:
        await _admit_as(request, LOGIN_GATE)  # a login form posted from another site is refused
        wait = request.app[LOGIN_THROTTLE].retry_after(client_address(request))
        if wait is not None:
            log.warning("console login: too many attempts from one address; refused for %d s", wait)
            raise TooManyLogins(wait)
        form = await _form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        if not name or not password:
            return _login_form(request, t, 422, name, t("login_missing"))
        token, csrf, agent = await request.app[AGENTS].login(
            name, password, client_address(request)
        )
    except Refusal as refusal:
        return _login_form(request, t, refusal.status, "", t.words(refusal.zh, refusal.en))
    if agent.must_change_password and _htmx(request):
        # the one-time password was just typed: the form keeps it, so it is asked for once
        desk = _desk(Admission(agent, token, csrf))
        response: web.Response = _password_page(
            desk, required=True, old_password=password, whole=False
        )
    elif _htmx(request):
        response = web.Response(status=204, headers={"HX-Redirect": "/console"})
    else:
        response = web.Response(status=303, headers={"Location": "/console"})
    set_session_cookie(request, response, token)
    return response


def _login_form(
    request: web.Request, t: Labels, status: int, name: str, problem: Markup
) -> web.Response:
    if _htmx(request):
        return _render("console_login.html", status=status, t=t, name=name, problem=problem)
    return _page(t, "login", status=status, name=name, problem=problem)


async def logout(request: web.Request) -> web.StreamResponse:
    try:
        admission = await _admit_as(request, LOGOUT_GATE)
    except Refusal as refusal:
        return _not_admitted(request, refusal)
    assert admission is not None
    await request.app[AGENTS].logout(admission.token)
    await close_session_feeds(request, admission.token)
    response = web.Response(status=204, headers={"HX-Redirect": "/console"})
    set_session_cookie(request, response, None)
    return response


async def password_page(request: web.Request) -> web.StreamResponse:
    try:
        admission = await _admit_as(request, PASSWORD_GATE)
    except Refusal:
        return web.Response(status=303, headers={"Location": "/console"})
    assert admission is not None
    desk = _desk(admission)
    return _password_page(desk, required=desk.agent.must_change_password)


async def change_password(request: web.Request) -> web.StreamResponse:
    try:
        admission = await _admit_as(request, PASSWORD_GATE)
    except Refusal as refusal:
        return _not_admitted(request, refusal)
    assert admission is not None
    desk = _desk(admission)
    t, required = desk.t, desk.agent.must_change_password
    form: dict[str, str] = {}
    try:
        form = await _form(request)
        old, new = form.get("old_password", ""), form.get("new_password", "")
        if new != form.get("confirm", ""):
            return _password_page(
                desk,
                required=required,
                old_password=old if required else "",
                problem=t("passwords_differ"),
                status=422,
                whole=False,
            )
        await request.app[AGENTS].change_password(
            desk.agent, old, new, keep_session=admission.token, address=client_address(request)
        )
        await close_other_feeds(request, desk.agent.id, admission.token)
    except Refusal as refusal:
        # a one-time password kept from the login stays kept while the new one is refused
        # (422); a lockout (401/429) asks for it afresh
        keep = form.get("old_password", "") if required and refusal.status == 422 else ""
        return _password_page(
            desk,
            required=required,
            old_password=keep,
            problem=t.words(refusal.zh, refusal.en),
            status=refusal.status,
            whole=False,
        )
    return web.Response(status=204, headers={"HX-Redirect": "/console"})


async def set_lang(request: web.Request, desk: Desk) -> web.StreamResponse:
    lang = (await _form(request)).get("lang", "")
    if lang not in CONSOLE_LANGS:
        raise Refusal(
            422, "界面语言只能是中文、英文或两者。", "The language must be zh, en or both."
        )
    async with request.app[SESSIONS].begin() as session:
        await AgentRepository(session).set_lang(desk.agent.id, lang)
    return web.Response(status=204, headers={"HX-Refresh": "true"})  # every label changes


# -- the lists and the figures ----------------------------------------------------------------


async def queue_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    queue = await request.app[HANDOFFS].queue(desk.agent)
    return _render("console_queue.html", t=desk.t, queue=queue, partial=True)


async def mine_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    mine = await request.app[HANDOFFS].mine(desk.agent)
    open_id = request.query.get("open", "")
    return _render(
        "console_mine.html",
        t=desk.t,
        agent=desk.agent,
        mine=mine,
        open_id=int(open_id) if open_id.isdigit() else None,
    )


async def search_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    text = request.query.get("q", "").strip()[:64]
    found = await request.app[HANDOFFS].search(desk.agent, text) if text else []
    return _render(
        "console_search_results.html",
        t=desk.t,
        searched=text or None,
        found=found,
        now=request.app[CLOCK].now(),
    )


async def figures_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    figures: TodayFigures = await request.app[HANDOFFS].today()
    return _render("console_figures.html", t=desk.t, figures=figures)


# -- canned replies ---------------------------------------------------------------------------


async def canned_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    return await _canned(request, desk, opened=False)


async def add_canned(request: web.Request, desk: Desk) -> web.StreamResponse:
    form = await _form(request)
    title, text = form.get("title", ""), form.get("text", "")
    if not title.strip() or not text.strip():
        return await _canned(request, desk, opened=True, problem=desk.t("canned_missing"))
    await request.app[HANDOFFS].add_canned(desk.agent, title, text)
    return _changed(await _canned(request, desk, opened=True, status=201))


async def delete_canned(request: web.Request, desk: Desk) -> web.StreamResponse:
    await request.app[HANDOFFS].delete_canned(desk.agent, _id(request))
    return _changed(await _canned(request, desk, opened=True))


async def _canned(
    request: web.Request,
    desk: Desk,
    *,
    opened: bool,
    problem: Markup | None = None,
    status: int = 200,
) -> web.Response:
    canned: list[CannedView] = await request.app[HANDOFFS].list_canned()
    return _render(
        "console_canned.html",
        status=422 if problem is not None else status,
        t=desk.t,
        canned=canned,
        canned_open=opened,
        problem=problem,
    )


# -- the admin's panel: the team's logins and the contacts ------------------------------------


async def team_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    return await _team(request, desk)


async def _team(request: web.Request, desk: Desk, toast: Toast | None = None) -> web.Response:
    team = await request.app[AGENTS].logins()
    return _render("console_admin_team.html", t=desk.t, agent=desk.agent, team=team, toast=toast)


async def _name_of(request: web.Request, agent_id: int) -> str:
    return (await request.app[AGENTS].login_state(agent_id)).name  # 404 in words if none


async def unlock_login(request: web.Request, desk: Desk) -> web.StreamResponse:
    agent_id = _id(request)
    name = await _name_of(request, agent_id)
    lifted = await request.app[AGENTS].unlock(agent_id, actor=desk.agent)
    toast = Toast(desk.t("unlocked", name=name, n=lifted), "ok")
    return _changed(await _team(request, desk, toast))


async def reset_password(request: web.Request, desk: Desk) -> web.StreamResponse:
    """The new one-time password, once, in the box above the list (a refresh keeps it)."""
    agent_id = _id(request)
    reset, password, _ = await request.app[AGENTS].reset_password(agent_id, actor=desk.agent)
    await close_agent_feeds(request, agent_id)
    state = await request.app[AGENTS].login_state(agent_id)
    return _changed(
        _render(
            "console_admin_secret.html",
            t=desk.t,
            reset=reset,
            password=password,
            still_disabled=state.disabled_at is not None,
        )
    )


async def disable_login(request: web.Request, desk: Desk) -> web.StreamResponse:
    agent_id = _id(request)
    name = await _name_of(request, agent_id)
    lapsed = await request.app[AGENTS].disable(
        agent_id, actor=desk.agent, queue=request.app[HANDOFFS]
    )
    await close_agent_feeds(request, agent_id)
    if lapsed is None:
        toast = Toast(desk.t("already_disabled", name=name), "info")
    else:
        toast = Toast(desk.t("disabled_done", name=name, n=lapsed), "ok")
    return _changed(await _team(request, desk, toast))


async def enable_login(request: web.Request, desk: Desk) -> web.StreamResponse:
    agent_id = _id(request)
    name = await _name_of(request, agent_id)
    if await request.app[AGENTS].enable(agent_id, actor=desk.agent):
        toast = Toast(desk.t("enabled_done", name=name), "ok")
    else:
        toast = Toast(desk.t("already_enabled", name=name), "info")
    return _changed(await _team(request, desk, toast))


async def _contacts(request: web.Request) -> list[ContactOut]:
    wecom = request.app[SETTINGS].wecom_enabled
    return [contact_out(c, wecom) for c in await request.app[ROSTER].contacts()]


async def contacts_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    return _render("console_admin_contacts.html", t=desk.t, contacts=await _contacts(request))


async def set_on_duty(request: web.Request, desk: Desk) -> web.StreamResponse:
    form = await _form(request)
    key, on_duty = form.get("contact", "").strip(), form.get("on_duty", "")
    if on_duty not in ("0", "1"):
        raise Refusal(422, "请选择在岗或离岗。", "Choose on duty or off duty.")
    change = await request.app[ROSTER].set_on_duty(
        key, on_duty == "1", actor=f"agent:{desk.agent.id}"
    )
    name = change.after.name
    toast = Toast(desk.t("duty_on_done" if on_duty == "1" else "duty_off_done", name=name), "ok")
    contacts = await _contacts(request)
    return _changed(
        _render("console_admin_contacts.html", t=desk.t, contacts=contacts, toast=toast)
    )


# -- the open conversation --------------------------------------------------------------------


@dataclass(frozen=True)
class Unmasked:
    """What an admin who unmasked sees in the header: the values the masks stand for."""

    customer: str
    order: str | None


@dataclass(frozen=True)
class Opened:
    """The open conversation as its partial shows it."""

    view: ConversationView
    refresh_url: str
    unmask_reason: str | None
    clear: Unmasked | None
    holder: str | None  # the name of someone else holding it (their acts need a confirmation)
    lease_seconds: int | None  # left on the claim, if a lease runs
    lease_idle: bool  # held without a lease running (answered, the customer's turn)
    window: Markup
    window_class: str
    blocked: Markup | None  # why no reply can be sent now
    may_act: bool
    draft: str  # the reply box's id: the same while what is typed in it is the agent's
    agents: list[AgentView]  # whom it can be transferred to
    canned: list[CannedView]


async def conversation_part(request: web.Request, desk: Desk) -> web.StreamResponse:
    reason = request.query.get("unmask_reason")
    prompted = request.headers.get("HX-Prompt")
    if prompted is not None:  # the admin's answer to "why unmask?"
        if request.headers.get("HX-Prompt-URI-AutoEncoded") == "true":
            prompted = unquote(prompted)
        reason = prompted
    return await _conversation(request, desk, _id(request), reason)


async def no_conversation(request: web.Request, desk: Desk) -> web.StreamResponse:
    return _changed(_closed(desk))


async def claim_next(request: web.Request, desk: Desk) -> web.StreamResponse:
    item = await request.app[HANDOFFS].claim_next(desk.agent)
    if item is None:
        toast = Toast(desk.t("nothing_to_claim"), "info")
        return _changed(
            _render("console_toast.html", headers={"HX-Reswap": "none"}, t=desk.t, toast=toast)
        )
    toast = Toast(desk.t("claimed", ref=item.ref), "ok")
    return _changed(await _conversation(request, desk, item.id, None, toast=toast))


async def claim(request: web.Request, desk: Desk) -> web.StreamResponse:
    item = await request.app[HANDOFFS].claim(desk.agent, _id(request))
    toast = Toast(desk.t("claimed", ref=item.ref), "ok")
    return _changed(await _conversation(request, desk, item.id, None, toast=toast))


async def reply(request: web.Request, desk: Desk) -> web.StreamResponse:
    """Sends the reply; a refusal (WeChat's or the queue's) is shown by the reply box, whose
    text stays there to be sent again."""
    form = await _form(request)
    handoff_id, reason = _id(request), form.get("unmask_reason") or None
    try:
        await request.app[HANDOFFS].reply(desk.agent, handoff_id, form.get("text", ""))
    except Refusal as refusal:
        words = desk.t.words(refusal.zh, refusal.en)
        response = await _conversation(request, desk, handoff_id, reason, problem=words)
        response.set_status(refusal.status)
        return _changed(response)
    toast = Toast(desk.t("sent"), "ok")
    return _changed(await _conversation(request, desk, handoff_id, reason, toast=toast))


async def note(request: web.Request, desk: Desk) -> web.StreamResponse:
    form = await _form(request)
    handoff_id, reason = _id(request), form.get("unmask_reason") or None
    await request.app[HANDOFFS].note(desk.agent, handoff_id, form.get("text", ""))
    toast = Toast(desk.t("noted"), "ok")
    return _changed(await _conversation(request, desk, handoff_id, reason, toast=toast))


async def transfer(request: web.Request, desk: Desk) -> web.StreamResponse:
    form = await _form(request)
    chosen = form.get("agent_id", "")
    if not chosen.isdigit() or not 0 < int(chosen) < 2**31:
        raise Refusal(422, "请选择要转交的客服。", "Choose the agent to transfer to.")
    service = request.app[HANDOFFS]
    confirmed = _confirmed_held(form)
    item = await service.transfer(desk.agent, _id(request), int(chosen), confirm_held=confirmed)
    toast = Toast(desk.t("transferred", name=item.claimed_by or chosen), "ok")
    return _changed(_closed(desk, toast))


async def hand_back(request: web.Request, desk: Desk) -> web.StreamResponse:
    confirmed = _confirmed_held(await _form(request))
    await request.app[HANDOFFS].hand_back(desk.agent, _id(request), confirm_held=confirmed)
    return _changed(_closed(desk, Toast(desk.t("handed_back"), "ok")))


async def resolve(request: web.Request, desk: Desk) -> web.StreamResponse:
    confirmed = _confirmed_held(await _form(request))
    await request.app[HANDOFFS].resolve(desk.agent, _id(request), confirm_held=confirmed)
    return _changed(_closed(desk, Toast(desk.t("resolved"), "ok")))


def _confirmed_held(form: Mapping[str, str]) -> bool:
    """The agent confirmed acting on a conversation someone else holds (the button asked)."""
    return form.get("confirm_held") == "1"


def _closed(
    desk: Desk, toast: Toast | None = None, *, why: Markup | None = None, status: int = 200
) -> web.Response:
    """No conversation open (it left this agent's hands, saying ``why`` if it was taken)."""
    return _render(
        "console_conversation.html",
        status=status,
        t=desk.t,
        opened=None,
        closed_words=why,
        toast=toast,
    )


async def _conversation(
    request: web.Request,
    desk: Desk,
    handoff_id: int,
    unmask_reason: str | None,
    *,
    problem: Markup | None = None,
    toast: Toast | None = None,
) -> web.Response:
    """The conversation partial; if the agent may no longer see it, the panel says why."""
    try:
        opened = await _open(request, desk, handoff_id, unmask_reason)
    except Refusal as refusal:
        if unmask_reason is not None and refusal.status == 422:
            raise  # no reason given for unmasking: said over the page, the view stays
        words = await _why_gone(request, desk, handoff_id) or desk.t.words(refusal.zh, refusal.en)
        return _closed(desk, toast, why=words, status=refusal.status)
    return _render(
        "console_conversation.html",
        t=desk.t,
        agent=desk.agent,
        opened=opened,
        problem=problem,
        toast=toast,
    )


async def _open(
    request: web.Request, desk: Desk, handoff_id: int, unmask_reason: str | None
) -> Opened:
    service, agent, now = request.app[HANDOFFS], desk.agent, request.app[CLOCK].now()
    view = await service.view(agent, handoff_id, unmask_reason)
    item = view.item
    held = item.status in HELD_STATUSES
    mine = held and item.claimed_by == agent.name  # agents' names are unique
    lease = None
    if item.lease_until is not None:  # claimed: the lease runs (parked: the customer's turn)
        lease = max(0, int((item.lease_until - now).total_seconds()))
    window, window_class = _window(desk.t, view, now)
    query = urlencode({"unmask_reason": unmask_reason}) if not view.masked else ""
    return Opened(
        view=view,
        refresh_url=f"/console/handoffs/{handoff_id}" + (f"?{query}" if query else ""),
        unmask_reason=unmask_reason if not view.masked else None,
        clear=None if view.masked else await _unmasked(request, handoff_id),
        holder=item.claimed_by if held and not mine else None,
        lease_seconds=lease,
        lease_idle=held and lease is None,
        window=window,
        window_class=window_class,
        blocked=_blocked(desk.t, view, mine, now),
        may_act=held and (mine or agent.is_admin),
        draft=f"reply-{handoff_id}-{_written_by(view, agent)}",
        agents=[a for a in await service.list_agents() if a.id != agent.id],
        canned=await service.list_canned(),
    )


async def _unmasked(request: web.Request, handoff_id: int) -> Unmasked:
    """The values behind the masks, once the queue service has let an admin unmask (and
    audited it)."""
    async with request.app[SESSIONS]() as session:
        repos = Repositories.on(session)
        record = await repos.handoffs.get(handoff_id)
        if record is None:
            raise Refusal(404, "找不到这个会话。", "No such conversation.")
        conversation = await repos.conversations.by_id(record.conversation_id)
    order = conversation.data.order_no if conversation is not None else None
    return Unmasked(customer=record.user_id, order=order)


async def _why_gone(request: web.Request, desk: Desk, handoff_id: int) -> Markup | None:
    """Words for a conversation that left the agent's hands by its lease running out."""
    async with request.app[SESSIONS]() as session:
        record = await Repositories.on(session).handoffs.get(handoff_id)
    if (
        record is not None
        and record.status == HandoffStatus.WAITING
        and record.dropped_by == desk.agent.name
    ):
        return desk.t("lease_lapsed", ref=record.ref)
    return None


def _window(t: Labels, view: ConversationView, now: datetime) -> tuple[Markup, str]:
    """WeChat's reply window: how long it stays open and how many replies are left."""
    closes = view.window_open_until
    left = (closes - now).total_seconds() if closes is not None else 0.0
    if left <= 0:
        return t("window_closed"), "closed"
    words = t("window_open", span=Span(left), n=view.replies_left)
    return words, "closed" if view.replies_left <= 0 else "soon" if left < SOON else ""


def _blocked(t: Labels, view: ConversationView, mine: bool, now: datetime) -> Markup | None:
    """Why WeChat (or the queue) would refuse a reply right now; None if it would accept one."""
    item: QueueItem = view.item
    if item.status not in HELD_STATUSES:
        return t("blocked_status", status=Key(f"status_{item.status}"))
    if not mine:
        return t("blocked_owner", owner=item.claimed_by or "—")
    closes = view.window_open_until
    if closes is None or closes <= now:
        return t("blocked_window")
    if view.replies_left <= 0:
        return t("blocked_quota")
    return None


def _written_by(view: ConversationView, agent: AgentView) -> int:
    """How many replies and notes of the agent's the transcript holds."""
    own = {f"agent:{agent.name}", f"note:{agent.name}"}
    return sum(1 for line in view.transcript if line.sender in own)

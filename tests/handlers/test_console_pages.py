"""The server-rendered console over real HTTP, as htmx asks for it: the page, its partials
and the forms, on a real database, with a customer speaking WeChat's protocol and a fake
WeChat API receiving (or refusing) the agents' replies."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from markupsafe import escape

from bot.clock import FakeClock
from bot.config import Settings
from bot.console.labels import console_catalogue
from bot.handoff.send_failures import send_failure
from bot.keys import SESSIONS
from storage.records import HandoffStatus
from storage.repositories import AuditRepository, HandoffRepository
from storage.repositories.agents import AgentRepository
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import (
    HX,
    PASSWORD,
    Browser,
    hx_get,
    hx_post,
    new_agent,
    queued_customer,
    ready_agent,
    said,
)

Client = TestClient[web.Request, web.Application]
CSRF = re.compile(
    r"hx-headers='\{&#34;X-CSRF-Token&#34;: &#34;([^&]+)&#34;\}'|"
    r"hx-headers='\{\"X-CSRF-Token\": \"([^\"]+)\"\}'"
)


def csrf_in(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page's hx-headers"
    return found.group(1) or found.group(2)


def opened_id(html: str) -> int:
    """The id of the conversation the partial shows open."""
    found = re.search(r'id="conversation"[^>]*data-id="(\d+)"', html)
    assert found, "no conversation open"
    return int(found.group(1))


def reply_box(html: str) -> str:
    found = re.search(r'<textarea id="(reply-\d+-\d+)"', html)
    assert found, "no reply box"
    return found.group(1)


# -- signing in -------------------------------------------------------------------------------


async def test_login_then_the_one_time_password_is_replaced_then_the_desk(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    browser = browsers()
    page = await browser.http.get(browser.url("/console"))
    assert page.status == 200 and 'data-testid="login-submit"' in await page.text()

    wrong, html = await hx_post(browser, "/console/login", {"name": "alice", "password": "nope"})
    assert wrong.status == 401 and 'data-testid="login-error"' in html

    signed, html = await hx_post(browser, "/console/login", {"name": "alice", "password": one_time})
    assert signed.status == 200
    assert "HttpOnly" in signed.headers["Set-Cookie"]
    # the password form, keeping the one-time password just typed
    assert 'data-testid="password-new"' in html and 'data-testid="password-old"' not in html
    browser.csrf = csrf_in(html)
    _, queue = await hx_get(browser, "/console/queue")
    assert 'id="queue-panel"' not in queue  # nothing else until the password is changed

    differ = {"old_password": one_time, "new_password": PASSWORD, "confirm": "something else"}
    refused, html = await hx_post(browser, "/console/password", differ)
    assert refused.status == 422 and 'data-testid="password-error"' in html
    same = {**differ, "confirm": PASSWORD}
    changed, _ = await hx_post(browser, "/console/password", same)
    assert changed.status == 204 and changed.headers["HX-Redirect"] == "/console"

    desk = await browser.http.get(browser.url("/console"))
    html = await desk.text()
    assert 'data-testid="main"' in html and csrf_in(html) == browser.csrf
    assert (await browsers().login("alice", PASSWORD)).status == 200  # the new password holds


async def test_logging_out_from_the_page_ends_that_sessions_live_feed_at_once(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    async with alice.http.ws_connect(alice.url("/api/ws")) as ws:
        resp, _ = await hx_post(alice, "/console/logout")
        assert resp.status == 204
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401


async def test_a_login_form_posted_from_another_site_is_refused(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    browser = browsers()
    resp = await browser.http.post(
        browser.url("/console/login"),
        data={"name": "alice", "password": one_time},
        headers={**HX, "Origin": "https://evil.example"},
    )
    assert resp.status == 403 and "Set-Cookie" not in resp.headers
    assert 'data-testid="login-error"' in await resp.text()


async def test_partials_without_a_session_send_htmx_to_the_login(api: Client) -> None:
    resp = await api.get("/console/queue", headers=HX)
    assert resp.status == 401 and resp.headers["HX-Redirect"] == "/console"
    plain = await api.get("/console/queue")
    assert plain.status == 401 and 'data-testid="login-submit"' in await plain.text()


async def test_posts_need_the_csrf_token(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock)
    resp, html = await hx_post(alice, "/console/claim-next", csrf=False)
    assert resp.status == 403 and 'data-testid="toast"' in html and "CSRF" in html
    resp, _ = await hx_post(alice, "/console/lang", {"lang": "en"}, csrf=False)
    assert resp.status == 403
    _, queue = await hx_get(alice, "/console/queue")
    assert queue.count('data-testid="queue-item"') == 1  # nothing was claimed
    async with api.app[SESSIONS]() as session:
        record = await AgentRepository(session).by_name("alice")
    assert record is not None and record.lang == "zh"  # nor the language changed


# -- the queue and a conversation -------------------------------------------------------------


async def test_the_queue_lists_a_waiting_handoff_with_its_wait_in_units(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock)
    clock.advance(timedelta(minutes=14, seconds=37))
    resp, html = await hx_get(alice, "/console/queue")
    assert resp.status == 200
    assert html.count('data-testid="queue-item"') == 1
    assert "14 分 37 秒" in html and 'data-tick="up" data-seconds="877"' in html
    title = console_catalogue("zh")["title"]
    assert f"<title>(1) {title}</title>" in html  # the tab's count, put in place by htmx
    _, page = await hx_get(alice, "/console")
    assert f"<title>(1) {title}</title>" in page


async def test_search_finds_by_reference_and_by_agent_and_opens_the_conversation(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock)
    _, queue = await hx_get(alice, "/console/queue")
    [ref] = re.findall(r'data-testid="queue-item" data-ref="([^"]+)"', queue)
    _, page = await hx_get(alice, "/console")
    assert 'data-testid="search-q"' in page

    _, found = await hx_get(alice, f"/console/search?q=%23{ref.lower()}")
    assert re.findall(r'data-testid="search-item" data-ref="([^"]+)"', found) == [ref]
    await hx_post(alice, "/console/claim-next")
    _, by_agent = await hx_get(alice, "/console/search?q=ali")
    assert re.findall(r'data-testid="search-item" data-ref="([^"]+)"', by_agent) == [ref]
    [opens] = re.findall(r'hx-get="(/console/handoffs/\d+)"', by_agent)
    opened, conversation = await hx_get(alice, opens)
    assert opened.status == 200 and opened_id(conversation) == int(opens.rsplit("/", 1)[1])
    assert ref in conversation

    _, nothing = await hx_get(alice, "/console/search?q=ZZZZ")
    assert 'data-testid="search-empty"' in nothing and "search-item" not in nothing
    _, blank = await hx_get(alice, "/console/search?q=")
    assert "search-item" not in blank and "search-empty" not in blank


async def test_claim_reply_through_wechat_and_resolve(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    customer = await queued_customer(api, settings, clock, wechat_state)
    _, queue = await hx_get(alice, "/console/queue")
    handoff = int(
        re.findall(r'data-testid="queue-item" data-ref="[^"]+" data-id="(\d+)"', queue)[0]
    )

    claimed, html = await hx_post(alice, f"/console/handoffs/{handoff}/claim")
    assert claimed.status == 200 and claimed.headers["HX-Trigger-After-Settle"] == "console-changed"
    assert 'data-testid="lease"' in html and 'data-tick="down" data-seconds="120"' in html
    assert said("window_open", n=5).search(html) and 'data-testid="reply-blocked"' not in html
    box = reply_box(html)
    _, mine = await hx_get(alice, f"/console/mine?open={handoff}")
    assert 'aria-current="true"' in mine

    clock.advance(timedelta(seconds=50))
    _, html = await hx_get(alice, f"/console/handoffs/{handoff}")
    assert "1 分 10 秒" in html  # the lease, counted down by the server's clock

    replied, html = await hx_post(
        alice, f"/console/handoffs/{handoff}/reply", {"text": "您好，我来帮您查。"}
    )
    assert replied.status == 200
    assert wechat_state.sent == [(customer.openid, "您好，我来帮您查。")]
    assert (
        said("window_open", n=4).search(html) and reply_box(html) != box
    )  # a fresh, empty reply box

    resolved, html = await hx_post(alice, f"/console/handoffs/{handoff}/resolve")
    assert resolved.status == 200 and 'data-testid="conv-placeholder"' in html
    _, mine = await hx_get(alice, "/console/mine")
    assert 'data-testid="mine-item"' not in mine
    _, figures = await hx_get(alice, "/console/figures")
    assert re.search(r'data-testid="fig-handled">1<', figures)


async def test_a_reply_wechat_refuses_shows_its_words_and_keeps_the_draft(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock, wechat_state)
    _, html = await hx_post(alice, "/console/claim-next")
    handoff = opened_id(html)
    box = reply_box(html)

    wechat_state.fail_next(48001)
    refused, html = await hx_post(alice, f"/console/handoffs/{handoff}/reply", {"text": "在吗"})
    assert refused.status == 502
    words = send_failure(48001, "api unauthorized").zh
    assert 'data-testid="reply-error"' in html and str(escape(words)) in html
    assert reply_box(html) == box  # the browser keeps what was typed, to send again
    assert wechat_state.sent == []

    empty, html = await hx_post(alice, f"/console/handoffs/{handoff}/reply", {"text": "  "})
    assert empty.status == 422 and 'data-testid="reply-error"' in html


async def test_a_parked_conversation_shows_no_lease_counting_down(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock, wechat_state)
    _, html = await hx_post(alice, "/console/claim-next")
    handoff = opened_id(html)
    assert 'data-testid="lease-left"' in html  # claimed: the lease runs

    wechat_state.fail_next(45015)  # WeChat: the 48 hours since the customer wrote are over
    refused, html = await hx_post(alice, f"/console/handoffs/{handoff}/reply", {"text": "在吗"})
    assert refused.status == 409
    _, html = await hx_get(alice, f"/console/handoffs/{handoff}")
    assert 'data-testid="lease-left"' not in html  # parked: the customer's turn, nothing runs
    [item] = (await (await alice.get("/api/mine")).json())["items"]
    assert item["status"] == "waiting_customer" and item["lease_until"] is None


async def test_a_conversation_that_went_back_to_the_queue_says_why(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock)
    _, html = await hx_post(alice, "/console/claim-next")
    handoff = opened_id(html)
    clock.advance(timedelta(minutes=3))  # the two-minute lease lapses without a reply
    gone, html = await hx_get(alice, f"/console/handoffs/{handoff}")
    assert gone.status == 403
    assert 'data-testid="conv-placeholder"' in html and said("lease_lapsed").search(html)


async def test_an_admin_acting_on_someone_elses_conversation_is_asked_to_confirm(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    boss = await ready_agent(api, browsers(), "boss", "admin")
    customer = await queued_customer(api, settings, clock)
    _, html = await hx_post(alice, "/console/claim-next")
    handoff = opened_id(html)
    assert "hx-confirm" not in html  # her own: no question

    _, html = await hx_get(boss, f"/console/handoffs/{handoff}")
    assert html.count("hx-confirm=") == 3  # transfer, hand back, resolve
    assert "alice" in re.findall(r'hx-confirm="([^"]+)"', html)[0]

    # unmasking: the header shows what the masks stand for
    unmasked = await boss.http.get(
        boss.url(f"/console/handoffs/{handoff}"),
        headers={**HX, "HX-Prompt": "customer%20called", "HX-Prompt-URI-AutoEncoded": "true"},
    )
    html = await unmasked.text()
    assert unmasked.status == 200 and 'data-testid="conv-clear"' in html
    assert customer.openid in html and "unmask_reason=customer+called" in html
    _, masked = await hx_get(boss, f"/console/handoffs/{handoff}")
    assert customer.openid not in masked

    # resolving it: the button sends the confirmation its question asked for, and it is audited
    unconfirmed, _ = await hx_post(boss, f"/console/handoffs/{handoff}/resolve")
    assert unconfirmed.status == 409
    done, _ = await hx_post(boss, f"/console/handoffs/{handoff}/resolve", {"confirm_held": "1"})
    assert done.status == 200
    async with api.app[SESSIONS]() as session:
        record = await HandoffRepository(session).get(handoff)
        actions = {e.action for e in await AuditRepository(session).since(None)}
    assert record is not None and record.status == HandoffStatus.RESOLVED
    assert "resolve_held" in actions


async def test_a_refusal_is_shown_as_words_not_a_blank(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    bob = await ready_agent(api, browsers(), "bob")
    await queued_customer(api, settings, clock)
    _, html = await hx_post(alice, "/console/claim-next")
    handoff = opened_id(html)

    late, html = await hx_post(bob, f"/console/handoffs/{handoff}/claim")
    assert late.status == 409 and late.headers["HX-Reswap"] == "none"
    assert 'data-testid="toast"' in html and "alice" in html  # who was faster, in words
    nothing, html = await hx_post(bob, "/console/claim-next")
    assert nothing.status == 200 and said("nothing_to_claim").search(html)
    missing, html = await hx_get(bob, "/console/handoffs/999999")
    assert missing.status == 404 and 'data-testid="conv-placeholder"' in html


# -- the agent's language ---------------------------------------------------------------------


async def test_the_language_switch_changes_the_labels(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    await queued_customer(api, settings, clock)
    _, html = await hx_get(alice, "/console/queue")
    zh, en = console_catalogue("zh")["queue"], console_catalogue("en")["queue"]
    assert zh in html and en not in html  # Chinese by default

    switched, _ = await hx_post(alice, "/console/lang", {"lang": "en"})
    assert switched.status == 204 and switched.headers["HX-Refresh"] == "true"
    _, html = await hx_get(alice, "/console/queue")
    assert "Queue" in html and "等待队列" not in html and "Asked for a person" in html

    await hx_post(alice, "/console/lang", {"lang": "both"})
    _, html = await hx_get(alice, "/console/queue")
    assert '等待队列 <span class="en" lang="en">Queue</span>' in html

    refused, html = await hx_post(alice, "/console/lang", {"lang": "fr"})
    assert refused.status == 422 and 'data-testid="toast"' in html


async def test_canned_replies_are_managed_from_the_console(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    added, html = await hx_post(boss, "/console/canned", {"title": "问候", "text": "您好！"})
    assert added.status == 201 and "问候" in html
    canned_id = re.findall(r'hx-delete="/console/canned/(\d+)"', html)[0]
    missing, _ = await hx_post(boss, "/console/canned", {"title": "", "text": ""})
    assert missing.status == 422
    deleted, html = await hx_post(boss, f"/console/canned/{canned_id}", method="DELETE")
    assert deleted.status == 200 and "问候" not in html

    alice = await ready_agent(api, browsers(), "alice")
    refused, _ = await hx_post(alice, "/console/canned", {"title": "x", "text": "y"})
    assert refused.status == 403

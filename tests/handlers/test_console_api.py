"""The console's JSON API and live feed over real HTTP, on a real database, with a customer
speaking WeChat's protocol and a fake WeChat API receiving the agents' replies."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bot.app import create_app
from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import AGENTS, SESSIONS
from storage.repositories.agents import AgentRepository
from tests.conftest import Customer
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import PASSWORD, Browser, new_agent, ready_agent

Client = TestClient[web.Request, web.Application]
JSON_ERROR = {"zh", "en"}  # and "key", when the case has a stable name


async def assert_error(
    resp: aiohttp.ClientResponse, status: int, key: str | None = None
) -> dict[str, str]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert JSON_ERROR <= set(error) <= {*JSON_ERROR, "key"} and all(error.values())
    if key is not None:
        assert error.get("key") == key, error
    return dict(error)


async def queued_customer(api: Client, settings: Settings, clock: FakeClock) -> Customer:
    customer = Customer(api, settings, clock)
    for text in ("你好", "同意", "转人工"):
        await customer.say(text)
    return customer


# -- logging in -------------------------------------------------------------------------------


async def test_login_sets_a_strict_http_only_cookie_and_returns_the_csrf_token(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    resp = await browsers().login("alice", one_time)
    assert resp.status == 200
    body = await resp.json()
    assert body["agent"]["name"] == "alice" and body["agent"]["role"] == "agent"
    assert body["agent"]["must_change_password"] is True
    assert set(body["agent"]) == {"id", "name", "role", "must_change_password"}
    assert len(body["csrf_token"]) >= 32
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("billbot_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain http in this test
    token = cookie.split("=", 1)[1].split(";", 1)[0]
    assert token not in json.dumps(body)


async def test_the_cookie_is_secure_when_the_console_is_served_over_https(
    settings: Settings, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    app = create_app(replace(settings, public_url="https://bot.example.com"), clock)
    client = await aiohttp_client(app)
    _, one_time = await app[AGENTS].create("alice")
    resp = await client.post("/api/login", json={"name": "alice", "password": one_time})
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_a_wrong_password_and_an_unknown_name_get_the_same_401(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    await new_agent(api, "alice")
    wrong = await assert_error(await browsers().login("alice", "not-it-at-all"), 401)
    unknown = await assert_error(await browsers().login("nobody", "not-it-at-all"), 401)
    assert wrong == unknown


async def test_five_wrong_passwords_lock_the_login_for_fifteen_minutes(
    api: Client, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    browser = browsers()
    for _ in range(4):
        await assert_error(await browser.login("alice", "guess-guess"), 401)
    locked = await assert_error(await browser.login("alice", "guess-guess"), 401)
    assert "15" in locked["en"]  # the one answer says that logins lock, not whether this one did
    await assert_error(await browser.login("alice", one_time), 401)
    clock.advance(timedelta(minutes=15, seconds=1))
    assert (await browser.login("alice", one_time)).status == 200


async def test_a_one_time_password_must_be_changed_before_anything_else(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    browser = browsers()
    await browser.login("alice", one_time)
    await assert_error(await browser.get("/api/queue"), 403, "password_first")
    await assert_error(await browser.post("/api/handoffs/claim-next"), 403, "password_first")
    me = await (await browser.get("/api/me")).json()
    assert me["agent"]["must_change_password"] is True and me["csrf_token"] == browser.csrf

    short = await browser.post("/api/password", {"old_password": one_time, "new_password": "short"})
    await assert_error(short, 422)
    resp = await browser.post("/api/password", {"old_password": one_time, "new_password": PASSWORD})
    assert resp.status == 200
    assert (await resp.json())["agent"]["must_change_password"] is False
    assert (await browser.get("/api/queue")).status == 200


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    browser = browsers()
    await browser.login("alice", one_time)
    body = {"old_password": one_time, "new_password": PASSWORD}
    await assert_error(await browser.post("/api/password", body, csrf=False), 403)
    browser.csrf = "forged"
    await assert_error(await browser.post("/api/password", body), 403)
    assert (await browsers().login("alice", one_time)).status == 200  # password unchanged

    admin = await ready_agent(api, browsers(), "boss", "admin")
    canned = {"title": "问候", "text": "您好，我是客服。"}
    await assert_error(await admin.post("/api/canned", canned, csrf=False), 403)
    await assert_error(await admin.send("DELETE", "/api/canned/1", csrf=False), 403)
    await assert_error(await admin.post("/api/logout", csrf=False), 403)
    assert (await (await admin.get("/api/canned")).json())["items"] == []
    assert (await admin.get("/api/me")).status == 200  # still logged in


async def test_a_page_from_another_site_cannot_use_the_api(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    one_time = await new_agent(api, "alice")
    resp = await api.post(
        "/api/login",
        json={"name": "alice", "password": one_time},
        headers={"Origin": "https://evil.example"},
    )
    await assert_error(resp, 403)
    own = await api.post(
        "/api/login",
        json={"name": "alice", "password": one_time},
        headers={"Origin": str(api.make_url("")).rstrip("/")},
    )
    assert own.status == 200


async def test_without_a_session_the_api_answers_401(api: Client) -> None:
    for path in ("/api/me", "/api/queue", "/api/handoffs/1", "/api/report/today", "/api/ws"):
        await assert_error(await api.get(path), 401)
    await assert_error(await api.post("/api/handoffs/claim-next"), 401)
    api.session.cookie_jar.update_cookies({"billbot_session": "made-up"})
    await assert_error(await api.get("/api/me"), 401)


async def test_logout_ends_the_session_and_clears_the_cookie(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    browser = await ready_agent(api, browsers(), "alice")
    resp = await browser.post("/api/logout")
    assert resp.status == 200
    assert 'billbot_session=""' in resp.headers["Set-Cookie"]
    await assert_error(await browser.get("/api/me"), 401)


async def test_a_session_lasts_twelve_hours(
    api: Client, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    browser = await ready_agent(api, browsers(), "alice")
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await browser.get("/api/me")).status == 200
    clock.advance(timedelta(minutes=2))
    await assert_error(await browser.get("/api/me"), 401)


# -- the agent's own settings -----------------------------------------------------------------


async def stored_lang(api: Client, name: str) -> str:
    async with api.app[SESSIONS].begin() as session:
        record = await AgentRepository(session).by_name(name)
    assert record is not None
    return record.lang


async def test_an_agent_chooses_the_consoles_language_and_it_is_stored(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    assert (await (await alice.get("/api/me")).json())["lang"] == "zh"  # the default
    for lang in ("en", "both"):
        resp = await alice.send("PUT", "/api/me/lang", {"lang": lang})
        assert resp.status == 200 and await resp.json() == {"lang": lang}
        assert (await (await alice.get("/api/me")).json())["lang"] == lang
        assert await stored_lang(api, "alice") == lang

    for bad in ({"lang": "fr"}, {"lang": None}, {}):
        error = await assert_error(await alice.send("PUT", "/api/me/lang", bad), 400, "bad_field")
        assert "lang" in error["en"] and "lang" in error["zh"]
    forged = await alice.send("PUT", "/api/me/lang", {"lang": "zh"}, csrf=False)
    await assert_error(forged, 403, "csrf_missing")
    assert await stored_lang(api, "alice") == "both"  # nothing refused was stored


async def test_an_agent_with_a_one_time_password_may_pick_the_language_first(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    """The password change is easier to read in one's own language."""
    browser = browsers()
    await browser.login("alice", await new_agent(api, "alice"))
    assert (await browser.send("PUT", "/api/me/lang", {"lang": "en"})).status == 200
    assert await stored_lang(api, "alice") == "en"
    await assert_error(await browser.get("/api/queue"), 403, "password_first")


# -- bodies and paths -------------------------------------------------------------------------


async def test_bad_json_is_a_400_with_plain_words(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    await new_agent(api, "alice")
    for raw in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        await assert_error(await api.post("/api/login", data=raw), 400, "bad_json")
    # no body at all reads as {}: an operation whose fields all have defaults needs none
    await assert_error(await api.post("/api/login", data=b""), 400, "bad_field")
    missing = await api.post("/api/login", json={"name": "alice"})
    assert "password" in (await assert_error(missing, 400, "bad_field"))["en"]  # names the field
    wrong_type = await api.post("/api/login", json={"name": "alice", "password": 12345})
    error = await assert_error(wrong_type, 400, "bad_field")
    assert "password" in error["en"] and "password" in error["zh"]

    browser = await ready_agent(api, browsers(), "bob")
    await queued_customer(api, settings, clock)
    [item] = (await (await browser.get("/api/queue")).json())["items"]
    await browser.post(f"/api/handoffs/{item['id']}/claim")
    await assert_error(
        await browser.send("POST", f"/api/handoffs/{item['id']}/note", raw=b"{"), 400
    )
    await assert_error(await browser.post(f"/api/handoffs/{item['id']}/note", {"txt": "x"}), 400)
    for agent_id in ("2", True, 0, 2**31, None):
        transfer = await browser.post(
            f"/api/handoffs/{item['id']}/transfer", {"agent_id": agent_id}
        )
        assert "agent_id" in (await assert_error(transfer, 400, "bad_field"))["en"], agent_id
    too_big = await browser.send("POST", f"/api/handoffs/{item['id']}/note", raw=b" " * 70_000)
    await assert_error(too_big, 413)


async def test_unknown_api_paths_and_methods_answer_in_json(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    browser = await ready_agent(api, browsers(), "alice")
    await assert_error(await browser.get("/api/nothing-here"), 404)
    await assert_error(await browser.get("/api/handoffs/abc"), 404)
    await assert_error(await browser.get("/api/handoffs/999999"), 404)
    await assert_error(await browser.get("/api/handoffs/99999999999"), 404)  # > PG integer
    resp = await browser.send("PUT", "/api/queue", {})
    await assert_error(resp, 405, "method_not_allowed")


# -- the console page -------------------------------------------------------------------------


async def test_the_console_page_and_its_assets_are_served(api: Client) -> None:
    page = await api.get("/console")
    assert page.status == 200 and page.content_type == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    html = await page.text()
    for asset in re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html):
        assert (await api.get(asset)).status == 200, asset
    for sneaky in ("/console/static/..%2Fauth.py", "/console/static/.hidden", "/console/static/x"):
        assert (await api.get(sneaky)).status == 404, sneaky


# -- working the queue ------------------------------------------------------------------------


async def test_an_agent_cannot_read_another_agents_conversation(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    bob = await ready_agent(api, browsers(), "bob")
    admin = await ready_agent(api, browsers(), "boss", "admin")
    await queued_customer(api, settings, clock)

    [item] = (await (await bob.get("/api/queue")).json())["items"]
    assert item["reason"] == "asked" and item["status"] == "waiting"
    claimed = await alice.post(f"/api/handoffs/{item['id']}/claim")
    assert claimed.status == 200
    assert (await claimed.json())["item"]["claimed_by"] == "alice"
    await assert_error(await bob.post(f"/api/handoffs/{item['id']}/claim"), 409)

    await assert_error(await bob.get(f"/api/handoffs/{item['id']}"), 403)
    await assert_error(await bob.post(f"/api/handoffs/{item['id']}/note", {"text": "x"}), 403)
    own = await alice.get(f"/api/handoffs/{item['id']}")
    assert own.status == 200
    conversation = await own.json()
    assert conversation["masked"] is True
    assert any(line["text"] == "转人工" for line in conversation["transcript"])
    await assert_error(await alice.get(f"/api/handoffs/{item['id']}?unmask_reason=curious"), 403)

    assert (await admin.get(f"/api/handoffs/{item['id']}")).status == 200
    await assert_error(await admin.get(f"/api/handoffs/{item['id']}?unmask_reason=%20"), 422)
    unmasked = await admin.get(f"/api/handoffs/{item['id']}?unmask_reason=customer%20complaint")
    assert unmasked.status == 200 and (await unmasked.json())["masked"] is False
    # unmasked personal data is never cached or sniffed
    assert unmasked.headers["Cache-Control"] == "no-store"
    assert unmasked.headers["X-Content-Type-Options"] == "nosniff"


async def test_claim_reply_note_and_resolve_through_the_api(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    customer = await queued_customer(api, settings, clock)
    wechat_state.customer_wrote(customer.openid, clock.now())

    taken = await (await alice.post("/api/handoffs/claim-next")).json()
    handoff = taken["item"]["id"]
    assert taken["item"]["status"] == "claimed"
    assert (await (await alice.post("/api/handoffs/claim-next")).json()) == {"item": None}
    assert [i["id"] for i in (await (await alice.get("/api/mine")).json())["items"]] == [handoff]

    replied = await alice.post(f"/api/handoffs/{handoff}/reply", {"text": "您好，我来帮您查。"})
    assert replied.status == 200, await replied.text()
    view = await replied.json()
    assert view["replies_left"] == 4 and view["window_open_until"] is not None
    assert wechat_state.sent == [(customer.openid, "您好，我来帮您查。")]

    noted = await alice.post(f"/api/handoffs/{handoff}/note", {"text": "客户很着急"})
    assert any(line["text"] == "客户很着急" for line in (await noted.json())["transcript"])
    assert len(wechat_state.sent) == 1  # a note never reaches the customer

    resolved = await (await alice.post(f"/api/handoffs/{handoff}/resolve")).json()
    assert resolved["item"]["status"] == "resolved"
    figures = await (await alice.get("/api/report/today")).json()
    assert figures["handled_today"] == 1 and figures["waiting"] == 0


async def test_transfer_and_hand_back_through_the_api(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    alice = await ready_agent(api, browsers(), "alice")
    bob = await ready_agent(api, browsers(), "bob")
    await queued_customer(api, settings, clock)
    agents = (await (await alice.get("/api/agents")).json())["agents"]
    bob_id = next(a["id"] for a in agents if a["name"] == "bob")
    handoff = (await (await alice.post("/api/handoffs/claim-next")).json())["item"]["id"]

    moved = await alice.post(f"/api/handoffs/{handoff}/transfer", {"agent_id": bob_id})
    assert (await moved.json())["item"]["claimed_by"] == "bob"
    await assert_error(await alice.get(f"/api/handoffs/{handoff}"), 403)
    back = await (await bob.post(f"/api/handoffs/{handoff}/handback")).json()
    assert back["item"]["status"] == "returned"


async def test_canned_replies_are_managed_by_admins(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    agent = await ready_agent(api, browsers(), "alice")
    admin = await ready_agent(api, browsers(), "boss", "admin")
    canned = {"title": "问候", "text": "您好，我是客服。"}
    await assert_error(await agent.post("/api/canned", canned), 403, "admins_only")
    created = await admin.post("/api/canned", canned)
    assert created.status == 201
    item = (await created.json())["item"]
    assert (await (await agent.get("/api/canned")).json())["items"] == [item]
    await assert_error(await agent.send("DELETE", f"/api/canned/{item['id']}"), 403, "admins_only")
    deleted = await admin.send("DELETE", f"/api/canned/{item['id']}")
    assert (await deleted.json()) == {"deleted": item["id"]}
    assert (await (await agent.get("/api/canned")).json())["items"] == []


# -- the live feed ----------------------------------------------------------------------------


async def test_a_customer_asking_for_a_person_reaches_a_connected_console(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    browser = await ready_agent(api, browsers(), "alice")
    async with browser.http.ws_connect(browser.url("/api/ws")) as ws:
        await ws.send_json({"type": "ping"})
        assert await asyncio.wait_for(ws.receive_json(), 5) == {"type": "pong"}

        customer = Customer(api, settings, clock)
        for text in ("你好", "同意"):
            await customer.say(text)
        await customer.say("转人工")
        event = await asyncio.wait_for(ws.receive_json(), 5)
        assert event["type"] in {"queue", "handoff"}
    assert len((await (await browser.get("/api/queue")).json())["items"]) == 1


async def test_a_console_whose_session_ended_is_closed(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    browser = await ready_agent(api, browsers(), "alice")
    async with browser.http.ws_connect(browser.url("/api/ws")) as ws:
        await browser.post("/api/logout")  # the feed ends with the login, no ping needed
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401


async def test_a_password_change_ends_the_other_sessions_live_feeds_at_once(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    here = await ready_agent(api, browsers(), "alice")
    elsewhere = browsers()
    assert (await elsewhere.login("alice")).status == 200
    async with (
        elsewhere.http.ws_connect(elsewhere.url("/api/ws")) as theirs,
        here.http.ws_connect(here.url("/api/ws")) as mine,
    ):
        changed = await here.post(
            "/api/password", {"old_password": PASSWORD, "new_password": "another long password"}
        )
        assert changed.status == 200, await changed.text()
        msg = await asyncio.wait_for(theirs.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4401
        await mine.send_json({"type": "ping"})
        assert await asyncio.wait_for(mine.receive_json(), 5) == {"type": "pong"}


# -- the operator's report --------------------------------------------------------------------


def test_report_queue_prints_the_figures_the_console_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    assert main(["report", "queue", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures == {
        "waiting": 0,
        "handled_today": 0,
        "avg_wait_seconds": None,
        "avg_first_response_seconds": None,
        "avg_resolution_seconds": None,
    }
    assert main(["report", "queue"]) == 0
    assert "waiting" in capsys.readouterr().out

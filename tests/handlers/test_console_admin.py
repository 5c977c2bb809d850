"""The admin's panel of the server-rendered console, over real HTTP as htmx asks for it: the
team's logins (list, unlock, reset the password, disable, enable) and the contacts on or off
duty; agents who are not admins are refused in words. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.clock import FakeClock
from bot.config import Settings
from bot.console.labels import console_catalogue
from bot.keys import SESSIONS
from storage.records import HandoffStatus
from storage.repositories import AuditRepository, ContactRepository, HandoffRepository
from storage.repositories.agents import AgentRepository
from tests.handlers.conftest import (
    PASSWORD,
    Browser,
    hx_get,
    hx_post,
    queued_customer,
    ready_agent,
    said,
)

Client = TestClient[web.Request, web.Application]
ROW = re.compile(r'data-testid="team-row" data-name="([^"]+)" data-status="([^"]+)"')


def statuses(html: str) -> dict[str, str]:
    return dict(ROW.findall(html))


async def agent_id(api: Client, name: str) -> int:
    async with api.app[SESSIONS]() as session:
        record = await AgentRepository(session).by_name(name)
    assert record is not None
    return record.id


async def audited(api: Client) -> list[tuple[str, str, str | None]]:
    async with api.app[SESSIONS]() as session:
        entries = await AuditRepository(session).since(None)
    return [(e.action, e.actor, e.target) for e in entries]


async def test_the_team_lists_every_login_with_its_status_and_last_seen_in_words(
    api: Client, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    await ready_agent(api, browsers(), "bob")
    clock.advance(timedelta(minutes=3, seconds=5))
    _, page = await hx_get(boss, "/console")
    assert 'data-testid="team-admin"' in page and 'data-testid="contacts-admin"' in page
    resp, html = await hx_get(boss, "/console/admin/team")
    assert resp.status == 200
    assert statuses(html) == {"boss": "active", "bob": "active"}
    assert "3 分 5 秒前" in html  # last seen, with units
    # an admin is offered no button to disable themselves
    [boss_row] = [row for row in html.split("<tr") if 'data-name="boss"' in row]
    assert 'data-testid="team-disable"' not in boss_row
    assert console_catalogue("zh")["you"] in boss_row


async def test_unlock_lifts_a_lockout_and_the_agent_signs_in_again(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    await ready_agent(api, browsers(), "bob")
    for _ in range(5):
        assert (await browsers().login("bob", "wrong password, again")).status == 401
    assert (await browsers().login("bob", PASSWORD)).status == 401  # locked out
    _, html = await hx_get(boss, "/console/admin/team")
    assert statuses(html)["bob"] == "locked_out" and said("login_locked_out").search(html)
    assert 'data-testid="team-unlock"' in html

    bob_id = await agent_id(api, "bob")
    resp, html = await hx_post(boss, f"/console/admin/agents/{bob_id}/unlock")
    assert resp.status == 200 and statuses(html)["bob"] == "active"
    assert 'data-testid="toast"' in html
    assert (await browsers().login("bob", PASSWORD)).status == 200
    boss_id = await agent_id(api, "boss")
    assert ("unlock", f"agent:{boss_id}", f"agent:{bob_id}") in await audited(api)


async def test_reset_shows_a_one_time_password_once_that_then_signs_in(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    bob = await ready_agent(api, browsers(), "bob")
    bob_id = await agent_id(api, "bob")
    resp, html = await hx_post(boss, f"/console/admin/agents/{bob_id}/reset-password")
    assert resp.status == 200 and resp.headers["HX-Trigger-After-Settle"] == "console-changed"
    assert resp.headers["Cache-Control"] == "no-store"
    found = re.search(r'data-testid="one-time-password">([^<]+)<', html)
    assert found and said("reset_pass_on", name="bob").search(html)  # pass it on privately
    one_time = found.group(1)

    assert (await bob.get("/api/me")).status == 401  # his session ended with the reset
    assert (await browsers().login("bob", PASSWORD)).status == 401  # the old one is gone
    again = browsers()
    signed = await again.login("bob", one_time)
    assert signed.status == 200 and (await signed.json())["agent"]["must_change_password"]
    _, team = await hx_get(boss, "/console/admin/team")
    assert statuses(team)["bob"] == "must_change_password"
    assert one_time not in team  # shown once, in the answer to the reset only
    boss_id = await agent_id(api, "boss")
    assert ("password_reset", f"agent:{boss_id}", f"agent:{bob_id}") in await audited(api)

    # one's own password is changed, not reset: a reset would end this very session
    own_row = re.search(r'<tr data-testid="team-row" data-name="boss".*?</tr>', team, re.S)
    assert own_row and "team-reset" not in own_row.group(0)
    refused, _ = await hx_post(boss, f"/console/admin/agents/{boss_id}/reset-password")
    assert refused.status == 409
    assert (await boss.get("/api/me")).status == 200  # still signed in


async def test_disable_refuses_login_and_gives_their_conversation_back_then_enable(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    bob = await ready_agent(api, browsers(), "bob")
    await queued_customer(api, settings, clock)
    claimed, _ = await hx_post(bob, "/console/claim-next")
    assert claimed.status == 200
    bob_id = await agent_id(api, "bob")

    resp, html = await hx_post(boss, f"/console/admin/agents/{bob_id}/disable")
    assert resp.status == 200 and statuses(html)["bob"] == "disabled"
    assert 'data-testid="team-enable"' in html
    async with api.app[SESSIONS]() as session:
        [handoff] = await HandoffRepository(session).waiting()
    assert handoff.status == HandoffStatus.WAITING and handoff.claimed_by is None
    _, queue = await hx_get(boss, "/console/queue")
    assert queue.count('data-testid="queue-item"') == 1  # back in the queue, now
    refused = await browsers().login("bob", PASSWORD)
    assert refused.status == 403 and (await refused.json())["error"]["key"] == "login_disabled"
    assert (await hx_get(bob, "/console/queue"))[0].status == 401  # his session ended

    # an admin cannot disable themselves, nor is a disabled login offered for transfers
    boss_id = await agent_id(api, "boss")
    resp, html = await hx_post(boss, f"/console/admin/agents/{boss_id}/disable")
    assert resp.status == 409 and 'data-key="disable_self"' in html
    listed = await (await boss.get("/api/agents")).json()
    assert "bob" not in {a["name"] for a in listed["agents"]}

    resp, html = await hx_post(boss, f"/console/admin/agents/{bob_id}/enable")
    assert resp.status == 200 and statuses(html)["bob"] == "active"
    assert (await browsers().login("bob", PASSWORD)).status == 200
    actions = await audited(api)
    assert ("agent_disabled", f"agent:{boss_id}", f"agent:{bob_id}") in actions
    assert ("agent_enabled", f"agent:{boss_id}", f"agent:{bob_id}") in actions


async def test_contacts_list_masked_and_go_off_and_on_duty(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    boss = await ready_agent(api, browsers(), "boss", "admin")
    resp, html = await hx_get(boss, "/console/admin/contacts")
    assert resp.status == 200
    assert re.findall(r'data-contact="([^"]+)" data-on-duty="([^"]+)"', html) == [
        ("alice", "true"),
        ("bob", "true"),
    ]
    assert "wx_ab12cd89" not in html and "旗舰店" in html and "二维码" in html

    resp, html = await hx_post(
        boss, "/console/admin/contacts/on-duty", {"contact": "bob", "on_duty": "0"}
    )
    assert resp.status == 200 and 'data-contact="bob" data-on-duty="false"' in html
    assert resp.headers["HX-Trigger-After-Settle"] == "console-changed"
    async with api.app[SESSIONS]() as session:
        stored = await ContactRepository(session).find("bob")
    assert stored is not None and not stored.on_duty
    boss_id = await agent_id(api, "boss")
    assert ("contact_disable", f"agent:{boss_id}", "contact:bob") in await audited(api)

    resp, html = await hx_post(
        boss, "/console/admin/contacts/on-duty", {"contact": "bob", "on_duty": "1"}
    )
    assert resp.status == 200 and 'data-contact="bob" data-on-duty="true"' in html
    for form, status in (({"contact": "C999", "on_duty": "0"}, 404), ({"contact": "bob"}, 422)):
        resp, html = await hx_post(boss, "/console/admin/contacts/on-duty", form)
        assert resp.status == status and 'data-testid="toast"' in html


async def test_an_agent_who_is_not_an_admin_is_refused_in_words(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    await ready_agent(api, browsers(), "boss", "admin")
    bob = await ready_agent(api, browsers(), "bob")
    _, page = await hx_get(bob, "/console")
    assert 'data-testid="team-admin"' not in page and 'data-testid="contacts-admin"' not in page
    boss_id = await agent_id(api, "boss")
    for method, path in (
        ("GET", "/console/admin/team"),
        ("GET", "/console/admin/contacts"),
        ("POST", f"/console/admin/agents/{boss_id}/disable"),
        ("POST", f"/console/admin/agents/{boss_id}/reset-password"),
        ("POST", "/console/admin/contacts/on-duty"),
    ):
        if method == "GET":
            resp, html = await hx_get(bob, path)
        else:
            resp, html = await hx_post(bob, path, {"contact": "bob", "on_duty": "0"})
        assert resp.status == 403 and 'data-key="admins_only"' in html, path
    plain = await bob.http.get(bob.url("/console/admin/team"))
    assert plain.status == 403 and 'data-testid="refused"' in await plain.text()
    async with api.app[SESSIONS]() as session:
        assert (await ContactRepository(session).find("bob")).on_duty  # type: ignore[union-attr]
        assert (await AgentRepository(session).get(boss_id)).disabled_at is None  # type: ignore[union-attr]
    # and without the CSRF token, an admin's change is refused too
    boss = browsers()
    assert (await boss.login("boss", PASSWORD)).status == 200
    resp, _ = await hx_post(
        boss, "/console/admin/contacts/on-duty", {"contact": "bob", "on_duty": "0"}, csrf=False
    )
    assert resp.status == 403
    async with api.app[SESSIONS]() as session:
        still = await ContactRepository(session).find("bob")
    assert still is not None and still.on_duty  # nothing changed

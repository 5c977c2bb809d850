"""/api/openapi.json is written from the route table that registers the handlers: every route
the app serves is in it, and what each one really answers — its success and its refusals —
validates against the schema the document gives (``$ref``s resolved by ``jsonschema``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.clock import FakeClock
from bot.config import Settings
from tests.conftest import Customer
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import PASSWORD, Browser, new_agent, ready_agent

Client = TestClient[web.Request, web.Application]
Op = tuple[str, str]  # (OpenAPI path, lower-case method)


def served_api_routes(app: web.Application) -> set[Op]:
    """What the app's router serves under /api (HEAD comes with GET), in OpenAPI path form."""
    served: set[Op] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        if path.startswith("/api/") and route.method != "HEAD":
            served.add((re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.method.lower()))
    return served


def documented(doc: dict[str, Any]) -> set[Op]:
    return {(path, method) for path, ops in doc["paths"].items() for method in ops}


async def fetch_document(api: Client) -> dict[str, Any]:
    resp = await api.get("/api/openapi.json")
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


@dataclass
class Contract:
    """Checks real answers against the document, and remembers which operations it saw."""

    doc: dict[str, Any]
    answered: set[Op] = field(default_factory=set)
    refused: set[Op] = field(default_factory=set)

    def schema(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # the schema beside the document's components, so "#/components/…" resolves
        return jsonschema.Draft202012Validator({**schema, "components": self.doc["components"]})

    def operation(self, op: Op) -> dict[str, Any]:
        path, method = op
        operation: dict[str, Any] = self.doc["paths"][path][method]
        return operation

    async def ok(self, resp: aiohttp.ClientResponse, op: Op, sent: object = None) -> dict[str, Any]:
        """A success: its status is the documented one, its JSON fits the documented schema
        (and so did the body sent, if any)."""
        operation = self.operation(op)
        [(status, answer)] = [(s, a) for s, a in operation["responses"].items() if int(s) < 400]
        assert resp.status == int(status), (op, await resp.text())
        body: dict[str, Any] = await resp.json()
        self.schema(answer["content"]["application/json"]["schema"]).validate(body)
        if sent is not None:
            taken = operation["requestBody"]["content"]["application/json"]["schema"]
            self.schema(taken).validate(sent)
        self.answered.add(op)
        return body

    async def refusal(self, resp: aiohttp.ClientResponse, op: Op) -> dict[str, str]:
        """A refusal: its status is one the operation documents, its JSON the Error shape."""
        answers = self.operation(op)["responses"]
        assert str(resp.status) in answers, (op, resp.status, await resp.text())
        assert resp.status >= 400
        body = await resp.json()
        schema = answers[str(resp.status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
        self.schema(schema).validate(body)
        self.refused.add(op)
        error: dict[str, str] = body["error"]
        return error


# -- every route is documented ----------------------------------------------------------------


async def test_every_route_the_app_serves_under_api_is_documented_and_nothing_else(
    api: Client,
) -> None:
    doc = await fetch_document(api)
    assert doc["openapi"] == "3.1.0"
    served = served_api_routes(api.app)
    assert len(served) >= 20
    assert served - documented(doc) == set(), "served but not documented"
    assert documented(doc) - served == set(), "documented but not served"
    for path, method in served:
        operation = doc["paths"][path][method]
        params = [p.get("$ref", p.get("name")) for p in operation.get("parameters", [])]
        changes_with_session = method != "get" and operation.get("security") != []
        assert ("#/components/parameters/CsrfToken" in params) == changes_with_session
        assert set(re.findall(r"\{(\w+)\}", path)) <= set(params), (path, method)
        zh, _, en = operation["summary"].partition(" / ")
        assert re.search(r"[\u4e00-\u9fff]", zh) and en, operation["summary"]
        for status, answer in operation["responses"].items():
            if int(status) >= 400:
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


async def test_a_route_added_without_documentation_is_caught(
    api: Client, settings: Settings, clock: FakeClock
) -> None:
    """What the check above would say of a route registered beside the table."""
    from bot.app import create_app

    app = create_app(settings, clock)

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/api/handoffs/{id:\\d+}/escalate", extra)
    doc = await fetch_document(api)
    assert served_api_routes(app) - documented(doc) == {("/api/handoffs/{id}/escalate", "post")}


def test_every_schema_in_the_document_is_valid_json_schema() -> None:
    from bot.console.openapi import openapi_document
    from bot.handlers.console import API

    doc = openapi_document(API, "https://bot.example.com")
    assert doc["servers"] == [{"url": "https://bot.example.com"}]
    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AssertionError(f"{name}: {exc.message}") from exc
    error = doc["components"]["schemas"]["ErrorWords"]
    assert set(error["required"]) == {"zh", "en"} and "key" in error["properties"]


# -- every route answers as documented ---------------------------------------------------------


async def test_every_route_answers_and_refuses_as_documented(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
) -> None:
    doc = await fetch_document(api)
    contract = Contract(doc)
    await contract.ok(await api.get("/api/openapi.json"), ("/api/openapi.json", "get"))

    # logging in, the one-time password, the language
    login = ("/api/login", "post")
    await contract.refusal(await api.post("/api/login", json={"name": "boss"}), login)
    await contract.refusal(await api.post("/api/login", data=b"[]"), login)
    one_time = await new_agent(api, "boss", "admin")
    await contract.refusal(await browsers().login("boss", "wrong password!"), login)
    boss = browsers()
    sent = {"name": "boss", "password": one_time}
    await contract.ok(await boss.http.post(boss.url("/api/login"), json=sent), login, sent)
    boss.csrf = (await contract.ok(await boss.get("/api/me"), ("/api/me", "get")))["csrf_token"]
    await contract.refusal(await boss.get("/api/queue"), ("/api/queue", "get"))  # not yet
    password = ("/api/password", "post")
    await contract.refusal(await boss.post("/api/password", {"old_password": one_time}), password)
    short = {"old_password": one_time, "new_password": "short"}
    await contract.refusal(await boss.post("/api/password", short), password)
    sent = {"old_password": one_time, "new_password": PASSWORD}
    await contract.ok(await boss.post("/api/password", sent), password, sent)
    lang = ("/api/me/lang", "put")
    await contract.refusal(await boss.send("PUT", "/api/me/lang", {"lang": "fr"}), lang)
    sent = {"lang": "both"}
    await contract.ok(await boss.send("PUT", "/api/me/lang", sent), lang, sent)
    bob = await ready_agent(api, browsers(), "bob")

    # the queue: two customers ask for a person
    first = Customer(api, settings, clock)
    second = Customer(
        api, settings, clock, openid="oCustomer0000000000000000002", first_msg_id=5000
    )
    for customer in (first, second):
        for text in ("你好", "同意", "转人工"):
            await customer.say(text)
        wechat_state.customer_wrote(customer.openid, clock.now())
    queued = await contract.ok(await boss.get("/api/queue"), ("/api/queue", "get"))
    assert len(queued["items"]) == 2
    claim_next = ("/api/handoffs/claim-next", "post")
    taken = (await contract.ok(await boss.post("/api/handoffs/claim-next"), claim_next))["item"]
    other = next(i["id"] for i in queued["items"] if i["id"] != taken["id"])
    claim = ("/api/handoffs/{id}/claim", "post")
    await contract.ok(await boss.post(f"/api/handoffs/{other}/claim"), claim)
    await contract.refusal(await bob.post(f"/api/handoffs/{other}/claim"), claim)  # 409
    nothing = await contract.ok(await bob.post("/api/handoffs/claim-next"), claim_next)
    assert nothing == {"item": None}
    mine = await contract.ok(await boss.get("/api/mine"), ("/api/mine", "get"))
    assert {i["id"] for i in mine["items"]} == {taken["id"], other}

    handoff = taken["id"]
    view = ("/api/handoffs/{id}", "get")
    await contract.ok(await boss.get(f"/api/handoffs/{handoff}"), view)
    await contract.ok(await boss.get(f"/api/handoffs/{handoff}?unmask_reason=complaint"), view)
    await contract.refusal(await boss.get(f"/api/handoffs/{handoff}?unmask_reason=%20"), view)
    await contract.refusal(await boss.get("/api/handoffs/999999"), view)
    await contract.refusal(await bob.get(f"/api/handoffs/{handoff}"), view)
    for action in ("reply", "note"):
        op = (f"/api/handoffs/{{id}}/{action}", "post")
        await contract.refusal(await boss.post(f"/api/handoffs/{handoff}/{action}", {}), op)
        sent = {"text": "您好，我来帮您查。"}
        await contract.ok(await boss.post(f"/api/handoffs/{handoff}/{action}", sent), op, sent)
    agents = await contract.ok(await boss.get("/api/agents"), ("/api/agents", "get"))
    bob_id = next(a["id"] for a in agents["agents"] if a["name"] == "bob")
    transfer = ("/api/handoffs/{id}/transfer", "post")
    moving = f"/api/handoffs/{handoff}/transfer"
    await contract.refusal(await boss.post(moving, {"agent_id": str(bob_id)}), transfer)
    sent = {"agent_id": bob_id}
    await contract.ok(await boss.post(moving, sent), transfer, sent)
    resolve = ("/api/handoffs/{id}/resolve", "post")
    held = await contract.refusal(await boss.post(f"/api/handoffs/{handoff}/resolve"), resolve)
    assert held["key"] == "held_by_other"  # bob holds it now: an admin must confirm
    handback = ("/api/handoffs/{id}/handback", "post")
    held = await contract.refusal(await boss.post(f"/api/handoffs/{handoff}/handback"), handback)
    assert held["key"] == "held_by_other"
    await contract.refusal(await bob.post(f"/api/handoffs/{other}/handback"), handback)
    await contract.ok(await bob.post(f"/api/handoffs/{handoff}/handback"), handback)
    await contract.refusal(await bob.post(f"/api/handoffs/{other}/resolve"), resolve)
    await contract.ok(await boss.post(f"/api/handoffs/{other}/resolve"), resolve)
    search = ("/api/handoffs/search", "get")
    await contract.refusal(await boss.get("/api/handoffs/search"), search)  # no q
    ref = next(i["ref"] for i in queued["items"] if i["id"] == other)
    found = await contract.ok(await boss.get(f"/api/handoffs/search?q=%23{ref}"), search)
    assert [i["id"] for i in found["items"]] == [other]
    assert found["items"][0]["resolved_at"] is not None
    figures = await contract.ok(await boss.get("/api/report/today"), ("/api/report/today", "get"))
    assert figures["handled_today"] == 1

    # contacts on and off duty (admins; audited)
    listing = ("/api/contacts", "get")
    await contract.refusal(await bob.get("/api/contacts"), listing)  # not an admin
    roster = await contract.ok(await boss.get("/api/contacts"), listing)
    first_contact = roster["items"][0]
    assert first_contact["on_duty"] and "wechat_id" not in first_contact
    duty = ("/api/contacts/on-duty", "put")
    await contract.refusal(
        await boss.send("PUT", "/api/contacts/on-duty", {"contact": "C999", "on_duty": False}), duty
    )
    sent = {"contact": first_contact["contact"], "on_duty": False}
    changed = await contract.ok(await boss.send("PUT", "/api/contacts/on-duty", sent), duty, sent)
    assert changed["on_duty"] is False

    # the team's logins (admins): list, unlock, reset the password, disable, enable
    team = ("/api/admin/agents", "get")
    await contract.refusal(await bob.get("/api/admin/agents"), team)  # not an admin
    listed = await contract.ok(await boss.get("/api/admin/agents"), team)
    statuses = {a["name"]: a["status"] for a in listed["agents"]}
    assert statuses == {"boss": "active", "bob": "active"}
    boss_id = next(a["id"] for a in listed["agents"] if a["name"] == "boss")
    for action in ("unlock", "reset-password", "enable"):
        op = (f"/api/admin/agents/{{id}}/{action}", "post")
        await contract.refusal(await bob.post(f"/api/admin/agents/{bob_id}/{action}"), op)
        await contract.refusal(await boss.post(f"/api/admin/agents/999999/{action}"), op)
    unlock = ("/api/admin/agents/{id}/unlock", "post")
    unlocked = await contract.ok(await boss.post(f"/api/admin/agents/{bob_id}/unlock"), unlock)
    assert unlocked["lockouts_lifted"] == 0
    disable = ("/api/admin/agents/{id}/disable", "post")
    self_refused = await contract.refusal(
        await boss.post(f"/api/admin/agents/{boss_id}/disable"), disable
    )
    assert self_refused["key"] == "disable_self"
    await contract.refusal(await bob.post(f"/api/admin/agents/{boss_id}/disable"), disable)
    gone = await contract.ok(await boss.post(f"/api/admin/agents/{bob_id}/disable"), disable)
    assert gone["agent"]["status"] == "disabled" and gone["changed"]
    enable = ("/api/admin/agents/{id}/enable", "post")
    back = await contract.ok(await boss.post(f"/api/admin/agents/{bob_id}/enable"), enable)
    assert back["agent"]["status"] == "active" and back["changed"]
    reset = ("/api/admin/agents/{id}/reset-password", "post")
    own = await contract.refusal(
        await boss.post(f"/api/admin/agents/{boss_id}/reset-password"), reset
    )
    assert own["key"] == "reset_self"  # it would end the session the password is shown in
    fresh = await contract.ok(await boss.post(f"/api/admin/agents/{bob_id}/reset-password"), reset)
    assert fresh["agent"]["status"] == "must_change_password"
    bob = browsers()  # the old session ended with the reset
    await ready_with(bob, "bob", fresh["one_time_password"])

    # canned replies (admins manage them)
    canned = ("/api/canned", "post")
    sent = {"title": "问候", "text": "您好，我是客服。"}
    await contract.refusal(await bob.post("/api/canned", sent), canned)  # not an admin
    await contract.refusal(await boss.post("/api/canned", {"title": "问候"}), canned)
    item = (await contract.ok(await boss.post("/api/canned", sent), canned, sent))["item"]
    await contract.ok(await bob.get("/api/canned"), ("/api/canned", "get"))
    delete = ("/api/canned/{id}", "delete")
    await contract.refusal(await bob.send("DELETE", f"/api/canned/{item['id']}"), delete)
    await contract.ok(await boss.send("DELETE", f"/api/canned/{item['id']}"), delete)
    await contract.refusal(await boss.send("DELETE", f"/api/canned/{item['id']}"), delete)

    # the live feed: every frame fits the documented frame schema
    feed = ("/api/ws", "get")
    frames = contract.schema(contract.operation(feed)["x-frames"])
    async with boss.http.ws_connect(boss.url("/api/ws")) as ws:
        ping = {"type": "ping"}
        frames.validate(ping)
        await ws.send_json(ping)
        frames.validate(await asyncio.wait_for(ws.receive_json(), 5))
        await first.say("转人工")  # back with the bot since the hand-back: a new handoff
        frames.validate(await asyncio.wait_for(ws.receive_json(), 5))
    contract.answered.add(feed)

    # logging out (a change: the CSRF token is needed)
    logout = ("/api/logout", "post")
    await contract.refusal(await bob.post("/api/logout", csrf=False), logout)
    await contract.ok(await bob.post("/api/logout"), logout)

    # without a session, every route that needs one answers the documented 401
    for path, method in documented(doc):
        if doc["paths"][path][method].get("security") == []:
            continue
        resp = await api.request(method.upper(), path.replace("{id}", "1"))
        error = await contract.refusal(resp, (path, method))
        assert resp.status == 401 and error["key"] == "not_logged_in"

    assert contract.answered == documented(doc), "no success checked"
    public_get = {("/api/openapi.json", "get")}  # nothing to refuse: it is public and read-only
    assert contract.refused == documented(doc) - public_get, "no refusal checked"


async def ready_with(browser: Browser, name: str, one_time: str) -> None:
    """Signs in with a one-time password and replaces it."""
    assert (await browser.login(name, one_time)).status == 200
    sent = {"old_password": one_time, "new_password": PASSWORD}
    assert (await browser.post("/api/password", sent)).status == 200


async def test_unknown_paths_and_methods_answer_the_error_shape(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    contract = Contract(await fetch_document(api))
    error = contract.schema({"$ref": "#/components/schemas/Error"})
    alice = await ready_agent(api, browsers(), "alice")
    for resp, key in (
        (await alice.get("/api/nothing-here"), "not_found"),
        (await alice.get("/api/handoffs/1234567890"), "not_found"),  # longer than an id
        (await alice.send("PATCH", "/api/queue", {}), "method_not_allowed"),
        (await api.post("/api/login", data=b"{"), "bad_json"),
    ):
        body = await resp.json()
        error.validate(body)
        assert body["error"]["key"] == key

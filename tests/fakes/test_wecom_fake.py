"""The fake WeCom API over real HTTP: tokens and their three errors, contact ways and their QR
codes, remark limits, the once-only 20-second welcome code, and injected failures."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.clock import FakeClock
from tests.fakes.wecom_api import (
    ERRMSG,
    FAKE_WECOM_STATE,
    QR_TARGET,
    Endpoint,
    FakeWeComState,
    fake_wecom_app,
    qr_png,
)

CORP_ID = "ww0000000000fake01"
CORP_SECRET = "s3cret-corp-secret-never-logged"
MEMBER = "zhangsan"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ServerFactory = Callable[..., Awaitable[TestServer]]
Json = dict[str, Any]


@pytest.fixture
async def server(aiohttp_server: ServerFactory, clock: FakeClock) -> TestServer:
    return await aiohttp_server(fake_wecom_app(clock, CORP_ID, CORP_SECRET), access_log=None)


@pytest.fixture
def fake(server: TestServer) -> FakeWeComState:
    fake = server.app[FAKE_WECOM_STATE]
    fake.add_member(MEMBER)
    return fake


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("/")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class WeCom:
    """A bare WeCom caller: no retries, no caching, the raw answers."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def get_token(self, corpid: str = CORP_ID, corpsecret: str = CORP_SECRET) -> Json:
        params = {"corpid": corpid, "corpsecret": corpsecret}
        async with self.http.get(f"{self.base_url}/cgi-bin/gettoken", params=params) as resp:
            assert resp.status == 200
            answer: Json = await resp.json()
            return answer

    async def token(self) -> str:
        answer = await self.get_token()
        assert answer["errcode"] == 0, answer
        token: str = answer["access_token"]
        return token

    async def post(
        self, path: str, body: Any = None, *, token: str | None = None, raw: bytes | None = None
    ) -> Json:
        params = {} if token is None else {"access_token": token}
        url = f"{self.base_url}/cgi-bin/externalcontact/{path}"
        sent: Json = {"data": raw} if raw is not None else {"json": body}
        async with self.http.post(url, params=params, **sent) as resp:
            assert resp.status == 200
            answer: Json = await resp.json()
            assert answer["errmsg"] == ERRMSG[answer["errcode"]]
            return answer

    async def add_way(self, token: str, **overrides: Any) -> Json:
        body: Json = {"type": 1, "scene": 2, "user": [MEMBER], "skip_verify": True}
        body.update(overrides)
        return await self.post("add_contact_way", body, token=token)


@pytest.fixture
def wecom(http: aiohttp.ClientSession, base_url: str, fake: FakeWeComState) -> WeCom:
    """A caller of the fake, whose corp has ``MEMBER`` in it."""
    return WeCom(http, base_url)


def errcode(answer: Json) -> int:
    code: int = answer["errcode"]
    return code


# --- tokens ---


async def test_token_is_issued_with_its_lifetime(wecom: WeCom, fake: FakeWeComState) -> None:
    answer = await wecom.get_token()

    assert answer["errcode"] == 0
    assert answer["errmsg"] == "ok"
    assert answer["expires_in"] == 7200
    assert answer["access_token"] == fake.current
    assert fake.token_requests == 1
    assert fake.requests["token"] == 1


async def test_wrong_corpid_is_40013_and_wrong_secret_is_40001(
    wecom: WeCom, fake: FakeWeComState
) -> None:
    wrong_corp = await wecom.get_token(corpid="ww-someone-else")
    wrong_secret = await wecom.get_token(corpsecret="guessed")

    assert (wrong_corp["errcode"], wrong_corp["errmsg"]) == (40013, "invalid corpid")
    assert (wrong_secret["errcode"], wrong_secret["errmsg"]) == (40001, "invalid credential")
    assert "access_token" not in wrong_corp
    assert fake.token_requests == 2
    assert fake.current is None


async def test_missing_token_is_41001(wecom: WeCom) -> None:
    answer = await wecom.post("del_contact_way", {"config_id": "x"})

    assert errcode(answer) == 41001


async def test_unknown_or_superseded_token_is_40014(wecom: WeCom) -> None:
    first = await wecom.token()
    second = await wecom.token()

    assert errcode(await wecom.post("del_contact_way", {"config_id": "x"}, token="FAKE")) == 40014
    assert errcode(await wecom.add_way(first)) == 40014
    assert errcode(await wecom.add_way(second)) == 0


async def test_revoked_tokens_are_40014(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()
    fake.revoke_tokens()

    assert errcode(await wecom.add_way(token)) == 40014


async def test_token_expires_by_the_fake_clock(wecom: WeCom, clock: FakeClock) -> None:
    token = await wecom.token()

    clock.advance(timedelta(seconds=7199))
    assert errcode(await wecom.add_way(token)) == 0
    clock.advance(timedelta(seconds=1))
    answer = await wecom.add_way(token)

    assert (answer["errcode"], answer["errmsg"]) == (42001, "access_token expired")


async def test_held_token_requests_wait_for_release(wecom: WeCom, fake: FakeWeComState) -> None:
    fake.hold_token_requests()
    pending = asyncio.ensure_future(wecom.get_token())
    await asyncio.wait_for(fake.token_request_arrived.wait(), timeout=10)  # a gate, no timer

    assert fake.token_requests == 1
    assert not pending.done()
    fake.release_token_requests()
    assert errcode(await pending) == 0


# --- contact ways and their QR codes ---


async def test_add_contact_way_keeps_it_and_serves_its_qr_png(
    wecom: WeCom, fake: FakeWeComState, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    token = await wecom.token()

    answer = await wecom.add_way(token, state="c-42", remark="from billbot")

    assert errcode(answer) == 0
    config_id = answer["config_id"]
    way = fake.contact_ways[config_id]
    assert (way.user, way.state, way.skip_verify) == ([MEMBER], "c-42", True)
    assert way.created_at == clock.now()
    assert way.remark == "from billbot"
    async with http.get(answer["qr_code"]) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        png = await resp.read()
    assert png.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width == image.height > 0
    assert png == qr_png(QR_TARGET.format(config_id=config_id))  # the way's own URL


async def test_qr_code_is_404_after_delete(
    wecom: WeCom, fake: FakeWeComState, http: aiohttp.ClientSession, base_url: str
) -> None:
    token = await wecom.token()
    answer = await wecom.add_way(token)
    config_id = answer["config_id"]

    deleted = await wecom.post("del_contact_way", {"config_id": config_id}, token=token)

    assert errcode(deleted) == 0
    assert fake.deleted_ways == [config_id]
    assert config_id not in fake.contact_ways
    async with http.get(answer["qr_code"]) as resp:
        assert resp.status == 404
    async with http.get(f"{base_url}/qr/never-made.png") as resp:
        assert resp.status == 404


async def test_deleting_an_unknown_way_is_41044(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()

    answer = await wecom.post("del_contact_way", {"config_id": "nope"}, token=token)

    assert errcode(answer) == 41044
    assert fake.deleted_ways == []


async def test_unknown_member_is_84061(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()

    answer = await wecom.add_way(token, type=2, user=[MEMBER, "lisi"])

    assert errcode(answer) == 84061
    assert answer["errmsg"] == "user not found or not licensed for contact ways"
    assert fake.contact_ways == {}


async def test_state_longer_than_30_characters_is_40058(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()

    ok = await wecom.add_way(token, state="状" * 30)
    too_long = await wecom.add_way(token, state="s" * 31)

    assert errcode(ok) == 0
    assert errcode(too_long) == 40058
    assert len(fake.contact_ways) == 1


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"type": 3}, 40058),
        ({"scene": 0}, 40058),
        ({"user": []}, 40058),
        ({"type": 1, "user": [MEMBER, MEMBER]}, 40058),
        ({"user": MEMBER}, 47001),
        ({"user": [7]}, 47001),
        ({"type": "1"}, 47001),
        ({"skip_verify": "yes"}, 47001),
    ],
)
async def test_invalid_contact_way_requests(
    wecom: WeCom, fake: FakeWeComState, overrides: Json, code: int
) -> None:
    token = await wecom.token()

    assert errcode(await wecom.add_way(token, **overrides)) == code
    assert fake.contact_ways == {}


async def test_contact_way_limit_is_84074(wecom: WeCom, fake: FakeWeComState) -> None:
    fake.max_contact_ways = 2
    token = await wecom.token()
    first = await wecom.add_way(token)
    await wecom.add_way(token)

    assert errcode(await wecom.add_way(token)) == 84074
    await wecom.post("del_contact_way", {"config_id": first["config_id"]}, token=token)
    assert errcode(await wecom.add_way(token)) == 0


async def test_malformed_and_empty_bodies(wecom: WeCom) -> None:
    token = await wecom.token()

    assert errcode(await wecom.post("add_contact_way", token=token, raw=b"{not json")) == 47001
    assert errcode(await wecom.post("add_contact_way", token=token, raw=b"[1, 2]")) == 47001
    assert errcode(await wecom.post("add_contact_way", token=token, raw=b"")) == 44002
    assert errcode(await wecom.post("del_contact_way", {}, token=token)) == 47001


# --- remarks ---


async def test_remark_is_recorded(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()
    body = {
        "userid": MEMBER,
        "external_userid": "wmEXTERNAL",
        "remark": "备" * 20,
        "description": "d" * 150,
    }

    answer = await wecom.post("remark", body, token=token)

    assert errcode(answer) == 0
    assert fake.remarks == [body]


@pytest.mark.parametrize("field", [{"remark": "r" * 21}, {"description": "述" * 151}])
async def test_remark_length_limits_are_40058(
    wecom: WeCom, fake: FakeWeComState, field: Json
) -> None:
    token = await wecom.token()
    body = {"userid": MEMBER, "external_userid": "wmEXTERNAL", **field}

    assert errcode(await wecom.post("remark", body, token=token)) == 40058
    assert fake.remarks == []


async def test_remark_needs_both_userids(wecom: WeCom) -> None:
    token = await wecom.token()

    answer = await wecom.post("remark", {"userid": MEMBER, "remark": "x"}, token=token)

    assert errcode(answer) == 47001


# --- welcome messages ---


def welcome(code: str, text: str = "欢迎!") -> Json:
    return {"welcome_code": code, "text": {"content": text}}


async def test_welcome_code_works_once(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()
    fake.issue_welcome_code("WELCOME-1")

    first = await wecom.post("send_welcome_msg", welcome("WELCOME-1", "你好"), token=token)
    again = await wecom.post("send_welcome_msg", welcome("WELCOME-1", "again"), token=token)

    assert errcode(first) == 0
    assert (again["errcode"], again["errmsg"]) == (41096, "invalid welcome_code or already used")
    assert fake.welcomes == [("WELCOME-1", "你好")]


async def test_welcome_code_expires_after_20_seconds(
    wecom: WeCom, fake: FakeWeComState, clock: FakeClock
) -> None:
    token = await wecom.token()
    fake.issue_welcome_code("ON-TIME")
    fake.issue_welcome_code("LATE")

    clock.advance(timedelta(seconds=20))
    on_time = await wecom.post("send_welcome_msg", welcome("ON-TIME"), token=token)
    clock.advance(timedelta(milliseconds=1))
    late = await wecom.post("send_welcome_msg", welcome("LATE"), token=token)

    assert errcode(on_time) == 0
    assert errcode(late) == 41096
    assert fake.welcomes == [("ON-TIME", "欢迎!")]


async def test_unknown_welcome_code_is_41096(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()

    assert errcode(await wecom.post("send_welcome_msg", welcome("NEVER"), token=token)) == 41096
    assert fake.welcomes == []


async def test_welcome_without_text_is_47001(wecom: WeCom, fake: FakeWeComState) -> None:
    token = await wecom.token()
    fake.issue_welcome_code("W")

    answer = await wecom.post("send_welcome_msg", {"welcome_code": "W"}, token=token)

    assert errcode(answer) == 47001


# --- injected failures ---


async def test_injected_token_failure_is_counted_then_answered(
    wecom: WeCom, fake: FakeWeComState
) -> None:
    fake.fail_next(-1, on="token")

    failed = await wecom.get_token()
    ok = await wecom.get_token()

    assert (failed["errcode"], failed["errmsg"]) == (-1, "system busy")
    assert errcode(ok) == 0
    assert fake.token_requests == 2


async def test_injected_failures_hit_only_their_endpoint(
    wecom: WeCom, fake: FakeWeComState
) -> None:
    token = await wecom.token()
    fake.fail_next(45009, times=2, on="add_way")
    fake.fail_next(-1, on="welcome")
    fake.issue_welcome_code("W")

    answers = [errcode(await wecom.add_way(token)) for _ in range(3)]
    welcomed = await wecom.post("send_welcome_msg", welcome("W"), token=token)
    remarked = await wecom.post("remark", {"userid": MEMBER, "external_userid": "wmX"}, token=token)

    assert answers == [45009, 45009, 0]
    assert errcode(welcomed) == -1
    assert errcode(remarked) == 0
    assert len(fake.contact_ways) == 1
    assert fake.requests["add_way"] == 3
    assert fake.requests["welcome"] == 1
    assert fake.requests["remark"] == 1


@pytest.mark.parametrize(
    ("endpoint", "path", "body"),
    [
        ("del_way", "del_contact_way", {"config_id": "x"}),
        ("remark", "remark", {"userid": MEMBER, "external_userid": "wmX"}),
    ],
)
async def test_injected_failure_comes_before_the_token_check(
    wecom: WeCom, fake: FakeWeComState, endpoint: Endpoint, path: str, body: Json
) -> None:
    fake.fail_next(48002, on=endpoint)

    answer = await wecom.post(path, body)

    assert errcode(answer) == 48002
    assert fake.requests[endpoint] == 1

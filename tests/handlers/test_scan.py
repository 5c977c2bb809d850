"""Scan to card over the real protocol: `billbot qr` makes a receipt's code through WeChat's
qrcode/create (the fake), and scanning it leads to the card with nothing typed."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.cli import main
from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from bot.privacy.masking import mask_order_no
from bot.receipt_qr import make_receipt_qrs
from bot.texts import Texts
from tests.conftest import Customer
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import Client

ZH = Texts("zh")
DD = "DD20250503123456"


def customer(api: Client, settings: Settings, clock: FakeClock, openid: str) -> Customer:
    first = zlib.crc32(openid.encode()) % 10**9  # MsgIds are unique across customers
    return Customer(api, settings, clock, openid=openid, first_msg_id=first)


async def receipt_scene(
    settings: Settings, wechat: TestServer, clock: FakeClock, tmp_path: Path, days: int = 30
) -> Path:
    """Makes the code as `billbot qr` does (the order typed in lower case); returns the PNG.
    The scene WeChat was given is in the fake's ``qr_scenes``."""
    base = str(wechat.make_url("")).rstrip("/")
    (made,) = await make_receipt_qrs(
        replace(settings, wechat_api_base=base), [DD.lower()], tmp_path, clock, days=days
    )
    assert made.path is not None, made.problem
    return made.path


async def test_a_new_follower_scanning_a_receipt_gets_the_card_after_consent(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    tmp_path: Path,
) -> None:
    png = await receipt_scene(settings, wechat, clock, tmp_path)
    assert Image.open(png).width >= 200  # a printable code
    (scene,) = wechat_state.qr_scenes
    assert DD not in scene and "3456" not in scene and len(scene) <= 64  # opaque
    c = customer(api, settings, clock, "oScanner000000000000000000001")
    notice = await c.event("subscribe", f"qrscene_{scene}")
    assert ZH.say("greeting") in notice and "/card/" not in notice  # consent comes first
    card = await c.say("同意")
    assert "/card/" in card  # nothing typed: no order number, no amount


async def test_a_follower_scanning_again_gets_the_card_at_once_and_others_cannot_use_it(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    tmp_path: Path,
) -> None:
    await receipt_scene(settings, wechat, clock, tmp_path)
    (scene,) = wechat_state.qr_scenes
    owner = customer(api, settings, clock, "oOwner00000000000000000000001")
    await owner.say("你好")
    await owner.say("同意")
    clock.advance(timedelta(seconds=5))
    assert "/card/" in await owner.event("SCAN", scene)
    clock.advance(timedelta(seconds=5))
    assert "/card/" in await owner.event("SCAN", scene)  # the same customer again: fine

    other = customer(api, settings, clock, "oSomebodyElse000000000000001")
    await other.say("你好")
    await other.say("同意")
    clock.advance(timedelta(seconds=5))
    used = await other.event("SCAN", scene)
    assert used == ZH.say("scan_used") + "\n\n" + ZH.say("ask_order")


async def test_expired_and_forged_scenes_are_answered_kindly(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    tmp_path: Path,
) -> None:
    await receipt_scene(settings, wechat, clock, tmp_path, days=1)
    (scene,) = wechat_state.qr_scenes
    c = customer(api, settings, clock, "oLateScanner0000000000000001")
    await c.say("你好")
    await c.say("同意")
    forged = scene[:-2] + ("AA" if not scene.endswith("AA") else "BB")
    clock.advance(timedelta(seconds=5))
    assert await c.event("SCAN", forged) == ZH.say("scan_invalid") + "\n\n" + ZH.say("ask_order")
    clock.advance(timedelta(days=1, seconds=1))
    assert await c.event("SCAN", scene) == ZH.say("scan_expired") + "\n\n" + ZH.say("ask_order")


def test_billbot_qr_reports_an_order_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/q.db")
    assert main(["qr", "DD20990101000001", "--out", str(tmp_path / "codes")]) == 1
    printed = capsys.readouterr().out
    assert mask_order_no("DD20990101000001") in printed and "DD20990101000001" not in printed
    assert not (tmp_path / "codes").exists()


async def test_expired_codes_are_purged_72_hours_after_they_expire(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    tmp_path: Path,
) -> None:
    from storage.retention import purge_expired

    await receipt_scene(settings, wechat, clock, tmp_path, days=1)
    clock.advance(timedelta(days=1, hours=71))
    assert (await purge_expired(api.app[SESSIONS], clock.now()))["receipt_codes"] == 0
    clock.advance(timedelta(hours=2))
    assert (await purge_expired(api.app[SESSIONS], clock.now()))["receipt_codes"] == 1


async def test_a_refused_code_tells_the_operator_what_to_check(
    api: Client,
    settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    wechat_state: FakeWeChatState,
    tmp_path: Path,
) -> None:
    wechat_state.fail_next(48001, on="qrcode")  # an account that may not make QR codes
    base = str(wechat.make_url("")).rstrip("/")
    (made,) = await make_receipt_qrs(replace(settings, wechat_api_base=base), [DD], tmp_path, clock)
    assert made.path is None and "48001" in made.problem
    assert "WECHAT_APP_ID" in made.problem and "verified service account" in made.problem

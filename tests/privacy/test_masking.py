"""Masks show enough to recognise an id and never enough to reuse it."""

from __future__ import annotations

import pytest

from bot.privacy.masking import mask_order_no, mask_user_id, mask_wechat_id, order_tail


@pytest.mark.parametrize(
    ("wid", "masked"),
    [
        ("wx_ab12cd89", "wx_ab****89"),
        ("zhangsan2024", "zh****24"),
        ("wx_abcdefghijklmnopq", "wx_ab****pq"),
        ("  wx_ab12cd89 ", "wx_ab****89"),
        ("wx_abc", "wx_a****"),
        ("abc1234", "a****"),
        ("a", "a****"),
        ("", "****"),
        ("wx_", "wx_****"),
    ],
)
def test_mask_wechat_id(wid: str, masked: str) -> None:
    assert mask_wechat_id(wid) == masked


@pytest.mark.parametrize(
    "wid", ["wx_ab12cd89", "wx_abcdefghijklmnopqrstu", "customer-service-01", "abcdefg", "ab"]
)
def test_mask_wechat_id_reveals_at_most_four_characters(wid: str) -> None:
    masked = mask_wechat_id(wid).removeprefix("wx_")
    body = wid.removeprefix("wx_")
    revealed = masked.replace("****", "")
    assert len(revealed) <= 4
    assert len(revealed) <= len(body) // 2 or len(revealed) <= 1
    assert masked.count("*") == 4  # fixed width: the mask does not tell the length


def test_order_masks_and_tail() -> None:
    assert mask_order_no("202605031234563456") == "****3456"
    assert order_tail("202605031234563456") == "3456"
    assert order_tail(" 2026-3456 ") == "3456"


@pytest.mark.parametrize(
    ("no", "masked"), [("123456", "****456"), ("1234", "****34"), ("1", "****")]
)
def test_short_order_numbers_are_never_shown_whole(no: str, masked: str) -> None:
    assert mask_order_no(no) == masked


@pytest.mark.parametrize(
    ("openid", "masked"),
    [
        ("oAbCdEfGhIjKlMnOpQrStUvWxYz12", "oAbC****12"),
        ("zhangsan2024", "zhan****24"),
        ("short", "s****"),
        ("", "****"),
    ],
)
def test_mask_user_id(openid: str, masked: str) -> None:
    assert mask_user_id(openid) == masked

"""Masks show enough to recognise an id and never enough to reuse it."""

from __future__ import annotations

import re
import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.privacy.masking import (
    AMOUNT_LABEL,
    DATE_LABEL,
    EMAIL_LABEL,
    LINK_LABEL,
    mask_order_no,
    mask_text,
    mask_user_id,
    mask_wechat_id,
    order_tail,
)


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


# --- the agent's masked view of what customers type ------------------------------------


@pytest.mark.parametrize(
    ("typed", "secret"),
    [
        ("我的手机 +86 138.1234.5678", "13812345678"),
        ("手机 138 1234 5678 谢谢", "13812345678"),
        ("电话 (010) 8888-6666", "88886666"),
        ("订单ＤＤ２０２５０５０３１２３４５６", "DD20250503123456"),
        ("邮箱 alice.w@example.com", "alice.w@example.com"),
        ("身份证 11010519491231002X", "11010519491231002X"),
        ("快递 SF1234567890 到了吗", "SF1234567890"),
        ("QQ 123456789", "123456789"),
    ],
)
def test_sensitive_values_in_any_form_are_masked(typed: str, secret: str) -> None:
    shown = mask_text(typed)
    alnum = re.sub(r"[^0-9A-Za-z]", "", shown)
    plain = re.sub(r"[^0-9A-Za-z]", "", secret)
    assert not any(plain[i : i + 5] in alnum for i in range(len(plain) - 4)), shown


@pytest.mark.parametrize(
    ("typed", "label"),
    [
        ("卡号后四位6789，5月3日", DATE_LABEL),
        ("金额128", AMOUNT_LABEL),
        ("¥１２８.５０", AMOUNT_LABEL),
        ("付了 99 块", AMOUNT_LABEL),
        ("write to bob@mail.example.cn please", EMAIL_LABEL),
        ("https://bot.example/card/abc.def", LINK_LABEL),
    ],
)
def test_amounts_dates_emails_and_links_become_labels(typed: str, label: str) -> None:
    assert label in mask_text(typed)


def test_a_card_last_four_beside_its_date_does_not_survive() -> None:
    shown = mask_text("后四位 6789 日期 2025-05-03")
    assert "6789" not in shown and "05-03" not in shown


# Surroundings a customer might type: Chinese, punctuation, spaces, emoji — anything but
# letters and digits, which would join the value into one longer run (masked just the same).
_AROUND = st.text(
    alphabet=st.sampled_from(
        list("你好我的订单号是电话请帮忙查一下，。！？、：；“”（）【】 \n😀🙏-_/")
    ),
    max_size=12,
)
_PHONE = st.builds(
    lambda d, sep, plus: ("+86" + sep if plus else "") + "1" + d[:2] + sep + d[2:6] + sep + d[6:],
    st.text(alphabet=string.digits, min_size=10, max_size=10),
    st.sampled_from(["", " ", "-", ".", "  "]),
    st.booleans(),
)
_ORDER = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=6, max_size=28).filter(
    lambda s: sum(c.isdigit() for c in s) >= 5
)
_ID_CARD = st.builds(
    lambda d, x: d + x,
    st.text(alphabet=string.digits, min_size=17, max_size=17),
    st.sampled_from([*string.digits, "X"]),
)
_EMAIL = st.builds(
    lambda user, host: f"{user}@{host}.com",
    st.text(alphabet=string.ascii_lowercase + string.digits + "._", min_size=1, max_size=16),
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10),
)
_FULL_WIDTH = st.booleans()


def _widen(text: str) -> str:
    """Full-width forms, as some keyboards type them."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@settings(max_examples=300, deadline=None)
@given(
    before=_AROUND,
    value=st.one_of(_PHONE, _ORDER, _ID_CARD, _EMAIL),
    after=_AROUND,
    wide=_FULL_WIDTH,
)
def test_no_run_of_more_than_four_characters_of_a_sensitive_value_survives(
    before: str, value: str, after: str, wide: bool
) -> None:
    typed = before + (_widen(value) if wide else value) + after
    shown = mask_text(typed)
    for label in (LINK_LABEL, EMAIL_LABEL, DATE_LABEL, AMOUNT_LABEL):
        shown = shown.replace(label, " ")
    alnum = re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", shown).lower())
    secret = re.sub(r"[^0-9a-z]", "", value.lower())
    for i in range(len(secret) - 4):
        assert secret[i : i + 5] not in alnum, (typed, shown)

"""Property tests: the parsers of what customers type never fail, whatever they type;
normalising twice changes nothing; a signed card link with any one byte changed is refused."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.privacy.links import LinkError, LinkSigner
from bot.understanding import (
    detect_intent,
    normalize_text,
    parse_amount,
    parse_order_no,
    understand,
)

# Customers' text: any Unicode (surrogates excluded, as WeChat's UTF-8 cannot carry them),
# weighted towards what shows up in bills and chats.
CHAT = st.one_of(
    st.text(max_size=200),
    st.text(
        alphabet=st.sampled_from(
            list(
                string.digits
                + string.ascii_letters
                + " -_.,:;/¥￥元块角分零一二三四五六七八九十百千万"
                "壹贰叁肆伍陆柒捌玖拾佰仟幺两洞订单号金额转人工不要，。：（）０１２３４５６７８９"
            )
        ),
        max_size=120,
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=CHAT)
def test_understanding_never_raises_and_normalising_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    order = parse_order_no(text)
    assert order is None or (order.strip() == order and len(order) >= 4)
    amount = parse_amount(text)
    assert amount is None or amount.is_finite()
    understand(text)
    detect_intent(text)


KEY = "property-test-link-key-0123456789"


@settings(max_examples=300, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["c", "o", "u", "r", "j", "k"]),
        st.one_of(st.integers(0, 10**9), st.text(max_size=20)),
        min_size=1,
    ),
    position=st.integers(min_value=0),
    replacement=st.characters(min_codepoint=33, max_codepoint=126),
)
def test_a_signed_link_with_any_one_character_changed_is_refused(
    payload: dict[str, str | int], position: int, replacement: str
) -> None:
    signer = LinkSigner([KEY], FakeClock())
    token = signer.sign(payload)
    assert signer.verify(token) == {**payload, "exp": signer.verify(token)["exp"]}
    i = position % len(token)
    if token[i] == replacement:
        return
    forged = token[:i] + replacement + token[i + 1 :]
    with pytest.raises(LinkError):
        signer.verify(forged)

"""A reply WeChat refused (or that never reached WeChat) says what happened and what to do,
by a stable key, and still counts as working the conversation: the claim's lease restarts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.handoff.send_failures import KNOWN_CODES, send_failure
from bot.refusals import Refusal
from storage.records import HandoffStatus
from tests.handoff.desk import LEASE, Desk, user

ALMOST = LEASE - timedelta(seconds=10)  # the claim was nearly lapsing when the agent tried
HAN = re.compile(r"[\u4e00-\u9fff]")
PARKING = {45015, 45047, 43004}  # nothing gets through until the customer writes again
FOR_THE_ADMINISTRATOR = {40001, 40014, 42001, 40164, 48001, 40125, 40013, 45009}


async def claimed_and_nearly_lapsed(desk: Desk) -> int:
    handoff = await desk.queued(user(1))
    await desk.service.claim(desk.agents[1], handoff)
    desk.clock.advance(ALMOST)
    return handoff


async def refused_reply(desk: Desk, handoff: int) -> Refusal:
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(desk.agents[1], handoff, "您好，我来帮您查")
    return refused.value


async def assert_lease_renewed(desk: Desk, handoff: int, parked: bool) -> None:
    """The attempt restarted the lease (committed, whatever WeChat said), the message was taken
    back, and a minute later the agent still holds the conversation."""
    stored = await desk.stored(handoff)
    assert stored.lease_until == desk.clock.now() + LEASE
    assert stored.status == (HandoffStatus.WAITING_CUSTOMER if parked else HandoffStatus.CLAIMED)
    view = await desk.service.view(desk.agents[1], handoff)
    assert all(line.text != "您好，我来帮您查" for line in view.transcript)
    desk.clock.advance(timedelta(minutes=1))  # past the lease the claim had before the attempt
    assert await desk.service.release_expired_leases() == 0
    assert [i.id for i in await desk.service.mine(desk.agents[1])] == [handoff]


@pytest.mark.parametrize(
    "code", [45015, 45047, 40003, 43004, 45002, 45009, 45011, 48001, 40164, 47001]
)
async def test_each_refusal_of_the_send_has_its_own_words_and_renews_the_lease(
    desk: Desk, code: int
) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.fail_next(code)
    refused = await refused_reply(desk, handoff)
    assert refused.key == f"wechat_{code}"
    assert refused.status == send_failure(code).status
    assert HAN.search(refused.zh) and not HAN.search(refused.en)
    await assert_lease_renewed(desk, handoff, parked=code in PARKING)


@pytest.mark.parametrize("code", [40001, 40014, 42001])
async def test_a_token_refused_even_after_a_fresh_one_sends_the_agent_to_the_administrator(
    desk: Desk, code: int
) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.fail_next(code, times=2)  # the client fetches a new token and retries once
    refused = await refused_reply(desk, handoff)
    assert refused.key == f"wechat_{code}" and refused.status == 502
    assert "WECHAT_APP_SECRET" in refused.en and "管理员" in refused.zh
    await assert_lease_renewed(desk, handoff, parked=False)


@pytest.mark.parametrize("code", [40125, 40013])
async def test_credentials_wechat_refuses_at_the_token_request_are_named(
    desk: Desk, code: int
) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.revoke_tokens()  # the stored token is refused: a new one is asked for…
    desk.wechat.fail_next(code, on="token")  # …and WeChat refuses the app's credentials
    refused = await refused_reply(desk, handoff)
    assert refused.key == f"wechat_{code}"
    assert ("WECHAT_APP_SECRET" if code == 40125 else "WECHAT_APP_ID") in refused.en
    await assert_lease_renewed(desk, handoff, parked=False)


async def test_wechat_busy_is_not_mistaken_for_a_network_failure(desk: Desk) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.fail_next(-1)  # WeChat itself answered "system error"
    refused = await refused_reply(desk, handoff)
    assert refused.key == "wechat_busy" and "WECHAT_API_BASE" not in refused.en
    await assert_lease_renewed(desk, handoff, parked=False)


async def test_an_unresolvable_wechat_host_is_said_as_such(desk: Desk) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.revoke_tokens()  # so the server below must reach WeChat for a token too
    elsewhere = desk.service_at("http://wechat.invalid")
    with pytest.raises(Refusal) as refused:
        await elsewhere.reply(desk.agents[1], handoff, "您好，我来帮您查")
    assert refused.value.key == "wechat_-1" and refused.value.status == 502
    assert "WECHAT_API_BASE" in refused.value.en and "WECHAT_API_BASE" in refused.value.zh
    assert "DNS" in refused.value.en
    await assert_lease_renewed(desk, handoff, parked=False)


async def test_an_unknown_code_is_quoted_with_wechats_own_words(desk: Desk) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)
    desk.wechat.fail_next(47001)
    refused = await refused_reply(desk, handoff)
    assert refused.key == "wechat_47001"
    for words in (refused.zh, refused.en):
        assert "47001" in words and "data format error" in words


async def test_a_reply_we_know_wechat_would_refuse_is_not_sent_and_still_renews(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1))
    desk.clock.advance(timedelta(hours=49))  # nobody took it while WeChat's window was open
    await desk.service.claim(desk.agents[1], handoff)
    desk.clock.advance(ALMOST)
    calls = desk.wechat.send_requests
    refused = await refused_reply(desk, handoff)
    assert refused.key == "wechat_45015" and desk.wechat.send_requests == calls
    await assert_lease_renewed(desk, handoff, parked=True)


async def test_a_fault_of_ours_while_sending_is_not_blamed_on_wechat(desk: Desk) -> None:
    handoff = await claimed_and_nearly_lapsed(desk)

    class Broken:
        async def send_text(self, openid: str, text: str) -> None:
            raise RuntimeError("a bug on our side")

    desk.service._sender = Broken()  # type: ignore[attr-defined]
    refused = await refused_reply(desk, handoff)
    assert refused.key == "send_failed" and refused.status == 503
    assert "WeChat" not in refused.en and "server log" in refused.en
    await assert_lease_renewed(desk, handoff, parked=False)


def test_every_known_code_speaks_to_the_agent_in_both_languages() -> None:
    for code in KNOWN_CODES:
        failure = send_failure(code, "whatever WeChat said", reached=False)
        assert failure.key == f"wechat_{code}"
        assert HAN.search(failure.zh) and not HAN.search(failure.en)
        assert "whatever WeChat said" not in failure.zh + failure.en  # written, not echoed
        if code in FOR_THE_ADMINISTRATOR or code == -1:
            assert "管理员" in failure.zh and "administrator" in failure.en

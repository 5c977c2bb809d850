"""The handoff queue on a real database, talking to the fake WeChat API over real HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.handoff.events import EventBus
from bot.handoff.hours import ServiceHours
from bot.handoff.queue import (
    CONSOLE_STALE_AFTER_BEATS,
    AgentView,
    HandoffService,
)
from bot.refusals import Refusal
from bot.texts import Texts
from storage.models import AuditEntry
from storage.records import ConversationData, ConversationRecord, HandoffStatus, Owner
from storage.repositories import ConversationRepository, Repositories
from tests.engine.test_dispatcher import make_dispatcher
from tests.handoff.desk import ORDER, Desk, user

ZH = Texts("zh")


async def test_twenty_concurrent_claims_have_exactly_one_winner(desk: Desk) -> None:
    handoff = await desk.queued(user(1))

    async def claim(agent: AgentView) -> int:
        try:
            await desk.service.claim(agent, handoff)
        except Refusal as exc:
            return exc.status
        return 200

    statuses = await asyncio.gather(*(claim(a) for a in desk.agents[1:21]))
    assert sorted(statuses) == [200] + [409] * 19
    [mine] = [i for a in desk.agents[1:] for i in await desk.service.mine(a)]
    assert mine.id == handoff and mine.status == "claimed"


async def test_bot_is_silent_while_an_agent_owns_the_conversation(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    async with desk.events.listen() as events:
        assert await desk.say(user(1), "在吗？我的快递呢") == ""
        assert (await events.get())["handoff_id"] == handoff
    view = await desk.service.view(agent, handoff)
    assert view.transcript[-1].sender == "customer"
    assert view.transcript[-1].text == "在吗？我的快递呢"


async def test_reply_reaches_the_customer_through_wechat(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    view = await desk.service.reply(agent, handoff, "您好，我是客服小王")
    assert desk.wechat.sent[-1] == (user(1), "您好，我是客服小王")
    assert view.replies_left == 4 and view.transcript[-1].sender == "agent:a0"


async def test_hand_back_resumes_at_the_step_the_bot_left(desk: Desk) -> None:
    handoff = await desk.queued(user(1), ORDER)  # asked for a person while verifying
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    await desk.service.hand_back(agent, handoff)
    assert "wx_ab****89" in await desk.say(user(1), "128.50")


async def test_after_resolve_the_customer_is_back_with_the_bot(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    await desk.service.resolve(agent, handoff)
    reply = await desk.say(user(1), ORDER)
    assert "金额" in reply  # the bot answers, not a stale agent
    async with desk.sessions() as s:
        conv = await ConversationRepository(s).get("wechat", user(1))
    assert conv is not None and conv.owner == Owner.BOT


async def conversation_of(desk: Desk, customer: str) -> ConversationRecord:
    async with desk.sessions() as s:
        conv = await ConversationRepository(s).get("wechat", customer)
    assert conv is not None
    return conv


async def test_a_hand_back_keeps_the_order_and_lifts_the_guess_count(desk: Desk) -> None:
    handoff = await desk.queued(user(1), ORDER, "100")  # one wrong amount, then a person
    queued = await conversation_of(desk, user(1))
    assert queued.data.verify_failures == 1 and queued.data.before_handoff == "verify"
    await desk.service.claim(desk.agents[1], handoff)
    await desk.service.hand_back(desk.agents[1], handoff)
    back = await conversation_of(desk, user(1))
    assert back.state == "verify" and back.data == replace(
        queued.data, verify_failures=0, handoff_id=None, handoff_ref=None, before_handoff=None
    )


async def test_a_resolved_case_clears_the_order_and_keeps_the_guess_count(desk: Desk) -> None:
    handoff = await desk.queued(user(1), ORDER, "100")
    queued = await conversation_of(desk, user(1))
    await desk.service.claim(desk.agents[1], handoff)
    await desk.service.resolve(desk.agents[1], handoff)
    closed = await conversation_of(desk, user(1))
    assert closed.state == "ask_order" and closed.data == ConversationData(
        consent=queued.data.consent, verify_failures=1, journey=queued.data.journey
    )


async def test_after_a_resolve_one_unreadable_message_does_not_go_back_to_a_person(
    desk: Desk,
) -> None:
    # (a resolve once kept the count of unreadable messages that had led to the handoff)
    for said in ("你好", "同意", "天气不错", "随便看看", "hmm"):
        await desk.say(user(1), said)
    [item] = await desk.service.queue(desk.agents[0])
    await desk.service.claim(desk.agents[1], item.id)
    await desk.service.resolve(desk.agents[1], item.id)
    assert await desk.say(user(1), "天气不错") == ZH.say("order_hint")


async def test_a_lapsed_lease_returns_the_conversation_to_the_head_of_the_queue(
    desk: Desk,
) -> None:
    first = await desk.queued(user(1))
    await desk.queued(user(2))
    agent = desk.agents[1]
    await desk.service.claim(agent, first)
    desk.clock.advance(timedelta(minutes=2, seconds=1))
    queue = await desk.service.queue(desk.agents[2])
    assert queue[0].id == first and queue[0].dropped_by == "a0" and queue[0].priority == 1
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(agent, first, "sorry, I was away")
    assert refused.value.status == 409
    async with desk.sessions() as s:
        conv = await ConversationRepository(s).get("wechat", user(1))
    assert conv is not None and conv.owner == Owner.QUEUE


async def test_a_reply_ends_the_lease_and_a_customer_message_restarts_it(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    await desk.service.reply(agent, handoff, "稍等，我查一下")
    desk.clock.advance(timedelta(minutes=30))  # waiting for the customer is not dropping them
    assert [i.id for i in await desk.service.mine(agent)] == [handoff]
    await desk.say(user(1), "好的")
    desk.clock.advance(timedelta(minutes=3))  # now the agent owes an answer, and didn't give it
    assert [i.id for i in await desk.service.queue(agent)] == [handoff]


async def test_after_hours_the_customer_hears_the_opening_time(desk: Desk) -> None:
    desk.clock.set(datetime(2026, 5, 3, 15, 0, tzinfo=UTC))  # 23:00 in China
    closed = HandoffService(
        desk.sessions, desk.clock, None, EventBus(), hours=ServiceHours.parse("09:00-21:00")
    )
    desk.bot = make_dispatcher(desk.sessions, desk.clock, handoffs=closed)
    for text in ("你好", "同意"):
        await desk.say(user(1), text)
    reply = await desk.say(user(1), "转人工")
    assert "5月4日 09:00（北京时间）" in reply and "服务单号" in reply


async def test_waiting_customers_hear_only_meaningful_moves(desk: Desk) -> None:
    ids = [await desk.queued(user(n)) for n in range(1, 5)]
    first_reply_count = len(desk.wechat.sent)
    await desk.service.claim(desk.agents[1], ids[0])  # 4th: 4 → 3, not worth a message
    assert len(desk.wechat.sent) == first_reply_count + 1  # only the 2nd, now next in line
    assert desk.wechat.sent[-1][0] == user(2) and "第 1 位" in desk.wechat.sent[-1][1]
    await desk.service.claim(desk.agents[2], ids[1])  # 4th: 3 → 2, halved since told 4
    assert {u for u, _ in desk.wechat.sent[first_reply_count:]} == {user(2), user(3), user(4)}


async def test_wechat_refusals_park_the_conversation_with_plain_words(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    desk.wechat.fail_next(45015)
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(agent, handoff, "在吗")
    assert refused.value.status == 409 and "48" in refused.value.zh
    [parked] = await desk.service.mine(agent)
    assert parked.status == "waiting_customer"
    await desk.say(user(1), "我在")  # the customer writes: the conversation wakes up
    [woken] = await desk.service.mine(agent)
    assert woken.status == "claimed"


async def test_five_replies_per_customer_message_then_refused_without_calling_wechat(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    for i in range(5):
        await desk.service.reply(agent, handoff, f"第{i + 1}条")
    calls = desk.wechat.send_requests
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(agent, handoff, "第6条")
    assert refused.value.status == 409 and "5" in refused.value.zh
    assert desk.wechat.send_requests == calls
    await desk.say(user(1), "还有问题")
    await desk.service.reply(agent, handoff, "请讲")  # the quota is back


async def test_outside_the_48_hour_window_nothing_is_sent(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    await desk.service.reply(agent, handoff, "稍等")
    desk.clock.advance(timedelta(hours=49))
    calls = desk.wechat.send_requests
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(agent, handoff, "还在吗")
    assert refused.value.status == 409 and desk.wechat.send_requests == calls


async def test_agents_read_only_their_own_conversations_and_admins_unmask_with_a_reason(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1), ORDER)
    owner, other, admin = desk.agents[1], desk.agents[2], desk.agents[0]
    await desk.service.claim(owner, handoff)
    with pytest.raises(Refusal) as refused:
        await desk.service.view(other, handoff)
    assert refused.value.status == 403
    masked = await desk.service.view(owner, handoff)
    assert all(ORDER not in line.text for line in masked.transcript)
    assert any("****3456" in line.text for line in masked.transcript)
    with pytest.raises(Refusal):
        await desk.service.view(owner, handoff, unmask_reason="curious")
    with pytest.raises(Refusal):
        await desk.service.view(admin, handoff, unmask_reason="  ")
    clear = await desk.service.view(admin, handoff, unmask_reason="客户投诉核实")
    assert any(ORDER in line.text for line in clear.transcript)
    await desk.service.view(admin, handoff, unmask_reason="客户投诉核实")  # a live refresh
    desk.clock.advance(timedelta(minutes=11))
    await desk.service.view(admin, handoff, unmask_reason="客户投诉核实")  # a new look
    async with desk.sessions() as s:
        audits = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "unmask")
        )
    assert audits == 2


async def test_transfer_moves_ownership_and_notes_stay_private(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    a, b = desk.agents[1], desk.agents[2]
    await desk.service.claim(a, handoff)
    await desk.service.note(a, handoff, "客户很着急")
    await desk.service.transfer(a, handoff, b.id)
    with pytest.raises(Refusal):
        await desk.service.reply(a, handoff, "hi")
    view = await desk.service.reply(b, handoff, "我来接手")
    assert any(line.sender == "note:a0" for line in view.transcript)
    [row] = await desk.service.mine(b)  # the row shows the newest three lines, never notes
    assert [line.sender for line in row.last_messages] == ["customer", "bot", "agent:a1"]
    assert row.last_messages[-1].text == "我来接手" and row.claimed_by == "a1"
    assert all("着急" not in text for _, text in desk.wechat.sent)


async def test_today_figures_count_from_the_handoff(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    desk.clock.advance(timedelta(minutes=4))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    desk.clock.advance(timedelta(minutes=1))
    await desk.service.reply(agent, handoff, "您好")
    desk.clock.advance(timedelta(minutes=5))
    await desk.service.resolve(agent, handoff)
    today = await desk.service.today()
    assert today.handled_today == 1 and today.waiting == 0
    assert today.avg_wait_seconds == 240
    assert today.avg_first_response_seconds == 300
    assert today.avg_resolution_seconds == 600


async def test_claim_next_takes_the_highest_priority_then_the_oldest(desk: Desk) -> None:
    older, newer = await desk.queued(user(1)), await desk.queued(user(2))
    await desk.service.claim(desk.agents[1], older)
    desk.clock.advance(timedelta(minutes=3))  # older's lease lapses: it comes back boosted
    third = await desk.queued(user(3))
    first = await desk.service.claim_next(desk.agents[2])
    second = await desk.service.claim_next(desk.agents[3])
    last = await desk.service.claim_next(desk.agents[4])
    assert [i.id if i else None for i in (first, second, last)] == [older, newer, third]
    assert await desk.service.claim_next(desk.agents[5]) is None


async def test_closed_conversations_cannot_be_claimed_or_transferred(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    await desk.service.claim(desk.agents[1], handoff)
    await desk.service.resolve(desk.agents[1], handoff)
    for action in (
        desk.service.claim(desk.agents[2], handoff),
        desk.service.transfer(desk.agents[0], handoff, desk.agents[2].id),
        desk.service.resolve(desk.agents[0], handoff),
    ):
        with pytest.raises(Refusal) as refused:
            await action
        assert refused.value.status == 409 and "结束" in refused.value.zh
    assert "金额" in await desk.say(user(1), ORDER)  # the bot, not a silent owner


async def test_a_failed_send_does_not_reopen_a_conversation_resolved_meanwhile(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1))
    agent, admin = desk.agents[1], desk.agents[0]
    await desk.service.claim(agent, handoff)
    real = desk.service._sender  # type: ignore[attr-defined]

    class ResolvedDuringSend:
        """WeChat answers 45015 while an admin resolves the conversation."""

        async def send_text(self, openid: str, text: str) -> None:
            await desk.service.resolve(admin, handoff, confirm_held=True)
            desk.wechat.fail_next(45015)
            await real.send_text(openid, text)

    desk.service._sender = ResolvedDuringSend()  # type: ignore[attr-defined]
    with pytest.raises(Refusal):
        await desk.service.reply(agent, handoff, "在吗")
    assert await desk.service.mine(admin) == []  # not parked: it stays resolved
    assert "服务单号" in await desk.say(user(1), "转人工")  # a fresh handoff, a fresh ref
    assert len(await desk.service.queue(admin)) == 1


async def test_queue_updates_count_against_the_reply_quota(desk: Desk) -> None:
    ids = [await desk.queued(user(n)) for n in (1, 2)]
    await desk.service.claim(desk.agents[1], ids[0])  # user 2 is told they are next
    await desk.service.claim(desk.agents[2], ids[1])
    view = await desk.service.view(desk.agents[2], ids[1])
    assert view.replies_left == 4
    for i in range(4):
        await desk.service.reply(desk.agents[2], ids[1], f"第{i + 1}条")
    with pytest.raises(Refusal) as refused:
        await desk.service.reply(desk.agents[2], ids[1], "第5条")
    assert refused.value.status == 409  # refused by us, before WeChat's 45047


async def test_withdrawing_consent_works_while_an_agent_owns_the_conversation(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1))
    await desk.service.claim(desk.agents[1], handoff)
    reply = await desk.say(user(1), "撤回同意")
    assert "撤回" in reply
    assert await desk.service.mine(desk.agents[1]) == []
    async with desk.sessions() as s:
        conv = await ConversationRepository(s).get("wechat", user(1))
    assert conv is not None and conv.owner == Owner.BOT


async def test_an_agent_who_closes_the_console_does_not_keep_conversations(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    one = await desk.service.console_opened(agent.id)
    two = await desk.service.console_opened(agent.id)  # two tabs
    await desk.service.claim(agent, handoff)
    await desk.service.reply(agent, handoff, "稍等")  # nothing owed now: no lease running
    await desk.service.console_closed(one)  # one tab closed: still there
    for _ in range(20):  # ten minutes, the other tab beating
        desk.clock.advance(desk.service.console_heartbeat)
        await desk.service.console_alive(two)
    assert await desk.service.forget_stale_consoles() == 0
    assert [i.id for i in await desk.service.mine(agent)] == [handoff]
    await desk.service.console_closed(two)  # gone
    desk.clock.advance(timedelta(minutes=2, seconds=1))
    [back] = await desk.service.queue(desk.agents[2])
    assert back.id == handoff and back.dropped_by == "a0"


async def test_a_console_on_a_worker_that_died_stops_counting_after_a_few_heartbeats(
    desk: Desk,
) -> None:
    """Two workers on one database: the agent's console on the one that was killed (it never
    closes, never beats again) keeps their conversations only until its heartbeat is stale."""
    killed = HandoffService(desk.sessions, desk.clock, None, EventBus(), worker="killed:1")
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await killed.console_opened(agent.id)
    here = await desk.service.console_opened(agent.id)
    await desk.service.claim(agent, handoff)
    await desk.service.reply(agent, handoff, "稍等")
    await desk.service.console_closed(here)  # the other worker's console is still fresh
    assert await desk.service.forget_stale_consoles() == 0
    assert [i.id for i in await desk.service.mine(agent)] == [handoff]

    desk.clock.advance(CONSOLE_STALE_AFTER_BEATS * desk.service.console_heartbeat)
    assert await desk.service.forget_stale_consoles() == 0  # not yet: stale only after that
    desk.clock.advance(timedelta(seconds=1))
    assert await desk.service.forget_stale_consoles() == 1  # the agent's last console went
    assert await desk.service.forget_stale_consoles() == 0
    desk.clock.advance(timedelta(minutes=2, seconds=1))  # the lease it started lapses
    [back] = await desk.service.queue(desk.agents[2])
    assert back.id == handoff and back.dropped_by == "a0"


async def test_closing_a_console_ignores_the_stale_ones_of_a_dead_worker(desk: Desk) -> None:
    killed = HandoffService(desk.sessions, desk.clock, None, EventBus(), worker="killed:1")
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await killed.console_opened(agent.id)  # never closed, never beats
    here = await desk.service.console_opened(agent.id)
    await desk.service.claim(agent, handoff)
    await desk.service.reply(agent, handoff, "稍等")
    for _ in range(CONSOLE_STALE_AFTER_BEATS + 1):
        desk.clock.advance(desk.service.console_heartbeat)
        await desk.service.console_alive(here)
    await desk.service.console_closed(here)  # no live console left: the lease starts now
    desk.clock.advance(timedelta(minutes=2, seconds=1))
    [back] = await desk.service.queue(desk.agents[2])
    assert back.id == handoff and back.dropped_by == "a0"


async def test_a_disabled_agent_is_neither_offered_nor_accepted_as_a_transfer_target(
    desk: Desk,
) -> None:
    handoff = await desk.queued(user(1))
    holder, gone = desk.agents[1], desk.agents[2]
    await desk.service.claim(holder, handoff)
    async with desk.sessions.begin() as s:
        assert await Repositories.on(s).agents.disable(gone.id, desk.clock.now())
    assert gone.id not in {a.id for a in await desk.service.list_agents()}
    assert holder.id in {a.id for a in await desk.service.list_agents()}
    with pytest.raises(Refusal) as refused:
        await desk.service.transfer(holder, handoff, gone.id)
    assert refused.value.status == 409 and refused.value.key == "agent_disabled"
    assert gone.name in refused.value.zh and gone.name in refused.value.en
    stored = await desk.stored(handoff)
    assert (stored.status, stored.claimed_by) == (HandoffStatus.CLAIMED, holder.id)

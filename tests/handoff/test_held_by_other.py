"""Resolving, transferring or handing back a conversation another agent holds asks to be
confirmed, and is
audited; one's own and unheld conversations are not asked about; who may act is unchanged."""

from __future__ import annotations

import pytest

from bot.handoff.queue import AgentView
from bot.refusals import Refusal
from storage.records import HandoffStatus
from storage.repositories import Repositories
from storage.repositories.audit import AuditRecord
from tests.handoff.desk import Desk, user


async def audit(desk: Desk) -> list[AuditRecord]:
    async with desk.sessions() as s:
        entries = await Repositories.on(s).audit.since(None)
    return [e for e in entries if e.action.endswith("_held")]


async def held_by(desk: Desk, holder: AgentView) -> tuple[int, str]:
    handoff = await desk.queued(user(1))
    await desk.service.claim(holder, handoff)
    return handoff, (await desk.stored(handoff)).ref


async def test_resolving_what_another_agent_holds_needs_confirming(desk: Desk) -> None:
    admin, holder = desk.agents[0], desk.agents[1]
    handoff, ref = await held_by(desk, holder)
    with pytest.raises(Refusal) as refused:
        await desk.service.resolve(admin, handoff)
    assert refused.value.status == 409 and refused.value.key == "held_by_other"
    assert holder.name in refused.value.zh and holder.name in refused.value.en
    stored = await desk.stored(handoff)
    assert (stored.status, stored.claimed_by) == (HandoffStatus.CLAIMED, holder.id)
    assert await audit(desk) == []

    item = await desk.service.resolve(admin, handoff, confirm_held=True)
    assert item.status == "resolved"
    [entry] = await audit(desk)
    assert (entry.action, entry.actor, entry.target) == (
        "resolve_held",
        f"agent:{admin.id}",
        f"handoff:{ref}",
    )
    assert f"agent:{holder.id}" in entry.reason and holder.name in entry.reason


async def test_transferring_what_another_agent_holds_needs_confirming(desk: Desk) -> None:
    admin, holder, target = desk.agents[0], desk.agents[1], desk.agents[2]
    handoff, ref = await held_by(desk, holder)
    await desk.service.reply(holder, handoff, "稍等")  # parked or answered, still theirs
    with pytest.raises(Refusal) as refused:
        await desk.service.transfer(admin, handoff, target.id)
    assert refused.value.key == "held_by_other" and holder.name in refused.value.zh
    assert (await desk.stored(handoff)).claimed_by == holder.id

    item = await desk.service.transfer(admin, handoff, target.id, confirm_held=True)
    assert item.claimed_by == target.name
    [entry] = await audit(desk)
    assert (entry.action, entry.actor, entry.target) == (
        "transfer_held",
        f"agent:{admin.id}",
        f"handoff:{ref}",
    )
    assert f"agent:{holder.id}" in entry.reason and f"agent:{target.id}" in entry.reason


async def test_handing_back_what_another_agent_holds_needs_confirming(desk: Desk) -> None:
    admin, holder = desk.agents[0], desk.agents[1]
    handoff, ref = await held_by(desk, holder)
    with pytest.raises(Refusal) as refused:
        await desk.service.hand_back(admin, handoff)
    assert refused.value.key == "held_by_other" and holder.name in refused.value.en
    assert (await desk.stored(handoff)).status == HandoffStatus.CLAIMED

    item = await desk.service.hand_back(admin, handoff, confirm_held=True)
    assert item.status == "returned"
    [entry] = await audit(desk)
    assert (entry.action, entry.target) == ("hand_back_held", f"handoff:{ref}")
    assert f"agent:{holder.id}" in entry.reason


async def test_ones_own_and_unheld_conversations_are_not_asked_about(desk: Desk) -> None:
    admin, agent = desk.agents[0], desk.agents[1]
    own = await desk.queued(user(1))
    await desk.service.claim(agent, own)
    await desk.service.transfer(agent, own, admin.id)  # an agent passing on their own
    await desk.service.resolve(admin, own)  # now the admin's own
    waiting = await desk.queued(user(2))
    await desk.service.transfer(admin, waiting, agent.id)  # nobody held it
    await desk.service.resolve(agent, waiting)
    unheld = await desk.queued(user(3))
    await desk.service.resolve(admin, unheld)
    assert await audit(desk) == []


async def test_agents_still_cannot_act_on_others_conversations_even_confirming(
    desk: Desk,
) -> None:
    holder, other = desk.agents[1], desk.agents[2]
    handoff, _ = await held_by(desk, holder)
    for action in (
        desk.service.resolve(other, handoff, confirm_held=True),
        desk.service.transfer(other, handoff, other.id, confirm_held=True),
    ):
        with pytest.raises(Refusal) as refused:
            await action
        assert refused.value.status == 403
    assert (await desk.stored(handoff)).claimed_by == holder.id
    assert await audit(desk) == []


async def test_a_closed_conversation_is_closed_whatever_is_confirmed(desk: Desk) -> None:
    admin, holder = desk.agents[0], desk.agents[1]
    handoff, _ = await held_by(desk, holder)
    await desk.service.resolve(holder, handoff)
    with pytest.raises(Refusal) as refused:
        await desk.service.resolve(admin, handoff, confirm_held=True)
    assert refused.value.status == 409 and refused.value.key != "held_by_other"
    assert await audit(desk) == []

"""Handing a conversation to a person: open a handoff, tell the customer their reference."""

from __future__ import annotations

from bot.flows.base import HandoffReason, Step, StepContext, StepResult
from bot.handoff.waiting import wait_minutes
from bot.privacy.masking import order_tail
from storage.records import FunnelStep, HandoffStatus, Owner


async def request_handoff(
    ctx: StepContext,
    reason: HandoffReason,
    replies: list[str] | None = None,
    *,
    lead: str | None = None,
) -> StepResult:
    """Queues the conversation for a person; the reply is ``lead`` (by default the reason in
    the customer's words) followed by the reference and the wait."""
    order_no = ctx.data.order_no
    handoff = await ctx.handoffs.create(
        ctx.conversation_id,
        reason.value,
        ctx.now,
        order_tail=order_tail(order_no) if order_no else None,
        amount_confirmed=ctx.data.verified,
        failures=ctx.data.verify_failures,
    )
    ctx.data.handoff_ref, ctx.data.handoff_id = handoff.ref, handoff.id
    ctx.mark(FunnelStep.HANDED_OFF)
    if lead is None:
        lead = "" if reason is HandoffReason.ASKED else ctx.say(f"handoff_reason_{reason.value}")
    return StepResult(
        Step.HANDOFF,
        [*(replies or []), lead + await queue_notice(ctx, handoff.id)],
        owner=Owner.QUEUE,
    )


async def queue_notice(ctx: StepContext, handoff_id: int) -> str:
    """The reference, and either the place in line and the wait, or when the service opens."""
    ref = ctx.data.handoff_ref or "-"
    if not ctx.hours.is_open(ctx.now):
        when = ctx.hours.next_opening(ctx.now)
        opens = (
            f"{when.month}月{when.day}日 {when:%H:%M}（北京时间）"
            if ctx.texts.lang == "zh"
            else f"{when.day} {when:%B}, {when:%H:%M} Beijing time"
        )
        return ctx.say("handoff_after_hours", ref=ref, opens=opens)
    position = max(1, await ctx.handoffs.position(handoff_id))
    await ctx.handoffs.mark_notified(handoff_id, position)
    return ctx.say("handoff", ref=ref, position=position, minutes=wait_minutes(position))


async def while_queued(ctx: StepContext) -> StepResult:
    """A customer writing while they wait: remind them of their reference, keep them queued."""
    handoff_id = ctx.data.handoff_id
    if not ctx.hours.is_open(ctx.now) or handoff_id is None:
        text = await queue_notice(ctx, handoff_id or 0)
    else:
        position = max(1, await ctx.handoffs.position(handoff_id))
        await ctx.handoffs.mark_notified(handoff_id, position)
        text = ctx.say("in_queue", ref=ctx.data.handoff_ref or "-", position=position)
    return StepResult(Step.HANDOFF, [text], owner=Owner.QUEUE)


async def leave_queue(ctx: StepContext) -> None:
    await ctx.handoffs.close_open(ctx.conversation_id, HandoffStatus.CANCELLED, ctx.now)
    ctx.data.leave_handoff()

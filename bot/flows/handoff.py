"""Handing a conversation to a person: open a handoff, tell the customer their reference."""

from __future__ import annotations

from bot.flows.base import HandoffReason, Step, StepContext, StepResult
from bot.privacy.masking import order_tail


async def request_handoff(
    ctx: StepContext, reason: HandoffReason, replies: list[str] | None = None
) -> StepResult:
    order_no = ctx.data.get("order_no")
    handoff = await ctx.handoffs.create(
        ctx.conversation_id,
        reason.value,
        ctx.now,
        order_tail=order_tail(order_no) if order_no else None,
        amount_confirmed=bool(ctx.data.get("verified")),
        failures=int(ctx.data.get("verify_failures", 0)),
    )
    ctx.data["handoff_ref"] = handoff.ref
    lead = "" if reason is HandoffReason.ASKED else ctx.say(f"handoff_reason_{reason.value}")
    return StepResult(
        Step.HANDOFF, [*(replies or []), lead + ctx.say("handoff", ref=handoff.ref)], owner="queue"
    )


async def while_queued(ctx: StepContext) -> StepResult:
    """A customer writing while they wait: remind them of their reference, keep them queued."""
    return StepResult(
        Step.HANDOFF, [ctx.say("in_queue", ref=ctx.data.get("handoff_ref", "-"))], owner="queue"
    )


async def leave_queue(ctx: StepContext) -> None:
    await ctx.handoffs.close_open(ctx.conversation_id, "cancelled", ctx.now)
    ctx.data.pop("handoff_ref", None)

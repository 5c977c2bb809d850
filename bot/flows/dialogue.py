"""The router: one inbound message, the conversation's state → the next state and the replies.

Intents that work anywhere (a person, withdraw, help, start over) are handled first; then
the step for the current state runs.
"""

from __future__ import annotations

from bot.flows.base import HandoffReason, OrdersUnavailable, Step, StepContext, StepResult
from bot.flows.consent import (
    ask_consent,
    consent_notice,
    has_consented,
    on_consent,
    withdraw_consent,
)
from bot.flows.handoff import leave_queue, request_handoff, while_queued
from bot.flows.order import (
    ask_order,
    list_orders,
    on_order,
    on_pick,
    on_verify,
    verify_question,
)
from bot.flows.scan import card_for, on_scan, scene_in
from bot.messages import Inbound, InboundKind
from bot.privacy.masking import mask_order_no
from bot.understanding import Intent, Understood, understand
from storage.records import Owner


def current_prompt(ctx: StepContext, state: Step) -> str:
    """The question the customer is expected to answer in ``state``."""
    if state is Step.CONSENT:
        return ctx.say("consent_reminder")
    if state is Step.VERIFY:
        return verify_question(ctx)
    if state is Step.PICK_ORDER:
        return ctx.say("pick_order_hint", count=len(ctx.data.choices))
    if state is Step.CARD_SENT:
        return ctx.say("card_sent_followup")
    return ctx.say("ask_order")


def resume_line(ctx: StepContext, state: Step) -> list[str]:
    if not ctx.resumed:
        return []
    if state is Step.VERIFY:
        return [ctx.say("resume_verify", order=mask_order_no(ctx.data.order_no or ""))]
    if state is Step.CONSENT:
        return [ctx.say("resume_consent")]
    if state is Step.ASK_ORDER:
        return [ctx.say("resume_order")]
    return []


# Events a person caused and expects an answer to; the rest (location reports, VIEW, template
# delivery receipts…) are WeChat's housekeeping and get no reply.
ANSWERED_EVENTS = frozenset({"event:click", "event:scan"})


def stay(state: Step, replies: list[str] | None = None) -> StepResult:
    return StepResult(
        state, replies or [], owner=Owner.QUEUE if state is Step.HANDOFF else Owner.BOT
    )


async def run_step(ctx: StepContext, state: Step, inbound: Inbound) -> StepResult:
    kind = inbound.kind
    if kind is InboundKind.UNSUBSCRIBE:
        return stay(state)
    if kind is InboundKind.MENU and inbound.raw_type.lower() not in ANSWERED_EVENTS:
        return stay(state)
    scanned = kind is InboundKind.SUBSCRIBE or inbound.raw_type.lower() == "event:scan"
    scene = scene_in(inbound.text, kind is InboundKind.SUBSCRIBE) if scanned else None
    if scene is not None and state is not Step.HANDOFF:
        welcome = [ctx.say("greeting")] if kind is InboundKind.SUBSCRIBE else []
        return await on_scan(ctx, scene, welcome)
    if kind is InboundKind.SUBSCRIBE:
        greeting = ctx.say("greeting")
        if state is Step.HANDOFF:
            result = await while_queued(ctx)
        elif not await has_consented(ctx):
            result = StepResult(Step.CONSENT, [consent_notice(ctx)])
        else:
            result = StepResult(
                state if state is not Step.NEW else Step.ASK_ORDER, [current_prompt(ctx, state)]
            )
        result.replies.insert(0, greeting)
        return result
    if kind in (InboundKind.OTHER, InboundKind.MENU):
        if state is Step.HANDOFF:
            return await while_queued(ctx)
        lead = "unsupported" if kind is InboundKind.OTHER else "menu"
        shown = state if state is not Step.NEW else Step.ASK_ORDER
        if state is Step.NEW and not await has_consented(ctx):
            return StepResult(Step.CONSENT, [ctx.say(lead), consent_notice(ctx)])
        return StepResult(shown, [ctx.say(lead), current_prompt(ctx, shown)])
    if kind is InboundKind.VOICE and not inbound.text.strip():
        return stay(state, [ctx.say("voice_unclear")])
    try:
        return await on_text(ctx, state, inbound.text)
    except OrdersUnavailable:
        # the merchant's order API is down: nothing was decided, nothing counts as a guess
        return stay(state, [ctx.say("orders_unavailable")])


async def on_text(ctx: StepContext, state: Step, text: str) -> StepResult:
    understood = understand(text, ctx.shapes)
    intent = understood.intent
    if intent is Intent.WITHDRAW_CONSENT:
        if state is Step.HANDOFF:
            await leave_queue(ctx)
        return await withdraw_consent(ctx)
    if state is Step.HANDOFF:
        if intent is Intent.RESTART:
            await leave_queue(ctx)
            return await _restart(ctx, [ctx.say("handoff_cancelled")])
        return await while_queued(ctx)
    if intent is Intent.HANDOFF:
        return await request_handoff(ctx, HandoffReason.ASKED)
    if not await has_consented(ctx):
        if state is not Step.CONSENT:
            return ask_consent(ctx, text, understood)
        outcome = await on_consent(ctx, text, understood)
        if isinstance(outcome, StepResult):
            outcome.replies[:0] = resume_line(ctx, state)
            return outcome
        thanks = [ctx.say("consent_thanks")]
        scanned_order, ctx.data.scanned_order = ctx.data.scanned_order, None
        if scanned_order:  # a receipt's code scanned before
            return await card_for(ctx, scanned_order, thanks)
        if not outcome:
            return ask_order(ctx, thanks)
        held = understand(outcome, ctx.shapes)
        if held.intent is Intent.MY_ORDERS and held.order_no is None:
            return await list_orders(ctx, thanks)
        return await on_order(ctx, outcome, held, thanks)
    lead = resume_line(ctx, state)
    if intent is Intent.HELP:
        shown = Step.ASK_ORDER if state in (Step.NEW, Step.CONSENT) else state
        return StepResult(shown, [ctx.say("help"), current_prompt(ctx, shown)])
    if intent is Intent.RESTART:
        return await _restart(ctx, [ctx.say("restart")])
    if state is Step.PICK_ORDER:
        return await on_pick(ctx, text, understood, lead)
    if intent is Intent.MY_ORDERS and understood.order_no is None:
        return await list_orders(ctx, lead)
    if state is Step.VERIFY:
        return await on_verify(ctx, text, understood, lead)
    if state is Step.CARD_SENT and understood.order_no is None:
        return StepResult(Step.CARD_SENT, [ctx.say("card_sent_followup")])
    fresh = state in (Step.NEW, Step.CONSENT) and understood.order_no is None
    if fresh and (intent is Intent.YES or not text.strip()):
        # consented earlier (e.g. in a past conversation): start at the order number
        return ask_order(ctx)
    return await on_order(ctx, text, understood, lead)


async def _restart(ctx: StepContext, lead: list[str]) -> StepResult:
    ctx.data.restart()
    if not await has_consented(ctx):
        return StepResult(Step.CONSENT, [*lead, consent_notice(ctx)])
    return ask_order(ctx, lead)


__all__ = ["Understood", "current_prompt", "run_step"]

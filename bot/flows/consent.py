"""The consent step: a short notice, one word to agree; an order number sent first waits unread."""

from __future__ import annotations

from bot.flows.base import Step, StepContext, StepResult
from bot.understanding import Intent, Understood
from storage.records import FunnelStep

# Bump when the notice's substance changes: everyone is asked again.
POLICY_VERSION = "2026-05-01"


async def has_consented(ctx: StepContext) -> bool:
    """Asked of the consent log once per conversation; the answer is kept in its data
    (which a withdrawal or the 72-hour expiry clears)."""
    if ctx.data.consent == POLICY_VERSION:
        return True
    if await ctx.consents.active_version(ctx.channel, ctx.user_id) != POLICY_VERSION:
        return False
    ctx.data.consent = POLICY_VERSION
    # agreed in an earlier conversation: this journey passes the consent steps at once
    ctx.mark(FunnelStep.CONSENT_SHOWN, FunnelStep.CONSENTED)
    return True


def consent_notice(ctx: StepContext) -> str:
    """The notice names exactly the fields the merchant's verification rule uses."""
    ctx.mark(FunnelStep.CONSENT_SHOWN)
    return ctx.say("consent_notice", fields=ctx.say(f"fields_{ctx.verify_mode.value}"))


def ask_consent(ctx: StepContext, text: str, understood: Understood) -> StepResult:
    """First contact: show the notice. An order number is kept as typed, not looked up."""
    replies = [consent_notice(ctx)]
    if understood.order_no or understood.intent is Intent.MY_ORDERS:
        ctx.data.held_text = text
        replies.append(ctx.say("consent_held"))
    return StepResult(Step.CONSENT, replies)


async def on_consent(ctx: StepContext, text: str, understood: Understood) -> StepResult | str:
    """Returns the held text to continue with when the customer agrees (maybe ""), else a result."""
    if understood.intent is Intent.YES and not understood.order_no:
        await ctx.consents.record(ctx.channel, ctx.user_id, POLICY_VERSION, ctx.now)
        ctx.data.consent = POLICY_VERSION
        ctx.mark(FunnelStep.CONSENTED)
        held, ctx.data.held_text = ctx.data.held_text, None
        return held or ""
    if understood.intent is Intent.NO:
        ctx.data.held_text = None
        ctx.mark(FunnelStep.DECLINED)
        return StepResult(Step.CONSENT, [ctx.say("consent_declined")])
    if understood.order_no:
        ctx.data.held_text = text
        return StepResult(Step.CONSENT, [ctx.say("consent_held"), ctx.say("consent_reminder")])
    return StepResult(Step.CONSENT, [ctx.say("consent_reminder")])


async def withdraw_consent(ctx: StepContext) -> StepResult:
    """Withdraws consent and forgets the conversation (the transcript goes too, see ``forget``).

    The count of failed verifications stays: withdrawing must not reset the guess throttle
    (``ConversationData.withdraw``).
    """
    await ctx.consents.withdraw(ctx.channel, ctx.user_id, ctx.now)
    ctx.data.withdraw()
    return StepResult(Step.CONSENT, [ctx.say("consent_withdrawn")], forget=True)

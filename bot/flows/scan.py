"""Scan to card: a receipt's QR code leads to the card with nothing typed.

Scanning a code made by ``billbot qr`` sends a ``subscribe`` (a new follower: the key is
``qrscene_<scene>``) or a ``SCAN`` event carrying the scene. Holding the receipt is the proof,
as knowing the amount would be: after consent (asked first if not given yet) the card follows.
A used, expired or forged code is answered kindly and asks for the order number instead.
"""

from __future__ import annotations

from bot.flows.base import Step, StepContext, StepResult
from bot.flows.consent import consent_notice, has_consented
from bot.flows.order import hand_card
from bot.privacy.scenes import SceneExpired, SceneRefused
from storage.records import FunnelStep, ScanClaim

SUBSCRIBE_PREFIX = "qrscene_"


def scene_in(event_key: str, subscribe: bool) -> str | None:
    """The scene an event carries, if it came from a parametric QR code."""
    key = event_key.strip()
    if subscribe:
        return key[len(SUBSCRIBE_PREFIX) :] if key.startswith(SUBSCRIBE_PREFIX) else None
    return key or None


async def on_scan(ctx: StepContext, scene: str, lead: list[str]) -> StepResult:
    claim = await _claim(ctx, scene)
    if claim.order_no is None:
        refusal = ctx.say(f"scan_{claim.refusal}")
        if not await has_consented(ctx):
            return StepResult(Step.CONSENT, [*lead, refusal, consent_notice(ctx)])
        return StepResult(Step.ASK_ORDER, [*lead, refusal, ctx.say("ask_order")])
    if not await has_consented(ctx):
        ctx.data.scanned_order = claim.order_no  # kept, not looked up, until they agree
        return StepResult(Step.CONSENT, [*lead, consent_notice(ctx)])
    return await card_for(ctx, claim.order_no, lead)


async def card_for(ctx: StepContext, order_no: str, lead: list[str]) -> StepResult:
    """The card for a scanned order (the scan is the proof)."""
    order = await ctx.orders.find(order_no)
    if order is None:  # the order was removed since the code was made
        return StepResult(Step.ASK_ORDER, [*lead, ctx.say("scan_unknown"), ctx.say("ask_order")])
    ctx.data.order_no, ctx.data.not_found = order.order_no, 0
    ctx.mark(FunnelStep.ORDER_FOUND)
    return await hand_card(ctx, order, lead)


async def _claim(ctx: StepContext, scene: str) -> ScanClaim:
    if ctx.scenes is None or ctx.qrs is None:
        return ScanClaim(None, "invalid")
    try:
        qr_id = ctx.scenes.read(scene)
    except SceneExpired:
        return ScanClaim(None, "expired")
    except SceneRefused:
        return ScanClaim(None, "invalid")
    return await ctx.qrs.claim(qr_id, ctx.user_id, ctx.now)

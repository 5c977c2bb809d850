"""Locate the bill, prove it is the customer's, hand over the masked contact card."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from bot.config import VerifyMode
from bot.flows import verification
from bot.flows.base import MAX_FAILURES, HandoffReason, Step, StepContext, StepResult
from bot.flows.handoff import request_handoff
from bot.flows.verification import Verdict
from bot.privacy.links import CARD_LIFETIME
from bot.privacy.masking import mask_order_no, mask_wechat_id, order_tail
from bot.texts import money
from bot.understanding import Understood, parse_choice
from storage.records import FunnelStep, OrderRecord

CHINA_TIME = timezone(timedelta(hours=8))  # what customers read dates in
_ASK = {
    VerifyMode.AMOUNT: "ask_amount",
    VerifyMode.CARD_LAST4_DATE: "ask_card_last4_date",
    VerifyMode.TRACKING_NO: "ask_tracking_no",
}
_HINT = {
    VerifyMode.AMOUNT: "amount_hint",
    VerifyMode.CARD_LAST4_DATE: "card_last4_date_hint",
    VerifyMode.TRACKING_NO: "tracking_no_hint",
}


PAYER_ORDERS_SINCE = timedelta(days=90)  # "查订单" lists orders paid this recently…
PAYER_ORDERS_SHOWN = 5  # …at most this many, newest first


def ask_order(ctx: StepContext, replies: list[str] | None = None) -> StepResult:
    return StepResult(Step.ASK_ORDER, [*(replies or []), ctx.say("ask_order")])


def verify_question(ctx: StepContext) -> str:
    return ctx.say(_ASK[ctx.verify_mode], order=mask_order_no(ctx.data.order_no or ""))


async def list_orders(ctx: StepContext, lead: list[str] | None = None) -> StepResult:
    """查订单: the orders this customer's WeChat paid for, as a numbered list (one: straight
    to it; none: ask for the order number)."""
    replies = list(lead or [])
    orders = await ctx.orders.paid_by(ctx.user_id, ctx.now - PAYER_ORDERS_SINCE, PAYER_ORDERS_SHOWN)
    if not orders:
        return StepResult(Step.ASK_ORDER, [*replies, ctx.say("no_paid_orders")])
    if len(orders) == 1:
        return await on_order(ctx, "", Understood(orders[0].order_no, None, None), replies)
    ctx.data.choices = [order.order_no for order in orders]
    lines = "\n".join(
        ctx.say(
            "order_choice",
            n=n,
            order=mask_order_no(order.order_no),
            amount=money(order.amount_cents, order.currency),
            date=order.paid_at.astimezone(CHINA_TIME).strftime("%m-%d") if order.paid_at else "",
        ).rstrip(" ·")
        for n, order in enumerate(orders, start=1)
    )
    return StepResult(Step.PICK_ORDER, [*replies, ctx.say("pick_order", choices=lines)])


async def on_pick(
    ctx: StepContext, text: str, understood: Understood, lead: list[str] | None = None
) -> StepResult:
    """The customer answers the numbered list: a number, or an order number after all."""
    replies = list(lead or [])
    choices = ctx.data.choices
    if understood.order_no is not None or not choices:
        ctx.data.choices = []
        return await on_order(ctx, text, understood, replies)
    picked = parse_choice(text)
    if picked == -1:
        picked = len(choices)
    if picked is None or not 1 <= picked <= len(choices):
        ctx.data.not_understood += 1
        if ctx.data.not_understood >= MAX_FAILURES:
            return await request_handoff(ctx, HandoffReason.NOT_UNDERSTOOD, replies)
        return StepResult(
            Step.PICK_ORDER, [*replies, ctx.say("pick_order_hint", count=len(choices))]
        )
    ctx.data.choices = []
    return await on_order(ctx, text, Understood(choices[picked - 1], None, None), replies)


async def on_order(
    ctx: StepContext, text: str, understood: Understood, lead: list[str] | None = None
) -> StepResult:
    """The customer should be sending an order number (and maybe the amount with it)."""
    replies = list(lead or [])
    if understood.order_no is None:
        ctx.data.not_understood += 1
        if ctx.data.not_understood >= MAX_FAILURES:
            return await request_handoff(ctx, HandoffReason.NOT_UNDERSTOOD, replies)
        key = "amount_before_order" if understood.amount is not None else "order_hint"
        return StepResult(Step.ASK_ORDER, [*replies, ctx.say(key)])
    ctx.data.not_understood = 0
    found = await _existing(ctx, understood)
    if len(found) > 1:  # two readings are both real orders: the customer says which
        return _which(ctx, found, replies)
    order = found[0] if found else None
    if order is None:
        # not found yet: maybe a typo, maybe not synced yet. An unknown number costs a guess
        # like a wrong amount (or anyone could list which orders exist), even after a restart.
        ctx.data.order_no = understood.order_no
        ctx.data.not_found += 1
        ctx.data.verify_failures += 1
        if ctx.data.verify_failures >= MAX_FAILURES:
            return await request_handoff(ctx, HandoffReason.ORDER_NOT_FOUND, replies)
        if await schedule_recheck(ctx, understood.order_no):
            minutes = int(ctx.limits.recheck_for.total_seconds() // 60)
            return StepResult(
                Step.ASK_ORDER,
                [
                    *replies,
                    ctx.say(
                        "order_recheck_scheduled",
                        order=mask_order_no(understood.order_no),
                        minutes=minutes,
                    ),
                ],
            )
        return StepResult(
            Step.ASK_ORDER,
            [*replies, ctx.say("order_not_found", order=mask_order_no(understood.order_no))],
        )
    if ctx.data.verify_failures >= MAX_FAILURES:
        return await request_handoff(ctx, HandoffReason.VERIFY_FAILED, replies)
    locked = await ctx.guards.locked_until(order.order_no, ctx.now)
    if locked is not None:
        return _locked(ctx, order.order_no, locked, replies)
    ctx.data.order_no, ctx.data.not_found, ctx.data.verified = order.order_no, 0, False
    ctx.mark(FunnelStep.ORDER_FOUND)
    if is_payer(ctx, order):
        # the customer's own WeChat paid this order: nothing more to prove
        return await hand_card(ctx, order, replies)
    if ctx.verify_mode is VerifyMode.AMOUNT and understood.amount is not None:
        return await on_verify(ctx, text, understood, replies)
    return StepResult(Step.VERIFY, [*replies, verify_question(ctx)])


WELL_FORMED_LENGTH = 14  # without known shapes, numbers this long are taken as order numbers


def well_formed(ctx: StepContext, order_no: str) -> bool:
    """``order_no`` looks like this merchant's (a known shape or the order pattern; with
    neither, at least ``WELL_FORMED_LENGTH`` characters): worth looking up again later."""
    if ctx.shapes:
        return ctx.shapes.matches(order_no)
    return len(order_no) >= WELL_FORMED_LENGTH


async def schedule_recheck(ctx: StepContext, order_no: str) -> bool:
    """An unknown but well-formed number may just not be synced yet: it is looked up again
    every few minutes for a while (``bot/rechecks.py``). True if a recheck was scheduled."""
    if ctx.rechecks is None or ctx.limits.recheck_for <= timedelta(0):
        return False
    if not well_formed(ctx, order_no):
        return False
    await ctx.rechecks.schedule(
        ctx.conversation_id,
        ctx.channel,
        order_no,
        ctx.now,
        next_at=ctx.now + ctx.limits.recheck_every,
        until=ctx.now + ctx.limits.recheck_for,
    )
    return True


ORDER_LOOKUPS = 3  # readings of one message looked up (the best few: each is a query)


async def _existing(ctx: StepContext, understood: Understood) -> list[OrderRecord]:
    """The orders that exist among the message's readings (look-alike letters, a number
    inside a pasted bill…), best reading first."""
    readings = [r for r in (understood.order_no, *understood.order_options) if r]
    found: list[OrderRecord] = []
    for reading in readings[:ORDER_LOOKUPS]:
        order = await ctx.orders.find(reading)
        if order is not None and order.order_no not in (f.order_no for f in found):
            found.append(order)
    return found


def _which(ctx: StepContext, orders: list[OrderRecord], replies: list[str]) -> StepResult:
    ctx.data.choices = [order.order_no for order in orders]
    lines = "\n".join(
        f"{n}. {mask_order_no(order.order_no)}" for n, order in enumerate(orders, start=1)
    )
    return StepResult(Step.PICK_ORDER, [*replies, ctx.say("which_order", choices=lines)])


def _locked(ctx: StepContext, order_no: str, until: datetime, replies: list[str]) -> StepResult:
    """The order is locked after repeated failures: no more guesses; a person is offered."""
    minutes = max(1, math.ceil((until - ctx.now).total_seconds() / 60))
    return StepResult(
        Step.ASK_ORDER,
        [*replies, ctx.say("order_locked", order=mask_order_no(order_no), minutes=minutes)],
    )


async def on_verify(
    ctx: StepContext, text: str, understood: Understood, lead: list[str] | None = None
) -> StepResult:
    """The customer answers the verification question for the order in ``data.order_no``."""
    replies = list(lead or [])
    order_no = ctx.data.order_no or ""
    if (
        ctx.verify_mode is VerifyMode.AMOUNT
        and understood.order_no
        and understood.order_no != order_no
    ):
        return await on_order(ctx, text, understood, replies)  # a different order: start there
    order = await ctx.orders.find(order_no)
    if order is None:
        return ask_order(ctx, replies)
    if ctx.data.verify_failures >= MAX_FAILURES:
        # locked out for the rest of this conversation: no more guesses, only a person
        return await request_handoff(ctx, HandoffReason.VERIFY_FAILED, replies)
    locked = await ctx.guards.locked_until(order_no, ctx.now)
    if locked is not None:
        return _locked(ctx, order_no, locked, replies)
    verdict = verification.check(ctx.verify_mode, order, text, understood.amount)
    if verdict is Verdict.UNAVAILABLE:
        return await request_handoff(ctx, HandoffReason.CANNOT_VERIFY, replies)
    if verdict is Verdict.UNREADABLE:
        ctx.data.not_understood += 1
        if ctx.data.not_understood >= MAX_FAILURES:
            return await request_handoff(ctx, HandoffReason.NOT_UNDERSTOOD, replies)
        return StepResult(Step.VERIFY, [*replies, ctx.say(_HINT[ctx.verify_mode])])
    ctx.data.not_understood = 0
    if verdict is Verdict.MISMATCH:
        # counted per order across customers: three failures lock the order a while
        locked = await ctx.guards.failed(
            order_no,
            ctx.now,
            threshold=ctx.limits.order_failures,
            window=ctx.limits.order_lock,
            lock=ctx.limits.order_lock,
        )
        # and per conversation, across orders and restarts: guessing is throttled
        ctx.data.verify_failures += 1
        failures = ctx.data.verify_failures
        if locked is not None:
            ctx.alerts.append("order_locked")
            if failures < MAX_FAILURES:
                return _locked(ctx, order_no, locked, replies)
        if failures >= MAX_FAILURES:
            return await request_handoff(ctx, HandoffReason.VERIFY_FAILED, replies)
        return StepResult(
            Step.VERIFY,
            [
                *replies,
                ctx.say(
                    "verify_wrong", order=mask_order_no(order_no), left=MAX_FAILURES - failures
                ),
            ],
        )
    await ctx.guards.succeeded(order_no, ctx.now)
    return await hand_card(ctx, order, replies)


def is_payer(ctx: StepContext, order: OrderRecord) -> bool:
    """The order was paid from this customer's own WeChat (its recorded ``payer_openid``)."""
    return bool(order.payer_openid) and order.payer_openid == ctx.user_id


async def hand_card(ctx: StepContext, order: OrderRecord, replies: list[str]) -> StepResult:
    """The order is proven the customer's: the card for its contact (or a person)."""
    ctx.data.order_no, ctx.data.verified, ctx.data.verify_failures = order.order_no, True, 0
    ctx.mark(FunnelStep.VERIFIED)
    contact = await ctx.contacts.for_order(order, ctx.fallback_contact or None)
    if contact is None:
        return await request_handoff(ctx, HandoffReason.NO_CONTACT, replies)
    if not contact.qr_url and not (ctx.wecom_ways and contact.wecom_userid):
        # never a guessed link: with no QR code and no WeCom account, a person helps instead
        return await request_handoff(ctx, HandoffReason.NO_WAY_TO_ADD, replies)
    given = await ctx.cards.count_since(ctx.conversation_id, ctx.now - timedelta(days=1))
    if given >= ctx.limits.cards_per_day:
        return StepResult(
            Step.CARD_SENT, [*replies, ctx.say("cards_capped", cap=ctx.limits.cards_per_day)]
        )
    card_record = await ctx.cards.issue(
        conversation_id=ctx.conversation_id,
        journey=ctx.journey,
        contact_id=contact.id,
        order_tail=order_tail(order.order_no),
        amount_cents=order.amount_cents,
        currency=order.currency,
        store=order.store,
        now=ctx.now,
        expires_at=ctx.now + CARD_LIFETIME,
        lang=ctx.texts.lang,
    )
    remark = ctx.say("card_remark", tail=order_tail(order.order_no))
    link = ctx.links.link_for(
        contact, order.order_no, ctx.user_id, remark, ctx.journey, card_record.id
    )
    card = ctx.say(
        "card",
        name=contact.name,
        masked_id=mask_wechat_id(contact.wechat_id),
        remark=remark,
        link=link,
    )
    ctx.mark(FunnelStep.CARD_ISSUED)
    return StepResult(Step.CARD_SENT, [*replies, card])

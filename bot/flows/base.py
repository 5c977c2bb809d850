"""What every step sees and returns: a context of small Protocols; the next state with replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bot.config import VerifyMode
from bot.handoff.hours import ServiceHours
from bot.texts import Texts
from bot.understanding.order_shapes import OrderShapes
from storage.records import (
    CardRecord,
    ContactRecord,
    ConversationData,
    FunnelStep,
    HandoffRecord,
    OrderRecord,
    Owner,
    ScanClaim,
)

MAX_FAILURES = 3  # wrong answers, unknown orders or unreadable messages before a person steps in


class Step(StrEnum):
    """Where a conversation stands; stored as its string value."""

    NEW = "new"
    CONSENT = "consent"
    ASK_ORDER = "ask_order"
    VERIFY = "verify"
    PICK_ORDER = "pick_order"  # a numbered list of the customer's own orders is shown
    CARD_SENT = "card_sent"
    HANDOFF = "handoff"


class HandoffReason(StrEnum):
    ASKED = "asked"
    VERIFY_FAILED = "verify_failed"
    ORDER_NOT_FOUND = "order_not_found"
    NOT_UNDERSTOOD = "not_understood"
    NO_CONTACT = "no_contact"
    CANNOT_VERIFY = "cannot_verify"  # the order lacks the data the verification rule needs
    NO_WAY_TO_ADD = "no_way_to_add"  # the contact has no QR code and no WeCom account
    ORDER_NOT_SYNCED = "order_not_synced"  # a well-formed order number never showed up


class SceneReader(Protocol):
    """Reads a receipt QR code's scene (``bot.privacy.scenes.SceneCodec``)."""

    def read(self, scene: str) -> int: ...


class ScanCodes(Protocol):
    """The receipts' codes: the first customer to scan one claims it."""

    async def claim(self, qr_id: int, user_id: str, now: datetime) -> ScanClaim: ...


class OrdersUnavailable(Exception):
    """The order source cannot say whether an order exists right now (its API is down): the
    customer is asked to try again shortly; it is neither an unknown order nor a guess."""


class OrderLookup(Protocol):
    """Finds an order by its normalised number (local table or the merchant's order API)."""

    async def shapes(self) -> list[str]:
        """Shapes of the order numbers it holds (see ``shape_of``); [] if it cannot say."""
        ...

    async def find(self, order_no: str) -> OrderRecord | None: ...
    async def paid_by(self, user_id: str, since: datetime, limit: int) -> list[OrderRecord]:
        """Orders this customer's OpenID paid for (its ``payer_openid``), newest first."""
        ...


class ContactLookup(Protocol):
    """Picks the service contact for an order: its own if on duty, else ``fallback``; an order
    naming none, its store's, then ``fallback``, then anyone on duty. None: a person helps."""

    async def for_order(
        self, order: OrderRecord, fallback: str | None = None
    ) -> ContactRecord | None: ...


class ConsentLog(Protocol):
    """The consent log (PIPL Art. 13): agreements with time and notice version, withdrawals."""

    async def active_version(self, channel: str, user_id: str) -> str | None: ...
    async def record(
        self, channel: str, user_id: str, policy_version: str, now: datetime
    ) -> bool: ...
    async def withdraw(self, channel: str, user_id: str, now: datetime) -> None: ...


class HandoffQueue(Protocol):
    """The human handoff queue, as the bot uses it: open a handoff, or close one."""

    async def create(
        self,
        conversation_id: int,
        reason: str,
        now: datetime,
        *,
        order_tail: str | None,
        amount_confirmed: bool,
        failures: int,
        priority: int = 0,
    ) -> HandoffRecord: ...
    async def close_open(self, conversation_id: int, status: str, now: datetime) -> None: ...
    async def position(self, handoff_id: int) -> int: ...
    async def mark_notified(self, handoff_id: int, position: int) -> None: ...


class CardIssuer(Protocol):
    """Records a card handed out (its one-time state ties a WeCom "contact added" back to it)."""

    async def count_since(self, conversation_id: int, since: datetime) -> int: ...
    async def issue(
        self,
        *,
        conversation_id: int,
        journey: str,
        contact_id: int,
        order_tail: str,
        amount_cents: int,
        currency: str,
        store: str | None,
        now: datetime,
        expires_at: datetime,
        lang: str = "zh",
    ) -> CardRecord: ...


class OrderGuards(Protocol):
    """Failed verifications per order from any customer; enough of them lock the order."""

    async def locked_until(self, order_no: str, now: datetime) -> datetime | None: ...
    async def failed(
        self,
        order_no: str,
        now: datetime,
        *,
        threshold: int,
        window: timedelta,
        lock: timedelta,
    ) -> datetime | None: ...
    async def succeeded(self, order_no: str, now: datetime) -> None: ...


class RecheckSchedule(Protocol):
    """Order numbers not found yet but shaped like the merchant's: looked up again for a while
    (payments reach the order table minutes late). One open per conversation; a new number
    replaces the old one."""

    async def schedule(
        self,
        conversation_id: int,
        channel: str,
        order_no: str,
        now: datetime,
        *,
        next_at: datetime,
        until: datetime,
    ) -> None: ...


@dataclass(frozen=True)
class Limits:
    """How much guessing and how many cards the bot allows (settings)."""

    order_lock: timedelta = timedelta(minutes=30)  # a guessed-at order is locked this long
    order_failures: int = 3  # failures on one order, from any customers, that lock it
    cards_per_day: int = 10  # cards one customer may get in 24 hours
    recheck_every: timedelta = timedelta(minutes=2)  # an unknown order is looked up again…
    recheck_for: timedelta = timedelta(minutes=30)  # …for this long (zero: never)


class CardLinks(Protocol):
    """Makes the signed, short-lived card page link for a contact and an order."""

    def link_for(
        self,
        contact: ContactRecord,
        order_no: str,
        user_id: str,
        remark: str,
        journey: str = "",
        card_id: int = 0,
    ) -> str: ...


@dataclass
class StepContext:
    channel: str
    user_id: str
    conversation_id: int
    now: datetime
    texts: Texts
    data: ConversationData  # the conversation's own, mutated in place and saved by the engine
    verify_mode: VerifyMode
    orders: OrderLookup
    contacts: ContactLookup
    consents: ConsentLog
    handoffs: HandoffQueue
    links: CardLinks
    cards: CardIssuer
    guards: OrderGuards
    limits: Limits = field(default_factory=Limits)
    wecom_ways: bool = False  # WeCom is on: a contact's wecom_userid gets a contact way
    resumed: bool = False  # the customer comes back after a pause
    hours: ServiceHours = field(default_factory=ServiceHours)
    funnel: list[FunnelStep] = field(default_factory=list)  # steps this turn reached
    alerts: list[str] = field(default_factory=list)  # for the agents' consoles (order_locked)
    journey: str = ""  # the funnel's id for this conversation (random, not personal)
    shapes: OrderShapes | None = None  # this merchant's order number shapes, if known
    rechecks: RecheckSchedule | None = None  # None: the customer cannot be messaged later
    scenes: SceneReader | None = None  # reads the scenes of receipts' QR codes
    qrs: ScanCodes | None = None  # the receipts' codes, claimed by their first scanner
    fallback_contact: str = ""  # BILLBOT_FALLBACK_CONTACT: when an order's contact cannot serve

    def mark(self, *steps: FunnelStep) -> None:
        """Counts this turn as reaching ``steps`` of the funnel (recorded with the turn)."""
        self.funnel.extend(steps)

    def say(self, key: str, **values: object) -> str:
        return self.texts.say(key, **values)


@dataclass
class StepResult:
    state: Step
    replies: list[str] = field(default_factory=list)
    owner: Owner = Owner.BOT  # who owns the conversation after this step: the bot or the queue
    forget: bool = False  # delete the transcript (consent withdrawn)

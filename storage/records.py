"""Plain read-only records the repositories hand out, so callers never hold an ORM object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


class FunnelStep(StrEnum):
    """The steps of a customer's journey that the funnel counts, in the order they happen."""

    STARTED = "started"
    CONSENT_SHOWN = "consent_shown"
    CONSENTED = "consented"
    DECLINED = "declined"
    ORDER_FOUND = "order_found"
    VERIFIED = "verified"
    CARD_ISSUED = "card_issued"
    CARD_OPENED = "card_opened"
    CONTACT_ADDED = "contact_added"
    HANDED_OFF = "handed_off"
    ABANDONED = "abandoned"  # decided when a session expires unfinished
    CONTACT_LOST = "contact_lost"  # the added contact was deleted later (not a funnel step)


# A journey that reached one of these got an answer: its expiry is not an abandonment.
FINISHING_STEPS = frozenset({FunnelStep.CARD_ISSUED, FunnelStep.HANDED_OFF})
# Where a conversation's data keeps its journey: {"id", "mode", "stage", "done"}.
JOURNEY_KEY = "funnel"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_no: str
    amount_cents: int
    currency: str = "CNY"
    paid_at: datetime | None = None
    store: str | None = None
    contact: str | None = None
    payer_openid: str | None = None
    card_last4: str | None = None
    tracking_no: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class ContactRecord:
    contact: str
    name: str
    wechat_id: str
    qr_url: str | None = None
    store: str | None = None
    wecom_userid: str | None = None
    on_duty: bool = True
    id: int = 0


@dataclass(slots=True)
class ConversationRecord:
    """A conversation as loaded for one turn; the dispatcher mutates it and saves it back."""

    id: int
    channel: str
    user_id: str
    state: str
    data: dict[str, Any] = field(default_factory=dict)
    lang: str = "zh"
    owner: Owner = field(default_factory=lambda: Owner.BOT)
    version: int = 0
    last_inbound_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HandoffRecord:
    id: int
    ref: str
    conversation_id: int
    channel: str
    user_id: str
    reason: str
    status: HandoffStatus
    priority: int
    order_tail: str | None
    amount_confirmed: bool
    failures: int
    created_at: datetime
    # the agent's side: who holds it, under what lease, and when it was answered and closed
    claimed_by: int | None = None
    claimed_at: datetime | None = None
    lease_until: datetime | None = None
    dropped_by: str | None = None  # the name of the agent whose lease lapsed
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    notified_position: int | None = None  # the place in the queue the customer was last told


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One transcript line: ``direction`` is in, out or note (agents only); ``sender`` is
    customer, bot, the bot's API sender or ``agent:<id>``."""

    id: int
    conversation_id: int
    direction: str
    sender: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CannedRecord:
    """A canned reply agents pick from in the console."""

    id: int
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class CardRecord:
    id: int
    state: str
    conversation_id: int
    journey: str
    contact_id: int
    order_tail: str
    amount_cents: int
    currency: str
    store: str | None
    created_at: datetime
    expires_at: datetime
    config_id: str | None = None
    qr_code: str | None = None
    added_at: datetime | None = None
    lang: str = "zh"


class RecheckOutcome(StrEnum):
    """How an order recheck ended (``order_rechecks.outcome``)."""

    FOUND = "found"  # the order arrived: the customer was asked to verify it
    GAVE_UP = "gave_up"  # it never arrived in time: a person took over
    REPLACED = "replaced"  # the customer sent another unknown order number
    MOVED_ON = "moved_on"  # the conversation went elsewhere (another order, a card, a person)
    UNREACHABLE = "unreachable"  # found, but WeChat would not take the message in time


@dataclass(frozen=True, slots=True)
class RecheckRecord:
    """An unknown order number being looked up again, from ``next_at`` until ``until``."""

    id: int
    conversation_id: int
    channel: str
    order_no: str
    created_at: datetime
    next_at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class ApiErrorRecord:
    service: str
    call: str
    errcode: int
    errmsg: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ScanClaim:
    """What scanning a receipt's QR code found: the order, or why not (``expired``,
    ``used``, ``unknown``, ``invalid``)."""

    order_no: str | None
    refusal: str | None = None


class HandoffStatus(StrEnum):
    """Where a handoff stands; stored as its value."""

    WAITING = "waiting"  # in the queue
    CLAIMED = "claimed"  # an agent holds it (under a lease)
    WAITING_CUSTOMER = "waiting_customer"  # an agent answered; the customer's turn
    RESOLVED = "resolved"
    RETURNED = "returned"  # handed back to the bot
    CANCELLED = "cancelled"  # the customer left the queue
    EXPIRED = "expired"  # the conversation's 72 hours ran out


OPEN_STATUSES = (HandoffStatus.WAITING, HandoffStatus.CLAIMED, HandoffStatus.WAITING_CUSTOMER)
HELD_STATUSES = (HandoffStatus.CLAIMED, HandoffStatus.WAITING_CUSTOMER)  # an agent has it


class OwnerKind(StrEnum):
    BOT = "bot"
    QUEUE = "queue"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who speaks for a conversation: the bot, the handoff queue, or one agent. Stored as
    ``bot``, ``queue`` or ``agent:<id>`` and parsed once, by the column type (``OwnerType``)."""

    kind: OwnerKind
    agent_id: int | None = None

    BOT: ClassVar[Owner]
    QUEUE: ClassVar[Owner]

    @classmethod
    def agent(cls, agent_id: int) -> Owner:
        return cls(OwnerKind.AGENT, agent_id)

    @classmethod
    def parse(cls, stored: str) -> Owner:
        kind, _, agent_id = stored.partition(":")
        if kind == OwnerKind.AGENT and agent_id.isdigit():
            return cls.agent(int(agent_id))
        if kind in (OwnerKind.BOT, OwnerKind.QUEUE) and not agent_id:
            return cls(OwnerKind(kind))
        raise ValueError(f"not a conversation owner: {stored!r}")

    @property
    def is_agent(self) -> bool:
        return self.kind is OwnerKind.AGENT

    def __str__(self) -> str:
        return f"agent:{self.agent_id}" if self.is_agent else self.kind.value


Owner.BOT = Owner(OwnerKind.BOT)
Owner.QUEUE = Owner(OwnerKind.QUEUE)

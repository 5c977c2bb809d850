"""Plain read-only records the repositories hand out, so callers never hold an ORM object; and
a conversation's data, typed, with the one definition of what each transition clears."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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

# The JSON key a conversation's data keeps its journey under (as it always has).
JOURNEY_KEY = "funnel"


@dataclass(slots=True)
class Journey:
    """A conversation's way through the funnel: a random id (no personal data), the
    verification mode it ran under, the steps it reached, the furthest one, and whether it got
    an answer (a card or a person)."""

    id: str
    mode: str
    steps: list[FunnelStep] = field(default_factory=list)
    stage: FunnelStep = FunnelStep.STARTED
    done: bool = False

    @classmethod
    def from_json(cls, raw: object) -> Journey | None:
        """The journey stored as ``{"id", "mode", "steps", "stage", "done"}`` (all but the id
        optional); ``None`` if there is none or it is unreadable (a new one then starts)."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            return _malformed(JOURNEY_KEY, raw, None)
        journey_id = raw.get("id")
        if not isinstance(journey_id, str) or not journey_id:
            return _malformed(f"{JOURNEY_KEY}.id", journey_id, None)
        mode = raw.get("mode", "")
        done = raw.get("done", False)
        return cls(
            id=journey_id,
            mode=mode if isinstance(mode, str) else _malformed(f"{JOURNEY_KEY}.mode", mode, ""),
            steps=_steps(raw.get("steps")),
            stage=_stage(raw.get("stage", "started")),
            done=done if isinstance(done, bool) else _malformed(f"{JOURNEY_KEY}.done", done, False),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "mode": self.mode,
            "steps": [step.value for step in self.steps],
            "stage": self.stage.value,
            "done": self.done,
        }


class Span(StrEnum):
    """How long a field of a conversation's data lives. Each field names its span; each
    transition (``ConversationData.restart`` and the rest) clears the spans it ends."""

    ORDER = "order"  # the order in hand: until the customer starts over or the case is closed
    HANDOFF = "handoff"  # the handoff under way: until it ends, whichever way
    CONVERSATION = "conversation"  # until consent is withdrawn or the conversation expires
    THROTTLE = "throttle"  # the guess throttle: outlives restarts and withdrawal
    JOURNEY = "journey"  # the funnel's journey: until the conversation expires


def _lives(span: Span) -> dict[str, Span]:
    return {"span": span}


@dataclass(slots=True)
class ConversationData:
    """What the bot remembers between a customer's messages (``conversations.data``).

    Each field names its ``Span``; what each transition clears is defined here once:

    - ``restart`` (the customer starts over, 重新开始): ORDER
    - ``leave_handoff`` (the customer left the queue, or nobody holds it any more): HANDOFF
    - ``hand_back`` (an agent returns it to the bot): HANDOFF and THROTTLE
    - ``close`` (an agent resolved it): ORDER and HANDOFF
    - ``withdraw`` (consent withdrawn): ORDER, HANDOFF and CONVERSATION
    - ``expire`` (72 hours of silence): everything; the storage counts the journey first
      (``ConversationRepository.end``, which writes the same blank data)

    Stored as a flat JSON object with the keys this data always had, defaults left out. Keys
    this code does not know (from another version of it) are kept as they are in ``unknown``
    and written back, until consent is withdrawn or the conversation expires, so that
    versions side by side (a rolling upgrade) do not erase each other's data. A value of the
    wrong kind is logged (by key, never by value) and read as the field's default: a damaged
    row costs the customer a question again, never a failed turn.
    """

    # the order in hand
    order_no: str | None = field(default=None, metadata=_lives(Span.ORDER))
    verified: bool = field(default=False, metadata=_lives(Span.ORDER))  # its question answered
    choices: list[str] = field(default_factory=list, metadata=_lives(Span.ORDER))  # numbered
    not_found: int = field(default=0, metadata=_lives(Span.ORDER))  # unknown numbers sent
    not_understood: int = field(default=0, metadata=_lives(Span.ORDER))  # unreadable, in a row
    held_text: str | None = field(default=None, metadata=_lives(Span.ORDER))  # before consent
    scanned_order: str | None = field(default=None, metadata=_lives(Span.ORDER))  # ditto
    # the handoff under way
    handoff_id: int | None = field(default=None, metadata=_lives(Span.HANDOFF))
    handoff_ref: str | None = field(default=None, metadata=_lives(Span.HANDOFF))
    before_handoff: str | None = field(default=None, metadata=_lives(Span.HANDOFF))  # the step
    # the conversation's
    consent: str | None = field(default=None, metadata=_lives(Span.CONVERSATION))  # notice
    unknown: dict[str, object] = field(default_factory=dict, metadata=_lives(Span.CONVERSATION))
    # wrong answers and unknown orders: enough of them and only a person helps
    verify_failures: int = field(default=0, metadata=_lives(Span.THROTTLE))
    journey: Journey | None = field(default=None, metadata=_lives(Span.JOURNEY))

    def restart(self) -> None:
        """The customer starts over: the order in hand goes; consent, the guess throttle, the
        journey (and a handoff, which the customer leaves first) stay."""
        self._end(Span.ORDER)

    def leave_handoff(self) -> str | None:
        """The handoff ends without a person's word (the customer left the queue, or nobody
        holds the conversation any more). Returns the step the handoff interrupted."""
        resume = self.before_handoff
        self._end(Span.HANDOFF)
        return resume

    def hand_back(self) -> str | None:
        """An agent hands the conversation back: the bot resumes at the step returned, and
        the guess throttle is lifted (a person vouched for the customer)."""
        resume = self.before_handoff
        self._end(Span.HANDOFF, Span.THROTTLE)
        return resume

    def close(self) -> None:
        """A person resolved the case: the customer's next message starts again."""
        self._end(Span.ORDER, Span.HANDOFF)

    def withdraw(self) -> None:
        """Consent is withdrawn: the conversation is forgotten but for the guess throttle
        (withdrawing must not reset it) and the journey (the funnel holds nothing personal)."""
        self._end(Span.ORDER, Span.HANDOFF, Span.CONVERSATION)

    def expire(self) -> None:
        """72 hours of silence: everything goes, the journey too (a new one starts)."""
        self._end(*Span)

    def _end(self, *spans: Span) -> None:
        blank = ConversationData()
        for name in _names_in(spans):
            setattr(self, name, getattr(blank, name))

    @classmethod
    def from_json(cls, raw: object) -> ConversationData:
        """The data as stored; rows written before it was typed read the same."""
        if not isinstance(raw, dict):
            if raw is not None:
                _malformed("data", raw, None)
            return cls()
        data = cls(
            order_no=_text(raw, "order_no"),
            verified=_flag(raw, "verified"),
            choices=_texts(raw, "choices"),
            not_found=_count(raw, "not_found"),
            not_understood=_count(raw, "not_understood"),
            held_text=_text(raw, "held_text"),
            scanned_order=_text(raw, "scanned_order"),
            handoff_id=_id(raw, "handoff_id"),
            handoff_ref=_text(raw, "handoff_ref"),
            before_handoff=_text(raw, "before_handoff"),
            consent=_text(raw, "consent"),
            verify_failures=_count(raw, "verify_failures"),
            journey=Journey.from_json(raw.get(JOURNEY_KEY)),
        )
        if not _KEYS.issuperset(raw):
            data.unknown = {str(k): v for k, v in raw.items() if k not in _KEYS}
        return data

    def to_json(self) -> dict[str, object]:
        """The data to store: a flat object, defaults left out."""
        out: dict[str, object] = dict(self.unknown) if self.unknown else {}
        if self.order_no is not None:
            out["order_no"] = self.order_no
        if self.verified:
            out["verified"] = True
        if self.choices:
            out["choices"] = list(self.choices)
        if self.not_found:
            out["not_found"] = self.not_found
        if self.not_understood:
            out["not_understood"] = self.not_understood
        if self.held_text is not None:
            out["held_text"] = self.held_text
        if self.scanned_order is not None:
            out["scanned_order"] = self.scanned_order
        if self.handoff_id is not None:
            out["handoff_id"] = self.handoff_id
        if self.handoff_ref is not None:
            out["handoff_ref"] = self.handoff_ref
        if self.before_handoff is not None:
            out["before_handoff"] = self.before_handoff
        if self.consent is not None:
            out["consent"] = self.consent
        if self.verify_failures:
            out["verify_failures"] = self.verify_failures
        if self.journey is not None:
            out[JOURNEY_KEY] = self.journey.to_json()
        return out


_KEYS = frozenset(  # the JSON keys ConversationData reads
    JOURNEY_KEY if f.name == "journey" else f.name
    for f in fields(ConversationData)
    if f.name != "unknown"
)
_SPANS = {f.name: Span(f.metadata["span"]) for f in fields(ConversationData)}


def _names_in(spans: Iterable[Span]) -> list[str]:
    ending = set(spans)
    return [name for name, span in _SPANS.items() if span in ending]


def _malformed(key: str, value: object, default: _T) -> _T:
    """Logs a stored value of the wrong kind (its type only: values may be personal)."""
    log.warning(
        "conversation data: %r holds a %s, not what it should; read as %r",
        key,
        type(value).__name__,
        default,
    )
    return default


def _text(raw: dict[str, object], key: str) -> str | None:
    value = raw.get(key)
    return value if value is None or isinstance(value, str) else _malformed(key, value, None)


def _flag(raw: dict[str, object], key: str) -> bool:
    value = raw.get(key, False)
    return value if isinstance(value, bool) else _malformed(key, value, False)


def _count(raw: dict[str, object], key: str) -> int:
    value = raw.get(key, 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return _malformed(key, value, 0)


def _id(raw: dict[str, object], key: str) -> int | None:
    value = raw.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return _malformed(key, value, None)


def _texts(raw: dict[str, object], key: str) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return _malformed(key, value, [])


_STEPS = {step.value: step for step in FunnelStep}


def _stage(value: object) -> FunnelStep:
    step = _STEPS.get(value) if isinstance(value, str) else None
    return step or _malformed(f"{JOURNEY_KEY}.stage", value, FunnelStep.STARTED)


def _steps(value: object) -> list[FunnelStep]:
    if value is None:
        return []
    if isinstance(value, list):
        try:
            return [_STEPS[step] for step in value]
        except (KeyError, TypeError):  # a step this code does not know (or not a step at all)
            return _malformed(
                f"{JOURNEY_KEY}.steps",
                value,
                [_STEPS[step] for step in value if isinstance(step, str) and step in _STEPS],
            )
    return _malformed(f"{JOURNEY_KEY}.steps", value, [])


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
    data: ConversationData = field(default_factory=ConversationData)
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

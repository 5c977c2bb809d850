"""The tables. Times are stored as naive UTC and handed back aware, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from storage.crypto import Sealed, SealedJSON
from storage.records import Owner


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime that is always aware UTC in Python and naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class OwnerType(TypeDecorator[Owner]):
    """A conversation's owner: ``Owner`` in Python, ``bot``/``queue``/``agent:<id>`` stored."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Owner | str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Owner | None:
        return None if value is None else Owner.parse(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(Sealed(), unique=True)
    order_index: Mapped[str] = mapped_column(String(64), unique=True)  # blind index
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8), default="CNY")
    paid_at: Mapped[datetime | None]
    store: Mapped[str | None] = mapped_column(String(128))
    contact: Mapped[str | None] = mapped_column(String(128))
    payer_openid: Mapped[str | None] = mapped_column(Sealed())
    payer_index: Mapped[str | None] = mapped_column(String(64), index=True)  # blind index
    card_last4: Mapped[str | None] = mapped_column(Sealed())
    tracking_no: Mapped[str | None] = mapped_column(Sealed())
    status: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime]


class OrderQr(Base):
    """A receipt's QR code for one order (``billbot qr``): the scene it carries names this
    row. The first customer to scan it claims it (their OpenID's blind index)."""

    __tablename__ = "order_qrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_no: Mapped[str] = mapped_column(Sealed())
    order_index: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # blind index of the OpenID
    claimed_at: Mapped[datetime | None]


class OrderShape(Base):
    """A shape of this merchant's order numbers (``DD|D14``: prefix, runs of digits and
    letters), learned at import; messages are read against them. Holds no order number."""

    __tablename__ = "order_shapes"

    shape: Mapped[str] = mapped_column(String(64), primary_key=True)
    learned_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    wechat_id: Mapped[str] = mapped_column(Sealed())
    qr_url: Mapped[str | None] = mapped_column(Sealed())
    store: Mapped[str | None] = mapped_column(String(128), index=True)
    wecom_userid: Mapped[str | None] = mapped_column(String(128))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


class Conversation(Base):
    """One customer on one channel: the dialogue state, who owns it, and when it lapses."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "user_id", name="uq_conversations_user"),
        UniqueConstraint("channel", "user_index", name="uq_conversations_user_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(Sealed())  # the OpenID, sealed
    user_index: Mapped[str] = mapped_column(String(64))  # its blind index, for look-ups
    state: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(SealedJSON(), default=dict)
    lang: Mapped[str] = mapped_column(String(8), default="zh")
    owner: Mapped[Owner] = mapped_column(OwnerType(), default=Owner.BOT)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Consent(Base):
    """PIPL Art. 13: who agreed to which notice, when, and when they withdrew."""

    __tablename__ = "consents"
    __table_args__ = (
        Index("ix_consents_user", "channel", "user_id"),
        Index("ix_consents_user_index", "channel", "user_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(Sealed())
    user_index: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    agreed_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class ProcessedMessage(Base):
    """Every delivery key WeChat sent us, recorded before the step runs, with the reply given."""

    __tablename__ = "processed_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    reply: Mapped[str | None] = mapped_column(Sealed())
    created_at: Mapped[datetime] = mapped_column(index=True)
    # the callback was answered with an empty "success" and the reply sent through the
    # message API: a redelivery must not carry the reply again (whichever process it reaches)
    answered_late_at: Mapped[datetime | None]


class SignatureUse(Base):
    """A plaintext callback's signature and the one body it carried.

    WeChat's plaintext signature covers only token, timestamp and nonce, never the body, so a
    signature seen once may not carry a different body later (a retry of the same body may).
    """

    __tablename__ = "signature_uses"

    signature_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(index=True)


class FunnelEvent(Base):
    """One step of one journey (a conversation from its start to its expiry), at most once.

    A journey id is random: no OpenID, order number or text, so the funnel holds no personal
    data and outlives the conversations it counts.
    """

    __tablename__ = "funnel_events"
    __table_args__ = (UniqueConstraint("journey", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey: Mapped[str] = mapped_column(String(32), index=True)
    step: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16))
    verify_mode: Mapped[str] = mapped_column(String(24))
    stopped_at: Mapped[str | None] = mapped_column(String(24))  # abandoned: the last step
    at: Mapped[datetime] = mapped_column(index=True)


class Card(Base):
    """A contact card handed to a customer: what its page shows and how its QR was made.

    ``state`` is the one-time, unguessable value a WeCom contact way carries back in the
    "contact added" event; the card is the only place it maps to a conversation.
    """

    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(32), unique=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    journey: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    order_tail: Mapped[str] = mapped_column(String(8))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    store: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    config_id: Mapped[str | None] = mapped_column(String(64))  # WeCom contact way, if made
    qr_code: Mapped[str | None] = mapped_column(String(1024))  # WeCom's QR image URL
    way_deleted_at: Mapped[datetime | None]
    lang: Mapped[str] = mapped_column(String(8), default="zh")  # the customer's language
    added_at: Mapped[datetime | None]  # the customer added the contact (WeCom said so)
    # sha256 of the WeCom member and external user ids: finds the card again when the
    # relationship ends (del_external_contact / del_follow_user), without storing the ids
    contact_key: Mapped[str | None] = mapped_column(String(64), index=True)
    lost_at: Mapped[datetime | None]


class ApiError(Base):
    """An error WeChat or WeCom answered, kept for admins to see in the console (no data)."""

    __tablename__ = "api_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(16))  # wechat | wecom
    call: Mapped[str] = mapped_column(String(64))  # what was called, e.g. add_contact_way
    errcode: Mapped[int] = mapped_column(Integer)
    errmsg: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(index=True)


class OrderGuard(Base):
    """Failed verifications of one order, from any customer: three lock the order a while.

    Keyed by an HMAC blind index of the order number, so the table names no order.
    """

    __tablename__ = "order_guards"

    order_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class OrderRecheck(Base):
    """An order number a customer sent that was not found but has the merchant's shape: it is
    looked up again every few minutes until ``until`` (payments reach the orders table late).

    One open recheck per conversation; done ones are deleted 72 hours after ``done_at``.
    """

    __tablename__ = "order_rechecks"
    __table_args__ = (
        Index(
            "uq_order_rechecks_open",
            "conversation_id",
            unique=True,
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    order_no: Mapped[str] = mapped_column(Sealed())
    order_index: Mapped[str] = mapped_column(String(64), index=True)  # blind index
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    next_at: Mapped[datetime] = mapped_column(index=True)  # the next look (or a claim's end)
    until: Mapped[datetime]  # give up (and hand off) after this
    done_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))  # a RecheckOutcome


class Handoff(Base):
    """A conversation waiting for (or worked by) a person, with a reference the customer quotes."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    order_tail: Mapped[str | None] = mapped_column(String(8))
    amount_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # the agent side (see bot/handoff/queue.py): who holds it, until when, and the clock marks
    claimed_by: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", name="fk_handoffs_claimed_by_agents"), index=True
    )
    claimed_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    dropped_by: Mapped[str | None] = mapped_column(String(128))
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    notified_position: Mapped[int | None] = mapped_column(Integer)


class Message(Base):
    """The transcript: what the customer wrote and what was sent back."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out" | "note" (agents only)
    sender: Mapped[str] = mapped_column(String(64))  # customer | bot | agent:<id>
    text: Mapped[str] = mapped_column(Sealed())
    created_at: Mapped[datetime]


class AccessToken(Base):
    """WeChat access tokens, shared by every process; one refresher at a time holds the lease."""

    __tablename__ = "access_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    refresh_lease_until: Mapped[datetime | None]  # a process refreshing holds this lease
    updated_at: Mapped[datetime]


class Agent(Base):
    """A console login: an agent works the queue, an admin also manages and may unmask."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="agent")
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # a disabled login cannot sign in and holds no session; the row stays for the audit log
    disabled_at: Mapped[datetime | None]
    lang: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")  # zh|en|both


class LoginGuard(Base):
    """Wrong passwords for one login from one client address: five lock that pair a while.

    Per address, so somebody guessing from elsewhere cannot keep the agent locked out; the
    address is kept as an HMAC blind index, never in clear.
    """

    __tablename__ = "login_guards"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime]


class ConsoleSession(Base):
    """A logged-in browser: the cookie holds a random token, the table only its hash."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ConsoleConnection(Base):
    """An agent's open live console (its WebSocket) on some server process, kept fresh by a
    heartbeat: a row not seen for a few beats belongs to a worker that died."""

    __tablename__ = "console_connections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, per connection
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    worker: Mapped[str] = mapped_column(String(128))  # host:pid, for an operator reading it
    opened_at: Mapped[datetime]
    seen_at: Mapped[datetime] = mapped_column(index=True)  # the last heartbeat


class CannedReply(Base):
    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Who saw or did what sensitive thing, and why (unmasking personal data, for one)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    actor: Mapped[str] = mapped_column(String(64), default="")  # agent:<id> | system | customer:…
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Sealed())  # free text an admin typed: sealed
    created_at: Mapped[datetime]

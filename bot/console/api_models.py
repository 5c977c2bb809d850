"""What the console's JSON API takes and gives, as typed models (pydantic v2).

The same classes validate request bodies, serialise responses, and are the schemas of
``/api/openapi.json``. Bodies are strict (``"2"`` is not a number, ``12345`` not a text);
fields they do not name are ignored. Responses say exactly their fields
(``additionalProperties: false``); the queue service's records are read by attribute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from bot.console.auth import LoginStatus
from storage.records import HandoffStatus

ConsoleLang = Literal["zh", "en", "both"]  # agents.lang: the console's language, zh by default
Role = Literal["agent", "admin"]
Id = Annotated[int, Field(gt=0, lt=2**31)]  # fits a PostgreSQL integer


def console_lang(stored: str) -> ConsoleLang:
    """A stored ``agents.lang`` as the API states it; anything else reads as the default."""
    if stored == "en":
        return "en"
    if stored == "both":
        return "both"
    return "zh"


class Body(BaseModel):
    """A request body: a JSON object with these fields, types as stated."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class Query(BaseModel):
    """Query-string parameters (always text on the wire)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class NoInput(Body):
    """The operation reads no body and no parameters."""


class Out(BaseModel):
    """A response: built from the service's records by attribute, every field present."""

    model_config = ConfigDict(
        from_attributes=True,
        extra="forbid",
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )

    @classmethod
    def of(cls, source: object) -> Self:
        """``source`` (a record, or a mapping) read into this model."""
        return cls.model_validate(source)


# -- requests ---------------------------------------------------------------------------------


class LoginBody(Body):
    name: str
    password: str


class PasswordBody(Body):
    old_password: str
    new_password: str = Field(description="12 to 256 characters, not the name, not the old one")


class TextBody(Body):
    text: str


class ConfirmBody(Body):
    confirm_held: bool = Field(
        default=False,
        description="true to act on a conversation another agent holds (admins; audited);"
        " without it such a request is refused with 409 and key held_by_other",
    )


class TransferBody(ConfirmBody):
    agent_id: Id = Field(description="the agent who takes the conversation over")


class DutyBody(Body):
    contact: str = Field(description="the contact's id, as imported (e.g. C001)")
    on_duty: bool


class SearchQuery(Query):
    q: str = Field(
        description="a service reference (with or without #), the last digits of an order"
        " number, or the start of an agent's name; under 2 characters finds nothing"
    )


class CannedBody(Body):
    title: str
    text: str


class LangBody(Body):
    lang: ConsoleLang = Field(description="the console's language: Chinese, English, or both")


class UnmaskQuery(Query):
    unmask_reason: str | None = Field(
        default=None, description="admin only: why personal data must be seen in clear (audited)"
    )


# -- responses --------------------------------------------------------------------------------


class AgentOut(Out):
    id: int
    name: str
    role: Role
    must_change_password: bool


class SessionOut(Out):
    agent: AgentOut
    csrf_token: str = Field(description="send it back as the X-CSRF-Token header on every change")


class MeOut(SessionOut):
    lang: ConsoleLang = Field(description="the console's language this agent chose")


class LangOut(Out):
    lang: ConsoleLang


class OkOut(Out):
    ok: bool


class TranscriptLineOut(Out):
    at: datetime
    sender: str = Field(description="customer | bot | agent:<name> | note:<name>")
    text: str


class QueueItemOut(Out):
    id: int
    ref: str = Field(description="the reference the customer quotes")
    status: HandoffStatus
    reason: str = Field(description="asked | verify_failed | order_not_found | not_understood | …")
    priority: int
    created_at: datetime
    waiting_seconds: int
    order: str | None = Field(description="masked, e.g. ****3456")
    amount_confirmed: bool
    failures: int
    customer: str = Field(description="masked OpenID")
    channel: str
    claimed_by: str | None = Field(description="the name of the agent holding it")
    dropped_by: str | None = Field(description="the agent whose lease lapsed")
    lease_until: datetime | None = Field(
        description="when the holder's claim lapses unless they reply (null when not held)"
    )
    resolved_at: datetime | None
    last_messages: list[TranscriptLineOut]


class ItemOut(Out):
    item: QueueItemOut


class MaybeItemOut(Out):
    item: QueueItemOut | None = Field(description="null when nothing is waiting")


class ItemsOut(Out):
    items: list[QueueItemOut]


class ConversationOut(Out):
    item: QueueItemOut
    transcript: list[TranscriptLineOut]
    masked: bool
    window_open_until: datetime | None = Field(description="end of WeChat's 48 h reply window")
    replies_left: int = Field(description="of the 5 replies WeChat allows per customer message")


class AgentsOut(Out):
    agents: list[AgentOut]


class ContactOut(Out):
    contact: str = Field(description="the contact's id, as imported (e.g. C001)")
    name: str
    wechat_id_masked: str = Field(description="never the WeChat ID in clear")
    store: str | None
    on_duty: bool
    add_by: list[str] = Field(description="how a customer can add them: qr, wecom (or none)")


class ContactsOut(Out):
    items: list[ContactOut]


class LoginOut(Out):
    """A console login as an admin manages it."""

    id: int
    name: str
    role: Role
    status: LoginStatus = Field(
        description="the first that applies: disabled, locked_out (wrong passwords from some"
        " address), must_change_password (a one-time password not yet replaced), active"
    )
    locked_until: datetime | None = Field(description="when the lockout ends (locked_out only)")
    last_seen_at: datetime | None = Field(description="null if never signed in")
    last_seen_seconds: int | None = Field(description="how long ago it was last seen")


class LoginsOut(Out):
    agents: list[LoginOut]


class UnlockedOut(Out):
    agent: LoginOut
    lockouts_lifted: int = Field(description="how many client addresses were locked out")


class PasswordResetOut(Out):
    agent: LoginOut
    one_time_password: str = Field(
        description="shown only in this answer: pass it on privately; it must be changed at"
        " the next sign-in"
    )
    lockouts_lifted: int


class DisabledOut(Out):
    agent: LoginOut
    changed: bool = Field(description="false if the login was already disabled")
    conversations_returned: int = Field(description="what they held, now back in the queue")


class EnabledOut(Out):
    agent: LoginOut
    changed: bool = Field(description="false if the login was not disabled")


class CannedOut(Out):
    id: int
    title: str
    text: str


class CannedItemOut(Out):
    item: CannedOut


class CannedListOut(Out):
    items: list[CannedOut]


class DeletedOut(Out):
    deleted: int


class TodayOut(Out):
    waiting: int
    handled_today: int
    avg_wait_seconds: float | None
    avg_first_response_seconds: float | None
    avg_resolution_seconds: float | None


class DocumentOut(Out):
    """The OpenAPI document itself (described by the OpenAPI 3.1 specification)."""

    model_config = ConfigDict(extra="allow")

    openapi: str


# -- the live feed ----------------------------------------------------------------------------


class Frame(Out):
    """A text frame on /api/ws: ``{"type": "ping"}`` from the console, ``{"type": "pong"}``
    or an event (``queue``, ``message``, ``handoff``, …, with its own fields) from the server."""

    model_config = ConfigDict(extra="allow")

    type: str


# -- refusals ---------------------------------------------------------------------------------


class ErrorWords(Out):
    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    zh: str = Field(description="what failed and what to do, in Chinese")
    en: str = Field(description="the same in English")
    key: str | SkipJsonSchema[None] = Field(
        default=None, description="a stable name of the case, when it has one (for scripts)"
    )


class Error(Out):
    """Every refusal, whatever the status: the one error shape."""

    error: ErrorWords

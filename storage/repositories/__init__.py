"""Repositories over one AsyncSession; a ``Repositories`` bundle is one unit of work."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.repositories.agents import AgentRepository
from storage.repositories.audit import AuditRecord, AuditRepository
from storage.repositories.canned import CannedReplyRepository
from storage.repositories.cards import ApiErrorRepository, CardRepository
from storage.repositories.consents import ConsentRepository
from storage.repositories.consoles import ConsoleRepository
from storage.repositories.conversations import ConversationRepository, TranscriptRepository
from storage.repositories.funnel import FunnelRepository
from storage.repositories.guards import OrderGuardRepository
from storage.repositories.handoffs import HandoffRepository
from storage.repositories.inbox import InboxRepository
from storage.repositories.orders import ContactRepository, OrderRepository
from storage.repositories.qrs import OrderQrRepository
from storage.repositories.rechecks import RecheckRepository


@dataclass(frozen=True)
class Repositories:
    session: AsyncSession
    orders: OrderRepository
    contacts: ContactRepository
    conversations: ConversationRepository
    transcript: TranscriptRepository
    consents: ConsentRepository
    inbox: InboxRepository
    handoffs: HandoffRepository
    funnel: FunnelRepository
    cards: CardRepository
    guards: OrderGuardRepository
    qrs: OrderQrRepository
    rechecks: RecheckRepository
    agents: AgentRepository
    consoles: ConsoleRepository
    audit: AuditRepository
    canned: CannedReplyRepository

    @classmethod
    def on(cls, session: AsyncSession) -> Repositories:
        return cls(
            session=session,
            orders=OrderRepository(session),
            contacts=ContactRepository(session),
            conversations=ConversationRepository(session),
            transcript=TranscriptRepository(session),
            consents=ConsentRepository(session),
            inbox=InboxRepository(session),
            handoffs=HandoffRepository(session),
            funnel=FunnelRepository(session),
            cards=CardRepository(session),
            guards=OrderGuardRepository(session),
            qrs=OrderQrRepository(session),
            rechecks=RecheckRepository(session),
            agents=AgentRepository(session),
            consoles=ConsoleRepository(session),
            audit=AuditRepository(session),
            canned=CannedReplyRepository(session),
        )


__all__ = [
    "AgentRepository",
    "ApiErrorRepository",
    "AuditRecord",
    "AuditRepository",
    "CannedReplyRepository",
    "CardRepository",
    "ConsentRepository",
    "ConsoleRepository",
    "ContactRepository",
    "ConversationRepository",
    "FunnelRepository",
    "HandoffRepository",
    "InboxRepository",
    "OrderGuardRepository",
    "OrderQrRepository",
    "OrderRepository",
    "RecheckRepository",
    "Repositories",
    "TranscriptRepository",
]

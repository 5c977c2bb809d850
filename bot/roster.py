"""The contacts roster as operators change it after import: who is on duty, from the command
line or the console, each change audited."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.refusals import Refusal
from storage.records import ContactRecord
from storage.repositories import AuditRepository, ContactRepository

DUTY_WORDS = {True: ("在岗", "on duty"), False: ("离岗", "off duty")}


@dataclass(frozen=True, slots=True)
class DutyChange:
    before: ContactRecord
    after: ContactRecord


def add_ways(contact: ContactRecord, wecom_enabled: bool) -> list[str]:
    """How a customer could add this contact from a card: ``qr``, ``wecom`` (as the order
    flow decides: a WeCom account counts only while WeCom is on)."""
    ways = ["qr"] if contact.qr_url else []
    if contact.wecom_userid and wecom_enabled:
        ways.append("wecom")
    return ways


class Roster:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def contacts(self) -> list[ContactRecord]:
        async with self._sessions() as session:
            return await ContactRepository(session).list_all()

    async def set_on_duty(self, key: str, on_duty: bool, *, actor: str) -> DutyChange:
        """Puts contact ``key`` on or off duty; refused (404, ``unknown_contact``) if there is
        no such contact, in the same words for the console's API, its pages and the CLI."""
        key = key.strip()
        async with self._sessions() as session, session.begin():
            contacts = ContactRepository(session)
            before = await contacts.find(key)
            if before is None:
                raise Refusal(
                    404,
                    f"客服表中没有编号为 {key} 的客服。",
                    f"No contact {key} in the contacts table.",
                    key="unknown_contact",
                )
            now = self._clock.now()
            after = await contacts.set_on_duty(key, on_duty, now)
            assert after is not None  # found above, in this transaction
            words = f"{' '.join(DUTY_WORDS[before.on_duty])} → {' '.join(DUTY_WORDS[on_duty])}"
            await AuditRepository(session).record(
                "contact_enable" if on_duty else "contact_disable",
                actor=actor,
                target=f"contact:{key}",
                reason=words,
                now=now,
            )
        return DutyChange(before, after)

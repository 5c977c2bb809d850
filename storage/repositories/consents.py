"""The consent log: one row per agreement, withdrawals stamped, never deleted by the bot."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import run, table_of
from storage.models import Consent
from storage.repositories.audit import AuditRepository

_CONSENTS = table_of(Consent)
_ACTIVE = (
    select(_CONSENTS.c.policy_version)
    .where(
        _CONSENTS.c.channel == bindparam("channel"),
        _CONSENTS.c.user_index.in_(bindparam("indexes", expanding=True)),
        _CONSENTS.c.withdrawn_at.is_(None),
    )
    .order_by(_CONSENTS.c.id.desc())
    .limit(1)
)
_AGREE = insert(_CONSENTS)


class ConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def active_version(self, channel: str, user_id: str) -> str | None:
        """The policy version this user currently agrees to, if any."""
        who = {"channel": channel, "indexes": keyring().index_variants(user_id)}
        version: str | None = (await run(self._s, _ACTIVE, who)).scalar()
        return version

    async def record(self, channel: str, user_id: str, policy_version: str, now: datetime) -> bool:
        """Records agreement unless already active for this version; True if a row was added."""
        if await self.active_version(channel, user_id) == policy_version:
            return False
        agreed = {
            "channel": channel,
            "user_id": user_id,
            "user_index": keyring().index(user_id),
            "policy_version": policy_version,
            "agreed_at": now,
        }
        await run(self._s, _AGREE, agreed)
        await self._audit("consent", channel, user_id, policy_version, now)
        return True

    async def _audit(
        self, action: str, channel: str, user_id: str, policy_version: str, now: datetime
    ) -> None:
        """Consent and withdrawal go to the audit log under the customer's pseudonym."""
        customer = f"customer:{keyring().index(f'{channel}:{user_id}')[:16]}"
        await AuditRepository(self._s).record(
            action, actor=customer, target=f"policy:{policy_version}", now=now
        )

    async def withdraw(self, channel: str, user_id: str, now: datetime) -> None:
        version = await self.active_version(channel, user_id)
        if version is not None:
            await self._audit("withdraw", channel, user_id, version, now)
        await self._s.execute(
            update(Consent)
            .where(
                Consent.channel == channel,
                Consent.user_index.in_(keyring().index_variants(user_id)),
                Consent.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now)
        )

    async def history(
        self, channel: str, user_id: str
    ) -> list[tuple[str, datetime, datetime | None]]:
        rows = await self._s.execute(
            select(Consent.policy_version, Consent.agreed_at, Consent.withdrawn_at)
            .where(
                Consent.channel == channel,
                Consent.user_index.in_(keyring().index_variants(user_id)),
            )
            .order_by(Consent.id)
        )
        return [(v, a, w) for v, a, w in rows]

"""WeChat access tokens in the database, so every process shares one token and one refresher.

WeChat issues one valid token per app: a second refresh replaces (and soon kills) the first.
So refreshing is guarded by a lease row taken with a conditional UPDATE, which is atomic on
both SQLite (writers are serialised) and PostgreSQL (a concurrent UPDATE of the row waits,
then re-checks the WHERE clause against the committed lease).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import AccessToken


class TokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, app_id: str) -> tuple[str | None, datetime | None]:
        """The stored token and when it expires; ``(None, None)`` when there is none."""
        row = (
            await self._s.execute(
                select(AccessToken.token, AccessToken.expires_at).where(
                    AccessToken.app_id == app_id
                )
            )
        ).first()
        if row is None:
            return None, None
        return row.token, row.expires_at

    async def try_take_lease(
        self,
        app_id: str,
        now: datetime,
        lease: timedelta,
        *,
        refresh_before: datetime | None = None,
    ) -> bool:
        """True if this caller may refresh now: nobody else holds an unexpired lease and,
        with ``refresh_before``, no stored token is valid beyond it.

        The second condition closes a race on PostgreSQL: a caller that read "no token",
        then takes the lease just after another process stored a fresh token and ended its
        lease, would otherwise fetch a second token (this UPDATE sees the newer row)."""
        fresh = (
            or_(AccessToken.expires_at.is_(None), AccessToken.expires_at <= refresh_before)
            if refresh_before is not None
            else true()
        )
        await self._s.execute(
            dialect_insert(self._s, AccessToken)
            .values(
                app_id=app_id,
                token=None,
                expires_at=None,
                refresh_lease_until=None,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["app_id"])
        )
        result = await self._s.execute(
            update(AccessToken)
            .where(
                AccessToken.app_id == app_id,
                or_(
                    AccessToken.refresh_lease_until.is_(None),
                    AccessToken.refresh_lease_until < now,
                ),
                fresh,
            )
            .values(refresh_lease_until=now + lease)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    async def release_lease(self, app_id: str, until: datetime) -> None:
        """Gives up a lease after a failed refresh, unless it already passed to someone else."""
        await self._s.execute(
            update(AccessToken)
            .where(AccessToken.app_id == app_id, AccessToken.refresh_lease_until == until)
            .values(refresh_lease_until=None)
        )

    async def store(self, app_id: str, token: str, expires_at: datetime, now: datetime) -> None:
        """Saves a freshly issued token and ends the refresh lease."""
        values = {
            "token": token,
            "expires_at": expires_at,
            "refresh_lease_until": None,
            "updated_at": now,
        }
        await self._s.execute(
            dialect_insert(self._s, AccessToken)
            .values(app_id=app_id, **values)
            .on_conflict_do_update(index_elements=["app_id"], set_=values)
        )

    async def invalidate(self, app_id: str, token: str) -> None:
        """Forgets a token WeChat refused, unless another process has already replaced it."""
        await self._s.execute(
            update(AccessToken)
            .where(AccessToken.app_id == app_id, AccessToken.token == token)
            .values(token=None, expires_at=None)
        )

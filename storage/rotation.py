"""Re-sealing every sealed field under the newest key (``billbot keys rotate``).

Table by table, in batches of rows ordered by id, each batch its own transaction: a value not
sealed under the newest key (an older key's, or plaintext from before encryption) is opened
and sealed again. A value is only replaced if it is still what was read, so a concurrent
write is never overwritten. Interrupted, it simply runs again: values already current are
skipped, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Column, Table, Text, bindparam, func, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import Keyring, Sealed, SealedJSON
from storage.models import Base

# Blind indexes to recompute under the newest key: table → (sealed source, index column)…
INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (("order_no", "order_index"), ("payer_openid", "payer_index")),
    "conversations": (("user_id", "user_index"),),
    "consents": (("user_id", "user_index"),),
    "order_rechecks": (("order_no", "order_index"),),
    "order_qrs": (("order_no", "order_index"),),
}


@dataclass
class RotationReport:
    rows: int = 0  # rows looked at
    resealed: int = 0  # values sealed again under the newest key
    reindexed: int = 0  # blind indexes recomputed under the newest key
    current: int = 0  # values already under the newest key
    per_table: dict[str, int] = field(default_factory=dict)


def sealed_columns() -> list[tuple[Table, list[Column[str]]]]:
    """Every table with sealed columns, and those columns (tables keyed by ``id``)."""
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, Sealed | SealedJSON)]
        if columns:
            found.append((table, columns))
    return found


async def count_rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        total = 0
        for table, _ in sealed_columns():
            total += int(await session.scalar(select(func.count()).select_from(table)) or 0)
    return total


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    keys: Keyring,
    *,
    batch: int = 500,
    progress: Callable[[str, int, RotationReport], None] | None = None,
) -> RotationReport:
    """Re-seals every sealed value not under ``keys``' newest key; safe to run again."""
    report = RotationReport()
    for table, columns in sealed_columns():
        key = table.c.id
        raw = [type_coerce(c, Text).label(c.name) for c in columns]  # as stored: no opening
        indexed = INDEXES.get(table.name, ())
        raw.extend(table.c[target].label(f"_index_{target}") for _, target in indexed)
        after = 0
        while True:
            async with sessions() as session, session.begin():
                rows = (
                    await session.execute(
                        select(key, *raw).where(key > after).order_by(key).limit(batch)
                    )
                ).all()
                if not rows:
                    break
                for column in columns:
                    changes = []
                    for row in rows:
                        stored = getattr(row, column.name)
                        if stored is None:
                            continue
                        if keys.is_current(stored):
                            report.current += 1
                            continue
                        changes.append(
                            {"rid": row.id, "old": stored, "new": keys.seal(keys.open(stored))}
                        )
                    if changes:
                        await session.execute(
                            update(table)
                            .where(
                                key == bindparam("rid"),
                                type_coerce(column, Text) == bindparam("old", type_=Text),
                            )
                            .values({column.name: bindparam("new", type_=Text)}),
                            changes,
                        )
                        report.resealed += len(changes)
                        report.per_table[table.name] = report.per_table.get(table.name, 0) + len(
                            changes
                        )
                for source, target in indexed:
                    stale = []
                    for row in rows:
                        value = getattr(row, source)
                        fresh = None if value is None else keys.index(keys.open(value))
                        if getattr(row, f"_index_{target}") != fresh:
                            stale.append({"rid": row.id, "new": fresh})
                    if stale:
                        await session.execute(
                            update(table)
                            .where(key == bindparam("rid"))
                            .values({target: bindparam("new")}),
                            stale,
                        )
                        report.reindexed += len(stale)
                report.rows += len(rows)
                after = rows[-1].id
            if progress is not None:
                progress(table.name, len(rows), report)
    return report

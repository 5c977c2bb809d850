"""Key rotation of a large transcript: time, and proof that nothing was lost.

    .venv/bin/python bench/key_rotation.py [--rows 100000] [--batch 500]

Fills a fresh SQLite file with ``--rows`` transcript lines sealed under an old key, then
re-seals everything under a new one with the same code `billbot keys rotate` runs, and opens
every line afterwards to compare it with what was written. The baseline rewrites the same
rows in the same database with one plain UPDATE (no cryptography, no batching): the floor of
what touching every row costs here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.crypto import configure  # noqa: E402
from storage.db import create_engine, migrate, session_factory  # noqa: E402
from storage.models import Conversation, Message  # noqa: E402
from storage.rotation import rotate  # noqa: E402

OLD, NEW = "bench-old-key-0123456789abcdef", "bench-new-key-fedcba9876543210"
NOW = datetime(2026, 5, 3, tzinfo=UTC)


def line(i: int) -> str:
    return f"第 {i} 行：我的订单 DD2025{i:010d}，电话 139{i:08d}"


async def run(rows: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/rotation.db")
        keys = configure([OLD])
        await migrate(engine)
        sessions = session_factory(engine)
        async with sessions() as s, s.begin():
            conv = (
                await s.execute(
                    insert(Conversation).values(
                        channel="wechat",
                        user_id="oBench",
                        user_index=keys.index("oBench"),
                        state="new",
                        data={},
                        lang="zh",
                        owner="bot",
                        version=0,
                        created_at=NOW,
                        updated_at=NOW,
                        expires_at=NOW,
                    )
                )
            ).inserted_primary_key[0]
            for start in range(0, rows, 10_000):
                await s.execute(
                    insert(Message),
                    [
                        {
                            "conversation_id": conv,
                            "direction": "in",
                            "sender": "customer",
                            "text": line(i),
                            "created_at": NOW,
                        }
                        for i in range(start, min(rows, start + 10_000))
                    ],
                )
        started = time.perf_counter()
        async with sessions() as s, s.begin():
            await s.execute(text("UPDATE messages SET sender = sender"))
        baseline = time.perf_counter() - started

        keys = configure([NEW, OLD])
        started = time.perf_counter()
        report = await rotate(sessions, keys, batch=batch)
        took = time.perf_counter() - started

        configure([NEW])  # the old key is gone: every line must open under the new one
        async with sessions() as s:
            opened = list(await s.scalars(select(Message.text).order_by(Message.id)))
        await engine.dispose()
    intact = opened == [line(i) for i in range(rows)]
    print(f"rows: {rows:,} transcript lines (+1 conversation), batch {batch}")
    print(
        f"rotation: {took:.1f} s, {report.resealed:,} values re-sealed, {rows / took:,.0f} rows/s"
    )
    print(
        f"baseline (one plain UPDATE of every row): {baseline:.2f} s;"
        f" rotation ×{took / baseline:.0f}"
    )
    print(f"all {len(opened):,} lines open under the new key alone and match: {intact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.batch))


if __name__ == "__main__":
    main()

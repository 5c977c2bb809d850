"""Field encryption at rest and key rotation, on the real databases; a rotation killed half
way (SIGKILL) resumes and loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Text, insert, select, text, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import PREFIX, KeyringError, configure, key_id, keyring
from storage.db import create_engine, migrate, session_factory
from storage.models import Contact, Conversation, Message
from storage.records import ContactRecord
from storage.repositories import ContactRepository, ConversationRepository
from storage.rotation import rotate

OLD = "old-field-key-0123456789abcdef"
NEW = "new-field-key-fedcba9876543210"
NOW = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


async def conversation(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s, s.begin():
        result = await s.execute(
            insert(Conversation).values(
                channel="wechat",
                user_id="oRotation",
                user_index=keyring().index("oRotation"),
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
        return int(result.inserted_primary_key[0])


async def write_lines(sessions: async_sessionmaker[AsyncSession], n: int) -> int:
    conv = await conversation(sessions)
    async with sessions() as s, s.begin():
        await s.execute(
            insert(Message),
            [
                {
                    "conversation_id": conv,
                    "direction": "in",
                    "sender": "customer",
                    "text": f"我的手机 1380013{i:04d} 订单 DD2025{i:08d}",
                    "created_at": NOW,
                }
                for i in range(n)
            ],
        )
    return conv


async def stored_texts(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as s:
        return list(await s.scalars(select(type_coerce(Message.text, Text)).order_by(Message.id)))


async def test_fields_are_sealed_at_rest_and_rotation_reseals_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    configure([OLD])
    await write_lines(sessions, 30)
    async with sessions() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [
                ContactRecord(
                    contact="c1",
                    name="甲",
                    wechat_id="wx_secret_id1",
                    qr_url="https://u.wechat.com/x",
                )
            ],
            NOW,
        )
        # a row written before encryption existed: plaintext in the column
        await s.execute(
            text(
                "UPDATE messages SET text = 'plain from before'"
                " WHERE id = (SELECT min(id) FROM messages)"
            )
        )
    raw = await stored_texts(sessions)
    assert raw[0] == "plain from before"
    assert all(r.startswith(f"{PREFIX}{key_id(OLD)}.") for r in raw[1:])
    assert not any("13800" in r for r in raw)

    keys = configure([NEW, OLD])  # a new key in front: new writes use it, old rows still read
    async with sessions() as s:
        assert (
            await s.scalars(select(Message.text).order_by(Message.id))
        ).first() == "plain from before"
    report = await rotate(sessions, keys, batch=7)
    # 30 lines (one of them plaintext), wechat_id and qr_url, the conversation's OpenID and data
    assert report.resealed == 30 + 2 + 2 and report.reindexed == 1
    assert all(r.startswith(f"{PREFIX}{key_id(NEW)}.") for r in await stored_texts(sessions))
    again = await rotate(sessions, keys, batch=7)
    assert again.resealed == 0 and again.reindexed == 0 and again.current == 34

    configure([NEW])  # the old key can go now
    async with sessions() as s:
        found = await ConversationRepository(s).get("wechat", "oRotation")
        assert found is not None and found.user_id == "oRotation"
        texts = list(await s.scalars(select(Message.text).order_by(Message.id)))
        contact = await s.scalar(select(Contact))
    assert texts[0] == "plain from before" and texts[1].startswith("我的手机 13800130001")
    assert contact is not None and contact.wechat_id == "wx_secret_id1"


async def test_a_value_under_a_key_that_is_gone_says_what_to_do(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    configure([OLD])
    await write_lines(sessions, 1)
    configure([NEW])
    with pytest.raises(KeyringError, match="put the old key back"):
        async with sessions() as s:
            await s.scalar(select(Message.text))


async def test_a_rotation_killed_half_way_resumes_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/rotate.db"
    engine = create_engine(url)
    await migrate(engine)
    sessions = session_factory(engine)
    configure([OLD])
    await write_lines(sessions, 20_000)
    before = await stored_texts(sessions)
    env = {
        **os.environ,
        "BILLBOT_DATABASE_URL": url,
        "BILLBOT_SECRET_KEYS": f"{NEW},{OLD}",
    }

    async def run_rotation(kill_after_first_batch: bool) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "keys",
            "rotate",
            "--batch",
            "50",
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        if kill_after_first_batch:
            line = b""
            while not line.startswith(b"messages:"):  # the first batch of transcript lines
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
                assert line, "the rotation ended before it reached the transcript"
            proc.send_signal(signal.SIGKILL)
        else:
            await asyncio.wait_for(proc.communicate(), timeout=300)
        return await proc.wait()

    assert await run_rotation(kill_after_first_batch=True) == -signal.SIGKILL
    halfway = await stored_texts(sessions)
    sealed_new = sum(r.startswith(f"{PREFIX}{key_id(NEW)}.") for r in halfway)
    assert 50 <= sealed_new < 20_000  # killed part way: some batches committed, not all
    assert await run_rotation(kill_after_first_batch=False) == 0
    after = await stored_texts(sessions)
    assert all(r.startswith(f"{PREFIX}{key_id(NEW)}.") for r in after)
    configure([NEW, OLD])
    async with sessions() as s:
        opened = list(await s.scalars(select(Message.text).order_by(Message.id)))
    assert len(opened) == len(before) == 20_000
    assert opened == [f"我的手机 1380013{i:04d} 订单 DD2025{i:08d}" for i in range(20_000)]
    await engine.dispose()

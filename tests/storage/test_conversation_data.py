"""A conversation's typed data: its JSON round trip, rows written before it was typed, damaged
values, and what each transition (restart, close, …) clears."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import keyring
from storage.models import Conversation
from storage.records import ConversationData, FunnelStep, Journey
from storage.repositories import Repositories

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
JOURNEY = Journey(
    id="5f0c2a9e1b7d3c44",
    mode="amount",
    steps=[FunnelStep.STARTED, FunnelStep.CONSENT_SHOWN, FunnelStep.CONSENTED],
    stage=FunnelStep.CONSENTED,
)
# a row as the code before the typed data wrote it: every key it ever stored
OLD_ROW: dict[str, object] = {
    "order_no": "DD20250503123456",
    "verified": False,
    "not_found": 0,
    "not_understood": 1,
    "verify_failures": 2,
    "choices": ["DD20250503123456", "DD20250501000001"],
    "held_text": "DD20250503123456",
    "scanned_order": "DD20250501000001",
    "consent": "2026-05-01",
    "handoff_ref": "H7Q2",
    "handoff_id": 7,
    "before_handoff": "verify",
    "funnel": {"id": "5f0c2a9e1b7d3c44", "mode": "amount"},
}


def everything() -> ConversationData:
    """Data with every field away from its default."""
    return ConversationData(
        order_no="DD20250503123456",
        verified=True,
        choices=["DD20250503123456", "DD20250501000001"],
        not_found=1,
        not_understood=2,
        held_text="我的订单 DD20250503123456",
        scanned_order="DD20250501000001",
        handoff_id=7,
        handoff_ref="H7Q2",
        before_handoff="verify",
        consent="2026-05-01",
        unknown={"from_a_newer_version": {"kept": [1, 2]}},
        verify_failures=2,
        journey=replace(JOURNEY, steps=list(JOURNEY.steps)),
    )


def stored(data: ConversationData) -> object:
    """What the column gives back: the JSON text, parsed again."""
    return json.loads(json.dumps(data.to_json(), ensure_ascii=False))


def test_every_field_survives_the_round_trip() -> None:
    data = everything()
    assert ConversationData.from_json(stored(data)) == data
    assert ConversationData.from_json(stored(ConversationData())) == ConversationData()


def test_defaults_are_left_out_of_the_stored_object() -> None:
    assert ConversationData().to_json() == {}
    assert ConversationData(order_no="DD1", verify_failures=1).to_json() == {
        "order_no": "DD1",
        "verify_failures": 1,
    }


def test_a_row_written_before_the_data_was_typed_reads_the_same() -> None:
    data = ConversationData.from_json(OLD_ROW)
    assert data == ConversationData(
        order_no="DD20250503123456",
        not_understood=1,
        verify_failures=2,
        choices=["DD20250503123456", "DD20250501000001"],
        held_text="DD20250503123456",
        scanned_order="DD20250501000001",
        consent="2026-05-01",
        handoff_ref="H7Q2",
        handoff_id=7,
        before_handoff="verify",
        journey=Journey(id="5f0c2a9e1b7d3c44", mode="amount"),  # no step recorded yet
    )
    # written back, it keeps the keys the old code reads (defaults left out)
    again = data.to_json()
    assert {k: v for k, v in OLD_ROW.items() if k != "funnel" and v} == {
        k: v for k, v in again.items() if k != "funnel"
    }
    assert again["funnel"] == {
        "id": "5f0c2a9e1b7d3c44",
        "mode": "amount",
        "steps": [],
        "stage": "started",
        "done": False,
    }


def test_keys_it_does_not_know_are_kept_and_written_back() -> None:
    data = ConversationData.from_json({"order_no": "DD1", "attempts": 3, "new": {"a": [1]}})
    assert data.order_no == "DD1" and data.unknown == {"attempts": 3, "new": {"a": [1]}}
    assert data.to_json() == {"order_no": "DD1", "attempts": 3, "new": {"a": [1]}}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (None, ConversationData()),
        ([], ConversationData()),
        ("not json", ConversationData()),
        ({"verify_failures": "2"}, ConversationData()),
        ({"verify_failures": -1}, ConversationData()),
        ({"verify_failures": True}, ConversationData()),
        ({"order_no": 20250503123456}, ConversationData()),
        ({"verified": "yes"}, ConversationData()),
        ({"choices": "DD1"}, ConversationData()),
        ({"choices": ["DD1", 2]}, ConversationData()),
        ({"handoff_id": "7"}, ConversationData()),
        ({"funnel": "5f0c"}, ConversationData()),
        ({"funnel": {"mode": "amount"}}, ConversationData()),
        (
            {"funnel": {"id": "j1", "mode": 3, "steps": "started", "stage": 4, "done": "no"}},
            ConversationData(journey=Journey("j1", "")),
        ),
        (
            {"funnel": {"id": "j1", "mode": "amount", "steps": ["started", "teleported"]}},
            ConversationData(journey=Journey("j1", "amount", [FunnelStep.STARTED])),
        ),
        (
            {"consent": "2026-05-01", "verify_failures": "x", "order_no": "DD1"},
            ConversationData(order_no="DD1", consent="2026-05-01"),
        ),
    ],
)
def test_a_damaged_value_reads_as_its_default_and_is_logged(
    row: object, expected: ConversationData, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="storage.records"):
        assert ConversationData.from_json(row) == expected
    if row is not None:
        assert caplog.records  # said which key, never its value (it may be personal)
        assert "20250503123456" not in caplog.text and "DD1" not in caplog.text


KEY = st.sampled_from([*OLD_ROW, "id", "mode", "steps", "stage", "done", "attempts"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=5),
    max_leaves=20,
)
ROW = st.dictionaries(KEY | st.text(max_size=4), JSON, max_size=10)


@settings(max_examples=200, deadline=None)
@given(row=ROW | JSON)
def test_whatever_is_stored_loads_and_saves_back_unchanged(row: object) -> None:
    logging.disable(logging.WARNING)  # thousands of damaged values, each logged
    try:
        data = ConversationData.from_json(row)
        assert ConversationData.from_json(stored(data)) == data
    finally:
        logging.disable(logging.NOTSET)


def cleared(data: ConversationData, *names: str) -> ConversationData:
    """``data`` with exactly ``names`` back at their defaults."""
    blank = ConversationData()
    return replace(data, **{name: getattr(blank, name) for name in names})


ORDER_IN_HAND = (
    "order_no",
    "verified",
    "choices",
    "not_found",
    "not_understood",
    "held_text",
    "scanned_order",
)
HANDOFF = ("handoff_id", "handoff_ref", "before_handoff")


def test_a_restart_clears_the_order_in_hand_and_keeps_the_rest() -> None:
    data = everything()
    data.restart()
    assert data == cleared(everything(), *ORDER_IN_HAND)
    assert data.journey == JOURNEY and data.verify_failures == 2 and data.consent


def test_a_close_clears_the_order_and_the_handoff_and_keeps_the_journey() -> None:
    data = everything()
    data.close()
    assert data == cleared(everything(), *ORDER_IN_HAND, *HANDOFF)
    assert data.journey == JOURNEY and data.verify_failures == 2  # the throttle stays


def test_a_hand_back_resumes_where_the_handoff_began_and_lifts_the_throttle() -> None:
    data = everything()
    assert data.hand_back() == "verify"
    assert data == cleared(everything(), *HANDOFF, "verify_failures")


def test_leaving_a_handoff_clears_only_the_handoff() -> None:
    data = everything()
    assert data.leave_handoff() == "verify"
    assert data == cleared(everything(), *HANDOFF)


def test_a_withdrawal_keeps_only_the_guess_throttle_and_the_journey() -> None:
    data = everything()
    data.withdraw()
    assert data == ConversationData(verify_failures=2, journey=JOURNEY)


def test_expiry_clears_everything() -> None:
    data = everything()
    data.expire()
    assert data == ConversationData()


def test_a_cleared_list_is_a_new_one() -> None:
    data = everything()
    choices = data.choices
    data.restart()
    data.choices.append("DD2")
    assert choices == everything().choices


async def test_an_old_row_loads_through_the_repository_and_saves_back(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await s.execute(
            insert(Conversation).values(
                channel="wechat",
                user_id="oOldRow",
                user_index=keyring().index("oOldRow"),
                state="verify",
                data={**OLD_ROW, "attempts": 3},
                lang="zh",
                owner="bot",
                version=0,
                created_at=NOW,
                updated_at=NOW,
                expires_at=NOW,
            )
        )
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        conv = await repos.conversations.load_for_update("wechat", "oOldRow", "new", NOW, NOW)
        assert conv.data == replace(ConversationData.from_json(OLD_ROW), unknown={"attempts": 3})
        conv.data.restart()
        await repos.conversations.save(conv, NOW)
    async with sessions() as s:
        row = (await s.scalars(select(Conversation.data))).one()
    assert row == {
        "verify_failures": 2,
        "consent": "2026-05-01",
        "handoff_ref": "H7Q2",
        "handoff_id": 7,
        "before_handoff": "verify",
        "attempts": 3,
        "funnel": JOURNEY.to_json() | {"steps": [], "stage": "started"},
    }


async def test_a_damaged_row_loads_with_defaults(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        conv = await Repositories.on(s).conversations.load_for_update(
            "wechat", "oDamaged", "new", NOW, NOW
        )
        await s.execute(
            update(Conversation)
            .where(Conversation.id == conv.id)
            .values(data={"verify_failures": "many", "funnel": 7, "consent": "2026-05-01"})
        )
    async with sessions() as s:
        loaded = await Repositories.on(s).conversations.get("wechat", "oDamaged")
    assert loaded is not None and loaded.data == ConversationData(consent="2026-05-01")

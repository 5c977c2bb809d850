"""Service contacts: who a verified order's customer is sent to, on duty or off, and the
fallback contact; run on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from storage.records import ContactRecord, OrderRecord
from storage.repositories import ContactRepository, Repositories

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def contacts(sessions: Sessions, clock: FakeClock) -> None:
    async with sessions() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [
                ContactRecord("any", "Any", "wx_any00001"),
                ContactRecord("shop", "Shop", "wx_shop0001", store="north"),
                ContactRecord("own", "Own", "wx_own00001", store="north"),
                ContactRecord("spare", "Spare", "wx_spare001"),
                ContactRecord("away", "Away", "wx_away0001", store="south", on_duty=False),
            ],
            clock.now(),
        )


async def chosen(sessions: Sessions, order: OrderRecord, fallback: str | None = None) -> str:
    async with sessions() as s:
        contact = await ContactRepository(s).for_order(order, fallback)
    return "nobody" if contact is None else contact.contact


@pytest.mark.usefixtures("contacts")
@pytest.mark.parametrize(
    ("order", "fallback", "expected"),
    [
        (OrderRecord("X1", 1, contact="own", store="north"), None, "own"),
        (OrderRecord("X1", 1, contact="own", store="north"), "spare", "own"),
        # a named contact who cannot serve: the fallback, else nobody — never the store's
        (OrderRecord("X2", 1, contact="gone", store="north"), None, "nobody"),
        (OrderRecord("X2", 1, contact="gone", store="north"), "spare", "spare"),
        (OrderRecord("X3", 1, contact="away", store="north"), None, "nobody"),
        (OrderRecord("X3", 1, contact="away"), "spare", "spare"),
        (OrderRecord("X3", 1, contact="away"), "away", "nobody"),  # the fallback is off duty
        (OrderRecord("X3", 1, contact="gone"), "missing", "nobody"),
        # naming nobody: the store's on-duty contact, then the fallback, then anyone on duty
        (OrderRecord("X4", 1, store="north"), "spare", "shop"),
        (OrderRecord("X5", 1, store="south"), "spare", "spare"),  # south's only one is away
        (OrderRecord("X5", 1, store="south"), None, "any"),
        (OrderRecord("X6", 1), "spare", "spare"),
        (OrderRecord("X6", 1), "missing", "any"),
        (OrderRecord("X6", 1), None, "any"),
    ],
)
async def test_for_order_chooses_by_contact_store_fallback_and_duty(
    sessions: Sessions, order: OrderRecord, fallback: str | None, expected: str
) -> None:
    assert await chosen(sessions, order, fallback) == expected


@pytest.mark.usefixtures("contacts")
async def test_nobody_on_duty_means_nobody(sessions: Sessions, clock: FakeClock) -> None:
    async with sessions() as s, s.begin():
        for key in ("any", "shop", "own", "spare"):
            await ContactRepository(s).set_on_duty(key, False, clock.now())
    assert await chosen(sessions, OrderRecord("X1", 1, store="north"), "spare") == "nobody"
    assert await chosen(sessions, OrderRecord("X1", 1)) == "nobody"


@pytest.mark.usefixtures("contacts")
async def test_a_named_contact_who_cannot_serve_is_logged_by_name(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="storage.repositories.orders"):
        await chosen(sessions, OrderRecord("X1", 1, contact="C999"))
        await chosen(sessions, OrderRecord("X2", 1, contact="away"), "spare")
        await chosen(sessions, OrderRecord("X3", 1, contact="own"))  # fine: nothing logged

    assert len(caplog.records) == 2
    missing, off = (record.getMessage() for record in caplog.records)
    assert "'C999'" in missing and "not in the contacts table" in missing
    assert "handoff queue" in missing
    assert "'away'" in off and "off duty" in off and "'spare'" in off


@pytest.mark.usefixtures("contacts")
async def test_set_on_duty_returns_the_contact_as_it_now_is(
    sessions: Sessions, clock: FakeClock
) -> None:
    clock.advance(timedelta(minutes=5))
    async with sessions() as s, s.begin():
        repo = ContactRepository(s)
        off = await repo.set_on_duty("own", False, clock.now())
        unknown = await repo.set_on_duty("C999", False, clock.now())
    assert off is not None and (off.contact, off.on_duty, off.name) == ("own", False, "Own")
    assert off.wechat_id == "wx_own00001"  # unsealed on the way out
    assert unknown is None
    async with sessions() as s:
        stored = await ContactRepository(s).find("own")
    assert stored is not None and stored.on_duty is False
    async with sessions() as s, s.begin():
        back = await ContactRepository(s).set_on_duty("own", True, clock.now())
    assert back is not None and back.on_duty is True


@pytest.mark.usefixtures("contacts")
async def test_list_all_holds_everyone_by_contact_id(sessions: Sessions) -> None:
    async with sessions() as s:
        everyone = await Repositories.on(s).contacts.list_all()
    assert [c.contact for c in everyone] == ["any", "away", "own", "shop", "spare"]
    assert [c.on_duty for c in everyone] == [True, False, True, True, True]
    assert everyone[0].wechat_id == "wx_any00001"


async def test_list_all_of_an_empty_table(sessions: Sessions) -> None:
    async with sessions() as s:
        assert await ContactRepository(s).list_all() == []


@pytest.mark.usefixtures("contacts")
async def test_existing_answers_for_many_ids_at_once(sessions: Sessions) -> None:
    async with sessions() as s:
        repo = ContactRepository(s)
        assert await repo.existing(["own", "C999", "away", "own"]) == {"own", "away"}
        assert await repo.existing([]) == set()


@pytest.mark.usefixtures("contacts")
async def test_an_upsert_may_keep_the_on_duty_of_contacts_already_there(
    sessions: Sessions, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        repo = ContactRepository(s)
        await repo.upsert_many(
            [
                ContactRecord("away", "Away Again", "wx_away0002"),  # on_duty=True, but kept
                ContactRecord("newbie", "New", "wx_newbie01", on_duty=False),
            ],
            clock.now(),
            keep_on_duty=True,
        )
        await repo.upsert_many(
            [ContactRecord("own", "Own", "wx_own00001", on_duty=False)], clock.now()
        )
    async with sessions() as s:
        repo = ContactRepository(s)
        away, newbie, own = (
            await repo.find("away"),
            await repo.find("newbie"),
            await repo.find("own"),
        )
    assert away is not None and (away.name, away.wechat_id, away.on_duty) == (
        "Away Again",
        "wx_away0002",
        False,
    )
    assert newbie is not None and newbie.on_duty is False  # new: the record's own
    assert own is not None and own.on_duty is False  # not kept: the record's

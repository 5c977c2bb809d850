"""CSV import of orders and contacts into a real database, read back through the repositories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.imports import (
    ImportFileError,
    ImportReport,
    RowError,
    Superseded,
    format_report,
    import_contacts,
    import_orders,
    parse_amount_cents,
    parse_on_duty,
    parse_paid_at,
)
from bot.understanding import parse_order_no
from storage.records import ContactRecord, OrderRecord
from storage.repositories.orders import ContactRepository, OrderRepository

Sessions = async_sessionmaker[AsyncSession]


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


async def find_order(sessions: Sessions, order_no: str) -> OrderRecord | None:
    async with sessions() as session:
        return await OrderRepository(session).find(order_no)


async def count_orders(sessions: Sessions) -> int:
    async with sessions() as session:
        return await OrderRepository(session).count()


async def contact_named(sessions: Sessions, key: str) -> ContactRecord | None:
    async with sessions() as session:
        return await ContactRepository(session).find(key)


async def add_contacts(sessions: Sessions, clock: FakeClock, *keys: str) -> None:
    """Contacts the orders below name: an order naming an unknown contact is refused."""
    async with sessions() as session, session.begin():
        await ContactRepository(session).upsert_many(
            [ContactRecord(key, key.title(), f"wx_{key}0001") for key in keys], clock.now()
        )


def assert_accounted(report: ImportReport) -> None:
    assert report.read == report.written + len(report.errors) + len(report.superseded)


GOOD_ORDERS = (
    "order_no,amount,currency,paid_at,store,contact,payer_openid,card_last4,tracking_no,status\n"
    "DD20260503123456,128.50,CNY,2026-05-03 14:30:00,Shanghai,alice,oPayer1,1234,SF123456789,paid\n"
    'dd-2026 0503_000002,"1,280.00",,2026-05-03,,,,,,\n'
    "DD20260503000003,¥99,RMB,2026-05-03T06:30:00Z,,,,0042,,\n"
)


async def test_good_orders_are_imported(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    await add_contacts(sessions, clock, "alice")
    report = await import_orders(write(tmp_path, GOOD_ORDERS), sessions, clock)

    keys = ["DD20260503123456", "DD20260503000002", "DD20260503000003"]
    assert report == ImportReport(kind="orders", read=3, written=3, errors=[], keys=keys)
    first = await find_order(sessions, "DD20260503123456")
    assert first == OrderRecord(
        order_no="DD20260503123456",
        amount_cents=12850,
        currency="CNY",
        paid_at=datetime(2026, 5, 3, 6, 30, tzinfo=UTC),  # naive means China time
        store="Shanghai",
        contact="alice",
        payer_openid="oPayer1",
        card_last4="1234",
        tracking_no="SF123456789",
        status="paid",
    )
    second = await find_order(sessions, "DD20260503000002")
    assert second is not None
    assert second.amount_cents == 128000
    assert second.currency == "CNY"
    assert second.paid_at == datetime(2026, 5, 2, 16, 0, tzinfo=UTC)
    assert second.store is None and second.card_last4 is None
    third = await find_order(sessions, "DD20260503000003")
    assert third is not None
    assert (third.amount_cents, third.currency, third.card_last4) == (9900, "CNY", "0042")
    assert third.paid_at == datetime(2026, 5, 3, 6, 30, tzinfo=UTC)


async def test_order_numbers_are_stored_the_way_the_bot_reads_them(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(tmp_path, "order_no,amount\n ｄｄ－2026-0503 123456 ,10\n")
    await import_orders(path, sessions, clock)

    typed_by_customer = parse_order_no("dd 2026 0503 123456")
    assert typed_by_customer is not None
    found = await find_order(sessions, typed_by_customer)
    assert found is not None and found.amount_cents == 1000


async def test_order_numbers_the_bot_would_misread_are_refused(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "order_no,amount\n"
        "ABCDE12345678,1\n"  # 2: the bot takes five letters as a word, not a prefix
        "2.02605E+17,1\n"  # 3: Excel mangled a long number
        "13812345679,1\n",  # 4: looks like a phone number, but the column says what it is
    )
    report = await import_orders(path, sessions, clock)

    assert report.errors == [
        RowError(
            2,
            "order_no 'ABCDE12345678' is not stored: the bot reads it as '12345678', "
            "so customers could never find it",
        ),
        RowError(
            3,
            "order_no '2.02605E+17' looks like Excel scientific notation; "
            "format the column as text in Excel and export again",
        ),
    ]
    labelled_by_customer = parse_order_no("订单号：13812345679")
    assert labelled_by_customer is not None
    assert await find_order(sessions, labelled_by_customer) is not None


async def test_bad_rows_are_reported_by_line_and_good_rows_kept(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "order_no,amount,paid_at,card_last4\n"  # line 1
        "DD20260503000001,128.50,,\n"  # 2 good
        "DD20260503000002,abc,,\n"  # 3
        ",10,,\n"  # 4
        "DD20260503000004,10,2026-13-45,\n"  # 5
        "DD20260503000005,10,,12345\n"  # 6
        "DD20260503000006,10.555,,\n"  # 7
        "DD20260503000007,-5,,\n"  # 8
        "\n"  # 9 blank: skipped, not counted
        "N/A,10,,\n"  # 10
        "DD20260503000010,,,\n"  # 11
        "DD20260503000011,x,someday,12\n"  # 12 several problems in one row
        "DD20260503000012,0.5,2026/5/3 14:30,0001\n",  # 13 good
    )
    report = await import_orders(path, sessions, clock)

    assert report.read == 11
    assert report.written == 2
    assert report.errors == [
        RowError(3, "amount 'abc' is not a number"),
        RowError(4, "order_no is empty"),
        RowError(
            5,
            "paid_at '2026-13-45' is not an ISO 8601 date or time "
            "(e.g. 2026-05-03 or 2026-05-03T14:30:00+08:00)",
        ),
        RowError(6, "card_last4 must be exactly 4 digits, not 5 characters"),
        RowError(7, "amount '10.555' has more than 2 decimals"),
        RowError(8, "amount '-5' is negative"),
        RowError(10, "order_no 'N/A' is not an order number"),
        RowError(11, "amount is empty"),
        RowError(
            12,
            "amount 'x' is not a number; paid_at 'someday' is not an ISO 8601 date or time "
            "(e.g. 2026-05-03 or 2026-05-03T14:30:00+08:00); card_last4 '12' must be exactly "
            "4 digits (Excel may have dropped leading zeros: format the column as text)",
        ),
    ]
    assert_accounted(report)
    assert await count_orders(sessions) == 2
    kept = await find_order(sessions, "DD20260503000012")
    assert kept is not None
    assert kept.paid_at == datetime(2026, 5, 3, 6, 30, tzinfo=UTC)
    assert kept.card_last4 == "0001"

    summary = format_report(report)
    assert summary.index("读取 11 行") < summary.index("11 rows read")  # Chinese first
    assert "  line 3: amount 'abc' is not a number" in summary.splitlines()
    assert "  line 8: amount '-5' is negative" in summary.splitlines()


async def test_reimport_updates_instead_of_duplicating(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    await add_contacts(sessions, clock, "alice")
    await import_orders(write(tmp_path, GOOD_ORDERS), sessions, clock)
    clock.advance(timedelta(hours=1))
    changed = "order_no,amount,store\nDD20260503123456,200,Beijing\nDD20260503000009,1,\n"
    report = await import_orders(write(tmp_path, changed, "v2.csv"), sessions, clock)

    assert (report.read, report.written, report.errors) == (2, 2, [])
    assert await count_orders(sessions) == 4
    updated = await find_order(sessions, "DD20260503123456")
    assert updated is not None
    assert (updated.amount_cents, updated.store) == (20000, "Beijing")
    # an upsert replaces the row: columns absent from the new file are cleared
    assert updated.card_last4 is None


async def test_duplicate_keys_last_one_wins_and_earlier_lines_are_superseded(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "order_no,amount\n"
        "DD20260503000001,1\n"  # 2
        "DD20260503000002,2\n"  # 3
        "DD20260503000001,3\n"  # 4: same batch as line 2
        "DD20260503000003,4\n"  # 5
        "DD20260503000001,5\n"  # 6: later batch than line 4
        "DD20260503000002,oops\n",  # 7: a bad row supersedes nothing
    )
    report = await import_orders(path, sessions, clock, batch_size=3)

    assert report.superseded == [Superseded(line=2, by_line=4), Superseded(line=4, by_line=6)]
    assert report.errors == [RowError(7, "amount 'oops' is not a number")]
    assert (report.read, report.written) == (6, 3)
    assert_accounted(report)
    last = await find_order(sessions, "DD20260503000001")
    assert last is not None and last.amount_cents == 500
    second = await find_order(sessions, "DD20260503000002")
    assert second is not None and second.amount_cents == 200
    assert "  line 2: superseded by line 4 (same order_no)" in format_report(report).splitlines()


async def test_many_rows_in_small_batches(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    rows = "".join(f"DD2026050300{i:04d},{i}.{i % 100:02d}\n" for i in range(1, 1001))
    path = write(tmp_path, "order_no,amount\n" + rows)
    report = await import_orders(path, sessions, clock, batch_size=64, progress=True)

    assert (report.read, report.written, report.errors) == (1000, 1000, [])
    assert await count_orders(sessions) == 1000
    last = await find_order(sessions, "DD20260503001000")
    assert last is not None and last.amount_cents == 100000


async def test_utf8_bom_is_accepted(tmp_path: Path, sessions: Sessions, clock: FakeClock) -> None:
    path = write(
        tmp_path, "order_no,amount,store\r\nDD20260503000001,8.8,上海店\r\n", encoding="utf-8-sig"
    )
    report = await import_orders(path, sessions, clock)

    assert (report.read, report.written, report.errors, report.encoding) == (1, 1, [], "utf-8")
    found = await find_order(sessions, "DD20260503000001")
    assert found is not None and found.store == "上海店"


async def test_gbk_file_from_chinese_excel(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    text = "订单备注,order_no,amount,store\r\n加急,DD20260503000001,66.00,北京朝阳店\r\n"
    text += "普通,DD20260503000002,１，０００,深圳南山店\r\n"  # full-width digits are fine
    text += "普通,DD20260503000003,一百元,广州天河店\r\n"
    report = await import_orders(write(tmp_path, text, encoding="gbk"), sessions, clock)

    assert report.encoding == "gb18030"
    assert report.written == 2
    assert report.errors == [RowError(4, "amount '一百元' is not a number")]
    found = await find_order(sessions, "DD20260503000001")
    assert found is not None and found.store == "北京朝阳店"
    wide = await find_order(sessions, "DD20260503000002")
    assert wide is not None and (wide.amount_cents, wide.store) == (100000, "深圳南山店")
    assert "GB18030" in format_report(report)


async def test_missing_required_column_names_it(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(tmp_path, "order_no,price\nDD20260503000001,10\n")
    with pytest.raises(ImportFileError) as raised:
        await import_orders(path, sessions, clock)

    assert "amount" in raised.value.en and "amount" in raised.value.zh
    assert "price" in raised.value.en  # what was found instead
    assert await count_orders(sessions) == 0


async def test_semicolon_file_gets_a_hint(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(tmp_path, "order_no;amount\nDD20260503000001;10\n")
    with pytest.raises(ImportFileError, match="comma-separated"):
        await import_orders(path, sessions, clock)


async def test_extra_columns_ignored_and_header_names_forgiving(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        " Remark , ORDER_NO ,Amount,unused\n"
        "vip,DD20260503000001,10,whatever\n"
        "short row,DD20260503000002,20\n",
    )
    report = await import_orders(path, sessions, clock)

    assert (report.read, report.written, report.errors) == (2, 2, [])
    found = await find_order(sessions, "DD20260503000002")
    assert found is not None and found.amount_cents == 2000


async def test_line_numbers_are_physical_lines(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "\n"  # 1: blank before the header
        "order_no,amount,status\n"  # 2
        'DD20260503000001,1,"two\nline status"\n'  # 3-4
        ",,\n"  # 5: an empty Excel row
        "DD20260503000002,bad,\n",  # 6
    )
    report = await import_orders(path, sessions, clock)

    assert report.errors == [RowError(6, "amount 'bad' is not a number")]
    assert (report.read, report.written) == (2, 1)


async def test_malformed_csv_stops_with_the_line(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    runaway = '"' + "x" * 200_000  # an unbalanced quote swallows the rest of the file
    path = write(tmp_path, f"order_no,amount\nDD20260503000001,1\n{runaway},2\n")
    report = await import_orders(path, sessions, clock)

    assert not report.complete
    assert report.written == 1
    assert report.errors[-1].line == 3
    assert "unbalanced quote" in report.errors[-1].reason
    assert "STOPPED" in format_report(report)


async def test_empty_file_is_unusable(tmp_path: Path, sessions: Sessions, clock: FakeClock) -> None:
    with pytest.raises(ImportFileError, match="empty"):
        await import_orders(write(tmp_path, ""), sessions, clock)
    with pytest.raises(ImportFileError, match="empty"):
        await import_contacts(write(tmp_path, "\n\n", "blank.csv"), sessions, clock)


async def test_header_only_file_imports_nothing(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    report = await import_orders(write(tmp_path, "order_no,amount\n"), sessions, clock)
    assert report == ImportReport(kind="orders", read=0, written=0, errors=[])
    assert "读取 0 行" in format_report(report)


async def test_unusable_files(tmp_path: Path, sessions: Sessions, clock: FakeClock) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        await import_orders(tmp_path / "missing.csv", sessions, clock)
    with pytest.raises(ImportFileError, match="directory"):
        await import_orders(tmp_path, sessions, clock)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"order_no,amount\n\xff\xfe\xff\x80,1\n")
    with pytest.raises(ImportFileError, match="neither UTF-8 nor GB18030"):
        await import_orders(binary, sessions, clock)
    utf16 = tmp_path / "unicode.txt"
    utf16.write_bytes("order_no\tamount\n".encode("utf-16"))
    with pytest.raises(ImportFileError, match="UTF-16"):
        await import_orders(utf16, sessions, clock)


async def test_contacts_import_with_bad_qr_url(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "contact,name,wechat_id,qr_url,store,wecom_userid\n"
        "alice,王小明,wx_alice01,https://u.wechat.com/EXAMPLE,上海店,wangxm\n"  # 2
        "bob,李华,wx_bob02,ftp://files.example.com/qr.png,,\n"  # 3
        "carol,赵敏,wx_carol3,not a link,,\n"  # 4
        "dave,,wx_dave04,,,\n"  # 5
        "erin,Erin,wx_erin05,,,\n",  # 6 good, no QR
    )
    report = await import_contacts(path, sessions, clock)

    assert report.kind == "contacts"
    assert report.errors == [
        RowError(3, "qr_url 'ftp://files.example.com/qr.png' is not an http(s) link"),
        RowError(4, "qr_url 'not a link' is not an http(s) link"),
        RowError(5, "name is empty"),
    ]
    assert (report.read, report.written) == (5, 2)
    alice = await contact_named(sessions, "alice")
    assert alice is not None
    assert (alice.name, alice.wechat_id, alice.qr_url, alice.store, alice.wecom_userid) == (
        "王小明",
        "wx_alice01",
        "https://u.wechat.com/EXAMPLE",
        "上海店",
        "wangxm",
    )
    erin = await contact_named(sessions, "erin")
    assert erin is not None and erin.qr_url is None
    assert await contact_named(sessions, "bob") is None
    # erin is kept, but no customer could add her: warned about by line
    assert [w.line for w in report.warnings] == [6]
    assert "customers could not add this person" in report.warnings[0].reason
    summary = format_report(report)
    assert summary.startswith("客服联系人导入完成")
    assert "line 6: no qr_url and no wecom_userid" in summary


async def test_contacts_reimport_updates(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    first = write(tmp_path, "contact,name,wechat_id\nalice,Alice,wx_alice01\n")
    await import_contacts(first, sessions, clock)
    second = write(tmp_path, "CONTACT,Name,WeChat_ID\nalice,Alice W,wx_alice99\n", "v2.csv")
    report = await import_contacts(second, sessions, clock)

    assert (report.read, report.written) == (1, 1)
    alice = await contact_named(sessions, "alice")
    assert alice is not None and (alice.name, alice.wechat_id) == ("Alice W", "wx_alice99")


async def test_contacts_missing_columns(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    with pytest.raises(ImportFileError) as raised:
        await import_contacts(write(tmp_path, "contact\nalice\n"), sessions, clock)
    assert "lacks the required column(s) name (姓名), wechat_id (微信号)" in raised.value.en
    assert "缺少必需的列：姓名（name）、微信号（wechat_id）" in raised.value.zh


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("128.50", 12850),
        ("1,280.00", 128000),
        ("¥128.5", 12850),
        ("￥ 1,280", 128000),
        ("１２８元", 12800),
        ("128.500", 12850),
        (".5", 50),
        ("0", 0),
        ("-0.00", 0),
    ],
)
def test_amounts_accepted(text: str, cents: int) -> None:
    assert parse_amount_cents(text) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "is not a number"),
        ("1,28.00", "is not a number"),
        ("1e3", "is not a number"),
        ("12.3.4", "is not a number"),
        ("-1", "is negative"),
        ("¥-1", "is negative"),
        ("0.001", "has more than 2 decimals"),
    ],
)
def test_amounts_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_amount_cents(text)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-05-03", datetime(2026, 5, 2, 16, 0, tzinfo=UTC)),
        ("2026-05-03 14:30", datetime(2026, 5, 3, 6, 30, tzinfo=UTC)),
        ("2026-05-03T14:30:00+08:00", datetime(2026, 5, 3, 6, 30, tzinfo=UTC)),
        ("2026-05-03T06:30:00Z", datetime(2026, 5, 3, 6, 30, tzinfo=UTC)),
        ("2026/5/3 14:30:15", datetime(2026, 5, 3, 6, 30, 15, tzinfo=UTC)),
    ],
)
def test_paid_at_is_aware_utc(text: str, utc: datetime) -> None:
    assert parse_paid_at(text) == utc


# ---------------------------------------------------------------------------- Chinese headers


async def test_chinese_order_headers_read_as_the_english_ones(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    await add_contacts(sessions, clock, "alice")
    chinese = write(
        tmp_path,
        "订单号,金额,币种,支付时间,门店,客服,付款人,卡号后四位,快递单号,状态\n"
        "DD20260503123456,128.50,CNY,2026-05-03 14:30:00,Shanghai,alice,oPayer1,1234,"
        "SF123456789,paid\n",
    )
    report = await import_orders(chinese, sessions, clock)

    assert (report.read, report.written, report.errors) == (1, 1, [])
    assert await find_order(sessions, "DD20260503123456") == OrderRecord(
        order_no="DD20260503123456",
        amount_cents=12850,
        currency="CNY",
        paid_at=datetime(2026, 5, 3, 6, 30, tzinfo=UTC),
        store="Shanghai",
        contact="alice",
        payer_openid="oPayer1",
        card_last4="1234",
        tracking_no="SF123456789",
        status="paid",
    )


async def test_mixed_headers_and_problems_named_as_the_file_names_them(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "order_no, 金额 ,store\nDD20260503000001,10,上海店\nDD20260503000002,abc,上海店\n",
    )
    report = await import_orders(path, sessions, clock)

    assert report.written == 1
    assert report.errors == [RowError(3, "金额 'abc' is not a number")]
    found = await find_order(sessions, "DD20260503000001")
    assert found is not None and (found.amount_cents, found.store) == (1000, "上海店")


async def test_chinese_contact_headers_with_on_duty(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "客服编号,姓名,微信号,二维码,企业微信账号,门店,在岗\n"
        "C001,王小明,wx_wang0001,https://u.wechat.com/EXAMPLE,wangxm,上海店,是\n"
        "C002,李华,wx_lihua002,https://u.wechat.com/OTHER,,,离岗\n",
    )
    report = await import_contacts(path, sessions, clock)

    assert (report.read, report.written, report.errors) == (2, 2, [])
    assert await contact_named(sessions, "C001") == ContactRecord(
        contact="C001",
        name="王小明",
        wechat_id="wx_wang0001",
        qr_url="https://u.wechat.com/EXAMPLE",
        store="上海店",
        wecom_userid="wangxm",
        on_duty=True,
        id=1,
    )
    lihua = await contact_named(sessions, "C002")
    assert lihua is not None and not lihua.on_duty


async def test_a_column_named_twice_in_two_languages_is_refused_by_line_1(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(tmp_path, "order_no,amount,store,金额\nDD20260503000001,10,,10\n")
    with pytest.raises(ImportFileError) as raised:
        await import_orders(path, sessions, clock)

    assert "line 1 (header)" in raised.value.en and "appears twice" in raised.value.en
    assert "column 2 (amount) and column 4 (金额)" in raised.value.en
    assert "第 1 行" in raised.value.zh and "出现了两次" in raised.value.zh
    assert await count_orders(sessions) == 0


async def test_a_missing_column_is_named_both_ways(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    with pytest.raises(ImportFileError) as raised:
        await import_orders(write(tmp_path, "订单号,price\nDD20260503000001,10\n"), sessions, clock)

    assert "lacks the required column(s) amount (金额)" in raised.value.en
    assert "缺少必需的列：金额（amount）" in raised.value.zh
    assert "price" in raised.value.en  # what was found instead


# ---------------------------------------------------------------------------- on_duty


@pytest.mark.parametrize(
    ("text", "on_duty"),
    [
        ("1", True),
        ("0", False),
        ("TRUE", True),
        ("false", False),
        ("Yes", True),
        ("no", False),
        ("y", True),
        ("N", False),
        ("是", True),
        ("否", False),
        ("在岗", True),
        ("离岗", False),
        (" １ ", True),  # full-width, as Excel may write it
    ],
)
def test_on_duty_words(text: str, on_duty: bool) -> None:
    assert parse_on_duty(text) is on_duty


async def test_an_on_duty_that_is_no_answer_is_a_bad_row(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    path = write(
        tmp_path,
        "contact,name,wechat_id,qr_url,on_duty\n"
        "C001,Ann,wx_ann00001,https://u.wechat.com/A,maybe\n"
        "C002,Bo,wx_bo000002,https://u.wechat.com/B,0\n",
    )
    report = await import_contacts(path, sessions, clock)

    assert [error.line for error in report.errors] == [2]
    assert report.errors[0].reason.startswith("on_duty 'maybe' is not one of 1/0, true/false")
    assert await contact_named(sessions, "C001") is None
    bo = await contact_named(sessions, "C002")
    assert bo is not None and bo.on_duty is False


async def test_reimporting_never_puts_back_on_duty_a_contact_taken_off_duty(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    first = "contact,name,wechat_id,qr_url\nC001,Ann,wx_ann00001,https://u.wechat.com/A\n"
    await import_contacts(write(tmp_path, first), sessions, clock)
    async with sessions() as session, session.begin():  # an operator takes Ann off duty
        await ContactRepository(session).set_on_duty("C001", False, clock.now())

    again = (
        "contact,name,wechat_id,qr_url\n"
        "C001,Ann Lee,wx_ann00001,https://u.wechat.com/A\n"
        "C002,Bo,wx_bo000002,https://u.wechat.com/B\n"
    )
    await import_contacts(write(tmp_path, again, "again.csv"), sessions, clock)
    empty_cell = (
        "contact,name,wechat_id,qr_url,在岗\n"
        "C001,Ann Lee,wx_ann00001,https://u.wechat.com/A,\n"
        "C003,Cy,wx_cy000003,https://u.wechat.com/C,\n"
    )
    await import_contacts(write(tmp_path, empty_cell, "empty.csv"), sessions, clock)

    ann = await contact_named(sessions, "C001")
    assert ann is not None and (ann.name, ann.on_duty) == ("Ann Lee", False)
    for new in ("C002", "C003"):  # new contacts with on_duty unsaid are on duty
        found = await contact_named(sessions, new)
        assert found is not None and found.on_duty is True

    back = (
        "contact,name,wechat_id,qr_url,on_duty\n"
        "C001,Ann Lee,wx_ann00001,https://u.wechat.com/A,yes\n"
    )
    await import_contacts(write(tmp_path, back, "back.csv"), sessions, clock)
    ann = await contact_named(sessions, "C001")
    assert ann is not None and ann.on_duty is True  # said in the file: that is what counts


# ---------------------------------------------------------------------------- unknown contacts


async def test_an_order_naming_an_unknown_contact_is_reported_and_skipped(
    tmp_path: Path, sessions: Sessions, clock: FakeClock
) -> None:
    await add_contacts(sessions, clock, "C001")
    path = write(
        tmp_path,
        "order_no,amount,客服\n"
        "DD20260503000001,10,C001\n"  # 2 good
        "DD20260503000002,20,C999\n"  # 3 unknown contact
        "DD20260503000003,30,\n"  # 4 good: no contact named
        "DD20260503000001,40,C998\n",  # 5 unknown: does not supersede line 2
    )
    report = await import_orders(path, sessions, clock)

    assert [error.line for error in report.errors] == [3, 5]
    assert (report.read, report.written, report.superseded) == (4, 2, [])
    assert_accounted(report)
    assert await find_order(sessions, "DD20260503000002") is None
    kept = await find_order(sessions, "DD20260503000001")
    assert kept is not None and (kept.amount_cents, kept.contact) == (1000, "C001")
    summary = format_report(report).splitlines()
    assert (
        "  第 3 行：客服 C999 不在客服表中——请先导入客服，或改正这一行的客服"
        " / line 3: contact C999 is not in the contacts table — import contacts first or fix"
        " the order"
    ) in summary


async def test_contacts_are_checked_once_per_chunk_not_once_per_row(
    tmp_path: Path, engine: AsyncEngine, sessions: Sessions, clock: FakeClock
) -> None:
    await add_contacts(sessions, clock, "C001", "C002")
    rows = "".join(f"DD2026050300{i:04d},{i},C00{i % 3}\n" for i in range(1, 13))
    path = write(tmp_path, "order_no,amount,contact\n" + rows)
    contact_lookups: list[str] = []

    def watch(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM contacts" in statement:
            contact_lookups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", watch)
    try:
        report = await import_orders(path, sessions, clock, batch_size=5)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", watch)

    assert len(contact_lookups) == 3  # 12 rows in chunks of 5
    assert [error.line for error in report.errors] == [4, 7, 10, 13]  # C000 is nobody
    assert report.written == 8

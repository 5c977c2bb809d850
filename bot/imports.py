"""CSV import of orders and service contacts (``billbot orders|contacts import FILE.csv``).

Bad rows are reported by physical line and skipped; good rows are upserted in batches, each
batch its own transaction, so a huge file never holds one long write lock and a re-run after
a failure simply updates what is already there. Headers may be English or Chinese, mixed.
An order naming a contact that is not in the contacts table is a bad row: its customers would
otherwise be sent to someone nobody chose.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import os
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Generic, TextIO, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.flows.verification import CHINA
from bot.understanding import normalize_text, parse_order_no
from storage.records import ContactRecord, OrderRecord
from storage.repositories.orders import ContactRepository, OrderRepository

ORDER_COLUMNS = ("order_no", "amount")
ORDER_OPTIONAL = (
    "currency",
    "paid_at",
    "store",
    "contact",
    "payer_openid",
    "card_last4",
    "tracking_no",
    "status",
)
CONTACT_COLUMNS = ("contact", "name", "wechat_id")
CONTACT_OPTIONAL = ("qr_url", "store", "wecom_userid", "on_duty")

# The Chinese header of each column (DESIGN.md's contract); either spelling is read.
ORDER_HEADERS_ZH = {
    "order_no": "订单号",
    "amount": "金额",
    "currency": "币种",
    "paid_at": "支付时间",
    "store": "门店",
    "contact": "客服",
    "payer_openid": "付款人",
    "card_last4": "卡号后四位",
    "tracking_no": "快递单号",
    "status": "状态",
}
CONTACT_HEADERS_ZH = {
    "contact": "客服编号",
    "name": "姓名",
    "wechat_id": "微信号",
    "qr_url": "二维码",
    "wecom_userid": "企业微信账号",
    "store": "门店",
    "on_duty": "在岗",
}
_CONTACT_HEADERS_MORE = {"是否在岗": "on_duty"}  # other natural ways to head that column

_READ_CHUNK = 1 << 20
_MAX_CENTS = 2**63 - 1  # BIGINT
_ENCODING_NAMES = {"utf-8": "UTF-8", "gb18030": "GB18030/GBK"}


@dataclass(frozen=True)
class RowError:
    """A row that was skipped; ``line`` is its physical line in the file (the header is line 1)."""

    line: int
    reason: str
    zh: str = ""  # the reason in Chinese, where the import has one (shown first)


@dataclass(frozen=True)
class Superseded:
    """A good row replaced by a later row with the same key: last one wins, not an error."""

    line: int
    by_line: int


@dataclass
class ImportReport:
    """What one import did. ``read == written + len(errors) + len(superseded)`` when complete."""

    kind: str  # "orders" | "contacts"
    read: int = 0  # data rows, blank lines not counted
    written: int = 0  # distinct records upserted
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)  # imported, but see the reason
    superseded: list[Superseded] = field(default_factory=list)
    encoding: str = "utf-8"  # "utf-8" | "gb18030"
    complete: bool = True  # False: malformed CSV stopped the reading (the last error says where)
    keys: list[str] = field(default_factory=list)  # what was written: order numbers, contact ids


class ImportFileError(Exception):
    """The whole file is unusable; nothing was written. The message says what and how to fix."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh}\n{en}")
        self.zh = zh
        self.en = en


class _BadRow(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class _Kind(Generic[R]):
    """One importable table: its columns, how a row becomes a record, and how records are stored."""

    name: str
    label_zh: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key_column: str
    headers_zh: Mapping[str, str]  # column → its Chinese header
    parse: Callable[[_Cells], R]
    key: Callable[[R], str]
    write: Callable[[AsyncSession, Sequence[R], datetime], Awaitable[int]]
    warn: Callable[[R], str | None] = lambda record: None  # imported, but worth a word
    # rows of a chunk refused against the database (one query per chunk), before writing
    vet: Callable[[AsyncSession, Sequence[_Good[R]]], Awaitable[list[RowError]]] | None = None
    more_headers: Mapping[str, str] = field(default_factory=dict)  # other spelling → column

    def column_for(self, header: str) -> str | None:
        """The column a (stripped, lower-cased) header names, in either language."""
        if header in self.required or header in self.optional:
            return header
        for column, zh in self.headers_zh.items():
            if header == zh:
                return column
        return self.more_headers.get(header)

    def both_ways(self, column: str, *, zh: bool = False) -> str:
        """``amount (金额)``, in a Chinese sentence ``金额（amount）``: either name of a column."""
        chinese = self.headers_zh.get(column)
        if not chinese:
            return column
        return f"{chinese}（{column}）" if zh else f"{column} ({chinese})"


# ---------------------------------------------------------------------------- cell parsing


def _show(value: str) -> str:
    """A cell value quoted for a message: whitespace collapsed, long values shortened."""
    flat = " ".join(value.split())
    return f"'{flat if len(flat) <= 40 else flat[:39] + '…'}'"


class _Cells:
    """One row's cells by column name; each accessor records a problem instead of raising.

    Problems name a column by its header in the file (``金额`` where the file says 金额)."""

    def __init__(self, cells: Mapping[str, str], headers: Mapping[str, str] | None = None) -> None:
        self._cells = cells
        self._headers = headers or {}
        self.problems: list[str] = []

    def value(self, name: str, parse: Callable[[str], T], *, required: bool = False) -> T | None:
        raw = self._cells.get(name, "").strip()
        shown = self._headers.get(name, name)
        if not raw:
            if required:
                self.problems.append(f"{shown} is empty")
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append(f"{shown} {exc}")
            return None

    def text(self, name: str, max_len: int, *, required: bool = False) -> str | None:
        return self.value(name, lambda raw: _text(raw, max_len), required=required)

    def check(self) -> None:
        if self.problems:
            raise _BadRow(self.problems)


def _text(raw: str, max_len: int) -> str:
    if "\x00" in raw:
        raise ValueError("contains a NUL character (the database cannot store it)")
    if len(raw) > max_len:
        raise ValueError(f"is {len(raw)} characters long; at most {max_len} fit")
    return raw


_ASCII_ALNUM = re.compile(r"[^0-9A-Z]")
_SEPARATORS = re.compile(r"[\s\-_]")
_EXCEL_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?E\+\d+", re.IGNORECASE)


def parse_order_no_cell(raw: str) -> str:
    """The order number as the bot reads it from a customer, so imports and lookups agree."""
    if _EXCEL_SCIENTIFIC.fullmatch(raw.strip()):
        raise ValueError(
            f"{_show(raw)} looks like Excel scientific notation; "
            "format the column as text in Excel and export again"
        )
    # The column itself labels the cell, as "订单号" does in a chat: the parser then also takes
    # numbers it would otherwise leave alone as phone-like.
    parsed = parse_order_no(raw) or parse_order_no(f"订单号 {raw}")
    if parsed is None:
        raise ValueError(f"{_show(raw)} is not an order number")
    # parse_order_no finds an order number inside free text; a cell must be one, whole.
    whole = _SEPARATORS.sub("", normalize_text(raw).upper())
    if _ASCII_ALNUM.sub("", parsed.upper()) != _ASCII_ALNUM.sub("", whole):
        raise ValueError(
            f"{_show(raw)} is not stored: the bot reads it as {_show(parsed)}, "
            "so customers could never find it"
        )
    return _text(parsed, 64)


_AMOUNT = re.compile(
    r"(?P<sign>[-+]?)\s*(?:¥|CNY|RMB)?\s*(?P<sign_after_symbol>[-+]?)\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<frac>\d*))?\s*(?:元|CNY|RMB)?",
    re.IGNORECASE,
)


def parse_amount_cents(raw: str) -> int:
    """``128.50``, ``1,280.00``, ``¥128.5``, ``１２８元`` → cents; never negative, whole cents."""
    number = _AMOUNT.fullmatch(unicodedata.normalize("NFKC", raw).strip())  # ￥ → ¥, １ → 1
    if (
        number is None
        or not (number["int"] or number["frac"])
        or (number["sign"] and number["sign_after_symbol"])
    ):
        raise ValueError(f"{_show(raw)} is not a number")
    yuan = Decimal(f"{(number['int'] or '0').replace(',', '')}.{number['frac'] or '0'}")
    if "-" in (number["sign"], number["sign_after_symbol"]) and yuan != 0:
        raise ValueError(f"{_show(raw)} is negative")
    cents = yuan * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{_show(raw)} has more than 2 decimals")
    if cents > _MAX_CENTS:
        raise ValueError(f"{_show(raw)} is too large")
    return int(cents)


_LOOSE_DATE = re.compile(
    r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)


def parse_paid_at(raw: str) -> datetime:
    """ISO 8601 date or date-time (also Excel's ``2026/5/3 14:30``); naive means China time."""
    text = unicodedata.normalize("NFKC", raw).strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        loose = _LOOSE_DATE.fullmatch(text)
        try:
            if loose is None:
                raise
            year, month, day, hour, minute, second = (int(p) for p in loose.groups(default="0"))
            when = datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise ValueError(
                f"{_show(raw)} is not an ISO 8601 date or time "
                "(e.g. 2026-05-03 or 2026-05-03T14:30:00+08:00)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CHINA)
    return when.astimezone(UTC)


def parse_card_last4(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip()
    if re.fullmatch(r"[0-9]{4}", text):
        return text
    if re.fullmatch(r"[0-9]{1,3}", text):
        raise ValueError(
            f"{_show(raw)} must be exactly 4 digits (Excel may have dropped leading zeros: "
            "format the column as text)"
        )
    if len(text) > 4:  # may be a whole card number: do not echo it
        raise ValueError(f"must be exactly 4 digits, not {len(text)} characters")
    raise ValueError(f"{_show(raw)} must be exactly 4 digits")


_CURRENCY_ALIASES = {"RMB": "CNY", "人民币": "CNY", "¥": "CNY"}


def parse_currency(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).strip().upper()
    text = _CURRENCY_ALIASES.get(text, text)
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise ValueError(f"{_show(raw)} is not a 3-letter currency code such as CNY")
    return text


def parse_http_url(raw: str) -> str:
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{_show(raw)} is not an http(s) link")
    if any(char.isspace() for char in raw):
        raise ValueError(f"{_show(raw)} contains spaces; an http(s) link cannot")
    return _text(raw, 1024)


_ON_DUTY_WORDS = {
    **dict.fromkeys(("1", "true", "yes", "y", "是", "在岗"), True),
    **dict.fromkeys(("0", "false", "no", "n", "否", "离岗"), False),
}


def parse_on_duty(raw: str) -> bool:
    """``1/0``, ``true/false``, ``yes/no``, ``y/n``, ``是/否``, ``在岗/离岗``, any case."""
    word = _ON_DUTY_WORDS.get(unicodedata.normalize("NFKC", raw).strip().lower())
    if word is None:
        raise ValueError(
            f"{_show(raw)} is not one of 1/0, true/false, yes/no, y/n, 是/否, 在岗/离岗 "
            "(empty: a contact already imported keeps its on_duty, a new one is on duty)"
        )
    return word


def _order_from(cells: _Cells) -> OrderRecord:
    order_no = cells.value("order_no", parse_order_no_cell, required=True)
    amount_cents = cells.value("amount", parse_amount_cents, required=True)
    currency = cells.value("currency", parse_currency)
    paid_at = cells.value("paid_at", parse_paid_at)
    store = cells.text("store", 128)
    contact = cells.text("contact", 128)
    payer_openid = cells.text("payer_openid", 128)
    card_last4 = cells.value("card_last4", parse_card_last4)
    tracking_no = cells.text("tracking_no", 64)
    status = cells.text("status", 32)
    cells.check()
    assert order_no is not None and amount_cents is not None  # required, so checked above
    return OrderRecord(
        order_no=order_no,
        amount_cents=amount_cents,
        currency=currency or "CNY",
        paid_at=paid_at,
        store=store,
        contact=contact,
        payer_openid=payer_openid,
        card_last4=card_last4,
        tracking_no=tracking_no,
        status=status,
    )


@dataclass(frozen=True)
class _ContactRow:
    """A contact as imported; ``on_duty_given`` False: the file left on_duty unsaid."""

    record: ContactRecord
    on_duty_given: bool


def _contact_from(cells: _Cells) -> _ContactRow:
    contact = cells.text("contact", 128, required=True)
    name = cells.text("name", 128, required=True)
    wechat_id = cells.text("wechat_id", 128, required=True)
    qr_url = cells.value("qr_url", parse_http_url)
    store = cells.text("store", 128)
    wecom_userid = cells.text("wecom_userid", 128)
    on_duty = cells.value("on_duty", parse_on_duty)
    cells.check()
    assert contact is not None and name is not None and wechat_id is not None
    record = ContactRecord(
        contact=contact,
        name=name,
        wechat_id=wechat_id,
        qr_url=qr_url,
        store=store,
        wecom_userid=wecom_userid,
        on_duty=True if on_duty is None else on_duty,  # unsaid: a new contact is on duty
    )
    return _ContactRow(record, on_duty_given=on_duty is not None)


async def _write_orders(session: AsyncSession, rows: Sequence[OrderRecord], now: datetime) -> int:
    return await OrderRepository(session).upsert_many(rows, now)


async def _unknown_contacts(
    session: AsyncSession, rows: Sequence[_Good[OrderRecord]]
) -> list[RowError]:
    """Orders naming a contact who is not in the contacts table: never routed by guess."""
    named = {row.record.contact for row in rows if row.record.contact}
    known = await ContactRepository(session).existing(named)
    return [
        RowError(
            row.line,
            f"contact {contact} is not in the contacts table — import contacts first "
            "or fix the order",
            zh=f"客服 {contact} 不在客服表中——请先导入客服，或改正这一行的客服",
        )
        for row in rows
        if (contact := row.record.contact) and contact not in known
    ]


async def _write_contacts(session: AsyncSession, rows: Sequence[_ContactRow], now: datetime) -> int:
    contacts = ContactRepository(session)
    said = [row.record for row in rows if row.on_duty_given]
    unsaid = [row.record for row in rows if not row.on_duty_given]
    # re-importing must never put back on duty a contact an operator took off duty
    return await contacts.upsert_many(said, now) + await contacts.upsert_many(
        unsaid, now, keep_on_duty=True
    )


def _no_way_to_add(row: _ContactRow) -> str | None:
    if row.record.qr_url or row.record.wecom_userid:
        return None
    return (
        "no qr_url and no wecom_userid: customers could not add this person, so their"
        " orders go to the handoff queue instead of a card (客户无法添加此客服)"
    )


ORDERS = _Kind(
    name="orders",
    label_zh="订单",
    required=ORDER_COLUMNS,
    optional=ORDER_OPTIONAL,
    key_column="order_no",
    headers_zh=ORDER_HEADERS_ZH,
    parse=_order_from,
    key=lambda order: order.order_no,
    write=_write_orders,
    vet=_unknown_contacts,
)
CONTACTS = _Kind(
    name="contacts",
    label_zh="客服联系人",
    required=CONTACT_COLUMNS,
    optional=CONTACT_OPTIONAL,
    key_column="contact",
    headers_zh=CONTACT_HEADERS_ZH,
    parse=_contact_from,
    key=lambda row: row.record.contact,
    write=_write_contacts,
    warn=_no_way_to_add,
    more_headers=_CONTACT_HEADERS_MORE,
)


# ---------------------------------------------------------------------------- file reading


def _decodes_as(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as f:
        try:
            while chunk := f.read(_READ_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: Path) -> str:
    """``utf-8`` (BOM or not), else ``gb18030`` (a superset of GBK, what Chinese Excel writes)."""
    shown = str(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ImportFileError(
                f"{shown} 是 UTF-16 编码（Excel 的“Unicode 文本”）。"
                "请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后重试。",
                f"{shown} is UTF-16 (Excel's 'Unicode Text'). "
                "Save it as 'CSV UTF-8 (Comma delimited)' in Excel and try again.",
            )
        for encoding in ("utf-8", "gb18030"):
            if _decodes_as(path, encoding):
                return encoding
    except FileNotFoundError:
        raise ImportFileError(
            f"找不到文件 {shown}。请检查路径。", f"{shown}: no such file. Check the path."
        ) from None
    except IsADirectoryError:
        raise ImportFileError(
            f"{shown} 是目录，不是 CSV 文件。", f"{shown} is a directory, not a CSV file."
        ) from None
    except OSError as exc:
        raise ImportFileError(
            f"无法读取 {shown}：{exc.strerror}。请检查文件权限。",
            f"Cannot read {shown}: {exc.strerror}. Check the file's permissions.",
        ) from None
    raise ImportFileError(
        f"{shown} 既不是 UTF-8 也不是 GB18030/GBK 文本。"
        "请在 Excel 中另存为“CSV UTF-8（逗号分隔）”后重试。",
        f"{shown} is neither UTF-8 nor GB18030/GBK text. "
        "Save it as 'CSV UTF-8 (Comma delimited)' and try again.",
    )


@dataclass(frozen=True)
class _Good(Generic[R]):
    line: int
    key: str
    record: R


class _CsvRows(Generic[R]):
    """A CSV file read row by row: header checked on open, then parsed rows in chunks.

    Everything here blocks (file reads, parsing); the importer calls it in a worker thread.
    """

    def __init__(self, path: Path, encoding: str, kind: _Kind[R]) -> None:
        self.kind = kind
        # utf-8-sig drops a BOM if there is one and reads plain UTF-8 otherwise.
        self._file: TextIO = path.open(
            encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline=""
        )
        self.headers: dict[str, str] = {}  # column → its header as the file spells it
        try:
            self._reader = csv.reader(self._file)
            self._columns = self._read_header(path)
        except BaseException:
            self._file.close()
            raise
        self.size = os.fstat(self._file.fileno()).st_size
        self.stopped_by: RowError | None = None  # malformed CSV ended the reading here
        self._rows = self._parse_rows()

    def close(self) -> None:
        self._file.close()

    def position(self) -> int:
        """Roughly how many bytes have been consumed, for the progress bar."""
        return self._file.buffer.tell()

    def read(self, count: int) -> list[_Good[R] | RowError]:
        return list(islice(self._rows, count))

    def _read_header(self, path: Path) -> dict[str, int]:
        kind = self.kind
        example = ",".join(kind.required)
        example_zh = ",".join(kind.headers_zh[name] for name in kind.required)
        try:
            header = next(row for row in self._reader if any(cell.strip() for cell in row))
        except StopIteration:
            raise ImportFileError(
                f"{path} 是空文件。第一行应是列名，例如：{example_zh}（或 {example}）",
                f"{path} is empty. The first line must name the columns, e.g. {example}"
                f" (or {example_zh})",
            ) from None
        except csv.Error as exc:
            raise ImportFileError(
                f"{path} 的表头不是有效的 CSV：{exc}",
                f"{path}: the header row is not valid CSV ({exc}).",
            ) from None
        line = self._reader.line_num
        names = [cell.replace("\ufeff", "").strip().lower() for cell in header]
        columns: dict[str, int] = {}
        for index, name in enumerate(names):
            column = kind.column_for(name)
            if column is None:
                continue  # extra columns are ignored
            if column in columns:
                first = columns[column]
                raise ImportFileError(
                    f"{path} 第 {line} 行（表头）：第 {first + 1} 列“{names[first]}”和第"
                    f" {index + 1} 列“{name}”都是 {kind.both_ways(column, zh=True)} 列，"
                    "同一列出现了两次。请删除其中一列。",
                    f"{path} line {line} (header): column {first + 1} ({names[first]}) and"
                    f" column {index + 1} ({name}) both name the column"
                    f" {kind.both_ways(column)}: it appears twice. Remove one of them.",
                )
            columns[column] = index
        self.headers = {column: names[index] for column, index in columns.items()}
        missing = [name for name in kind.required if name not in columns]
        if missing:
            found = ", ".join(name for name in names if name) or "(none)"
            wanted_zh = "、".join(kind.both_ways(name, zh=True) for name in missing)
            wanted = ", ".join(kind.both_ways(name) for name in missing)
            optional = ", ".join(kind.both_ways(name) for name in kind.optional)
            hint_zh = hint_en = ""
            if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
                hint_zh = "文件似乎不是用逗号分隔的；请另存为逗号分隔的 CSV。"
                hint_en = " The file seems not to be comma-separated; save it as comma-separated."
            raise ImportFileError(
                f"{path} 第 {line} 行（表头）缺少必需的列：{wanted_zh}。"
                f"现有的列：{found}。必需的列：{example_zh}（或 {example}）。{hint_zh}",
                f"{path} line {line} (header) lacks the required column(s) {wanted}; "
                f"found: {found}. Required: {example} (or {example_zh}); optional: "
                f"{optional}.{hint_en}",
            )
        return columns

    def _parse_rows(self) -> Iterator[_Good[R] | RowError]:
        kind, reader, columns = self.kind, self._reader, self._columns
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.stopped_by = RowError(
                    line,
                    f"malformed CSV ({exc}); reading stopped here and the rest of the file "
                    "was not imported — check this line for an unbalanced quote",
                )
                return
            if not any(cell.strip() for cell in row):
                continue  # blank line, or an empty row of commas from Excel
            cells = {name: row[i] if i < len(row) else "" for name, i in columns.items()}
            try:
                record = kind.parse(_Cells(cells, self.headers))
            except _BadRow as bad:
                yield RowError(line, "; ".join(bad.problems))
                continue
            yield _Good(line, kind.key(record), record)


# ---------------------------------------------------------------------------- the import


class _ProgressBar:
    """Rows processed and bytes read, on stderr; rich renders nothing live when not a terminal."""

    def __init__(self, title: str, total_bytes: int) -> None:
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID = self._progress.add_task(title, total=max(total_bytes, 1), rows=0)

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, rows: int, position: int) -> None:
        self._progress.update(self._task, completed=position, rows=rows)


async def _import(
    kind: _Kind[R],
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    progress: bool,
    batch_size: int,
) -> ImportReport:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    encoding = await asyncio.to_thread(detect_encoding, path)
    source = await asyncio.to_thread(_CsvRows, path, encoding, kind)
    report = ImportReport(kind=kind.name, encoding=encoding)
    last_line: dict[str, int] = {}  # key → line of the row that currently wins
    try:
        bar: AbstractContextManager[_ProgressBar | None] = (
            _ProgressBar(f"{kind.name} ← {path.name}", source.size) if progress else nullcontext()
        )
        with bar as shown:
            while chunk := await asyncio.to_thread(source.read, batch_size):
                async with sessions() as session, session.begin():
                    goods = [item for item in chunk if isinstance(item, _Good)]
                    refused: dict[int, RowError] = {}
                    if kind.vet is not None and goods:
                        refused = {bad.line: bad for bad in await kind.vet(session, goods)}
                    batch: dict[str, R] = {}
                    for item in chunk:
                        report.read += 1
                        if isinstance(item, RowError):
                            report.errors.append(item)
                            continue
                        if (bad := refused.get(item.line)) is not None:
                            report.errors.append(bad)
                            continue
                        earlier = last_line.get(item.key)
                        if earlier is not None:
                            report.superseded.append(Superseded(line=earlier, by_line=item.line))
                        last_line[item.key] = item.line
                        if (warning := kind.warn(item.record)) is not None:
                            report.warnings.append(RowError(item.line, warning))
                        batch[item.key] = item.record
                    if batch:
                        await kind.write(session, list(batch.values()), clock.now())
                report.written = len(last_line)
                if shown is not None:
                    shown.update(report.read, source.position())
    finally:
        source.close()
    report.keys = list(last_line)
    if source.stopped_by is not None:
        report.errors.append(source.stopped_by)
        report.complete = False
    return report


async def import_orders(
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    progress: bool = False,
    batch_size: int = 500,
) -> ImportReport:
    """Upsert orders from a CSV file (``order_no,amount`` + optional columns) by order number."""
    return await _import(ORDERS, path, sessions, clock, progress, batch_size)


async def import_contacts(
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    progress: bool = False,
    batch_size: int = 500,
) -> ImportReport:
    """Upsert service contacts from a CSV file (``contact,name,wechat_id`` + optional columns)."""
    return await _import(CONTACTS, path, sessions, clock, progress, batch_size)


# ---------------------------------------------------------------------------- the summary


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def format_report(report: ImportReport) -> str:
    """The terminal summary: Chinese first, then English, then every bad and superseded row."""
    kind = ORDERS if report.kind == "orders" else CONTACTS
    encoding = _ENCODING_NAMES.get(report.encoding, report.encoding)
    bad, superseded = len(report.errors), len(report.superseded)
    done_zh = "导入完成" if report.complete else "导入中途停止"
    done_en = "import finished" if report.complete else "import STOPPED early"
    lines = [
        f"{kind.label_zh}{done_zh}：读取 {report.read:,} 行，写入 {report.written:,} 条，"
        f"{bad:,} 行有错误已跳过，{superseded:,} 行被后面相同 {kind.key_column} 的行覆盖"
        f"（文件编码 {encoding}）。",
        f"{kind.name.capitalize()} {done_en}: {_count(report.read, 'row')} read, "
        f"{report.written:,} written, {_count(bad, 'bad row')} skipped, "
        f"{superseded:,} superseded by a later row with the same {kind.key_column} "
        f"(file encoding {encoding}).",
    ]
    if report.errors:
        lines.append("有问题的行 / Bad rows:")
        lines.extend(
            f"  第 {error.line} 行：{error.zh} / line {error.line}: {error.reason}"
            if error.zh
            else f"  line {error.line}: {error.reason}"
            for error in report.errors
        )
    if report.warnings:
        lines.append("已导入但需要注意 / Imported, with a warning:")
        lines.extend(f"  line {row.line}: {row.reason}" for row in report.warnings)
    if report.superseded:
        lines.append("被覆盖的行 / Superseded rows:")
        lines.extend(
            f"  line {row.line}: superseded by line {row.by_line} (same {kind.key_column})"
            for row in report.superseded
        )
    if report.errors:
        lines.append("修正这些行后重新导入整个文件即可：已导入的行会被更新，不会重复。")
        lines.append(
            "Fix these rows and import the whole file again: rows already imported are "
            "updated, not duplicated."
        )
    return "\n".join(lines)

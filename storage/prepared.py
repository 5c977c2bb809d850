"""Hot-path statements run on SQLite's own driver, with SQLAlchemy's type conversions kept.

A Core statement executed through SQLAlchemy costs about 60 µs on SQLite, of which the
statement itself is under 5: the rest is execution context, parameter and result machinery
and greenlet switches, paid again on every call. A hot statement is compiled here once: its
SQL, the order of its parameters, and each parameter's and each column's conversion, taken
from the column types themselves (``bind_processor``/``result_processor``), so sealed
fields, JSON and datetimes are stored and read exactly as SQLAlchemy stores and reads them.
It then runs on the session's own sqlite3 connection, inside the session's transaction.

Only what is simple is taken over: statements whose parameters are all given or bound
in the statement (no Python-side column default computed at execution) on SQLite. Anything
else, and every statement on PostgreSQL, runs through SQLAlchemy as before. Driver errors are
raised as SQLAlchemy's (``IntegrityError`` and the rest), as callers expect.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from storage.inline_sqlite import InlineConnection

Processor = Callable[[Any], Any] | None
_EXPANDING = "__[POSTCOMPILE_{}]"
_RAW_KEY = "billbot.raw_sqlite"  # session.info: (transaction, sqlite3 connection)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One positional parameter: where its value comes from and how it is converted."""

    name: str
    expanding: bool  # an IN (...) list: one placeholder per element
    process: Processor
    bound: Any  # the value the statement itself binds, when the caller gives none


class Plan:
    """One statement compiled for SQLite: SQL, parameter slots, result conversions."""

    __slots__ = (
        "_columns",
        "_convert_rows",
        "_expanding",
        "_process",
        "_row",
        "_sized",
        "_slots",
        "_sql",
    )

    def __init__(self, compiled: SQLCompiler, statement: Executable, dialect: Dialect) -> None:
        self._sql = compiled.string
        binds = compiled.binds
        self._slots = tuple(
            _Slot(
                name,
                binds[name].expanding,
                binds[name].type.dialect_impl(dialect).bind_processor(dialect),
                binds[name].value,
            )
            for name in compiled.positiontup or ()
        )
        self._expanding = any(slot.expanding for slot in self._slots)
        self._sized: dict[tuple[int, ...], str] = {}
        columns = getattr(statement, "selected_columns", None)
        if columns is None:
            columns = getattr(statement, "exported_columns", None) or ()
        self._columns = tuple(columns.keys()) if columns else ()
        self._row: Any = namedtuple("Row", self._columns, rename=True) if self._columns else None
        self._process: tuple[Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        self._convert_rows = any(f is not None for f in self._process)

    def _values(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        values: list[Any] = []
        sizes: list[int] = []
        for slot in self._slots:
            value = params.get(slot.name, slot.bound)
            if slot.expanding:
                items = list(value)
                sizes.append(len(items))
                process = slot.process
                values.extend(items if process is None else map(process, items))
            else:
                values.append(slot.process(value) if slot.process else value)
        if not self._expanding:
            return self._sql, values
        key = tuple(sizes)
        sql = self._sized.get(key)
        if sql is None:
            sql = self._sql
            for slot, size in zip((s for s in self._slots if s.expanding), sizes, strict=True):
                sql = sql.replace(_EXPANDING.format(slot.name), ", ".join("?" * size), 1)
            self._sized[key] = sql
        return sql, values

    def execute(self, connection: sqlite3.Connection, params: Any) -> Rows:
        sql = self._sql
        try:
            if isinstance(params, list):  # several rows: executemany
                rows = [self._values(one)[1] for one in params]
                if self._expanding:
                    raise ValueError("an IN list cannot be executed for several rows")
                cursor = connection.executemany(sql, rows)
            else:
                sql, values = self._values(params or {})
                cursor = connection.execute(sql, values)
            fetched = cursor.fetchall() if self._row is not None else []
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        return Rows(self._convert(fetched), cursor.rowcount)

    def _convert(self, fetched: list[tuple[Any, ...]]) -> list[Any]:
        make = self._row._make if self._row is not None else tuple
        if not self._convert_rows:
            return [make(r) for r in fetched]
        process = self._process
        return [
            make([v if f is None else f(v) for f, v in zip(process, r, strict=True)])
            for r in fetched
        ]


class Rows:
    """The part of SQLAlchemy's result the hot path uses."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def all(self) -> Sequence[Any]:
        return self._rows


_PLANS: dict[tuple[int, tuple[str, ...], bool], tuple[Executable, Plan | None]] = {}
MAX_PLANS = 512  # hot statements are module constants: a few dozen shapes in all


def plan_for(statement: Executable, params: Any, dialect: Dialect) -> Plan | None:
    """The statement's plan for these parameter names (compiled once, as SQLAlchemy compiles
    it: an INSERT's columns follow the names given), or None when SQLAlchemy must run it."""
    many = isinstance(params, list)
    first = (params[0] if params else {}) if many else (params or {})
    keys = tuple(sorted(first))
    key = (id(statement), keys, many and len(params) > 1)
    known = _PLANS.get(key)
    if known is not None and known[0] is statement:
        return known[1]
    if not isinstance(statement, ClauseElement):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=key[2])
    plan: Plan | None = None
    if (
        isinstance(compiled, SQLCompiler)
        and not compiled.insert_prefetch
        and not compiled.update_prefetch
        and compiled.positional
    ):
        plan = Plan(compiled, statement, dialect)
    if len(_PLANS) < MAX_PLANS:
        _PLANS[key] = (statement, plan)  # keeps the statement alive: its id stays its own
    return plan


async def raw_connection(session: AsyncSession) -> sqlite3.Connection:
    """The sqlite3 connection under the session's transaction, beginning it if need be."""
    transaction = session.get_transaction()
    known = session.info.get(_RAW_KEY)
    if known is not None and transaction is not None and known[0] is transaction:
        return known[1]  # type: ignore[no-any-return]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    inline = raw.driver_connection
    assert isinstance(inline, InlineConnection)
    session.info[_RAW_KEY] = (session.get_transaction(), inline.sqlite)
    return inline.sqlite

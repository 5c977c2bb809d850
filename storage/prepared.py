"""Hot-path statements run on the database driver itself, with SQLAlchemy's conversions kept.

A Core statement executed through SQLAlchemy costs about 60 µs on SQLite, of which the
statement itself is under 5: the rest is execution context, parameter and result machinery
and greenlet switches, paid again on every call. A hot statement is compiled here once: its
SQL, the order of its parameters (per length of each IN list), and each parameter's and each
column's conversion, taken from the column types themselves (``bind_processor`` and
``result_processor`` for the dialect), so sealed fields, JSON and datetimes are stored and
read exactly as SQLAlchemy stores and reads them. It then runs on the session's own driver
connection — sqlite3, or asyncpg with its prepared-statement cache — inside the session's
transaction.

Only what is simple is taken over: statements whose parameters are all given or bound in the
statement (no Python-side column default computed at execution). Anything else runs through
SQLAlchemy as before. Driver errors are raised as SQLAlchemy's (``IntegrityError`` and the
rest), as callers expect.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from storage.inline_sqlite import InlineConnection

Processor = Callable[[Any], Any] | None
# one positional parameter: (name, element of an IN list or None, conversion, default value)
Slot = tuple[str, int | None, Processor, Any]
Layout = tuple[str, tuple[Slot, ...]]
_RAW_KEY = "billbot.raw_driver"  # session.info: (transaction, driver connection)
_STATUS = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


class Plan:
    """One statement compiled for one dialect: SQL, parameter slots, result conversions."""

    __slots__ = (
        "_binds",
        "_columns",
        "_compiled",
        "_convert_rows",
        "_expanding",
        "_layouts",
        "_plain",
        "_process",
        "_row",
    )

    def __init__(self, compiled: SQLCompiler, statement: Executable, dialect: Dialect) -> None:
        self._compiled = compiled
        names = tuple(compiled.positiontup or ())
        self._binds: dict[str, tuple[Processor, Any]] = {
            name: (
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect),
                compiled.binds[name].value,
            )
            for name in names
        }
        self._expanding = tuple(name for name in names if compiled.binds[name].expanding)
        self._layouts: dict[tuple[int, ...], Layout] = {}
        self._plain: Layout | None = None
        if not self._expanding:
            self._plain = (compiled.string, tuple(self._slot(name, None) for name in names))
        columns = getattr(statement, "selected_columns", None)
        if columns is None:
            columns = getattr(statement, "exported_columns", None) or ()
        self._columns = tuple(columns.keys()) if columns else ()
        self._row: Any = namedtuple("Row", self._columns, rename=True) if self._columns else None
        self._process: tuple[Processor, ...] = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        self._convert_rows = any(f is not None for f in self._process)

    def _slot(self, name: str, index: int | None) -> Slot:
        process, bound = self._binds[name]
        return (name, index, process, bound)

    def _layout(self, params: Mapping[str, Any]) -> Layout:
        """The SQL and slots for these lengths of IN lists, as SQLAlchemy expands them."""
        if self._plain is not None:
            return self._plain
        sizes = tuple(len(params[name]) for name in self._expanding)
        known = self._layouts.get(sizes)
        if known is not None:
            return known
        sample: dict[str, Any] = dict.fromkeys(self._binds)
        sample.update(
            {name: [None] * size for name, size in zip(self._expanding, sizes, strict=True)}
        )
        state = self._compiled.construct_expanded_state(sample)
        source = {
            each: (name, index)
            for name, expanded in state.parameter_expansion.items()
            for index, each in enumerate(expanded)
        }
        slots = tuple(
            self._slot(*source.get(each, (each, None))) for each in state.positiontup or ()
        )
        layout = self._layouts[sizes] = (state.statement, slots)
        return layout

    def _values(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        sql, slots = self._layout(params)
        values: list[Any] = []
        for name, index, process, bound in slots:
            value = params.get(name, bound) if index is None else params[name][index]
            values.append(value if process is None else process(value))
        return sql, values

    def execute(self, connection: sqlite3.Connection, params: Any) -> Rows:
        """On sqlite3, in the session's transaction."""
        sql = self._compiled.string
        try:
            if isinstance(params, list):  # several rows: executemany
                laid = [self._values(one) for one in params]
                sql = laid[0][0] if laid else sql
                cursor = connection.executemany(sql, [values for _, values in laid])
            else:
                sql, values = self._values(params or {})
                cursor = connection.execute(sql, values)
            fetched = cursor.fetchall() if self._row is not None else []
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
        return Rows(self._convert(fetched), cursor.rowcount)

    async def execute_asyncpg(self, connection: Any, params: Any) -> Rows:
        """On asyncpg (its prepared statements), in the session's transaction."""
        sql = self._compiled.string
        try:
            if isinstance(params, list):
                laid = [self._values(one) for one in params]
                if laid:
                    sql = laid[0][0]
                    await connection.executemany(sql, [values for _, values in laid])
                return Rows([], len(laid))
            sql, values = self._values(params or {})
            if self._row is not None:
                fetched = await connection.fetch(sql, *values)
                return Rows(self._convert(fetched), len(fetched))
            status = await connection.execute(sql, *values)
        except Exception as exc:
            raise _translated(exc, sql, params) from exc
        counted = _STATUS.match(status or "")
        return Rows([], int(counted.group(1)) if counted else -1)

    def _convert(self, fetched: Sequence[Any]) -> list[Any]:
        make = self._row._make if self._row is not None else tuple
        if not self._convert_rows:
            return [make(r) for r in fetched]
        process = self._process
        return [
            make([v if f is None else f(v) for f, v in zip(process, r, strict=True)])
            for r in fetched
        ]


def _translated(exc: Exception, sql: str, params: Any) -> DBAPIError:
    """asyncpg's error as SQLAlchemy raises it for the same failure."""
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(sql, params, exc)
    transient = (
        asyncpg.SerializationError,
        asyncpg.DeadlockDetectedError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        OSError,
    )
    if isinstance(exc, transient):
        return OperationalError(sql, params, exc)
    return DBAPIError(sql, params, exc)


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


_PLANS: dict[tuple[int, str, tuple[str, ...], bool], tuple[Executable, Plan | None]] = {}
MAX_PLANS = 512  # hot statements are module constants: a few dozen shapes in all


def plan_for(statement: Executable, params: Any, dialect: Dialect) -> Plan | None:
    """The statement's plan for these parameter names (compiled once, as SQLAlchemy compiles
    it: an INSERT's columns follow the names given), or None when SQLAlchemy must run it."""
    many = isinstance(params, list)
    first = (params[0] if params else {}) if many else (params or {})
    keys = tuple(sorted(first))
    key = (id(statement), dialect.name, keys, many and len(params) > 1)
    known = _PLANS.get(key)
    if known is not None and known[0] is statement:
        return known[1]
    if not isinstance(statement, ClauseElement):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=key[3])
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


async def driver_connection(session: AsyncSession) -> Any:
    """The driver's connection under the session's transaction, the transaction begun:
    sqlite3's (``InlineConnection`` began it), or asyncpg's.

    SQLAlchemy's asyncpg adapter sends BEGIN with the transaction's first statement; when
    none went through it yet (its ``_transaction`` is still None, or unknown to a later
    SQLAlchemy), one trivial statement through it begins the transaction."""
    transaction = session.get_transaction()
    known = session.info.get(_RAW_KEY)
    if known is not None and transaction is not None and known[0] is transaction:
        return known[1]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if isinstance(driver, InlineConnection):
        driver = driver.sqlite
    elif getattr(raw.dbapi_connection, "_transaction", None) is None:
        await connection.exec_driver_sql("SELECT 1")
    session.info[_RAW_KEY] = (session.get_transaction(), driver)
    return driver

"""Engine creation and schema migration for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession
from sqlalchemy.sql.expression import Executable
from sqlalchemy.util import await_

from storage import inline_sqlite, prepared

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Result(Protocol):
    """What a hot statement's caller reads, from SQLAlchemy's result or the driver's rows."""

    @property
    def rowcount(self) -> int: ...

    def first(self) -> Any: ...

    def scalar(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, group_commit: bool = True) -> AsyncEngine:
    """An async engine; for SQLite, the file's folder is created and writers take the lock up front.

    SQLite's deferred transactions deadlock when two readers both try to write (one gets
    SQLITE_BUSY at once, the busy timeout does not apply), so every transaction here runs
    under BEGIN IMMEDIATE and waits its turn instead. SQLite runs on the event loop itself
    (``storage/inline_sqlite.py``): no thread hand-off per statement, and transactions that
    follow each other closely are committed together — unless ``group_commit`` is off, for
    a server whose transactions wait on something outside (an order API).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # One sqlite3 connection behind a pool of SQLAlchemy's: its transactions take turns on
    # it and commit in groups (``inline_sqlite.Shared``); waiting for a turn is awaited.
    engine = create_async_engine(
        url,
        async_creator=inline_sqlite.connector(
            parsed.database or ":memory:", None if group_commit else 1
        ),
        pool_size=inline_sqlite.GROUP_TURNS + 4,
        max_overflow=0,
        pool_timeout=60,
    )

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        inline = conn.connection.driver_connection
        assert isinstance(inline, inline_sqlite.InlineConnection)
        try:
            await_(inline.begin())
        except sqlite3.Error as exc:  # as SQLAlchemy would raise it (OperationalError …)
            raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def table_of(model: type[Any]) -> Table:
    """A mapped class's table, for Core statements built once (see ``Upsert``)."""
    return cast(Table, model.__table__)


def dialect_name(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


class Upsert:
    """An ``INSERT … ON CONFLICT`` built once in SQLite's and PostgreSQL's forms.

    Statements on the hot path are built once, with named parameters, and executed by
    ``run``: nothing is built, hashed or tracked by the ORM on each call.
    """

    def __init__(self, build: Callable[[Callable[[Any], Any]], Executable]) -> None:
        self._forms = {"sqlite": build(sqlite_insert), "postgresql": build(pg_insert)}

    def on(self, session: AsyncSession) -> Executable:
        return self._forms[dialect_name(session)]


async def run(session: AsyncSession, statement: Executable, params: Any = None) -> Result:
    """Executes a Core statement built once on the session's connection (and transaction).

    On SQLite and asyncpg it runs on the driver itself, compiled once with SQLAlchemy's
    conversions (``storage/prepared.py``); what that does not take runs through SQLAlchemy.
    Either way the caller reads ``first()``, ``scalar()``, ``all()``, ``rowcount``.
    """
    dialect = session.bind.dialect if session.bind is not None else None
    if dialect is not None and dialect.driver in ("aiosqlite", "asyncpg"):
        plan = prepared.plan_for(statement, params, dialect)
        if plan is not None:
            driver = await prepared.driver_connection(session)
            if dialect.name == "sqlite":
                return plan.execute(driver, params)
            return await plan.execute_asyncpg(driver, params)
    connection = await session.connection()
    return await connection.execute(statement, params)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both SQLite and PostgreSQL."""
    return (pg_insert if dialect_name(session) == "postgresql" else sqlite_insert)(table)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)

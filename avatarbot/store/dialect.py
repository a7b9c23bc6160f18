"""Everything that differs between SQLite and PostgreSQL, in small functions.

SQLite (one bot process): WAL, busy_timeout, foreign keys, and every write
transaction opened with ``BEGIN IMMEDIATE`` so writers serialize up front instead
of failing on lock upgrade. PostgreSQL (several processes): advisory locks make
enqueue atomic per guild and migrations exclusive; claims lock the one budget row.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy import Select, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .url import Backend, DatabaseTarget

SQLITE_BUSY_TIMEOUT_MS = 30_000
IMMEDIATE = "avatarbot_immediate"
# Namespaces for two-int advisory locks (arbitrary, but fixed forever).
_LOCK_NAMESPACE_MIGRATIONS = 0x41565401
_LOCK_NAMESPACE_GUILD = 0x41565402
_LOCK_NAMESPACE_FLEET = 0x41565403
_LOCK_COMMAND_SYNC = 1


def create_engine(target: DatabaseTarget, *, schema: str | None = None) -> AsyncEngine:
    if target.backend is Backend.SQLITE:
        return _sqlite_engine(target)
    return _postgres_engine(target, schema)


def _sqlite_engine(target: DatabaseTarget) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if target.in_memory:
        # One shared connection, else every connection would see its own empty database.
        kwargs["poolclass"] = StaticPool
    engine = create_async_engine(target.url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver (it skips it for SELECT and DDL); see do_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not target.in_memory:
            cursor.execute("PRAGMA synchronous = NORMAL")  # WAL: see use_wal
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


async def use_wal(engine: AsyncEngine, target: DatabaseTarget) -> None:
    """Switch a SQLite file to WAL, once, before anything else uses it (the mode persists).

    The switch needs an exclusive lock, and SQLite refuses it at once ("database is
    locked"), without waiting in its busy handler, while another connection holds a
    lock, e.g. a second process starting at the same moment and migrating. So it waits
    here, for up to the busy timeout.
    """
    if target.backend is not Backend.SQLITE or target.in_memory:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                # The driver's own connection: SQLAlchemy would open a transaction first,
                # and the journal mode cannot change inside one.
                driver = raw.driver_connection
                assert driver is not None
                # Read the answer and close the cursor: an unfinished statement would
                # make the pooled connection's next commit fail.
                async with driver.execute("PRAGMA journal_mode = WAL") as cursor:
                    await cursor.fetchall()
            return
        except (OperationalError, sqlite3.OperationalError) as error:
            if "locked" not in str(error) or loop.time() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _postgres_engine(target: DatabaseTarget, schema: str | None) -> AsyncEngine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(target.url, connect_args=connect_args, pool_pre_ping=True)


async def prepare_write(conn: AsyncConnection, backend: Backend) -> None:
    """Call before ``conn.begin()`` for a transaction that writes."""
    if backend is Backend.SQLITE:
        await conn.execution_options(**{IMMEDIATE: True})


async def lock_migrations(conn: AsyncConnection, backend: Backend) -> None:
    """Make concurrent starters migrate one at a time (SQLite: BEGIN IMMEDIATE did it)."""
    if backend is Backend.POSTGRESQL:
        await _advisory_xact_lock(conn, _LOCK_NAMESPACE_MIGRATIONS, 0)


async def lock_command_sync(conn: AsyncConnection, backend: Backend) -> None:
    """One process of the fleet syncs the command tree at a time (SQLite: BEGIN IMMEDIATE)."""
    if backend is Backend.POSTGRESQL:
        await _advisory_xact_lock(conn, _LOCK_NAMESPACE_FLEET, _LOCK_COMMAND_SYNC)


async def lock_guild(conn: AsyncConnection, backend: Backend, guild_id: int) -> None:
    """Serialize quota decisions for one guild until the transaction ends."""
    if backend is Backend.POSTGRESQL:
        # Collisions of the folded id only serialize two guilds needlessly.
        await _advisory_xact_lock(conn, _LOCK_NAMESPACE_GUILD, _fold_to_int4(guild_id))


async def _advisory_xact_lock(conn: AsyncConnection, namespace: int, key: int) -> None:
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(CAST(:ns AS integer), CAST(:key AS integer))"),
        {"ns": namespace, "key": key},
    )


def _fold_to_int4(value: int) -> int:
    folded = (value ^ (value >> 31) ^ (value >> 62)) & 0x7FFFFFFF
    return folded


def lock_rows(stmt: Select[Any], backend: Backend, *, skip_locked: bool = False) -> Select[Any]:
    """``FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; SQLite's write lock already covers it."""
    if backend is Backend.POSTGRESQL:
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt

"""Schema versions: a new database is created from the tables, an older one upgraded.

:mod:`avatarbot.store.schema` is the one description of the schema. A database
without ``schema_version`` is created from it (``metadata.create_all``) and stamped
at :data:`LATEST_VERSION`; a database made by an earlier release, at version N, is
upgraded by the delta migrations N+1, N+2, … below, one transaction each, under
the migration lock (:func:`dialect.lock_migrations`), so concurrent starters apply
each exactly once. ``schema_version`` holds one row per step applied: the creation
(at the version it created) and every delta since.

To change the schema:

1. edit the tables in ``schema.py``;
2. append a ``Migration(next_version, description, steps)`` to :data:`MIGRATIONS`
   that takes a database at the previous version to the new tables. Derive its
   steps from the tables where possible: ``CreateIndex(schema.some_index)``,
   ``CreateTable(schema.some_table)``, :func:`add_column` (``schema.jobs.c.name``),
   plain SQL strings for the rest (data updates, dropped columns);
3. run ``tests/test_schema.py``: it upgrades a database of the first release
   (``tests/schema_v1.py``) to the latest version and compares it, and a new
   database, with the tables on SQLite and PostgreSQL; on a difference it prints
   the operations still missing.

Never edit a released migration: databases out there already ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Executable, Index, Table, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from .schema import (
    claims,
    dispatch_state,
    fleet_state,
    guild_settings,
    jobs,
    metadata,
    schema_version,
)
from .url import Backend

log = logging.getLogger(__name__)

# One step of a migration: SQL text, a SQLAlchemy statement or DDL element
# (``CreateIndex(schema.ix_jobs_user)``), or a function run on the sync connection.
Step = str | Executable | Callable[[Connection], Any]
StepsFor = Callable[[Backend], Sequence[Step]]
DdlFor = StepsFor  # the older name


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: StepsFor


def add_column(column: Column[Any]) -> Callable[[Connection], None]:
    """``ALTER TABLE … ADD COLUMN`` compiled from the column as ``schema.py`` declares it
    (type, NOT NULL, server default: a NOT NULL column on a table with rows needs one)."""

    def add(conn: Connection) -> None:
        preparer = conn.dialect.identifier_preparer
        definition = CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {preparer.format_table(column.table)} ADD {definition}"))

    return add


# Version 1 stored an error's class name; version 2 stores a FailureKind value.
_V2_FAILURE_KINDS = (
    ("BadRequestError", "bad_request"),
    ("AuthenticationError", "authentication"),
    ("PermissionDeniedError", "permission_denied"),
    ("NotFoundError", "not_found"),
    ("RateLimitError", "rate_limited"),
    ("ServerError", "server_error"),
    ("APIStatusError", "api_status"),
    ("APIConnectionError", "connection"),
    ("APITimeoutError", "maybe_created"),
    ("UnexpectedResponseError", "unexpected_response"),
    ("Interrupted", "interrupted"),
    ("ServerLeft", "server_left"),
    ("InternalError", "internal"),
)


def _v2_statements(backend: Backend) -> list[str]:
    # Fixed identifiers, never user input: inlining them is safe.
    return [
        f"UPDATE jobs SET error_kind = '{kind}' WHERE error_kind = '{code}'"
        for code, kind in _V2_FAILURE_KINDS
    ]


PHOTO_STRICTNESS = guild_settings.c.photo_strictness


def _languages_statements(backend: Backend) -> list[str]:
    # NULL: a server follows its Discord language; a job without a locale reads the server's.
    return [
        "ALTER TABLE guild_settings ADD COLUMN language TEXT",
        "ALTER TABLE jobs ADD COLUMN locale TEXT",
    ]


def _fleet_steps(backend: Backend) -> list[Step]:
    # Additive only (nullable columns, indexes, a table): a process of the previous
    # release keeps working on this schema during a rolling restart.
    return [
        *(add_column(jobs.c[name]) for name in FLEET_JOB_COLUMNS),
        CreateIndex(_index(jobs, "ux_jobs_interaction")),
        add_column(claims.c.job_id),
        CreateIndex(_index(claims, "ix_claims_job")),
        CreateTable(fleet_state),
    ]


FLEET_JOB_COLUMNS = ("interaction_id", "application_id", "reply_token", "reply_until")


def _index(table: Table, name: str) -> Index:
    return next(index for index in table.indexes if index.name == name)


# Version 1 (the first release) is the base: a database older than that has none of
# our tables, and a new one is created from the tables at LATEST_VERSION.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "typed failure kinds", _v2_statements),
    Migration(
        3, "languages: a server's chosen language, a requester's locale", _languages_statements
    ),
    Migration(4, "photo check strictness", lambda _backend: [add_column(PHOTO_STRICTNESS)]),
    Migration(5, "one job per interaction, its sealed token; budget slots per job", _fleet_steps),
    # Append the next version here.
)
FIRST_VERSION = 1
LATEST_VERSION = max((m.version for m in MIGRATIONS), default=FIRST_VERSION)


async def current_version(conn: AsyncConnection) -> int:
    if not await conn.run_sync(_has_schema_version):
        return 0
    version = await conn.scalar(
        select(schema_version.c.version).order_by(schema_version.c.version.desc()).limit(1)
    )
    return int(version or 0)


def _has_schema_version(conn: Connection) -> bool:
    return inspect(conn).has_table(schema_version.name)


async def migrate_step(
    conn: AsyncConnection,
    backend: Backend,
    now: datetime,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int | None:
    """Take the database one step on inside the caller's transaction: create it from the
    tables when new, else apply the next pending delta. Returns the version reached, or
    None when already up to date.

    The caller's transaction must hold the migration lock (see :func:`dialect.lock_migrations`),
    so concurrent starters apply each step exactly once.
    """
    if not await conn.run_sync(_has_schema_version):
        return await _create_from_tables(conn, now, migrations)
    version = await current_version(conn)
    pending = [m for m in migrations if m.version > version]
    if not pending:
        return None
    migration = min(pending, key=lambda m: m.version)
    for step in migration.statements(backend):
        await _run(conn, step)
    await _stamp(conn, migration.version, migration.description, now)
    log.info("applied schema migration %d: %s", migration.version, migration.description)
    return migration.version


async def _create_from_tables(
    conn: AsyncConnection, now: datetime, migrations: Sequence[Migration]
) -> int:
    version = max((m.version for m in migrations), default=FIRST_VERSION)
    # checkfirst=False: tables without a schema_version are no database of ours to guess about.
    await conn.run_sync(lambda sync: metadata.create_all(sync, checkfirst=False))
    await conn.execute(insert(dispatch_state).values(id=1, paused_until=None, guild_clock=0))
    await _stamp(conn, version, "created from the tables", now)
    log.info("created the database schema at version %d", version)
    return version


async def _run(conn: AsyncConnection, step: Step) -> None:
    if isinstance(step, str):
        await conn.execute(text(step))
    elif isinstance(step, Executable):
        await conn.execute(step)
    else:
        await conn.run_sync(step)


async def _stamp(conn: AsyncConnection, version: int, description: str, now: datetime) -> None:
    await conn.execute(
        insert(schema_version).values(version=version, description=description, applied_at=now)
    )

"""One schema: a new database, and one of the first release upgraded, equal the
SQLAlchemy tables, on both backends.

On a difference the assertion shows the operations a new migration needs (Alembic's
autogenerate), so a schema change is: edit ``avatarbot/store/schema.py``, append a
delta migration to ``avatarbot/store/migrations.py``, run this test; it names what
the delta still misses.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Column,
    Connection,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateIndex
from sqlalchemy.types import NUMERIC

from avatarbot.failures import FailureKind
from avatarbot.store import SqlStore
from avatarbot.store.base import Budget, JobState, Limits, NewJob, SourceType
from avatarbot.store.dialect import create_engine
from avatarbot.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    add_column,
    migrate_step,
)
from avatarbot.store.schema import (
    UTCDateTime,
    claims,
    dispatch_state,
    jobs,
    metadata,
    schema_version,
)
from avatarbot.store.url import Backend, parse_database_url
from tests.schema_v1 import create_v1_database
from tests.store_fixtures import StoreFactory, store_factory

__all__ = ["store_factory"]  # the fixture, imported for pytest

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _sqlite_affinity(context: Any, inspected: Any, metadata_column: Any, *rest: Any) -> bool | None:
    """SQLite has no column types, only affinities: the migrations' ``TIMESTAMP WITH TIME
    ZONE`` reads back as NUMERIC. That is the one type difference accepted."""
    if isinstance(metadata_column.type, UTCDateTime) and isinstance(inspected.type, NUMERIC):
        return False
    return None  # Alembic's own comparison


def schema_differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": _sqlite_affinity, "compare_server_default": True}
    )
    differences = compare_metadata(context, metadata)
    if conn.dialect.name == "sqlite":
        differences = [d for d in differences if not _sqlite_primary_key_quirk(d)]
    return differences


def _sqlite_primary_key_quirk(difference: Any) -> bool:
    """SQLite reports a PRIMARY KEY column as nullable (the key refuses NULL all the same),
    and its AUTOINCREMENT as no default where the tables say ``Identity()``."""
    if not isinstance(difference, list) or len(difference) != 1:
        return False
    op, _, table, column, _, before, after = difference[0]
    if not metadata.tables[table].c[column].primary_key:
        return False
    nullable = op == "modify_nullable" and (before, after) == (True, False)
    identity = op == "modify_default" and before is None and isinstance(after, Identity)
    return nullable or identity


async def differences_of(store: SqlStore) -> list[Any]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(schema_differences)


async def test_a_new_database_equals_the_tables(store_factory: StoreFactory) -> None:
    store = await store_factory.open()

    assert await differences_of(store) == []
    assert await store.schema_version() == LATEST_VERSION
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(dispatch_state))).all() == [(1, None, 0)]


async def test_a_database_of_the_first_release_upgrades_to_the_tables(
    store_factory: StoreFactory,
) -> None:
    before = await _first_release_database(store_factory, with_rows=True)

    store = await store_factory.open()

    assert await store.schema_version() == LATEST_VERSION
    assert await differences_of(store) == []
    async with store.engine.connect() as conn:
        after = await _rows(conn, columns_of=before)
    # Every row kept, every value kept, but the failure kinds that version 2 renamed.
    before["jobs"] = [{**job, "error_kind": V2_KINDS[job["error_kind"]]} for job in before["jobs"]]
    assert after == before
    upgraded = [await store.get_job(job_id) for job_id in (1, 2)]
    assert [j.error_kind for j in upgraded if j] == [
        FailureKind.MAYBE_CREATED,
        FailureKind.INTERRUPTED,
    ]


async def test_concurrent_starters_upgrade_a_first_release_database_once(
    store_factory: StoreFactory,
) -> None:
    await _first_release_database(store_factory, with_rows=False)

    stores = await asyncio.gather(*(store_factory.open() for _ in range(4)))

    async with stores[0].engine.connect() as conn:
        steps = (await conn.execute(select(schema_version.c.version))).scalars().all()
    assert sorted(steps) == [1, *(m.version for m in MIGRATIONS)]


async def test_a_row_id_is_never_reused(store_factory: StoreFactory) -> None:
    """What ``sqlite_autoincrement`` keeps from the first release (the comparison cannot see it)."""
    store = await store_factory.open()
    add_claim = insert(claims).values(claimed_at=NOW, worker="w").returning(claims.c.id)
    async with store.engine.begin() as conn:
        first = await conn.scalar(add_claim)
        await conn.execute(delete(claims))
        second = await conn.scalar(add_claim)
    assert first is not None
    assert second is not None
    assert second > first


async def test_a_delta_built_from_the_tables_adds_a_column_and_an_index(
    store_factory: StoreFactory,
) -> None:
    """The helpers a new migration uses: ``add_column`` and ``CreateIndex`` of a table's
    objects, applied to a database with rows (the NOT NULL column takes its default)."""
    scratch = Table(
        "jobs",
        MetaData(),
        Column("note", Text, nullable=False, server_default="none"),
        Index("ix_jobs_note", "note"),
    )
    (note_index,) = scratch.indexes
    delta = Migration(
        LATEST_VERSION + 1,
        "a note on jobs",
        lambda _backend: [add_column(scratch.c.note), CreateIndex(note_index)],
    )
    store = await store_factory.open()

    async with store.engine.begin() as conn:
        await conn.execute(insert(jobs).values(**_legacy_job("interrupted")))
        reached = await migrate_step(conn, store.backend, NOW, (*MIGRATIONS, delta))
        notes = (await conn.execute(text("SELECT note FROM jobs"))).scalars().all()
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("jobs"))

    assert reached == delta.version
    assert notes == ["none"]
    assert {"name": "ix_jobs_note", "column_names": ["note"]}.items() <= next(
        ix for ix in indexes if ix["name"] == "ix_jobs_note"
    ).items()


async def _first_release_database(
    store_factory: StoreFactory, *, with_rows: bool
) -> dict[str, list[dict[str, Any]]]:
    """Build the database the first release left behind; returns its rows."""
    target = parse_database_url(store_factory.url)
    old = SqlStore(create_engine(target, schema=store_factory.schema), target.backend)
    try:
        async with old.engine.begin() as conn:
            await create_v1_database(conn, old.backend, NOW)
            if with_rows:
                await _fill_v1_tables(conn)
            return await _rows(conn)
    finally:
        await old.close()


V2_KINDS = {"APITimeoutError": "maybe_created", "Interrupted": "interrupted"}


async def _fill_v1_tables(conn: AsyncConnection) -> None:
    """A row or two in every table, written with version 1's column names."""
    at = "2026-11-30 12:00:00"
    for statement in (
        "INSERT INTO guild_settings VALUES (7, TRUE, FALSE, 30, 5, 50, 99, '[1]', '[2]',"
        f" '[\"word\"]', '[]', '{at}')",
        f"INSERT INTO blocks VALUES (7, 8, 'spam', 9, '{at}')",
        f"INSERT INTO consents VALUES (8, '{at}')",
        f"INSERT INTO quota_resets (guild_id, user_id, reset_at) VALUES (7, 8, '{at}')",
        "UPDATE dispatch_state SET guild_clock = 3",
        "INSERT INTO guild_clocks VALUES (7, 2)",
        f"INSERT INTO claims (claimed_at, worker) VALUES ('{at}', 'w-old')",
        f"INSERT INTO workers VALUES ('w-old', '{at}')",
    ):
        await conn.execute(text(statement))
    for kind in V2_KINDS:
        await conn.execute(insert(jobs).values(**_legacy_job(kind)))


async def _rows(
    conn: AsyncConnection, columns_of: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows, as stored; with ``columns_of``, only the tables and columns
    it has (later versions may add some)."""
    present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    tables = [t.name for t in metadata.sorted_tables if t.name in present]  # later ones: new
    names = list(columns_of) if columns_of else tables
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        if name == "schema_version":
            continue
        result = await conn.execute(text(f"SELECT * FROM {name}"))
        found = [dict(row) for row in result.mappings()]
        if columns_of and columns_of[name]:
            keep = columns_of[name][0].keys()
            found = [{k: row[k] for k in keep} for row in found]
        rows[name] = sorted(found, key=repr)
    return rows


def _legacy_job(error_kind: str) -> dict[str, Any]:
    return {
        "guild_id": 1,
        "channel_id": 2,
        "user_id": 3,
        "mode": "generate",
        "state": "failed",
        "options": "{}",
        "owner": "w-old",
        "photo_sizes": "[]",
        "created_at": NOW,
        "finished_at": NOW,
        "error_kind": error_kind,
        "error_message": "old",
        "notified": True,
        "forgotten": False,
    }


def _a_later_release(backend: Backend) -> list[str]:
    """What the next release may do: add a column, an index, a table (never drop)."""
    return [
        "ALTER TABLE jobs ADD COLUMN later_column TEXT",
        "CREATE INDEX ix_jobs_later ON jobs (later_column)",
        "CREATE TABLE later_table (id INTEGER PRIMARY KEY)",
    ]


async def test_this_release_keeps_working_on_a_schema_a_later_one_migrated(
    store_factory: StoreFactory,
) -> None:
    """A rolling restart: the new process migrated first; an old one still serves."""
    later = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "a later release", _a_later_release))
    target = parse_database_url(store_factory.url)
    newer = SqlStore(create_engine(target, schema=store_factory.schema), target.backend)
    try:
        for known in (MIGRATIONS, later):  # created from the tables, then the later step
            async with newer.engine.begin() as conn:
                await migrate_step(conn, target.backend, NOW, known)
    finally:
        await newer.close()

    store = await store_factory.open()  # this release: nothing left to apply

    assert await store.schema_version() == LATEST_VERSION + 1
    job = NewJob(1, 2, 3, SourceType.GENERATE, {"name": "x"}, "w-this")
    queued = (await store.enqueue_job(job, Limits(), NOW)).job
    assert queued is not None
    claimed = await store.claim_next_job("w-this", Budget(), NOW)
    assert claimed is not None
    assert await store.acquire_send_permit("w-this", claimed.id, Budget(), first=True) is None
    done = await store.finish_job(claimed.id, JobState.SUCCEEDED, NOW, group_id="g")
    assert done.group_id == "g"

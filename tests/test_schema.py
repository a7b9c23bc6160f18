"""One schema: a migrated database equals the SQLAlchemy tables, on both backends.

On a difference the assertion shows the operations a new migration needs (Alembic's
autogenerate), so a schema change is: edit ``avatarbot/store/schema.py``, run this
test, append that migration to ``avatarbot/store/migrations.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Identity, insert
from sqlalchemy.types import NUMERIC

from avatarbot.failures import FailureKind
from avatarbot.store import SqlStore
from avatarbot.store.dialect import create_engine
from avatarbot.store.migrations import MIGRATIONS, migrate_step
from avatarbot.store.schema import UTCDateTime, jobs, metadata
from avatarbot.store.url import Backend, parse_database_url
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


async def test_a_migrated_database_equals_the_tables(store_factory: StoreFactory) -> None:
    store = await store_factory.open()

    assert await differences_of(store) == []


async def test_a_database_of_the_first_release_upgrades_cleanly(
    store_factory: StoreFactory,
) -> None:
    target = parse_database_url(store_factory.url)
    old = SqlStore(create_engine(target, schema=store_factory.schema), target.backend)
    try:
        async with old.engine.begin() as conn:
            assert await migrate_step(conn, target.backend, NOW, MIGRATIONS[:1]) is not None
            await conn.execute(insert(jobs).values(**_legacy_job("APITimeoutError")))
            await conn.execute(insert(jobs).values(**_legacy_job("Interrupted")))
    finally:
        await old.close()

    store = await store_factory.open()

    assert await store.schema_version() == len(MIGRATIONS)
    upgraded = [await store.get_job(job_id) for job_id in (1, 2)]
    assert [j.error_kind for j in upgraded if j] == [
        FailureKind.MAYBE_CREATED,
        FailureKind.INTERRUPTED,
    ]
    assert await differences_of(store) == []
    assert target.backend in (Backend.SQLITE, Backend.POSTGRESQL)


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

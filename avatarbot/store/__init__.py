"""Where settings and job records live: SQLite by default, PostgreSQL for several processes."""

from __future__ import annotations

import logging

from .base import Store
from .dialect import create_engine, use_wal
from .sql import SqlStore
from .url import Backend, StoreConfigError, parse_database_url

__all__ = ["SqlStore", "Store", "StoreConfigError", "open_store"]

log = logging.getLogger(__name__)


async def open_store(database_url: str, *, schema: str | None = None) -> SqlStore:
    """Open the database named by ``DATABASE_URL`` and bring its schema up to date.

    ``schema`` (PostgreSQL only) selects the schema to work in; tests isolate
    themselves with it. A malformed URL is a :class:`StoreConfigError`.
    """
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        target.sqlite_path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    if schema is not None and target.backend is not Backend.POSTGRESQL:
        raise StoreConfigError("a schema can only be chosen for PostgreSQL")
    engine = create_engine(target, schema=schema)
    store = SqlStore(engine, target.backend, in_memory=target.in_memory)
    try:
        await use_wal(engine, target)
        applied = await store.migrate()
    except BaseException:
        await engine.dispose()
        raise
    if applied:
        log.info("database schema migrated (%d step(s))", applied)
    return store

"""Where settings and job records live: SQLite by default, PostgreSQL for several processes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from .base import Store
from .dialect import create_engine
from .notify import channel_name
from .sql import SqlStore
from .url import Backend, StoreConfigError, parse_database_url

__all__ = ["SqlStore", "Store", "StoreConfigError", "open_store"]

log = logging.getLogger(__name__)


async def open_store(
    database_url: str,
    *,
    schema: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> SqlStore:
    """Open the database named by ``DATABASE_URL`` and bring its schema up to date.

    ``schema`` (PostgreSQL only) selects the schema to work in; tests isolate
    themselves with it. ``clock`` replaces the database's clock for the budget
    (tests on virtual time). A malformed URL is a :class:`StoreConfigError`.
    """
    target = parse_database_url(database_url)
    if target.sqlite_path is not None:
        target.sqlite_path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    if schema is not None and target.backend is not Backend.POSTGRESQL:
        raise StoreConfigError("a schema can only be chosen for PostgreSQL")
    engine = create_engine(target, schema=schema)
    store = SqlStore(
        engine,
        target.backend,
        in_memory=target.in_memory,
        clock=clock,
        listen_url=target.url,
        channel=channel_name(schema),
    )
    try:
        applied = await store.migrate()
    except BaseException:
        await engine.dispose()
        raise
    if applied:
        log.info("database schema migrated (%d step(s))", applied)
    return store

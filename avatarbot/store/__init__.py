"""Where settings and job records live: SQLite by default, PostgreSQL for several processes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from avatarbot.timeutil import utc_now

from .base import Store
from .dialect import create_engine, use_wal
from .notify import channel_name
from .sql import SqlStore
from .url import Backend, StoreConfigError, parse_database_url

__all__ = ["SqlStore", "Store", "StoreConfigError", "StoreUnavailableError", "open_store"]

log = logging.getLogger(__name__)


class StoreUnavailableError(Exception):
    """The database named by ``DATABASE_URL`` cannot be reached or opened; one line, no secret."""


async def open_store(
    database_url: str,
    *,
    schema: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    budget_clock: Callable[[], datetime] | None = None,
) -> SqlStore:
    """Open the database named by ``DATABASE_URL`` and bring its schema up to date.

    ``schema`` (PostgreSQL only) selects the schema to work in; tests isolate
    themselves with it. ``budget_clock`` replaces the database's clock for the
    shared budget (tests on virtual time). A malformed URL is a :class:`StoreConfigError`.
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
        budget_clock=budget_clock,
        listen_url=target.url,
        channel=channel_name(schema),
    )
    try:
        await use_wal(engine, target)
        applied = await store.migrate()
    except (DBAPIError, OSError) as error:
        await engine.dispose()
        raise StoreUnavailableError(f"cannot open the database: {_reason(error)}") from error
    except BaseException:
        await engine.dispose()
        raise
    if applied:
        log.info("database schema migrated (%d step(s))", applied)
    return store


def _reason(error: BaseException) -> str:
    """The driver's own words (SQLAlchemy's wrapper adds the SQL and a link), on one line."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text[:300]

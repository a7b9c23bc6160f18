"""``DATABASE_URL`` parsing: the operator's URL forms to an async SQLAlchemy URL.

Error messages never echo the URL, since it may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

EXPECTED_FORMS = "sqlite:///path/to/file.db or postgresql://user@host:port/db"


class StoreConfigError(ValueError):
    """``DATABASE_URL`` cannot be used; the message is one line and holds no secret."""


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    backend: Backend
    url: URL
    sqlite_path: Path | None = None

    @property
    def in_memory(self) -> bool:
        return self.backend is Backend.SQLITE and self.sqlite_path is None


_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg"}


def parse_database_url(database_url: str) -> DatabaseTarget:
    """Accept ``sqlite:///rel.db``, ``sqlite:////abs.db``, ``sqlite:///:memory:``,
    ``postgresql://…`` and ``postgres://…``; anything else is a :class:`StoreConfigError`."""
    text = (database_url or "").strip()
    if not text:
        raise StoreConfigError(f"the database URL is empty; expected {EXPECTED_FORMS}")
    try:
        url = make_url(text)
        scheme = url.drivername.lower()
        if scheme in _SQLITE_SCHEMES:
            return _sqlite_target(url)
        if scheme in _POSTGRES_SCHEMES:
            return _postgres_target(url)
    except (ArgumentError, ValueError, TypeError) as error:
        if isinstance(error, StoreConfigError):
            raise
        raise StoreConfigError(f"not a valid database URL; expected {EXPECTED_FORMS}") from None
    raise StoreConfigError(f"unsupported database scheme {scheme!r}; expected {EXPECTED_FORMS}")


def _sqlite_target(url: URL) -> DatabaseTarget:
    database = url.database
    if url.host or url.username or url.password is not None or url.port:
        raise StoreConfigError(
            "a SQLite URL must not name a host (use three slashes: sqlite:///path.db)"
        )
    if not database:
        raise StoreConfigError(f"the SQLite URL names no file; expected {EXPECTED_FORMS}")
    async_url = url.set(drivername="sqlite+aiosqlite")
    if database == ":memory:":
        return DatabaseTarget(Backend.SQLITE, async_url)
    return DatabaseTarget(Backend.SQLITE, async_url, Path(database))


def _postgres_target(url: URL) -> DatabaseTarget:
    _ = url.port  # a non-numeric port raises ValueError here
    if not url.database:
        raise StoreConfigError(
            "the PostgreSQL URL names no database; expected postgresql://user@host:port/db"
        )
    return DatabaseTarget(Backend.POSTGRESQL, url.set(drivername="postgresql+asyncpg"))

"""Store fixtures, parametrized over SQLite and PostgreSQL; import them into a test module
(or conftest) with ``from tests.store_fixtures import *``-style explicit imports.

PostgreSQL runs only when ``AVATARBOT_TEST_POSTGRES_URL`` is set; each test gets a
fresh schema (via ``search_path``) that is dropped afterwards. Under pytest-xdist each
worker runs on a database of its own, made from that URL (see ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from avatarbot.store import SqlStore, open_store

POSTGRES_URL_ENV = "AVATARBOT_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = "PostgreSQL not configured: set AVATARBOT_TEST_POSTGRES_URL to run"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Clock:
    """An injectable UTC clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class StoreFactory:
    """Opens independent store instances (separate pools: "processes") on one database."""

    backend: str
    url: str
    schema: str | None = None
    clock: Callable[[], datetime] | None = None
    opened: list[SqlStore] = field(default_factory=list)

    async def open(self, *, database_clock: bool = False) -> SqlStore:
        """A store whose budget runs on the test's clock, or with ``database_clock`` on the
        database's own (PostgreSQL's clock_timestamp(), SQLite's process clock)."""
        clock = None if database_clock else self.clock
        store = await open_store(self.url, schema=self.schema, budget_clock=clock)
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


async def _pg_execute(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def worker_database_url(base_url: str, worker: str, run: str = "") -> str:
    """The base URL's database with the xdist worker's name and the run appended
    (``test`` -> ``test_gw0_1a2b3c4d``), so two runs at once never share one."""
    parts = urlsplit(base_url)
    database = parts.path.lstrip("/") or "postgres"
    suffix = f"_{worker}_{run[:8]}" if run else f"_{worker}"
    return urlunsplit(parts._replace(path=f"/{database}{suffix}"))


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def create_worker_database(base_url: str, worker_url: str) -> None:
    """A fresh, empty database for one xdist worker (one left by a killed run is replaced).

    Each worker needs its own: advisory locks (migrations, guilds) are per database, so
    tests in different schemas of one database would wait on each other.
    """
    name = _database_name(worker_url)
    await _pg_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_execute(base_url, f'CREATE DATABASE "{name}"')


async def drop_worker_database(base_url: str, worker_url: str) -> None:
    name = _database_name(worker_url)
    await _pg_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    # The budget runs on the test's clock when it has one.
    clock = request.getfixturevalue("clock") if "clock" in request.fixturenames else None
    if request.param == "sqlite":
        factory = StoreFactory("sqlite", f"sqlite:///{tmp_path / 'avatarbot.db'}", clock=clock)
        try:
            yield factory
        finally:
            await factory.close_all()
        return
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await _pg_execute(url, f'CREATE SCHEMA "{schema}"')
    factory = StoreFactory("postgresql", url, schema, clock=clock)
    try:
        yield factory
    finally:
        await factory.close_all()
        await _pg_execute(url, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def store(store_factory: StoreFactory) -> SqlStore:
    return await store_factory.open()


@pytest.fixture
def clock() -> Clock:
    return Clock()

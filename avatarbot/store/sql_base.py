"""The store's plumbing over SQLAlchemy Core: engine, transactions, migrations, job rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from avatarbot.failures import FailureKind
from avatarbot.timeutil import utc_now

from . import dialect, migrations
from .base import (
    JobRecord,
    JobState,
    NewJob,
    SourceType,
)
from .schema import (
    jobs,
)
from .url import Backend

log = logging.getLogger(__name__)

WORKER_TIMEOUT = timedelta(seconds=30)
BUDGET_WINDOW = timedelta(seconds=60)
TOP_MEMBERS = 5
MAX_ERROR_MESSAGE = 1000
# Forgotten members' rows are kept only while they still count for today's limits.
ANONYMOUS_USER = 0

COUNTED_STATES = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.SUCCEEDED.value)
ACTIVE_STATES = (JobState.QUEUED.value, JobState.RUNNING.value)
FINAL_STATES = tuple(s.value for s in JobState if s.is_final)
# Never sent and never counted; neither holds a queue turn.
NOT_RUN_STATES = (JobState.REFUSED.value, JobState.CANCELLED.value)

INTERRUPTED_RUNNING = (
    "the bot stopped while this job was running; the avatar may or may not have been "
    "created — please try again"
)
INTERRUPTED_UPLOAD = (
    "the bot restarted before this upload ran and photos are never kept; please upload again"
)


class SqlBase:
    """The engine, its transactions and the schema: what every part of the store shares."""

    def __init__(
        self,
        engine: AsyncEngine,
        backend: Backend,
        *,
        in_memory: bool = False,
        worker_timeout: timedelta = WORKER_TIMEOUT,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._backend = backend
        self._worker_timeout = worker_timeout
        # SQLite has one writer at a time anyway; queueing writers here instead of in
        # SQLite's busy handler avoids its sleep-and-retry latency. An in-memory
        # database is one shared connection, so readers must queue too.
        self._write_lock = asyncio.Lock() if backend is Backend.SQLITE else None
        self._share_lock_with_readers = in_memory

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        async with self._connection(write=write) as conn:
            if write:
                await dialect.prepare_write(conn, self._backend)
            async with conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        # The lock before a connection: writers queued on the lock must not hold pooled
        # connections, or a burst of them empties the pool under the lock's holder.
        # (Measured: connection-first stalled a 200-request burst for over 10 s.)
        lock = self._write_lock if write or self._share_lock_with_readers else None
        async with lock or contextlib.nullcontext(), self._engine.connect() as conn:
            yield conn

    async def migrate(self) -> int:
        """Create a new database from the tables, or apply the pending delta migrations,
        each step in its own transaction; returns how many steps ran."""
        applied = 0
        while True:
            async with self._transaction(write=True) as conn:
                await dialect.lock_migrations(conn, self._backend)
                if await migrations.migrate_step(conn, self._backend, self._clock()) is None:
                    return applied
            applied += 1

    async def schema_version(self) -> int:
        async with self._transaction(write=False) as conn:
            return await migrations.current_version(conn)

    def _insert(self, table: Any) -> Any:
        if self._backend is Backend.POSTGRESQL:
            return postgresql.insert(table)
        return sqlite.insert(table)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s UTC day."""
    return datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)


def next_day_start(now: datetime) -> datetime:
    return day_start(now) + timedelta(days=1)


def job_from_row(row: Row[Any]) -> JobRecord:
    return JobRecord(
        id=row.id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        user_id=row.user_id,
        mode=SourceType(row.mode),
        state=JobState(row.state),
        options=json.loads(row.options),
        owner=row.owner,
        photo_sizes=tuple(json.loads(row.photo_sizes)),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        group_id=row.group_id,
        avatar_status=row.avatar_status,
        error_kind=None if row.error_kind is None else FailureKind(row.error_kind),
        error_message=row.error_message,
        refusal=row.refusal,
        notified=bool(row.notified),
        claimed_by=row.claimed_by,
        forgotten=bool(row.forgotten),
        locale=row.locale,
    )


def new_job_values(job: NewJob, now: datetime) -> dict[str, Any]:
    if any(not isinstance(size, int) or size < 0 for size in job.photo_sizes):
        raise ValueError("photo_sizes must be byte counts")
    return {
        "guild_id": job.guild_id,
        "channel_id": job.channel_id,
        "user_id": job.user_id,
        "mode": SourceType(job.mode).value,
        "options": json.dumps(dict(job.options), ensure_ascii=False, sort_keys=True),
        "owner": job.owner,
        "photo_sizes": json.dumps(list(job.photo_sizes)),
        "created_at": now,
        "forgotten": False,
        "locale": job.locale,
    }


async def insert_job(conn: AsyncConnection, values: Mapping[str, Any]) -> JobRecord:
    job_id = (await conn.execute(insert(jobs).values(**values).returning(jobs.c.id))).scalar_one()
    record = await fetch_job(conn, job_id)
    assert record is not None
    return record


async def fetch_job(conn: AsyncConnection, job_id: int) -> JobRecord | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return None if row is None else job_from_row(row)


def clip(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_ERROR_MESSAGE:
        return message
    return message[: MAX_ERROR_MESSAGE - 1] + "…"


def as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

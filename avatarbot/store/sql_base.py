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
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from avatarbot.failures import FailureKind
from avatarbot.timeutil import utc_now

from . import dialect, migrations, notify
from .base import (
    InteractionRef,
    JobRecord,
    JobState,
    NewJob,
    SourceType,
)
from .schema import (
    fleet_state,
    jobs,
)
from .url import Backend

log = logging.getLogger(__name__)

# With heartbeats every 3 s, a silent worker is found dead within 13 s.
WORKER_TIMEOUT = timedelta(seconds=10)
RETIRED = datetime(2000, 1, 1, tzinfo=UTC)  # the last_seen of a worker that stopped cleanly
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
        budget_clock: Callable[[], datetime] | None = None,
        listen_url: URL | None = None,
        channel: str | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        # The budget's clock. None: PostgreSQL's clock_timestamp(), one clock for every
        # process; SQLite's one process uses its own. Tests inject a virtual clock.
        self._budget_clock = budget_clock
        self._listen_url = listen_url if backend is Backend.POSTGRESQL else None
        self._channel = channel or notify.channel_name(None)
        self._listeners: list[notify.Listener] = []
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
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        await self._engine.dispose()

    async def listen(self, handler: notify.NoticeHandler) -> None:
        """Hand ``handler`` what other processes announce (PostgreSQL; SQLite has no others)."""
        if self._listen_url is None:
            return
        listener = notify.Listener(self._listen_url, self._channel, handler)
        self._listeners.append(listener)
        await listener.start()

    async def _announce(self, conn: AsyncConnection, notice: notify.Notice) -> None:
        """Wake other processes when this transaction commits."""
        if self._backend is Backend.POSTGRESQL:
            await notify.notify(conn, self._channel, notice)

    async def _budget_now(self, conn: AsyncConnection) -> datetime:
        """The budget's "now"; call it inside the budget lock, never before it."""
        if self._budget_clock is not None:
            return self._budget_clock()
        if self._backend is Backend.POSTGRESQL:
            return as_utc(await conn.scalar(text("SELECT clock_timestamp()")))
        return datetime.now(UTC)

    @contextlib.asynccontextmanager
    async def command_sync(self, scope: str, fingerprint: str) -> AsyncIterator[bool]:
        """Whether this process should sync the command tree ``fingerprint`` to ``scope``.

        Processes of a fleet take turns under one lock; the first to see a new
        fingerprint syncs it (True) and it is recorded once the block ends without an
        error; the others, and every later start of the same version, get False.
        """
        key = f"command_tree:{scope}"
        async with self._transaction(write=True) as conn:
            await dialect.lock_command_sync(conn, self._backend)
            synced = await conn.scalar(select(fleet_state.c.value).where(fleet_state.c.key == key))
            if synced == fingerprint:
                yield False
                return
            yield True
            stmt = self._insert(fleet_state).values(key=key, value=fingerprint)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[fleet_state.c.key], set_={"value": fingerprint}
                )
            )

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
        interaction=_interaction_from_row(row),
        forgotten=bool(row.forgotten),
        locale=row.locale,
    )


def _interaction_from_row(row: Row[Any]) -> InteractionRef | None:
    if row.reply_token is None or row.interaction_id is None or row.reply_until is None:
        return None
    return InteractionRef(
        interaction_id=row.interaction_id,
        application_id=row.application_id,
        sealed_token=row.reply_token,
        reply_until=row.reply_until,
    )


def interaction_values(ref: InteractionRef | None) -> dict[str, Any]:
    if ref is None:
        return {}
    return {
        "interaction_id": ref.interaction_id,
        "application_id": ref.application_id,
        "reply_token": ref.sealed_token,
        "reply_until": ref.reply_until,
    }


NO_REPLY: dict[str, Any] = {"reply_token": None, "reply_until": None}
"""What forgets an interaction's token (delivered, or its 15 minutes are over)."""


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

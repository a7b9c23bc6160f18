"""The one :class:`~avatarbot.store.base.Store`: SQLAlchemy Core on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import dialect, fairness, migrations
from .base import (
    Block,
    Budget,
    CancelOutcome,
    CancelResult,
    EnqueueResult,
    GuildSettings,
    JobMode,
    JobRecord,
    JobState,
    Limits,
    NewJob,
    QuotaRefusal,
    QuotaStatus,
    UsageStats,
)
from .schema import (
    blocks,
    claims,
    consents,
    dispatch_state,
    guild_clocks,
    guild_settings,
    jobs,
    quota_resets,
    workers,
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

INTERRUPTED = "Interrupted"
INTERRUPTED_RUNNING = (
    "the bot stopped while this job was running; the avatar may or may not have been "
    "created — please try again"
)
INTERRUPTED_UPLOAD = (
    "the bot restarted before this upload ran and photos are never kept; please upload again"
)

_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(GuildSettings)) - {"guild_id"}
_BOOL_FIELDS = frozenset({"enabled", "uploads_allowed"})
_COUNT_FIELDS = frozenset({"cooldown_seconds", "user_daily_quota", "guild_daily_quota"})
_ID_SET_FIELDS = frozenset({"allowed_channel_ids", "required_role_ids"})
_MAX_INT = 2**31 - 1


class SqlStore:
    """Every method is one transaction; see :class:`~avatarbot.store.base.Store`."""

    def __init__(
        self,
        engine: AsyncEngine,
        backend: Backend,
        *,
        in_memory: bool = False,
        worker_timeout: timedelta = WORKER_TIMEOUT,
    ) -> None:
        self._engine = engine
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

    async def close(self) -> None:
        await self._engine.dispose()

    # --- plumbing -------------------------------------------------------------
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
        """Apply pending migrations, each in its own transaction; returns how many ran."""
        applied = 0
        while True:
            async with self._transaction(write=True) as conn:
                await dialect.lock_migrations(conn, self._backend)
                if await migrations.migrate_step(conn, self._backend) is None:
                    return applied
            applied += 1

    async def schema_version(self) -> int:
        async with self._transaction(write=False) as conn:
            return await migrations.current_version(conn)

    def _insert(self, table: Any) -> Any:
        if self._backend is Backend.POSTGRESQL:
            return postgresql.insert(table)
        return sqlite.insert(table)

    # --- settings -------------------------------------------------------------
    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._transaction(write=False) as conn:
            return await _load_settings(conn, guild_id)

    async def update_guild_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        normalized = validate_settings_changes(changes)
        async with self._transaction(write=True) as conn:
            current = await _load_settings(conn, guild_id)
            updated = dataclasses.replace(current, **normalized)  # type: ignore[arg-type]
            values = _settings_values(updated) | {"updated_at": datetime.now(UTC)}
            stmt = self._insert(guild_settings).values(**values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[guild_settings.c.guild_id],
                    set_={k: v for k, v in values.items() if k != "guild_id"},
                )
            )
        return updated

    # --- blocks ---------------------------------------------------------------
    async def block_user(self, guild_id: int, user_id: int, reason: str, blocked_by: int) -> Block:
        block = Block(guild_id, user_id, reason, blocked_by, datetime.now(UTC))
        values = dataclasses.asdict(block)
        async with self._transaction(write=True) as conn:
            stmt = self._insert(blocks).values(**values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[blocks.c.guild_id, blocks.c.user_id],
                    set_={
                        "reason": reason,
                        "blocked_by": blocked_by,
                        "created_at": block.created_at,
                    },
                )
            )
        return block

    async def unblock_user(self, guild_id: int, user_id: int) -> bool:
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                delete(blocks).where(blocks.c.guild_id == guild_id, blocks.c.user_id == user_id)
            )
            return bool(result.rowcount)

    async def get_block(self, guild_id: int, user_id: int) -> Block | None:
        async with self._transaction(write=False) as conn:
            row = (
                await conn.execute(
                    select(blocks).where(blocks.c.guild_id == guild_id, blocks.c.user_id == user_id)
                )
            ).first()
        if row is None:
            return None
        return Block(row.guild_id, row.user_id, row.reason, row.blocked_by, row.created_at)

    # --- consent --------------------------------------------------------------
    async def has_consented(self, user_id: int) -> bool:
        async with self._transaction(write=False) as conn:
            found = await conn.scalar(
                select(consents.c.user_id).where(consents.c.user_id == user_id)
            )
        return found is not None

    async def record_consent(self, user_id: int) -> None:
        async with self._transaction(write=True) as conn:
            stmt = self._insert(consents).values(user_id=user_id, consented_at=datetime.now(UTC))
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=[consents.c.user_id]))

    # --- enqueue --------------------------------------------------------------
    async def enqueue_job(self, job: NewJob, limits: Limits, now: datetime) -> EnqueueResult:
        _check_limits_valid(limits)
        async with self._transaction(write=True) as conn:
            await dialect.lock_guild(conn, self._backend, job.guild_id)
            refusal = await _refusal(conn, job.guild_id, job.user_id, limits, now)
            if refusal is not None:
                return refusal
            guild_turn, member_turn = await _assign_turns(conn, job.guild_id, job.user_id)
            values = _new_job_values(job, now) | {
                "state": JobState.QUEUED.value,
                "notified": False,
                "guild_turn": guild_turn,
                "member_turn": member_turn,
            }
            return EnqueueResult(job=await _insert_job(conn, values))

    async def record_refused(self, job: NewJob, refusal: str, now: datetime) -> JobRecord:
        values = _new_job_values(job, now) | {
            "state": JobState.REFUSED.value,
            "refusal": refusal,
            "finished_at": now,
            # The refusal is the reply itself; nothing is left to deliver.
            "notified": True,
        }
        async with self._transaction(write=True) as conn:
            return await _insert_job(conn, values)

    # --- dispatch -------------------------------------------------------------
    async def claim_next_job(self, worker: str, budget: Budget, now: datetime) -> JobRecord | None:
        async with self._transaction(write=True) as conn:
            # The one dispatch_state row is the global budget lock: claims serialize on it.
            state = (
                await conn.execute(dialect.lock_rows(select(dispatch_state), self._backend))
            ).one()
            if state.paused_until is not None and now < state.paused_until:
                return None
            if await _budget_wait_until(conn, budget, now) is not None:
                return None
            entries = await _queued_entries(conn)
            order = [s for s in fairness.fair_order(entries) if s.entry.claimable_by(worker)]
            slot = await self._lock_first(conn, order)
            if slot is None:
                return None
            await _take_slot(conn, slot, entries, state.guild_clock)
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == slot.entry.job_id)
                .values(
                    state=JobState.RUNNING.value,
                    started_at=now,
                    claimed_by=worker,
                    guild_turn=slot.turn,
                )
            )
            await conn.execute(insert(claims).values(claimed_at=now, worker=worker))
            await conn.execute(delete(claims).where(claims.c.claimed_at < now - timedelta(days=2)))
            return await _get_job(conn, slot.entry.job_id)

    async def reserve_request(self, worker: str, budget: Budget, now: datetime) -> datetime | None:
        async with self._transaction(write=True) as conn:
            state = (
                await conn.execute(dialect.lock_rows(select(dispatch_state), self._backend))
            ).one()
            if state.paused_until is not None and now < state.paused_until:
                return state.paused_until
            wait_until = await _budget_wait_until(conn, budget, now)
            if wait_until is not None:
                return wait_until
            await conn.execute(insert(claims).values(claimed_at=now, worker=worker))
            return None

    async def _lock_first(
        self, conn: AsyncConnection, order: list[fairness.Slot]
    ) -> fairness.Slot | None:
        """The first slot whose job is still queued and not locked by another transaction."""
        if not order:
            return None
        ids = [s.entry.job_id for s in order]
        stmt = select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.state == JobState.QUEUED.value)
        available = set(
            (await conn.execute(dialect.lock_rows(stmt, self._backend, skip_locked=True))).scalars()
        )
        return next((s for s in order if s.entry.job_id in available), None)

    async def next_claim_at(self, budget: Budget, now: datetime) -> datetime | None:
        async with self._transaction(write=False) as conn:
            queued = await conn.scalar(
                select(jobs.c.id).where(jobs.c.state == JobState.QUEUED.value).limit(1)
            )
            if queued is None:
                return None
            paused_until = await conn.scalar(select(dispatch_state.c.paused_until))
            budget_at = await _budget_wait_until(conn, budget, now)
        candidates = [t for t in (paused_until, budget_at) if t is not None and t > now]
        return max(candidates) if candidates else None

    async def pause_dispatch(self, until: datetime) -> None:
        async with self._transaction(write=True) as conn:
            current = await conn.scalar(select(dispatch_state.c.paused_until))
            # Several workers may report a 429 at once; the latest deadline wins.
            if current is None or until > current:
                await conn.execute(update(dispatch_state).values(paused_until=until))

    async def finish_job(
        self,
        job_id: int,
        state: JobState,
        now: datetime,
        *,
        group_id: str | None = None,
        avatar_status: str | None = None,
        error_kind: str | None = None,
        error_message: str | None = None,
    ) -> JobRecord:
        if state not in (JobState.SUCCEEDED, JobState.FAILED):
            raise ValueError(f"a job finishes as succeeded or failed, not {state.value}")
        async with self._transaction(write=True) as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE_STATES))
                .values(
                    state=state.value,
                    finished_at=now,
                    group_id=group_id,
                    avatar_status=avatar_status,
                    error_kind=error_kind,
                    error_message=_clip(error_message),
                    notified=False,
                )
            )
            record = await _get_job(conn, job_id)
        if record is None:
            raise LookupError(f"no job {job_id}")
        if not result.rowcount:
            log.warning("job %d was already %s; outcome %s ignored", job_id, record.state, state)
        return record

    async def fail_queued_jobs(
        self, guild_id: int, now: datetime, *, error_kind: str, error_message: str
    ) -> list[JobRecord]:
        async with self._transaction(write=True) as conn:
            waiting = (
                (
                    await conn.execute(
                        select(jobs.c.id).where(
                            jobs.c.guild_id == guild_id, jobs.c.state == JobState.QUEUED.value
                        )
                    )
                )
                .scalars()
                .all()
            )
            if not waiting:
                return []
            await conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(waiting), jobs.c.state == JobState.QUEUED.value)
                .values(
                    state=JobState.FAILED.value,
                    finished_at=now,
                    error_kind=error_kind,
                    error_message=_clip(error_message),
                    notified=False,
                )
            )
            result = await conn.execute(select(jobs).where(jobs.c.id.in_(waiting)))
            failed = [job_from_row(row) for row in result]
        log.info("failed %d queued jobs of guild %d: %s", len(failed), guild_id, error_kind)
        return failed

    async def cancel_job(self, job_id: int, user_id: int, now: datetime) -> CancelResult:
        async with self._transaction(write=True) as conn:
            # On PostgreSQL a concurrent claim holds the row lock: this waits for it, then
            # re-checks the state (READ COMMITTED) and finds the job running.
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.user_id == user_id,
                    jobs.c.state == JobState.QUEUED.value,
                )
                .values(state=JobState.CANCELLED.value, finished_at=now, notified=True)
            )
            record = await _get_job(conn, job_id)
        if record is None or record.user_id != user_id or record.forgotten:
            return CancelResult(CancelOutcome.NOT_FOUND)
        if result.rowcount:
            log.info("job %d cancelled by its member", job_id)
            return CancelResult(CancelOutcome.CANCELLED, record)
        if record.state is JobState.RUNNING:
            return CancelResult(CancelOutcome.ALREADY_STARTED, record)
        return CancelResult(CancelOutcome.ALREADY_ENDED, record)

    async def heartbeat(self, worker: str, now: datetime) -> None:
        async with self._transaction(write=True) as conn:
            stmt = self._insert(workers).values(worker_id=worker, last_seen=now)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[workers.c.worker_id], set_={"last_seen": now}
                )
            )

    async def mark_notified(self, job_id: int) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(notified=True))

    async def undelivered_jobs(self, owner: str) -> list[JobRecord]:
        async with self._transaction(write=False) as conn:
            rows = await conn.execute(
                select(jobs)
                .where(
                    jobs.c.owner == owner,
                    jobs.c.notified.is_(False),
                    jobs.c.state.in_(FINAL_STATES),
                )
                .order_by(jobs.c.id)
            )
            return [job_from_row(r) for r in rows]

    async def queue_position(self, job_id: int) -> int | None:
        async with self._transaction(write=False) as conn:
            order = fairness.fair_order(await _queued_entries(conn))
        return fairness.positions(order).get(job_id)

    async def queue_positions(self, owner: str) -> dict[int, int]:
        async with self._transaction(write=False) as conn:
            order = fairness.fair_order(await _queued_entries(conn))
        return {
            slot.entry.job_id: place
            for place, slot in enumerate(order, start=1)
            if slot.entry.owner == owner
        }

    async def recover(self, owner: str, now: datetime) -> list[JobRecord]:
        async with self._transaction(write=True) as conn:
            recovery = _Recovery(owner, now, await _last_seen(conn), self._worker_timeout)
            rows = (
                await conn.execute(
                    select(jobs).where(
                        or_(
                            jobs.c.state.in_(ACTIVE_STATES),
                            and_(jobs.c.state.in_(FINAL_STATES), jobs.c.notified.is_(False)),
                        )
                    )
                )
            ).all()
            touched = [job_id for row in rows if (job_id := await recovery.apply(conn, row))]
            await _prune(conn, now)
            if not touched:
                return []
            result = await conn.execute(
                select(jobs)
                .where(
                    jobs.c.id.in_(touched),
                    jobs.c.owner == owner,
                    jobs.c.state.in_(FINAL_STATES),
                    jobs.c.notified.is_(False),
                )
                .order_by(jobs.c.id)
            )
            recovered = [job_from_row(r) for r in result]
        if recovered:
            log.info("recovered %d jobs of stopped workers", len(recovered))
        return recovered

    # --- history and statistics -------------------------------------------------
    async def get_job(self, job_id: int) -> JobRecord | None:
        async with self._transaction(write=False) as conn:
            return await _get_job(conn, job_id)

    async def recent_jobs(self, user_id: int, guild_id: int, limit: int = 10) -> list[JobRecord]:
        async with self._transaction(write=False) as conn:
            rows = await conn.execute(
                select(jobs)
                .where(
                    jobs.c.user_id == user_id,
                    jobs.c.guild_id == guild_id,
                    jobs.c.forgotten.is_(False),
                )
                .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
                .limit(max(0, limit))
            )
            return [job_from_row(r) for r in rows]

    async def forget_user(self, user_id: int, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        today = day_start(now)
        async with self._transaction(write=True) as conn:
            markers = await _latest_resets_by_guild(conn, user_id)
            final = and_(jobs.c.user_id == user_id, jobs.c.state.in_(FINAL_STATES))
            still_counts = and_(
                jobs.c.state == JobState.SUCCEEDED.value, jobs.c.created_at >= today
            )
            deleted = await conn.execute(delete(jobs).where(final, ~still_counts))
            scrubbed = await conn.execute(
                update(jobs)
                .where(final, still_counts, jobs.c.forgotten.is_(False))
                .values(
                    options="{}",
                    photo_sizes="[]",
                    channel_id=0,
                    group_id=None,
                    avatar_status=None,
                    forgotten=True,
                )
            )
            # Rows a quota reset already excused count only for the guild now: unlink them,
            # so deleting the reset markers below does not charge the member again.
            for guild_id, marker in markers.items():
                await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.user_id == user_id,
                        jobs.c.guild_id == guild_id,
                        jobs.c.forgotten.is_(True),
                        jobs.c.created_at <= marker,
                    )
                    .values(user_id=ANONYMOUS_USER)
                )
            await conn.execute(delete(consents).where(consents.c.user_id == user_id))
            await conn.execute(delete(quota_resets).where(quota_resets.c.user_id == user_id))
        return int(deleted.rowcount or 0) + int(scrubbed.rowcount or 0)

    async def quota_status(
        self, guild_id: int, user_id: int, limits: Limits, now: datetime
    ) -> QuotaStatus:
        async with self._transaction(write=False) as conn:
            usage = await _member_usage(conn, guild_id, user_id, now)
        cooldown_until = None
        if limits.cooldown_seconds and usage.last_job_at is not None:
            until = usage.last_job_at + timedelta(seconds=limits.cooldown_seconds)
            cooldown_until = until if until > now else None
        return QuotaStatus(
            user_used=usage.user_used,
            user_limit=limits.user_daily_quota,
            guild_used=usage.guild_used,
            guild_limit=limits.guild_daily_quota,
            cooldown_until=cooldown_until,
        )

    async def reset_user_quota(self, guild_id: int, user_id: int, now: datetime) -> None:
        async with self._transaction(write=True) as conn:
            await dialect.lock_guild(conn, self._backend, guild_id)
            await conn.execute(
                insert(quota_resets).values(guild_id=guild_id, user_id=user_id, reset_at=now)
            )

    async def usage_stats(self, guild_id: int, now: datetime) -> UsageStats:
        today = day_start(now)
        week = now - timedelta(days=7)
        in_guild = jobs.c.guild_id == guild_id

        def count(*conditions: ColumnElement[bool]) -> Any:
            return func.count().filter(and_(*conditions))

        is_today = jobs.c.created_at >= today
        not_refused = jobs.c.state.not_in(NOT_RUN_STATES)
        stmt = select(
            count(is_today, not_refused),
            count(is_today, jobs.c.state == JobState.SUCCEEDED.value),
            count(is_today, jobs.c.state == JobState.FAILED.value),
            count(is_today, jobs.c.state == JobState.REFUSED.value),
            count(not_refused),
            count(jobs.c.state == JobState.SUCCEEDED.value),
            count(jobs.c.state == JobState.FAILED.value),
            count(is_today, jobs.c.state.in_(COUNTED_STATES)),
        ).where(in_guild, jobs.c.created_at >= week)  # today always lies inside the 7 days
        top = (
            select(jobs.c.user_id, func.count().label("n"))
            .where(
                in_guild,
                jobs.c.created_at >= week,
                not_refused,
                jobs.c.user_id != ANONYMOUS_USER,
            )
            .group_by(jobs.c.user_id)
            .order_by(func.count().desc(), jobs.c.user_id)
            .limit(TOP_MEMBERS)
        )
        async with self._transaction(write=False) as conn:
            row = (await conn.execute(stmt)).one()
            top_rows = (await conn.execute(top)).all()
        return UsageStats(
            jobs_today=row[0],
            succeeded_today=row[1],
            failed_today=row[2],
            refused_today=row[3],
            jobs_7d=row[4],
            succeeded_7d=row[5],
            failed_7d=row[6],
            top_members_7d=tuple((int(r.user_id), int(r.n)) for r in top_rows),
            guild_used_today=row[7],
        )


# --- settings helpers ----------------------------------------------------------
def validate_settings_changes(changes: Mapping[str, object]) -> dict[str, object]:
    """Check names and values of a settings update; raise ValueError on anything wrong."""
    unknown = sorted(set(changes) - _SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"unknown guild setting(s): {', '.join(unknown)}")
    return {name: _normalize_setting(name, value) for name, value in changes.items()}


def _normalize_setting(name: str, value: object) -> object:
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name in _COUNT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number")
        if not 0 <= value <= _MAX_INT:
            raise ValueError(f"{name} must be between 0 and {_MAX_INT}")
        return value
    if name == "log_channel_id":
        if value is not None and not _is_snowflake(value):
            raise ValueError("log_channel_id must be a channel id or None")
        return value
    if name in _ID_SET_FIELDS:
        return frozenset(_ids(name, value))
    if name == "blocked_words":
        return tuple(dict.fromkeys(w for w in _strings(name, value) if w))
    return frozenset(w for w in _strings(name, value) if w)  # disabled_checks


def _ids(name: str, value: object) -> list[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of ids")
    items = list(value)
    if not all(_is_snowflake(i) for i in items):
        raise ValueError(f"{name} must hold only Discord ids")
    return items


def _is_snowflake(value: object) -> bool:
    """A Discord id: a positive integer that fits a signed 64-bit column."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _strings(name: str, value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of strings")
    items = list(value)
    if any(not isinstance(i, str) for i in items):
        raise ValueError(f"{name} must hold only strings")
    return [i.strip() for i in items]


async def _load_settings(conn: AsyncConnection, guild_id: int) -> GuildSettings:
    row = (
        await conn.execute(select(guild_settings).where(guild_settings.c.guild_id == guild_id))
    ).first()
    if row is None:
        return GuildSettings(guild_id)
    return GuildSettings(
        guild_id=row.guild_id,
        enabled=bool(row.enabled),
        uploads_allowed=bool(row.uploads_allowed),
        cooldown_seconds=row.cooldown_seconds,
        user_daily_quota=row.user_daily_quota,
        guild_daily_quota=row.guild_daily_quota,
        log_channel_id=row.log_channel_id,
        allowed_channel_ids=frozenset(json.loads(row.allowed_channel_ids)),
        required_role_ids=frozenset(json.loads(row.required_role_ids)),
        blocked_words=tuple(json.loads(row.blocked_words)),
        disabled_checks=frozenset(json.loads(row.disabled_checks)),
    )


def _settings_values(settings: GuildSettings) -> dict[str, Any]:
    return {
        "guild_id": settings.guild_id,
        "enabled": settings.enabled,
        "uploads_allowed": settings.uploads_allowed,
        "cooldown_seconds": settings.cooldown_seconds,
        "user_daily_quota": settings.user_daily_quota,
        "guild_daily_quota": settings.guild_daily_quota,
        "log_channel_id": settings.log_channel_id,
        "allowed_channel_ids": json.dumps(sorted(settings.allowed_channel_ids)),
        "required_role_ids": json.dumps(sorted(settings.required_role_ids)),
        "blocked_words": json.dumps(list(settings.blocked_words)),
        "disabled_checks": json.dumps(sorted(settings.disabled_checks)),
    }


# --- job helpers ------------------------------------------------------------------
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
        mode=JobMode(row.mode),
        state=JobState(row.state),
        options=json.loads(row.options),
        owner=row.owner,
        photo_sizes=tuple(json.loads(row.photo_sizes)),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        group_id=row.group_id,
        avatar_status=row.avatar_status,
        error_kind=row.error_kind,
        error_message=row.error_message,
        refusal=row.refusal,
        notified=bool(row.notified),
        claimed_by=row.claimed_by,
        forgotten=bool(row.forgotten),
    )


def _new_job_values(job: NewJob, now: datetime) -> dict[str, Any]:
    if any(not isinstance(size, int) or size < 0 for size in job.photo_sizes):
        raise ValueError("photo_sizes must be byte counts")
    return {
        "guild_id": job.guild_id,
        "channel_id": job.channel_id,
        "user_id": job.user_id,
        "mode": JobMode(job.mode).value,
        "options": json.dumps(dict(job.options), ensure_ascii=False, sort_keys=True),
        "owner": job.owner,
        "photo_sizes": json.dumps(list(job.photo_sizes)),
        "created_at": now,
        "forgotten": False,
    }


async def _insert_job(conn: AsyncConnection, values: Mapping[str, Any]) -> JobRecord:
    job_id = (await conn.execute(insert(jobs).values(**values).returning(jobs.c.id))).scalar_one()
    record = await _get_job(conn, job_id)
    assert record is not None
    return record


async def _get_job(conn: AsyncConnection, job_id: int) -> JobRecord | None:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    return None if row is None else job_from_row(row)


def _clip(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_ERROR_MESSAGE:
        return message
    return message[: MAX_ERROR_MESSAGE - 1] + "…"


def _check_limits_valid(limits: Limits) -> None:
    for name in (
        "user_daily_quota",
        "guild_daily_quota",
        "cooldown_seconds",
        "max_active_per_user",
    ):
        if getattr(limits, name) < 0:
            raise ValueError(f"{name} must not be negative")


# --- limits ---------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class _MemberUsage:
    user_used: int
    guild_used: int
    active: int
    last_job_at: datetime | None


async def _member_usage(
    conn: AsyncConnection, guild_id: int, user_id: int, now: datetime
) -> _MemberUsage:
    today = day_start(now)
    marker = await conn.scalar(
        select(func.max(quota_resets.c.reset_at)).where(
            quota_resets.c.guild_id == guild_id, quota_resets.c.user_id == user_id
        )
    )
    counted = jobs.c.state.in_(COUNTED_STATES)
    member = and_(jobs.c.guild_id == guild_id, jobs.c.user_id == user_id)
    after_reset = jobs.c.created_at > marker if marker is not None else true()
    row = (
        await conn.execute(
            select(
                func.count().filter(member, counted, after_reset, jobs.c.created_at >= today),
                func.count().filter(counted, jobs.c.created_at >= today),
                func.count().filter(member, jobs.c.state.in_(ACTIVE_STATES)),
                func.max(jobs.c.created_at).filter(member, counted, after_reset),
            ).where(jobs.c.guild_id == guild_id)
        )
    ).one()
    last_job_at = row[3]
    if isinstance(last_job_at, str):  # SQLite returns max() of a column as its raw text
        last_job_at = datetime.fromisoformat(last_job_at).replace(tzinfo=UTC)
    return _MemberUsage(int(row[0]), int(row[1]), int(row[2]), last_job_at)


async def _refusal(
    conn: AsyncConnection, guild_id: int, user_id: int, limits: Limits, now: datetime
) -> EnqueueResult | None:
    """Why the request is refused, or None. The most lasting refusal is reported first,
    so ``retry_at`` is never earlier than the member can really go again."""
    usage = await _member_usage(conn, guild_id, user_id, now)
    if limits.max_active_per_user and usage.active >= limits.max_active_per_user:
        return EnqueueResult(refusal=QuotaRefusal.BUSY)
    if limits.user_daily_quota and usage.user_used >= limits.user_daily_quota:
        return EnqueueResult(refusal=QuotaRefusal.USER_DAILY, retry_at=next_day_start(now))
    if limits.guild_daily_quota and usage.guild_used >= limits.guild_daily_quota:
        return EnqueueResult(refusal=QuotaRefusal.GUILD_DAILY, retry_at=next_day_start(now))
    if limits.cooldown_seconds and usage.last_job_at is not None:
        until = usage.last_job_at + timedelta(seconds=limits.cooldown_seconds)
        if now < until:
            return EnqueueResult(refusal=QuotaRefusal.COOLDOWN, retry_at=until)
    return None


# --- fairness -------------------------------------------------------------------
async def _assign_turns(conn: AsyncConnection, guild_id: int, user_id: int) -> tuple[int, int]:
    guild_clock = int(await conn.scalar(select(dispatch_state.c.guild_clock)) or 0)
    member_clock = int(
        await conn.scalar(
            select(guild_clocks.c.member_clock).where(guild_clocks.c.guild_id == guild_id)
        )
        or 0
    )
    # A cancelled job was never served: its turns go to whatever its guild queues next.
    held = jobs.c.state != JobState.CANCELLED.value
    last_guild_turn = await conn.scalar(
        select(func.max(jobs.c.guild_turn)).where(jobs.c.guild_id == guild_id, held)
    )
    last_member_turn = await conn.scalar(
        select(func.max(jobs.c.member_turn)).where(
            jobs.c.guild_id == guild_id, jobs.c.user_id == user_id, held
        )
    )
    return (
        fairness.next_turn(guild_clock, last_guild_turn),
        fairness.next_turn(member_clock, last_member_turn),
    )


async def _queued_entries(conn: AsyncConnection) -> list[fairness.QueuedEntry]:
    rows = await conn.execute(
        select(
            jobs.c.id,
            jobs.c.guild_id,
            jobs.c.user_id,
            jobs.c.mode,
            jobs.c.owner,
            jobs.c.guild_turn,
            jobs.c.member_turn,
            jobs.c.created_at,
        ).where(jobs.c.state == JobState.QUEUED.value)
    )
    return [
        fairness.QueuedEntry(
            job_id=r.id,
            guild_id=r.guild_id,
            user_id=r.user_id,
            mode=JobMode(r.mode),
            owner=r.owner,
            guild_turn=int(r.guild_turn or 0),
            member_turn=int(r.member_turn or 0),
            created_at=r.created_at,
        )
        for r in rows
    ]


async def _take_slot(
    conn: AsyncConnection,
    slot: fairness.Slot,
    entries: list[fairness.QueuedEntry],
    guild_clock: int,
) -> None:
    """Give the served job its slot's turn and advance both clocks."""
    holder = fairness.turn_swap(slot, entries)
    if holder is not None:
        await conn.execute(
            update(jobs).where(jobs.c.id == holder.job_id).values(guild_turn=slot.entry.guild_turn)
        )
    if slot.turn > guild_clock:
        await conn.execute(update(dispatch_state).values(guild_clock=slot.turn))
    guild_id = slot.entry.guild_id
    member_clock = await conn.scalar(
        select(guild_clocks.c.member_clock).where(guild_clocks.c.guild_id == guild_id)
    )
    if member_clock is None:
        await conn.execute(
            insert(guild_clocks).values(guild_id=guild_id, member_clock=slot.entry.member_turn)
        )
    elif slot.entry.member_turn > member_clock:
        await conn.execute(
            update(guild_clocks)
            .where(guild_clocks.c.guild_id == guild_id)
            .values(member_clock=slot.entry.member_turn)
        )


# --- budget ---------------------------------------------------------------------
async def _budget_wait_until(
    conn: AsyncConnection, budget: Budget, now: datetime
) -> datetime | None:
    """When the budget next allows a claim, or None if it allows one now."""
    window_start = now - BUDGET_WINDOW
    recent = list(
        (
            await conn.execute(
                select(claims.c.claimed_at)
                .where(claims.c.claimed_at > window_start, claims.c.claimed_at <= now)
                .order_by(claims.c.claimed_at)
            )
        ).scalars()
    )
    waits: list[datetime] = []
    if len(recent) >= budget.per_minute:
        # The window frees a place when its (len - per_minute + 1)-th oldest claim leaves it.
        waits.append(recent[len(recent) - budget.per_minute] + BUDGET_WINDOW)
    today = await conn.scalar(
        select(func.count()).where(
            claims.c.claimed_at >= day_start(now), claims.c.claimed_at <= now
        )
    )
    if int(today or 0) >= budget.per_day:
        waits.append(next_day_start(now))
    return max(waits) if waits else None


# --- recovery -------------------------------------------------------------------
async def _last_seen(conn: AsyncConnection) -> dict[str, datetime]:
    rows = await conn.execute(select(workers.c.worker_id, workers.c.last_seen))
    return {r.worker_id: r.last_seen for r in rows}


@dataclasses.dataclass
class _Recovery:
    owner: str
    now: datetime
    last_seen: Mapping[str, datetime]
    timeout: timedelta

    def is_dead(self, worker: str | None, since: datetime) -> bool:
        """A worker other than ours that is silent; one never heard from counts as dead
        only once its job is older than the timeout (it may be starting up)."""
        if worker is None or worker == self.owner:
            return False
        seen = self.last_seen.get(worker, since)
        return seen < self.now - self.timeout

    async def apply(self, conn: AsyncConnection, row: Row[Any]) -> int | None:
        """Fix one job of a dead worker; returns its id when it was changed."""
        state = JobState(row.state)
        owner_dead = self.is_dead(row.owner, row.created_at)
        adopt = {"owner": self.owner} if owner_dead else {}
        if state is JobState.RUNNING and self.is_dead(
            row.claimed_by, row.started_at or row.created_at
        ):
            values = self._failed(INTERRUPTED_RUNNING) | adopt
        elif state is JobState.QUEUED and owner_dead and row.mode == JobMode.UPLOAD.value:
            values = self._failed(INTERRUPTED_UPLOAD) | adopt
        elif owner_dead and state is not JobState.RUNNING:
            values = adopt  # queued generate jobs and undelivered outcomes
        else:
            return None
        await conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values))
        return int(row.id)

    def _failed(self, message: str) -> dict[str, Any]:
        return {
            "state": JobState.FAILED.value,
            "finished_at": self.now,
            "error_kind": INTERRUPTED,
            "error_message": message,
            "notified": False,
        }


async def _latest_resets_by_guild(conn: AsyncConnection, user_id: int) -> dict[int, datetime]:
    rows = await conn.execute(
        select(quota_resets.c.guild_id, func.max(quota_resets.c.reset_at).label("at"))
        .where(quota_resets.c.user_id == user_id)
        .group_by(quota_resets.c.guild_id)
    )
    return {r.guild_id: _as_utc(r.at) for r in rows}


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _prune(conn: AsyncConnection, now: datetime) -> None:
    """Drop what no longer matters: excused rows of forgotten members, long-gone workers."""
    await conn.execute(
        delete(jobs).where(jobs.c.forgotten.is_(True), jobs.c.created_at < day_start(now))
    )
    await conn.execute(delete(workers).where(workers.c.last_seen < now - timedelta(days=7)))
    await conn.execute(delete(claims).where(claims.c.claimed_at < now - timedelta(days=2)))

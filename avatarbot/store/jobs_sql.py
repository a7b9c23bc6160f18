"""Jobs from admission to history: enqueue within the quotas, outcomes, forgetting, usage."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from avatarbot.failures import FailureKind

from . import dialect, fairness, notify
from .base import (
    CancelOutcome,
    CancelResult,
    EnqueueResult,
    JobRecord,
    JobState,
    Limits,
    NewJob,
    QuotaStatus,
    RefusalReason,
    UsageStats,
)
from .schema import (
    consents,
    dispatch_state,
    guild_clocks,
    jobs,
    quota_resets,
)
from .sql_base import (
    ACTIVE_STATES,
    ANONYMOUS_USER,
    COUNTED_STATES,
    FINAL_STATES,
    NO_REPLY,
    NOT_RUN_STATES,
    TOP_MEMBERS,
    SqlBase,
    as_utc,
    clip,
    day_start,
    fetch_job,
    insert_job,
    interaction_values,
    job_from_row,
    new_job_values,
    next_day_start,
)

log = logging.getLogger(__name__)


class JobStore(SqlBase):
    """Admission, outcomes and history; see :class:`~avatarbot.store.base.Store`."""

    async def enqueue_job(self, job: NewJob, limits: Limits, now: datetime) -> EnqueueResult:
        _check_limits_valid(limits)
        async with self._transaction(write=True) as conn:
            await dialect.lock_guild(conn, self._backend, job.guild_id)
            if await _interaction_has_a_job(conn, job):
                return EnqueueResult(duplicate=True)
            refusal = await _refusal(conn, job.guild_id, job.user_id, limits, now)
            if refusal is not None:
                return refusal
            guild_turn, member_turn = await _assign_turns(conn, job.guild_id, job.user_id)
            values = (
                new_job_values(job, now)
                | interaction_values(job.interaction)
                | {
                    "state": JobState.QUEUED.value,
                    "notified": False,
                    "guild_turn": guild_turn,
                    "member_turn": member_turn,
                }
            )
            record = await insert_job(conn, values)
            await self._announce(conn, notify.Notice(notify.StoreEvent.QUEUED, record.id))
            return EnqueueResult(job=record)

    async def record_refused(self, job: NewJob, refusal: str, now: datetime) -> JobRecord:
        values = new_job_values(job, now) | {
            "state": JobState.REFUSED.value,
            "refusal": refusal,
            "finished_at": now,
            # The refusal is the reply itself; nothing is left to deliver.
            "notified": True,
        }
        async with self._transaction(write=True) as conn:
            return await insert_job(conn, values)

    async def finish_job(
        self,
        job_id: int,
        state: JobState,
        now: datetime,
        *,
        group_id: str | None = None,
        avatar_status: str | None = None,
        error_kind: FailureKind | None = None,
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
                    error_kind=None if error_kind is None else FailureKind(error_kind).value,
                    error_message=clip(error_message),
                    notified=False,
                    # The process that ran the job tells the member (in their interaction,
                    # with its token), whichever process received it.
                    owner=func.coalesce(jobs.c.claimed_by, jobs.c.owner),
                )
            )
            record = await fetch_job(conn, job_id)
            if result.rowcount:
                await self._announce(conn, notify.Notice(notify.StoreEvent.FINISHED, job_id))
        if record is None:
            raise LookupError(f"no job {job_id}")
        if not result.rowcount:
            log.warning("job %d was already %s; outcome %s ignored", job_id, record.state, state)
        return record

    async def fail_queued_jobs(
        self, guild_id: int, now: datetime, *, error_kind: FailureKind, error_message: str
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
                    error_kind=FailureKind(error_kind).value,
                    error_message=clip(error_message),
                    notified=False,
                )
            )
            result = await conn.execute(select(jobs).where(jobs.c.id.in_(waiting)))
            failed = [job_from_row(row) for row in result]
            for job in failed:
                await self._announce(conn, notify.Notice(notify.StoreEvent.FINISHED, job.id))
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
            record = await fetch_job(conn, job_id)
        if record is None or record.user_id != user_id or record.forgotten:
            return CancelResult(CancelOutcome.NOT_FOUND)
        if result.rowcount:
            log.info("job %d cancelled by its member", job_id)
            return CancelResult(CancelOutcome.CANCELLED, record)
        if record.state is JobState.RUNNING:
            return CancelResult(CancelOutcome.ALREADY_STARTED, record)
        return CancelResult(CancelOutcome.ALREADY_ENDED, record)

    async def mark_notified(self, job_id: int) -> None:
        async with self._transaction(write=True) as conn:
            await conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(notified=True, **NO_REPLY)
            )

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

    async def get_job(self, job_id: int) -> JobRecord | None:
        async with self._transaction(write=False) as conn:
            return await fetch_job(conn, job_id)

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
        now = now or self._clock()
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


async def _interaction_has_a_job(conn: AsyncConnection, job: NewJob) -> bool:
    """Under the guild's lock, so two processes given one interaction never both queue it
    (the unique index on ``interaction_id`` holds behind this)."""
    if job.interaction is None:
        return False
    found = await conn.scalar(
        select(jobs.c.id).where(jobs.c.interaction_id == job.interaction.interaction_id)
    )
    return found is not None


def _check_limits_valid(limits: Limits) -> None:
    for name in (
        "user_daily_quota",
        "guild_daily_quota",
        "cooldown_seconds",
        "max_active_per_user",
    ):
        if getattr(limits, name) < 0:
            raise ValueError(f"{name} must not be negative")


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
        return EnqueueResult(refusal=RefusalReason.BUSY)
    if limits.user_daily_quota and usage.user_used >= limits.user_daily_quota:
        return EnqueueResult(refusal=RefusalReason.USER_DAILY, retry_at=next_day_start(now))
    if limits.guild_daily_quota and usage.guild_used >= limits.guild_daily_quota:
        return EnqueueResult(refusal=RefusalReason.GUILD_DAILY, retry_at=next_day_start(now))
    if limits.cooldown_seconds and usage.last_job_at is not None:
        until = usage.last_job_at + timedelta(seconds=limits.cooldown_seconds)
        if now < until:
            return EnqueueResult(refusal=RefusalReason.COOLDOWN, retry_at=until)
    return None


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


async def _latest_resets_by_guild(conn: AsyncConnection, user_id: int) -> dict[int, datetime]:
    rows = await conn.execute(
        select(quota_resets.c.guild_id, func.max(quota_resets.c.reset_at).label("at"))
        .where(quota_resets.c.user_id == user_id)
        .group_by(quota_resets.c.guild_id)
    )
    return {r.guild_id: as_utc(r.at) for r in rows}

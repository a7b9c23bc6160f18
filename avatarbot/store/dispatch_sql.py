"""The shared queue: fair claims within the agent.ai budget, pauses, heartbeats, recovery."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
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
from sqlalchemy.ext.asyncio import AsyncConnection

from avatarbot.failures import FailureKind

from . import dialect, fairness, notify
from .base import (
    Budget,
    JobRecord,
    JobState,
    SourceType,
)
from .schema import (
    claims,
    dispatch_state,
    guild_clocks,
    jobs,
    workers,
)
from .sql_base import (
    ACTIVE_STATES,
    FINAL_STATES,
    INTERRUPTED_RUNNING,
    INTERRUPTED_UPLOAD,
    NO_REPLY,
    RETIRED,
    SqlBase,
    as_utc,
    day_start,
    fetch_job,
    job_from_row,
    next_day_start,
)

log = logging.getLogger(__name__)


class DispatchStore(SqlBase):
    """Claims, the budget and recovery; see :class:`~avatarbot.store.base.Store`."""

    async def claim_next_job(self, worker: str, budget: Budget, now: datetime) -> JobRecord | None:
        async with self._transaction(write=True) as conn:
            state = await self._lock_dispatch_state(conn)
            at = await self._budget_now(conn)
            if state.paused_until is not None and at < state.paused_until:
                return None
            if await _budget_wait_until(conn, budget, at) is not None:
                return None
            entries = await _queued_entries(conn)
            order = [s for s in fairness.fair_order(entries) if s.entry.claimable_by(worker)]
            slot = await self._lock_first(conn, order)
            if slot is None:
                return None
            await _take_slot(conn, slot, entries, state.guild_clock)
            job_id = slot.entry.job_id
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.RUNNING.value,
                    started_at=now,
                    claimed_by=worker,
                    guild_turn=slot.turn,
                )
            )
            # The claim holds a slot; acquire_send_permit moves it to the send.
            await conn.execute(insert(claims).values(claimed_at=at, worker=worker, job_id=job_id))
            return await fetch_job(conn, job_id)

    async def acquire_send_permit(
        self, worker: str, job_id: int, budget: Budget, *, first: bool
    ) -> float | None:
        async with self._transaction(write=True) as conn:
            state = await self._lock_dispatch_state(conn)
            at = await self._budget_now(conn)
            if state.paused_until is not None and at < state.paused_until:
                return _seconds_until(state.paused_until, at)
            held = await _held_slot(conn, job_id) if first else None
            wait_until = await _budget_wait_until(conn, budget, at, excluding=held)
            if wait_until is not None:
                return _seconds_until(wait_until, at)
            if held is not None:
                await conn.execute(update(claims).where(claims.c.id == held).values(claimed_at=at))
            else:
                await conn.execute(
                    insert(claims).values(claimed_at=at, worker=worker, job_id=job_id)
                )
            return None

    async def _lock_dispatch_state(self, conn: AsyncConnection) -> Row[Any]:
        """The one dispatch_state row is the global budget lock: budget steps serialize on it."""
        return (await conn.execute(dialect.lock_rows(select(dispatch_state), self._backend))).one()

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

    async def next_claim_at(self, budget: Budget) -> datetime | None:
        async with self._transaction(write=False) as conn:
            queued = await conn.scalar(
                select(jobs.c.id).where(jobs.c.state == JobState.QUEUED.value).limit(1)
            )
            if queued is None:
                return None
            paused_until = await conn.scalar(select(dispatch_state.c.paused_until))
            at = await self._budget_now(conn)
            budget_at = await _budget_wait_until(conn, budget, at)
        candidates = [t for t in (paused_until, budget_at) if t is not None and t > at]
        return max(candidates) if candidates else None

    async def pause_dispatch(self, until: datetime) -> None:
        async with self._transaction(write=True) as conn:
            current = await conn.scalar(select(dispatch_state.c.paused_until))
            # Several workers may report a 429 at once; the latest deadline wins.
            if current is None or until > current:
                await conn.execute(update(dispatch_state).values(paused_until=until))

    async def heartbeat(self, worker: str, now: datetime) -> None:
        async with self._transaction(write=True) as conn:
            stmt = self._insert(workers).values(worker_id=worker, last_seen=now)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[workers.c.worker_id], set_={"last_seen": now}
                )
            )

    async def retire_worker(self, worker: str) -> None:
        """``worker`` stopped cleanly: others may adopt its jobs now, not after the timeout."""
        async with self._transaction(write=True) as conn:
            await conn.execute(
                update(workers).where(workers.c.worker_id == worker).values(last_seen=RETIRED)
            )
            await self._announce(conn, notify.Notice(notify.StoreEvent.WORKER_LEFT))

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
            mode=SourceType(r.mode),
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


async def _budget_wait_until(
    conn: AsyncConnection, budget: Budget, at: datetime, *, excluding: int | None = None
) -> datetime | None:
    """When the budget next has a free slot, or None if it has one at ``at``.

    Every slot, held by a claim or spent by a sent request, is a ``claims`` row at
    its time; ``excluding`` leaves out the slot the caller is about to move to ``at``.
    Each new slot at ``at`` is checked against the span ending at ``at``, which is
    enough for every span: the busiest one can always be shifted to end at a slot.
    """
    others = claims.c.id != excluding if excluding is not None else true()
    recent = list(
        (
            await conn.execute(
                select(claims.c.claimed_at)
                .where(claims.c.claimed_at > at - budget.span, others)
                .order_by(claims.c.claimed_at)
            )
        ).scalars()
    )
    waits: list[datetime] = []
    if len(recent) >= budget.per_minute:
        # A slot frees when the (len - per_minute + 1)-th oldest leaves the span.
        waits.append(as_utc(recent[len(recent) - budget.per_minute]) + budget.span)
    today = await conn.scalar(
        select(func.count()).where(claims.c.claimed_at >= day_start(at), others)
    )
    if int(today or 0) >= budget.per_day:
        waits.append(next_day_start(at))
    return max(waits) if waits else None


async def _held_slot(conn: AsyncConnection, job_id: int) -> int | None:
    """The slot the job's claim holds (its newest ``claims`` row), if any."""
    return await conn.scalar(
        select(claims.c.id).where(claims.c.job_id == job_id).order_by(claims.c.id.desc()).limit(1)
    )


def _seconds_until(moment: datetime, at: datetime) -> float:
    return max(0.0, (moment - at).total_seconds())


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
        elif state is JobState.QUEUED and owner_dead and row.mode == SourceType.UPLOAD.value:
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
            "error_kind": FailureKind.INTERRUPTED.value,
            "error_message": message,
            "notified": False,
        }


async def _prune(conn: AsyncConnection, now: datetime) -> None:
    """Drop what no longer matters: excused rows of forgotten members, long-gone workers."""
    await conn.execute(
        delete(jobs).where(jobs.c.forgotten.is_(True), jobs.c.created_at < day_start(now))
    )
    await conn.execute(delete(workers).where(workers.c.last_seen < now - timedelta(days=7)))
    await conn.execute(delete(claims).where(claims.c.claimed_at < now - timedelta(days=2)))
    # An interaction token is kept only while it can still answer the member.
    await conn.execute(
        update(jobs)
        .where(jobs.c.reply_until.is_not(None), jobs.c.reply_until < now)
        .values(**NO_REPLY)
    )

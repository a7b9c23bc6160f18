"""The fair queue's dispatcher: serves stored jobs within agent.ai's budget.

One :class:`Dispatcher` runs per bot process. Several processes on one
PostgreSQL database share the queue and the budget; the store decides who gets
which job. A job enqueued here keeps its validated request (an upload's photos
included) in this process's memory until the job ends; it is never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from avatar_api import AvatarClient
from avatar_api.exceptions import AvatarAPIError, RateLimitError
from avatar_api.models import AvatarRequest, AvatarResult

from .failures import FailureKind, failure_kind
from .store.base import (
    Budget,
    EnqueueResult,
    JobRecord,
    JobState,
    Limits,
    NewJob,
    SourceType,
    Store,
)
from .store.notify import Notice, StoreEvent
from .timeutil import utc_now

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_RATE_LIMIT_PAUSE = 60.0
LOW_REMAINING = 1
INTERNAL_ERROR_MESSAGE = "something went wrong inside the bot; please try again later"
SERVER_LEFT_MESSAGE = "the bot is no longer in this server"
PHOTOS_LOST_MESSAGE = "the photos of this upload are no longer available; please upload again"
# Waits between attempts to record an outcome while the database is unreachable (~2 min).
STORE_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A queued job's 1-based place in the global queue and when it should start."""

    position: int
    estimated_start: datetime


class JobListener(Protocol):
    """Tells requesters what happens to their jobs (the Discord side implements it)."""

    async def job_started(self, job: JobRecord) -> None: ...

    async def job_finished(self, job: JobRecord) -> bool:
        """Tell the requester the outcome; True when they were told."""
        ...

    async def positions_changed(self, positions: Mapping[int, QueuePlace]) -> None:
        """Places of this worker's queued jobs, by job id, whenever they change."""
        ...


def estimate_start(
    position: int, budget: Budget, now: datetime, next_claim_at: datetime | None
) -> datetime:
    """When the job at ``position`` should start if the budget is the only limit."""
    base = max(now, next_claim_at) if next_claim_at is not None else now
    windows_ahead = (position - 1) // budget.per_minute
    return base + budget.span * windows_ahead


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: JobState
    group_id: str | None = None
    avatar_status: str | None = None
    error_kind: FailureKind | None = None
    error_message: str | None = None
    pause_seconds: float | None = None


class Dispatcher:
    def __init__(
        self,
        store: Store,
        client: AvatarClient,
        *,
        worker_id: str,
        budget: Budget = Budget(),  # noqa: B008 - frozen, so sharing the default is safe
        listener: JobListener,
        max_concurrency: int = 4,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 3.0,
        clock: Callable[[], datetime] = utc_now,
        on_job_end: Callable[[JobState], object] = lambda _state: None,
        on_queue_length: Callable[[int], object] = lambda _length: None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._store = store
        self._client = client
        self.worker_id = worker_id
        self._budget = budget
        self._listener = listener
        self._max_concurrency = max_concurrency
        self._poll_interval = poll_interval
        self._heartbeat_interval = timedelta(seconds=heartbeat_interval)
        self._clock = clock
        self._on_job_end = on_job_end  # metrics hooks
        self._on_queue_length = on_queue_length
        self._requests: dict[int, AvatarRequest] = {}
        # Held across an enqueue and its request's keeping, and across each claim, so a
        # job is never claimed here before its request (an upload's photos) is kept.
        self._intake = asyncio.Lock()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._delivering: set[int] = set()
        self._tick_lock = asyncio.Lock()
        self._nudge: asyncio.Task[float] | None = None
        self._sleeping = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_heartbeat: datetime | None = None
        self._outcomes_waiting = False
        self._listening: asyncio.Task[None] | None = None
        self._last_positions: dict[int, int] | None = None

    # --- public API ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def held_photo_jobs(self) -> frozenset[int]:
        """Jobs whose photos are in memory (for tests and diagnostics; never the bytes)."""
        return frozenset(i for i, r in self._requests.items() if r.photos)

    async def enqueue(
        self, job: NewJob, request: AvatarRequest, limits: Limits, now: datetime
    ) -> EnqueueResult:
        """Queue ``job`` within ``limits`` and keep its request here until the job ends.

        The next poll serves it; call :meth:`wake` to serve it now (the bot does once the
        member has been shown the job's place, so that reply never lands after a later one).
        """
        async with self._intake:
            result = await self._store.enqueue_job(job, limits, now)
            if result.job is not None:
                self._requests[result.job.id] = request
        return result

    async def server_left(self, guild_id: int) -> None:
        """The bot left a server: its queued jobs must not spend credits; tell their members."""
        failed = await self._store.fail_queued_jobs(
            guild_id,
            self._clock(),
            error_kind=FailureKind.SERVER_LEFT,
            error_message=SERVER_LEFT_MESSAGE,
        )
        for job in failed:
            await self.deliver(job)

    def _on_notice(self, notice: Notice) -> None:
        """Another process announced something: claim a queued job, or look after outcomes
        and abandoned jobs now rather than at the next heartbeat."""
        if notice.event is StoreEvent.FINISHED:
            self._outcomes_waiting = True  # e.g. failed by another process: ours to tell?
        elif notice.event is not StoreEvent.QUEUED:
            self._last_heartbeat = None  # the next tick runs the whole upkeep round
        self.wake()

    def wake(self) -> None:
        """Look at the queue now (call after an enqueue).

        A short-lived tick of its own, rather than an event the loop waits on: the
        loop's only idle wait is a plain sleep, which test harnesses that settle the
        event loop (SimCord) recognise as parked.
        """
        if self._stopping or not self.running:
            return
        if self._nudge is None or self._nudge.done():
            self._nudge = asyncio.create_task(self._guarded_tick(), name="dispatcher:wake")

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        now = self._clock()
        await self._store.heartbeat(self.worker_id, now)
        self._last_heartbeat = now
        await self._recover_and_deliver(now)
        # In the background: a slow database connection must not hold up the queue,
        # which polls anyway.
        self._listening = asyncio.create_task(
            self._store.listen(self._on_notice), name=f"listen:{self.worker_id}"
        )
        self._task = asyncio.create_task(self._run(), name=f"dispatcher:{self.worker_id}")
        log.info("dispatcher %s started", self.worker_id)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the shutdown grace, not a call timeout
        """Claim nothing more; let in-flight calls finish for up to ``timeout`` seconds.

        Calls still running then are cancelled and their jobs left for :meth:`Store.recover`.
        """
        self._stopping = True
        if self._task is not None:
            if self._sleeping:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._nudge is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._nudge
        tasks = list(self._in_flight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            for task in pending:
                task.cancel()
            if pending:
                log.warning("left %d running job(s) for recovery at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        self._requests.clear()
        if self._listening is not None:
            with contextlib.suppress(Exception):
                await self._listening  # returns once listening (the store stops it)
        with contextlib.suppress(Exception):  # at worst the others wait for the timeout
            await self._store.retire_worker(self.worker_id)
        log.info("dispatcher %s stopped", self.worker_id)

    # --- the loop -------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            delay = await self._guarded_tick()
            if self._stopping:
                return
            self._sleeping = True
            try:
                await asyncio.sleep(delay)
            finally:
                self._sleeping = False

    async def _guarded_tick(self) -> float:
        """One tick at a time, whether from the loop or a :meth:`wake`; never raises."""
        async with self._tick_lock:
            try:
                return await self._tick()
            except Exception:
                log.exception("dispatcher %s: loop step failed; retrying", self.worker_id)
                return self._poll_interval

    async def _tick(self) -> float:
        """One round: upkeep, claim what the budget allows, report places; returns the wait."""
        await self._upkeep()
        while not self._stopping and len(self._in_flight) < self._max_concurrency:
            async with self._intake:
                job = await self._store.claim_next_job(self.worker_id, self._budget, self._clock())
            if job is None:
                break
            self._spawn(job)
        next_claim_at = await self._store.next_claim_at(self._budget)
        await self._report_positions(next_claim_at)
        if len(self._in_flight) >= self._max_concurrency or next_claim_at is None:
            return self._poll_interval
        # Poll at least every poll_interval: the clock may be injected and jump.
        until = (next_claim_at - self._clock()).total_seconds()
        return min(self._poll_interval, max(0.0, until))

    async def _upkeep(self) -> None:
        now = self._clock()
        due = self._last_heartbeat is None or now - self._last_heartbeat >= self._heartbeat_interval
        if not due and not self._outcomes_waiting:
            return
        if due:
            await self._store.heartbeat(self.worker_id, now)
            self._last_heartbeat = now
            await self._recover_and_deliver(now)
        self._outcomes_waiting = False
        for job in await self._store.undelivered_jobs(self.worker_id):
            if job.id not in self._in_flight:
                await self.deliver(job)

    async def _recover_and_deliver(self, now: datetime) -> None:
        for job in await self._store.recover(self.worker_id, now):
            await self.deliver(job)

    # --- one job ----------------------------------------------------------------------
    def _spawn(self, job: JobRecord) -> None:
        task = asyncio.create_task(self._run_job(job), name=f"job:{job.id}")
        self._in_flight[job.id] = task

    async def _run_job(self, job: JobRecord) -> None:
        try:
            # Whichever process received the interaction, the one running the job says so.
            await self._notify("job_started", self._listener.job_started(job))
            outcome = await self._call(job)
            record = await _retrying_store_errors(
                f"job {job.id}: recording its outcome", lambda: self._record(job, outcome)
            )
        except Exception:
            # The job stays running in the store; recovery fails it later.
            log.exception("job %d could not be recorded", job.id)
            return
        finally:
            self._requests.pop(job.id, None)
            self._in_flight.pop(job.id, None)
            self.wake()
        self._on_job_end(record.state)
        await self.deliver(record)

    async def _record(self, job: JobRecord, outcome: _Outcome) -> JobRecord:
        if outcome.pause_seconds is not None:
            until = self._clock() + timedelta(seconds=outcome.pause_seconds)
            await self._store.pause_dispatch(until)
            log.info("agent.ai budget exhausted; pausing dispatch until %s", until)
        return await self._store.finish_job(
            job.id,
            outcome.state,
            self._clock(),
            group_id=outcome.group_id,
            avatar_status=outcome.avatar_status,
            error_kind=outcome.error_kind,
            error_message=outcome.error_message,
        )

    async def _call(self, job: JobRecord) -> _Outcome:
        try:
            request = self._request_for(job)
            if request is None:  # not reached: claims wait for enqueue to keep the request
                return _Outcome(
                    JobState.FAILED,
                    error_kind=FailureKind.INTERNAL,
                    error_message=PHOTOS_LOST_MESSAGE,
                )
            result = await self._client.create_avatar(
                request, before_attempt=lambda attempt: self._await_send_permit(job, attempt)
            )
        except RateLimitError as error:
            pause = error.retry_after if error.retry_after else DEFAULT_RATE_LIMIT_PAUSE
            return _failed(error, pause_seconds=pause)
        except AvatarAPIError as error:
            log.info("job %d failed: %s", job.id, type(error).__name__)
            return _failed(error)
        except Exception:
            log.exception("job %d failed unexpectedly", job.id)
            return _Outcome(
                JobState.FAILED,
                error_kind=FailureKind.INTERNAL,
                error_message=INTERNAL_ERROR_MESSAGE,
            )
        return _succeeded(result)

    async def _await_send_permit(self, job: JobRecord, attempt: int) -> None:
        """Right before a request is sent: wait for its slot of the shared budget.

        The first attempt moves the slot its claim held to now; a retry takes one more.
        """
        while True:
            wait = await _retrying_store_errors(
                f"job {job.id}: taking a budget slot",
                lambda: self._store.acquire_send_permit(
                    self.worker_id, job.id, self._budget, first=attempt == 0
                ),
            )
            if wait is None:
                return
            await asyncio.sleep(max(0.01, wait))

    def _request_for(self, job: JobRecord) -> AvatarRequest | None:
        """The request kept at enqueue; a generate job adopted from another process is
        rebuilt from its stored options. None: an upload whose photos are gone."""
        request = self._requests.get(job.id)
        if request is None and job.mode is SourceType.GENERATE:
            return AvatarRequest.from_options(job.mode, job.options)
        return request

    # --- telling requesters --------------------------------------------------------------
    async def deliver(self, job: JobRecord) -> None:
        """Tell the requester of a final job we answer for, then mark it told."""
        if job.owner != self.worker_id or job.id in self._delivering:
            return  # another process answers for it (its undelivered_jobs will)
        self._requests.pop(job.id, None)  # final: e.g. failed by server_left or recovery
        self._delivering.add(job.id)
        try:
            # A look from an upkeep round may be older than a delivery that just ended.
            current = await _retrying_store_errors(
                f"job {job.id}: reading it before telling", lambda: self._store.get_job(job.id)
            )
            if current is None or current.notified:
                return
            told = await self._notify("job_finished", self._listener.job_finished(job))
            if told:
                await _retrying_store_errors(
                    f"job {job.id}: recording its delivery",
                    lambda: self._store.mark_notified(job.id),
                )
        except Exception:
            log.exception("job %d: could not record the delivery", job.id)
        finally:
            self._delivering.discard(job.id)

    async def _report_positions(self, next_claim_at: datetime | None) -> None:
        places = await self._store.queue_positions(self.worker_id)
        self._on_queue_length(len(places))
        if places == self._last_positions:
            return
        self._last_positions = dict(places)
        now = self._clock()
        await self._notify(
            "positions_changed",
            self._listener.positions_changed(
                {
                    job_id: QueuePlace(
                        place, estimate_start(place, self._budget, now, next_claim_at)
                    )
                    for job_id, place in places.items()
                }
            ),
        )

    async def _notify(self, what: str, call: Any) -> Any:
        try:
            return await call
        except Exception:
            log.exception("listener %s failed", what)
            return None


async def _retrying_store_errors(what: str, step: Callable[[], Awaitable[_T]]) -> _T:
    """Run one store step, retrying while the database is unreachable (bounded).

    Used once agent.ai has answered or the requester was told: giving up at the first
    error would lose a group id (the job stays running while its worker lives) or tell
    the requester twice.
    """
    for delay in STORE_RETRY_DELAYS:
        try:
            return await step()
        except (LookupError, ValueError):
            raise  # a wrong call, not an unreachable database
        except Exception as error:
            log.warning("%s failed (%s); retrying in %.1f s", what, type(error).__name__, delay)
        await asyncio.sleep(delay)
    return await step()


def _failed(error: AvatarAPIError, *, pause_seconds: float | None = None) -> _Outcome:
    return _Outcome(
        JobState.FAILED,
        error_kind=failure_kind(error),
        error_message=str(error),
        pause_seconds=pause_seconds,
    )


def _succeeded(result: AvatarResult) -> _Outcome:
    pause = None
    limits = result.rate_limit
    if limits.remaining is not None and limits.remaining <= LOW_REMAINING:
        pause = limits.reset_after if limits.reset_after is not None else DEFAULT_RATE_LIMIT_PAUSE
    return _Outcome(
        JobState.SUCCEEDED,
        group_id=result.group_id,
        avatar_status=result.status,
        pause_seconds=pause,
    )

"""The store's interface and records: settings, consent, blocks and jobs.

Nothing here knows Discord; ids are plain ints (snowflakes). Days are UTC days.
Two backends implement :class:`Store` and pass one test suite: SQLite (default)
and PostgreSQL (several bot processes sharing one queue and one budget).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .notify import Notice

from avatar_api.models import SourceType
from avatar_api.preflight import Strictness
from avatarbot.failures import FailureKind


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self is not JobState.QUEUED and self is not JobState.RUNNING


class CancelOutcome(StrEnum):
    """What :meth:`Store.cancel_job` did; only CANCELLED changed anything."""

    CANCELLED = "cancelled"
    ALREADY_STARTED = "already_started"
    ALREADY_ENDED = "already_ended"
    NOT_FOUND = "not_found"


DEFAULT_COOLDOWN_SECONDS = 30
DEFAULT_USER_DAILY_QUOTA = 10
DEFAULT_GUILD_DAILY_QUOTA = 200


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """One server's moderation settings; a server never configured gets these defaults.

    0 turns a cooldown or a quota off. Empty allow-lists mean "everywhere" and
    "everyone". ``disabled_checks`` names photo preflight checks an admin turned off;
    ``photo_strictness`` is how hard the ones left on are on borderline photos.
    """

    guild_id: int
    enabled: bool = True
    uploads_allowed: bool = True
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS
    user_daily_quota: int = DEFAULT_USER_DAILY_QUOTA
    guild_daily_quota: int = DEFAULT_GUILD_DAILY_QUOTA
    log_channel_id: int | None = None
    allowed_channel_ids: frozenset[int] = frozenset()
    required_role_ids: frozenset[int] = frozenset()
    blocked_words: tuple[str, ...] = ()
    disabled_checks: frozenset[str] = frozenset()
    photo_strictness: Strictness = Strictness.STANDARD
    language: str | None = None
    """Discord's tag for the language of public posts and the log; None: the server's own."""


@dataclass(frozen=True, slots=True)
class Block:
    guild_id: int
    user_id: int
    reason: str
    blocked_by: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InteractionRef:
    """The member's own interaction: what any process needs to answer in it.

    ``sealed_token`` is the interaction token sealed by :mod:`avatarbot.sealing`
    (the database never holds it in the clear); it works until ``reply_until``.
    """

    interaction_id: int
    application_id: int
    sealed_token: str = field(repr=False)
    reply_until: datetime


@dataclass(frozen=True, slots=True)
class Screening:
    """What screening a request needs, read in one transaction: the server's settings,
    the member's block on it, and whether they gave their photo consent."""

    settings: GuildSettings
    block: Block | None
    consented: bool


@dataclass(frozen=True, slots=True)
class NewJob:
    """A request the bot accepted, before it is queued. Never holds photo bytes."""

    guild_id: int
    channel_id: int
    user_id: int
    mode: SourceType
    options: Mapping[str, str]
    owner: str
    photo_sizes: tuple[int, ...] = ()
    interaction: InteractionRef | None = None
    """Queued jobs only: at most one job per interaction, whatever the timing."""
    locale: str | None = None

    @property
    def photo_count(self) -> int:
        return len(self.photo_sizes)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    guild_id: int
    channel_id: int
    user_id: int
    mode: SourceType
    state: JobState
    options: Mapping[str, str]
    owner: str
    photo_sizes: tuple[int, ...]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    group_id: str | None = None
    avatar_status: str | None = None
    error_kind: FailureKind | None = None
    error_message: str | None = None
    refusal: str | None = None
    notified: bool = False
    claimed_by: str | None = None
    """The worker that runs (ran) the job; ``owner`` is the one that tells the requester
    (the runner, once the job is final)."""
    interaction: InteractionRef | None = None
    """While the member can still be answered in their interaction (its token is kept
    until the job is delivered or the interaction's 15 minutes are over)."""
    forgotten: bool = False
    """Its member ran ``/avatar forget``: only kept, stripped, while it counts for today."""
    locale: str | None = None
    """The requester's Discord language, to tell them the outcome outside their interaction."""

    @property
    def photo_count(self) -> int:
        return len(self.photo_sizes)


@dataclass(frozen=True, slots=True)
class CancelResult:
    outcome: CancelOutcome
    job: JobRecord | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """What :meth:`Store.enqueue_job` enforces atomically for one request.

    0 turns a limit off. ``max_active_per_user`` counts the member's queued and
    running jobs in the same guild.
    """

    user_daily_quota: int = DEFAULT_USER_DAILY_QUOTA
    guild_daily_quota: int = DEFAULT_GUILD_DAILY_QUOTA
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS
    max_active_per_user: int = 1


class RefusalReason(StrEnum):
    """Why a request was refused; the value is what a refused job records.

    The last four are the store's own (see :meth:`Store.enqueue_job`).
    """

    DISABLED = "disabled"
    CHANNEL = "channel"
    ROLE = "role"
    BLOCKED = "blocked"
    UPLOADS_OFF = "uploads_off"
    BLOCKED_WORD = "blocked_word"
    # A button on a past job that can no longer be acted on; never recorded as a job.
    JOB_GONE = "job_gone"
    NOT_REPEATABLE = "not_repeatable"
    USER_DAILY = "user_daily"
    GUILD_DAILY = "guild_daily"
    COOLDOWN = "cooldown"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """Either the queued job, or why it was refused (and when to try again)."""

    job: JobRecord | None = None
    refusal: RefusalReason | None = None
    retry_at: datetime | None = None
    duplicate: bool = False
    """The interaction already made a job (another process queued it): nothing was done."""


@dataclass(frozen=True, slots=True)
class Budget:
    """agent.ai's published limits for one token, shared by every worker.

    Requests are counted when they are *sent*: at most ``per_minute`` in any
    sliding ``window`` and ``per_day`` in a UTC day. ``margin`` widens the window
    the bot keeps to, since agent.ai counts a request when it *arrives*: a first
    request that arrives late and a 21st that arrives fast must still be a window
    apart. (Tests shorten the window; the names keep the published meaning.)
    """

    per_minute: int = 20
    per_day: int = 1000
    window: timedelta = timedelta(seconds=60)
    margin: timedelta = timedelta(seconds=1)

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.per_day < 1:
            raise ValueError("a budget allows at least one request a minute and a day")
        if self.window <= timedelta(0) or self.margin < timedelta(0):
            raise ValueError("a budget's window must be positive and its margin not negative")

    @property
    def span(self) -> timedelta:
        """How far apart the bot keeps request ``n`` and request ``n + per_minute``."""
        return self.window + self.margin


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    user_used: int
    user_limit: int
    guild_used: int
    guild_limit: int
    cooldown_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageStats:
    jobs_today: int
    succeeded_today: int
    failed_today: int
    refused_today: int
    jobs_7d: int
    succeeded_7d: int
    failed_7d: int
    top_members_7d: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    guild_used_today: int = 0


class Store(Protocol):
    """What the bot needs from storage. Every method is one atomic transaction."""

    async def close(self) -> None: ...

    # --- settings -------------------------------------------------------------
    async def get_guild_settings(self, guild_id: int) -> GuildSettings: ...

    async def update_guild_settings(self, guild_id: int, /, **changes: object) -> GuildSettings:
        """Apply the named fields of :class:`GuildSettings`; an unknown name is a ValueError.

        ``guild_id`` is positional-only, so a change named ``guild_id`` is refused as
        unknown (a ValueError), never a TypeError.
        """
        ...

    # --- blocks ---------------------------------------------------------------
    async def block_user(
        self, guild_id: int, user_id: int, reason: str, blocked_by: int
    ) -> Block: ...
    async def unblock_user(self, guild_id: int, user_id: int) -> bool: ...
    async def get_block(self, guild_id: int, user_id: int) -> Block | None: ...

    # --- consent --------------------------------------------------------------
    async def has_consented(self, user_id: int) -> bool: ...
    async def screening(self, guild_id: int, user_id: int) -> Screening:
        """Settings, block and consent at once (one transaction: the admission path)."""
        ...

    async def record_consent(self, user_id: int) -> None: ...

    # --- jobs -----------------------------------------------------------------
    async def enqueue_job(self, job: NewJob, limits: Limits, now: datetime) -> EnqueueResult:
        """Check busy, user quota, guild quota and cooldown (in that order: the most
        lasting refusal first), then insert the job as queued.

        Atomic: two concurrent calls can never both take the last quota slot. A
        refusal inserts nothing; call :meth:`record_refused` to keep it in history.
        Quotas count today's (UTC) queued, running and succeeded jobs; the user
        quota and the cooldown ignore jobs made before a :meth:`reset_user_quota`.
        A job whose interaction already made one (another process queued it) is
        not queued again: the result says ``duplicate``.
        """
        ...

    async def record_refused(self, job: NewJob, refusal: str, now: datetime) -> JobRecord: ...

    async def claim_next_job(self, worker: str, budget: Budget, now: datetime) -> JobRecord | None:
        """Mark the next job running, fairly across servers and members, if the budget allows.

        Returns None when nothing is queued, the budget's window or day is spent,
        or the store is paused (see :meth:`pause_dispatch`). Upload jobs are only
        claimed by their owner (only its memory holds the photos). The claim holds
        a slot of the budget that :meth:`acquire_send_permit` moves to the moment
        the request is sent. ``now`` stamps the job; the budget runs on the store's
        clock (the database's, read inside the budget lock), so that every process
        counts on one clock.
        """
        ...

    async def acquire_send_permit(
        self, worker: str, job_id: int, budget: Budget, *, first: bool
    ) -> float | None:
        """Take the budget slot for one request of ``job_id``, right before it is sent.

        ``first``: the job's first attempt, which moves the slot its claim held to
        now; a retry takes one more slot. Returns None when taken, else the seconds
        to wait before asking again (budget spent, or paused).
        """
        ...

    async def next_claim_at(self, budget: Budget) -> datetime | None:
        """When the budget next allows a claim, on the store's clock (None: now, or nothing
        queued)."""
        ...

    async def pause_dispatch(self, until: datetime) -> None:
        """Claim nothing before ``until`` (agent.ai said 429 or almost no budget left)."""
        ...

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
        """Record the outcome. A failed job no longer counts against any quota.

        ``error_kind`` says why it failed, ``error_message`` is its user-safe text.
        ``state`` is SUCCEEDED or FAILED (else ValueError); an unknown id is a
        LookupError; a job that is already final is returned unchanged (e.g. it was
        failed by :meth:`recover` meanwhile).
        """
        ...

    async def fail_queued_jobs(
        self, guild_id: int, now: datetime, *, error_kind: FailureKind, error_message: str
    ) -> list[JobRecord]:
        """Fail a server's queued jobs (the bot left it); calls under way finish as usual."""
        ...

    async def listen(self, handler: Callable[[Notice], None]) -> None:
        """Hand ``handler`` what other processes announce: queued jobs, outcomes to tell,
        workers that left (PostgreSQL; with SQLite there are no other processes)."""
        ...

    def command_sync(self, scope: str, fingerprint: str) -> AbstractAsyncContextManager[bool]:
        """True inside the block when this process should sync the command tree
        ``fingerprint`` to ``scope`` (one process of the fleet at a time, once per
        version); the fingerprint is recorded when the block ends without an error."""
        ...

    async def retire_worker(self, worker: str) -> None:
        """``worker`` stopped cleanly: :meth:`recover` may adopt its jobs at once."""
        ...

    async def cancel_job(self, job_id: int, user_id: int, now: datetime) -> CancelResult:
        """Cancel ``user_id``'s job while it is still queued, atomically with claims.

        A claimed job (its request may be on its way) is never cancelled. A cancelled
        job is final, counts against no quota or cooldown, gives its queue turn back
        and needs no delivery (the member who cancelled it is told by that reply).
        Another member's job, or a forgotten one, is NOT_FOUND.
        """
        ...

    async def heartbeat(self, worker: str, now: datetime) -> None:
        """Say that ``worker`` is alive; :meth:`recover` treats silent workers as dead."""
        ...

    async def mark_notified(self, job_id: int) -> None: ...

    async def undelivered_jobs(self, owner: str) -> list[JobRecord]:
        """Final jobs of ``owner`` whose requester has not been told yet."""
        ...

    async def queue_position(self, job_id: int) -> int | None:
        """1-based place in the global queue; None when no longer queued."""
        ...

    async def queue_positions(self, owner: str) -> dict[int, int]:
        """1-based global places of every queued job that ``owner`` answers for."""
        ...

    async def recover(self, owner: str, now: datetime) -> list[JobRecord]:
        """Take over the jobs of dead workers; safe to call at start and periodically.

        A worker other than ``owner`` is dead when its heartbeat is older than 10 s
        (or it never sent one and its job is older than that); worker ids must be
        unique per process run. Running jobs it claimed fail (interrupted); queued
        upload jobs it owned fail (their photos were only in its memory); its queued
        generate jobs and undelivered outcomes are adopted (owner := ``owner``).
        Returns the final, unnotified jobs now owned by ``owner``: their requesters
        must be told, then :meth:`mark_notified`.
        """
        ...

    async def get_job(self, job_id: int) -> JobRecord | None: ...
    async def recent_jobs(
        self, user_id: int, guild_id: int, limit: int = 10
    ) -> list[JobRecord]: ...
    async def forget_user(self, user_id: int, now: datetime | None = None) -> int:
        """Delete the member's job history, consent and quota resets; returns the jobs removed.

        Queued and running jobs are left to finish. Today's succeeded jobs are kept,
        stripped of options, photos sizes and results and hidden from history, until
        the day ends, so forgetting cannot reset a quota or a cooldown.
        """
        ...

    async def quota_status(
        self, guild_id: int, user_id: int, limits: Limits, now: datetime
    ) -> QuotaStatus: ...
    async def reset_user_quota(self, guild_id: int, user_id: int, now: datetime) -> None: ...
    async def usage_stats(self, guild_id: int, now: datetime) -> UsageStats: ...

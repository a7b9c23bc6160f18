"""One suite for both store backends (SQLite always; PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from avatarbot.failures import FailureKind
from avatarbot.store import SqlStore, StoreConfigError, open_store
from avatarbot.store.base import (
    Budget,
    CancelOutcome,
    GuildSettings,
    JobRecord,
    JobState,
    Limits,
    NewJob,
    RefusalReason,
    Screening,
    SourceType,
)
from avatarbot.store.migrations import LATEST_VERSION
from avatarbot.store.schema import claims, schema_version
from avatarbot.store.url import Backend, parse_database_url
from tests.store_fixtures import Clock, StoreFactory, clock, store, store_factory

__all__ = ["clock", "store", "store_factory"]  # fixtures, imported for pytest

GUILD = 1001
OTHER_GUILD = 1002
NO_LIMITS = Limits(
    user_daily_quota=0, guild_daily_quota=0, cooldown_seconds=0, max_active_per_user=0
)
BIG_BUDGET = Budget(per_minute=10_000, per_day=100_000)


def new_job(
    user_id: int = 1,
    guild_id: int = GUILD,
    *,
    mode: SourceType = SourceType.GENERATE,
    owner: str = "w1",
    photo_sizes: tuple[int, ...] = (),
) -> NewJob:
    if mode is SourceType.UPLOAD and not photo_sizes:
        photo_sizes = (1234,)
    return NewJob(
        guild_id=guild_id,
        channel_id=77,
        user_id=user_id,
        mode=mode,
        options={"name": f"avatar of {user_id}"},
        owner=owner,
        photo_sizes=photo_sizes,
    )


async def enqueue(
    store: SqlStore, clock: Clock, job: NewJob, limits: Limits = NO_LIMITS, step: float = 0.001
) -> JobRecord:
    result = await store.enqueue_job(job, limits, clock.now)
    clock.advance(step)
    assert result.job is not None, result
    return result.job


async def claim_all(store: SqlStore, clock: Clock, worker: str = "w1") -> list[JobRecord]:
    claimed = []
    while (job := await store.claim_next_job(worker, BIG_BUDGET, clock.now)) is not None:
        claimed.append(job)
    return claimed


# --- opening and migrations ----------------------------------------------------------
async def test_memory_store_opens_and_migrates() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        assert await store.schema_version() == LATEST_VERSION
        assert await store.get_guild_settings(5) == GuildSettings(5)
    finally:
        await store.close()


async def test_relative_sqlite_path_creates_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///data/sub/avatarbot.db")
    await store.close()
    assert (tmp_path / "data" / "sub" / "avatarbot.db").is_file()


async def test_absolute_sqlite_path(tmp_path: Path) -> None:
    path = tmp_path / "abs" / "bot.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert path.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "nonsense",
        "sqlite://",
        "mysql://admin:hunter2@db.example/bot",
        "postgresql://admin:hunter2@db.example:notaport/bot",
        "postgresql://admin:hunter2@db.example:5432/",
        "sqlite://admin:hunter2@host/file.db",
    ],
)
async def test_malformed_url_is_a_one_line_error_without_password(url: str) -> None:
    with pytest.raises(StoreConfigError) as caught:
        await open_store(url)
    message = str(caught.value)
    assert "hunter2" not in message
    assert "\n" not in message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("postgres://bot@db.example:5432/avatars", Backend.POSTGRESQL),
        ("postgresql://bot@db.example:5432/avatars", Backend.POSTGRESQL),
        ("sqlite:///data/avatarbot.db", Backend.SQLITE),
        ("sqlite:////var/lib/bot.db", Backend.SQLITE),
    ],
)
def test_url_forms(url: str, backend: Backend) -> None:
    target = parse_database_url(url)
    assert target.backend is backend
    assert target.url.drivername in {"sqlite+aiosqlite", "postgresql+asyncpg"}


async def test_migrations_are_idempotent(store_factory: StoreFactory) -> None:
    first = await store_factory.open()
    assert await first.migrate() == 0
    again = await store_factory.open()
    assert await again.schema_version() == LATEST_VERSION


async def test_concurrent_starters_migrate_once(store_factory: StoreFactory) -> None:
    stores = await asyncio.gather(*(store_factory.open() for _ in range(5)))
    for opened in stores:
        assert await opened.schema_version() == LATEST_VERSION
    async with stores[0].engine.connect() as conn:
        steps = await conn.scalar(select(func.count()).select_from(schema_version))
    assert steps == 1  # one starter created the database; the others found it


async def test_a_starter_waits_for_a_lock_another_process_holds_on_a_new_sqlite_file(
    tmp_path: Path,
) -> None:
    """Switching a new file to WAL needs an exclusive lock, which SQLite refuses at once
    (no busy wait) while another connection writes: the starter must wait, not fail."""
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE elsewhere (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")
    asyncio.get_running_loop().call_later(0.3, other.commit)
    try:
        store = await open_store(f"sqlite:///{path}")
    finally:
        other.close()

    assert await store.schema_version() == LATEST_VERSION
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- settings -------------------------------------------------------------------------
async def test_defaults(store: SqlStore) -> None:
    settings = await store.get_guild_settings(GUILD)
    assert settings == GuildSettings(GUILD)
    assert settings.enabled
    assert settings.uploads_allowed
    assert (settings.cooldown_seconds, settings.user_daily_quota, settings.guild_daily_quota) == (
        30,
        10,
        200,
    )
    assert settings.log_channel_id is None


async def test_settings_round_trip_and_survive_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    changes = {
        "enabled": False,
        "uploads_allowed": False,
        "cooldown_seconds": 0,
        "user_daily_quota": 3,
        "guild_daily_quota": 0,
        "log_channel_id": 987654321987654321,
        "allowed_channel_ids": {11, 12},
        "required_role_ids": [21],
        "blocked_words": ["foo", "bar", "foo"],
        "disabled_checks": {"face"},
    }
    updated = await store.update_guild_settings(GUILD, **changes)
    assert updated.blocked_words == ("foo", "bar")
    assert updated.allowed_channel_ids == frozenset({11, 12})
    await store_factory.close_all()
    reopened = await store_factory.open()
    assert await reopened.get_guild_settings(GUILD) == updated
    assert await reopened.get_guild_settings(OTHER_GUILD) == GuildSettings(OTHER_GUILD)
    partial = await reopened.update_guild_settings(GUILD, user_daily_quota=7)
    assert partial.guild_daily_quota == 0
    assert partial.user_daily_quota == 7
    assert (await reopened.update_guild_settings(GUILD, log_channel_id=None)).log_channel_id is None


@pytest.mark.parametrize(
    "changes",
    [
        {"colour": "red"},
        {"cooldown_seconds": -1},
        {"user_daily_quota": True},
        {"guild_daily_quota": "5"},
        {"enabled": 1},
        {"allowed_channel_ids": "123"},
        {"required_role_ids": [-4]},
        {"blocked_words": "word"},
    ],
)
async def test_invalid_settings_are_refused(store: SqlStore, changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        await store.update_guild_settings(GUILD, **changes)
    assert await store.get_guild_settings(GUILD) == GuildSettings(GUILD)


# --- blocks and consent -------------------------------------------------------------------
async def test_blocks(store: SqlStore) -> None:
    assert await store.get_block(GUILD, 5) is None
    block = await store.block_user(GUILD, 5, "spam", blocked_by=9)
    assert (await store.get_block(GUILD, 5)) == block
    assert block.created_at.tzinfo is not None
    again = await store.block_user(GUILD, 5, "still spam", blocked_by=10)
    found = await store.get_block(GUILD, 5)
    assert found is not None
    assert (found.reason, found.blocked_by) == ("still spam", 10)
    assert again.reason == "still spam"
    assert await store.get_block(OTHER_GUILD, 5) is None
    assert await store.unblock_user(GUILD, 5) is True
    assert await store.unblock_user(GUILD, 5) is False
    assert await store.get_block(GUILD, 5) is None


async def test_consent(store: SqlStore) -> None:
    assert not await store.has_consented(5)
    await store.record_consent(5)
    await store.record_consent(5)
    assert await store.has_consented(5)
    assert not await store.has_consented(6)


async def test_screening_reads_settings_block_and_consent_at_once(store: SqlStore) -> None:
    assert await store.screening(GUILD, 5) == Screening(GuildSettings(GUILD), None, False)
    settings = await store.update_guild_settings(GUILD, cooldown_seconds=7)
    block = await store.block_user(GUILD, 5, "spam", blocked_by=9)
    await store.record_consent(5)

    assert await store.screening(GUILD, 5) == Screening(settings, block, True)
    assert await store.screening(OTHER_GUILD, 5) == Screening(
        GuildSettings(OTHER_GUILD), None, True
    )
    assert await store.screening(GUILD, 6) == Screening(settings, None, False)


# --- enqueue and quotas -------------------------------------------------------------------
async def test_enqueue_returns_a_queued_job(store: SqlStore, clock: Clock) -> None:
    job = await enqueue(store, clock, new_job(mode=SourceType.UPLOAD, photo_sizes=(10, 20)))
    assert job.state is JobState.QUEUED
    assert job.photo_sizes == (10, 20)
    assert job.photo_count == 2
    assert job.options == {"name": "avatar of 1"}
    assert await store.get_job(job.id) == job


async def test_busy_refusal(store: SqlStore, clock: Clock) -> None:
    limits = Limits(user_daily_quota=0, guild_daily_quota=0, cooldown_seconds=0)
    await enqueue(store, clock, new_job(), limits)
    refused = await store.enqueue_job(new_job(), limits, clock.now)
    assert refused.refusal is RefusalReason.BUSY
    assert refused.job is None
    assert (await store.enqueue_job(new_job(guild_id=OTHER_GUILD), limits, clock.now)).job


async def test_cooldown_refusal(store: SqlStore, clock: Clock) -> None:
    limits = Limits(
        user_daily_quota=0, guild_daily_quota=0, cooldown_seconds=30, max_active_per_user=0
    )
    first = await enqueue(store, clock, new_job(), limits)
    clock.advance(10)
    refused = await store.enqueue_job(new_job(), limits, clock.now)
    assert refused.refusal is RefusalReason.COOLDOWN
    assert refused.retry_at == first.created_at + timedelta(seconds=30)
    clock.now = first.created_at + timedelta(seconds=30)
    assert (await store.enqueue_job(new_job(), limits, clock.now)).job is not None


async def test_user_daily_refusal_and_midnight(store: SqlStore, clock: Clock) -> None:
    limits = Limits(
        user_daily_quota=2, guild_daily_quota=0, cooldown_seconds=0, max_active_per_user=0
    )
    for _ in range(2):
        await enqueue(store, clock, new_job(), limits)
    refused = await store.enqueue_job(new_job(), limits, clock.now)
    assert refused.refusal is RefusalReason.USER_DAILY
    assert refused.retry_at == datetime(2024, 5, 2, tzinfo=UTC)
    assert (await store.enqueue_job(new_job(user_id=2), limits, clock.now)).job
    clock.now = datetime(2024, 5, 2, 0, 0, 1, tzinfo=UTC)
    assert (await store.enqueue_job(new_job(), limits, clock.now)).job


async def test_guild_daily_refusal(store: SqlStore, clock: Clock) -> None:
    limits = Limits(
        user_daily_quota=0, guild_daily_quota=2, cooldown_seconds=0, max_active_per_user=0
    )
    await enqueue(store, clock, new_job(user_id=1), limits)
    await enqueue(store, clock, new_job(user_id=2), limits)
    refused = await store.enqueue_job(new_job(user_id=3), limits, clock.now)
    assert refused.refusal is RefusalReason.GUILD_DAILY
    assert refused.retry_at == datetime(2024, 5, 2, tzinfo=UTC)
    assert (
        await store.enqueue_job(new_job(user_id=3, guild_id=OTHER_GUILD), limits, clock.now)
    ).job


async def test_zero_disables_every_limit(store: SqlStore, clock: Clock) -> None:
    for _ in range(25):
        await enqueue(store, clock, new_job(), NO_LIMITS, step=0)


async def test_negative_limits_are_refused(store: SqlStore, clock: Clock) -> None:
    with pytest.raises(ValueError, match="negative"):
        await store.enqueue_job(new_job(), Limits(user_daily_quota=-1), clock.now)


async def test_failed_job_refunds_quota(store: SqlStore, clock: Clock) -> None:
    limits = Limits(user_daily_quota=1, guild_daily_quota=1, cooldown_seconds=60)
    job = await enqueue(store, clock, new_job(), limits)
    assert (await store.enqueue_job(new_job(), limits, clock.now)).refusal is RefusalReason.BUSY
    claimed = await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    assert claimed is not None
    assert claimed.id == job.id
    await store.finish_job(job.id, JobState.FAILED, clock.now, error_kind=FailureKind.SERVER_ERROR)
    status = await store.quota_status(GUILD, 1, limits, clock.now)
    assert (status.user_used, status.guild_used, status.cooldown_until) == (0, 0, None)
    assert (await store.enqueue_job(new_job(), limits, clock.now)).job is not None


async def test_succeeded_job_keeps_counting(store: SqlStore, clock: Clock) -> None:
    limits = Limits(user_daily_quota=1, guild_daily_quota=0, cooldown_seconds=0)
    job = await enqueue(store, clock, new_job(), limits)
    await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    await store.finish_job(job.id, JobState.SUCCEEDED, clock.now, group_id="g1", avatar_status="ok")
    assert (
        await store.enqueue_job(new_job(), limits, clock.now)
    ).refusal is RefusalReason.USER_DAILY


async def test_refused_records_cost_nothing(store: SqlStore, clock: Clock) -> None:
    limits = Limits(user_daily_quota=1, guild_daily_quota=1, cooldown_seconds=30)
    refused = await store.record_refused(new_job(), "blocked", clock.now)
    assert refused.state is JobState.REFUSED
    assert refused.refusal == "blocked"
    assert refused.notified
    assert refused.finished_at == clock.now
    assert (await store.enqueue_job(new_job(), limits, clock.now)).job is not None
    assert await store.claim_next_job("w1", BIG_BUDGET, clock.now) is not None
    assert await store.undelivered_jobs("w1") == []


async def test_reset_user_quota(store: SqlStore, clock: Clock) -> None:
    limits = Limits(
        user_daily_quota=2, guild_daily_quota=3, cooldown_seconds=600, max_active_per_user=0
    )
    await enqueue(store, clock, new_job(), limits)
    clock.advance(600)
    await enqueue(store, clock, new_job(), limits)
    assert (
        await store.enqueue_job(new_job(), limits, clock.now)
    ).refusal is RefusalReason.USER_DAILY
    await store.reset_user_quota(GUILD, 1, clock.now)
    clock.advance(1)
    status = await store.quota_status(GUILD, 1, limits, clock.now)
    assert (status.user_used, status.guild_used, status.cooldown_until) == (0, 2, None)
    await enqueue(store, clock, new_job(), limits)
    # The reset is for the member; the guild still counts the earlier jobs.
    refused = await store.enqueue_job(new_job(user_id=2), limits, clock.now)
    assert refused.refusal is RefusalReason.GUILD_DAILY


async def test_quota_status(store: SqlStore, clock: Clock) -> None:
    limits = Limits(user_daily_quota=5, guild_daily_quota=50, cooldown_seconds=30)
    first = await enqueue(store, clock, new_job(), limits)
    await enqueue(store, clock, new_job(user_id=2), limits)
    status = await store.quota_status(GUILD, 1, limits, clock.now)
    assert (status.user_used, status.user_limit, status.guild_used, status.guild_limit) == (
        1,
        5,
        2,
        50,
    )
    assert status.cooldown_until == first.created_at + timedelta(seconds=30)


@pytest.mark.parametrize("same_user", [True, False])
async def test_last_quota_slot_under_concurrency(
    store_factory: StoreFactory, clock: Clock, same_user: bool
) -> None:
    stores = [await store_factory.open() for _ in range(4)]
    if same_user:
        limits = Limits(
            user_daily_quota=1, guild_daily_quota=0, cooldown_seconds=0, max_active_per_user=0
        )
    else:
        limits = Limits(
            user_daily_quota=0, guild_daily_quota=1, cooldown_seconds=0, max_active_per_user=0
        )
    calls = [
        stores[i % len(stores)].enqueue_job(
            new_job(user_id=1 if same_user else 100 + i), limits, clock.now
        )
        for i in range(20)
    ]
    results = await asyncio.gather(*calls)
    accepted = [r for r in results if r.job is not None]
    assert len(accepted) == 1
    expected = RefusalReason.USER_DAILY if same_user else RefusalReason.GUILD_DAILY
    assert {r.refusal for r in results if r.job is None} == {expected}


# --- fairness and queue positions ------------------------------------------------------
async def test_member_with_many_jobs_takes_turns_with_others(store: SqlStore, clock: Clock) -> None:
    heavy = [await enqueue(store, clock, new_job(user_id=1)) for _ in range(5)]
    light = [await enqueue(store, clock, new_job(user_id=u)) for u in range(2, 7)]
    expected = [heavy[0], *light, *heavy[1:]]
    positions = [await store.queue_position(j.id) for j in expected]
    assert positions == list(range(1, 11))
    claimed = await claim_all(store, clock)
    assert [j.id for j in claimed] == [j.id for j in expected]
    assert all(j.state is JobState.RUNNING for j in claimed)


async def test_round_robin_across_guilds_first(store: SqlStore, clock: Clock) -> None:
    busy_guild = [await enqueue(store, clock, new_job(user_id=u)) for u in range(1, 5)]
    quiet_guild = await enqueue(store, clock, new_job(user_id=9, guild_id=OTHER_GUILD))
    claimed = await claim_all(store, clock)
    assert [j.id for j in claimed] == [busy_guild[0].id, quiet_guild.id] + [
        j.id for j in busy_guild[1:]
    ]


async def test_member_joining_later_gets_the_next_turn(store: SqlStore, clock: Clock) -> None:
    heavy = [await enqueue(store, clock, new_job(user_id=1)) for _ in range(4)]
    first = await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    assert first is not None
    assert first.id == heavy[0].id
    newcomer = await enqueue(store, clock, new_job(user_id=2))
    assert await store.queue_position(newcomer.id) == 1
    assert await store.queue_position(heavy[1].id) == 2
    rest = await claim_all(store, clock)
    assert [j.id for j in rest] == [newcomer.id] + [j.id for j in heavy[1:]]


async def test_queue_position_and_positions_by_owner(store: SqlStore, clock: Clock) -> None:
    a = await enqueue(store, clock, new_job(user_id=1, owner="w1"))
    b = await enqueue(store, clock, new_job(user_id=2, owner="w2"))
    c = await enqueue(store, clock, new_job(user_id=3, owner="w1"))
    assert await store.queue_positions("w1") == {a.id: 1, c.id: 3}
    await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    assert await store.queue_position(a.id) is None
    assert await store.queue_position(b.id) == 1
    assert await store.queue_positions("w1") == {c.id: 2}
    assert await store.queue_position(999_999) is None


async def test_upload_jobs_are_claimed_only_by_their_owner(store: SqlStore, clock: Clock) -> None:
    upload = await enqueue(store, clock, new_job(user_id=1, mode=SourceType.UPLOAD, owner="w1"))
    generate = await enqueue(store, clock, new_job(user_id=2, owner="w1"))
    taken = await store.claim_next_job("w2", BIG_BUDGET, clock.now)
    assert taken is not None
    assert taken.id == generate.id
    assert taken.claimed_by == "w2"
    assert taken.owner == "w1"
    assert await store.claim_next_job("w2", BIG_BUDGET, clock.now) is None
    mine = await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    assert mine is not None
    assert mine.id == upload.id


# --- budget and pause ----------------------------------------------------------------------
async def test_budget_per_minute_is_a_sliding_window(store: SqlStore, clock: Clock) -> None:
    budget = Budget(per_minute=3, per_day=1000)
    for user in range(40):
        await enqueue(store, clock, new_job(user_id=user), step=0)
    claim_times: list[datetime] = []
    for _ in range(60):  # five minutes in 5 s steps, claiming all the budget allows
        while await store.claim_next_job("w1", budget, clock.now) is not None:
            claim_times.append(clock.now)
        clock.advance(5)
    assert len(claim_times) >= 12
    for start in claim_times:
        window = [t for t in claim_times if start <= t < start + timedelta(seconds=60)]
        assert len(window) <= 3


async def test_next_claim_at_follows_the_budget(store: SqlStore, clock: Clock) -> None:
    budget = Budget(per_minute=2, per_day=3)
    assert await store.next_claim_at(budget) is None  # nothing queued
    for user in range(5):
        await enqueue(store, clock, new_job(user_id=user), step=0)
    start = clock.now
    assert await store.claim_next_job("w1", budget, clock.now)
    clock.advance(10)
    assert await store.claim_next_job("w1", budget, clock.now)
    assert await store.claim_next_job("w1", budget, clock.now) is None
    span = budget.window + budget.margin  # agent.ai's window and the bot's margin
    assert await store.next_claim_at(budget) == start + span
    clock.now = start + span
    assert await store.next_claim_at(budget) is None
    assert await store.claim_next_job("w1", budget, clock.now)
    clock.advance(120)
    # Three claims today: the day's budget is spent until midnight UTC.
    assert await store.claim_next_job("w1", budget, clock.now) is None
    assert await store.next_claim_at(budget) == datetime(2024, 5, 2, tzinfo=UTC)


async def test_pause_dispatch(store: SqlStore, clock: Clock) -> None:
    await enqueue(store, clock, new_job())
    until = clock.now + timedelta(seconds=30)
    await store.pause_dispatch(until)
    await store.pause_dispatch(clock.now + timedelta(seconds=5))  # an earlier end never shortens
    assert await store.claim_next_job("w1", BIG_BUDGET, clock.now) is None
    assert await store.next_claim_at(BIG_BUDGET) == until
    clock.now = until
    assert await store.claim_next_job("w1", BIG_BUDGET, clock.now) is not None


async def test_two_workers_share_one_queue_and_budget(
    store_factory: StoreFactory, clock: Clock
) -> None:
    first, second = await store_factory.open(), await store_factory.open()
    budget = Budget(per_minute=10, per_day=1000)
    for user in range(30):
        await enqueue(first, clock, new_job(user_id=user), step=0)

    async def drain(store: SqlStore, worker: str) -> list[JobRecord]:
        taken = []
        for _ in range(15):
            job = await store.claim_next_job(worker, budget, clock.now)
            if job is not None:
                taken.append(job)
            await asyncio.sleep(0)
        return taken

    results = await asyncio.gather(
        *(drain(s, w) for s, w in [(first, "a"), (second, "b"), (first, "c"), (second, "d")])
    )
    claimed = list(itertools.chain.from_iterable(results))
    assert len(claimed) == 10
    assert len({j.id for j in claimed}) == 10


# --- cancelling ---------------------------------------------------------------------------
async def test_a_cancelled_job_costs_nothing_and_is_never_claimed(
    store: SqlStore, clock: Clock
) -> None:
    limits = Limits(user_daily_quota=1, guild_daily_quota=1, cooldown_seconds=600)
    job = await enqueue(store, clock, new_job(), limits)

    result = await store.cancel_job(job.id, 1, clock.now)

    assert result.outcome is CancelOutcome.CANCELLED
    assert result.job is not None
    assert (result.job.state, result.job.notified) == (JobState.CANCELLED, True)
    assert result.job.finished_at == clock.now
    assert await store.claim_next_job("w1", BIG_BUDGET, clock.now) is None
    assert await store.queue_position(job.id) is None
    status = await store.quota_status(GUILD, 1, limits, clock.now)
    assert (status.user_used, status.guild_used, status.cooldown_until) == (0, 0, None)
    assert (await store.enqueue_job(new_job(), limits, clock.now)).job is not None
    assert await store.undelivered_jobs("w1") == []
    assert await store.recover("w1", clock.now) == []
    assert (await store.usage_stats(GUILD, clock.now)).jobs_today == 1


async def test_only_a_queued_job_of_ones_own_can_be_cancelled(
    store: SqlStore, clock: Clock
) -> None:
    running = await enqueue(store, clock, new_job(user_id=1))
    assert await store.claim_next_job("w1", BIG_BUDGET, clock.now) is not None
    queued = await enqueue(store, clock, new_job(user_id=2))

    started = await store.cancel_job(running.id, 1, clock.now)
    not_yours = await store.cancel_job(queued.id, 1, clock.now)
    unknown = await store.cancel_job(999_999, 1, clock.now)
    assert (started.outcome, not_yours.outcome, unknown.outcome) == (
        CancelOutcome.ALREADY_STARTED,
        CancelOutcome.NOT_FOUND,
        CancelOutcome.NOT_FOUND,
    )
    assert (await store.get_job(running.id)).state is JobState.RUNNING  # type: ignore[union-attr]
    assert (await store.get_job(queued.id)).state is JobState.QUEUED  # type: ignore[union-attr]

    await store.finish_job(running.id, JobState.SUCCEEDED, clock.now, group_id="g")
    ended = await store.cancel_job(running.id, 1, clock.now)
    assert ended.outcome is CancelOutcome.ALREADY_ENDED
    assert (await store.cancel_job(queued.id, 2, clock.now)).outcome is CancelOutcome.CANCELLED
    again = await store.cancel_job(queued.id, 2, clock.now)
    assert again.outcome is CancelOutcome.ALREADY_ENDED


async def test_cancelled_jobs_give_their_turns_back(store: SqlStore, clock: Clock) -> None:
    """A member who withdraws queued jobs is not sent behind them by their next request."""
    first, *withdrawn = [await enqueue(store, clock, new_job(user_id=1)) for _ in range(3)]
    for job in withdrawn:
        await store.cancel_job(job.id, 1, clock.now)
    again = await enqueue(store, clock, new_job(user_id=1))
    other_first, other_second = [await enqueue(store, clock, new_job(user_id=2)) for _ in range(2)]

    claimed = await claim_all(store, clock)

    assert [j.id for j in claimed] == [first.id, other_first.id, again.id, other_second.id]


async def test_forgotten_jobs_cannot_be_cancelled_and_are_marked(
    store: SqlStore, clock: Clock
) -> None:
    job = await enqueue(store, clock, new_job())
    await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    await store.finish_job(job.id, JobState.SUCCEEDED, clock.now, group_id="g")
    await store.forget_user(1, clock.now)

    kept = await store.get_job(job.id)  # still counts for today's limits, stripped

    assert kept is not None
    assert kept.forgotten
    assert kept.options == {}
    assert (await store.cancel_job(job.id, 1, clock.now)).outcome is CancelOutcome.NOT_FOUND


async def test_cancel_and_claim_race_one_winner_per_job(
    store_factory: StoreFactory, clock: Clock
) -> None:
    """Across processes, a job is either cancelled (never claimed) or claimed (not cancelled)."""
    canceller, worker = await store_factory.open(), await store_factory.open()
    queued = [await enqueue(canceller, clock, new_job(user_id=u), step=0) for u in range(20)]

    async def claim_everything() -> list[JobRecord]:
        taken = []
        for _ in range(len(queued)):
            job = await worker.claim_next_job("w2", BIG_BUDGET, clock.now)
            if job is not None:
                taken.append(job)
            await asyncio.sleep(0)
        return taken

    claims, *cancels = await asyncio.gather(
        claim_everything(), *(canceller.cancel_job(j.id, j.user_id, clock.now) for j in queued)
    )

    claimed = {j.id for j in claims}
    cancelled = {
        j.id for j, r in zip(queued, cancels, strict=True) if r.outcome is CancelOutcome.CANCELLED
    }
    assert not claimed & cancelled
    assert claimed | cancelled == {j.id for j in queued}
    for job, result in zip(queued, cancels, strict=True):
        final = await worker.get_job(job.id)
        assert final is not None
        expected = JobState.CANCELLED if job.id in cancelled else JobState.RUNNING
        assert final.state is expected
        if job.id in claimed:
            assert result.outcome is CancelOutcome.ALREADY_STARTED


# --- finishing, delivery and recovery --------------------------------------------------
async def test_finish_job_rules(store: SqlStore, clock: Clock) -> None:
    job = await enqueue(store, clock, new_job())
    with pytest.raises(ValueError, match="succeeded or failed"):
        await store.finish_job(job.id, JobState.RUNNING, clock.now)
    with pytest.raises(LookupError):
        await store.finish_job(424242, JobState.SUCCEEDED, clock.now)
    await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    done = await store.finish_job(
        job.id, JobState.SUCCEEDED, clock.now, group_id="grp_1", avatar_status="pending"
    )
    assert (done.state, done.group_id, done.avatar_status, done.notified) == (
        JobState.SUCCEEDED,
        "grp_1",
        "pending",
        False,
    )
    late = await store.finish_job(
        job.id, JobState.FAILED, clock.now, error_kind=FailureKind.SERVER_ERROR
    )
    assert late.state is JobState.SUCCEEDED
    assert [j.id for j in await store.undelivered_jobs("w1")] == [job.id]
    await store.mark_notified(job.id)
    assert await store.undelivered_jobs("w1") == []


async def test_recover(store: SqlStore, clock: Clock) -> None:
    await store.heartbeat("dead", clock.now)
    await store.heartbeat("alive-other", clock.now)
    running = await enqueue(store, clock, new_job(user_id=1, owner="dead"))
    assert (await store.claim_next_job("dead", BIG_BUDGET, clock.now)).id == running.id  # type: ignore[union-attr]
    done = await enqueue(store, clock, new_job(user_id=4, owner="dead"))
    assert (await store.claim_next_job("alive-other", BIG_BUDGET, clock.now)).id == done.id  # type: ignore[union-attr]
    await store.finish_job(done.id, JobState.SUCCEEDED, clock.now, group_id="g")
    upload = await enqueue(store, clock, new_job(user_id=2, mode=SourceType.UPLOAD, owner="dead"))
    generate = await enqueue(store, clock, new_job(user_id=3, owner="dead"))
    others = await enqueue(
        store, clock, new_job(user_id=5, mode=SourceType.UPLOAD, owner="alive-other")
    )

    clock.advance(60)
    await store.heartbeat("alive-other", clock.now)
    await store.heartbeat("me", clock.now)
    newcomer = await enqueue(store, clock, new_job(user_id=6, mode=SourceType.UPLOAD, owner="new"))
    recovered = await store.recover("me", clock.now)

    by_id = {j.id: j for j in recovered}
    # The job another worker ran became its own to tell: it is not the dead one's any more.
    assert set(by_id) == {running.id, upload.id}
    assert by_id[running.id].state is JobState.FAILED
    assert by_id[running.id].error_kind == FailureKind.INTERRUPTED
    assert by_id[upload.id].state is JobState.FAILED
    ran_elsewhere = await store.get_job(done.id)
    assert ran_elsewhere is not None
    assert (ran_elsewhere.state, ran_elsewhere.owner) == (JobState.SUCCEEDED, "alive-other")
    assert all(j.owner == "me" and not j.notified for j in recovered)
    adopted = await store.get_job(generate.id)
    assert adopted is not None
    assert (adopted.state, adopted.owner) == (JobState.QUEUED, "me")
    untouched = [await store.get_job(others.id), await store.get_job(newcomer.id)]
    assert [(j.state, j.owner) for j in untouched if j] == [
        (JobState.QUEUED, "alive-other"),
        (JobState.QUEUED, "new"),
    ]
    for job in recovered:
        await store.mark_notified(job.id)
    assert await store.recover("me", clock.now) == []
    assert await store.undelivered_jobs("me") == []
    # The failed running job gave its quota back.
    status = await store.quota_status(GUILD, 1, Limits(), clock.now)
    assert status.user_used == 0


async def test_recover_fails_running_job_of_dead_claimer_for_live_owner(
    store: SqlStore, clock: Clock
) -> None:
    await store.heartbeat("owner", clock.now)
    await store.heartbeat("runner", clock.now)
    job = await enqueue(store, clock, new_job(owner="owner"))
    await store.claim_next_job("runner", BIG_BUDGET, clock.now)
    clock.advance(45)
    await store.heartbeat("owner", clock.now)
    assert await store.recover("owner-peer", clock.now) == []
    failed = await store.get_job(job.id)
    assert failed is not None
    assert failed.state is JobState.FAILED
    assert failed.owner == "owner"
    assert [j.id for j in await store.undelivered_jobs("owner")] == [job.id]


# --- history, forgetting, statistics ----------------------------------------------------
async def test_recent_jobs(store: SqlStore, clock: Clock) -> None:
    jobs = [await enqueue(store, clock, new_job(user_id=1)) for _ in range(4)]
    await enqueue(store, clock, new_job(user_id=2))
    await enqueue(store, clock, new_job(user_id=1, guild_id=OTHER_GUILD))
    recent = await store.recent_jobs(1, GUILD, limit=3)
    assert [j.id for j in recent] == [j.id for j in reversed(jobs)][:3]


async def test_forget_user(store: SqlStore, clock: Clock) -> None:
    limits = Limits(
        user_daily_quota=2, guild_daily_quota=0, cooldown_seconds=0, max_active_per_user=0
    )
    yesterday = clock.now - timedelta(days=1)
    old = (await store.enqueue_job(new_job(), limits, yesterday)).job
    assert old is not None
    today_ok = await enqueue(store, clock, new_job(), limits)
    today_failed = await enqueue(store, clock, new_job(), limits)
    for _ in range(3):
        await store.claim_next_job("w1", BIG_BUDGET, clock.now)
    await store.finish_job(old.id, JobState.SUCCEEDED, clock.now, group_id="old")
    await store.finish_job(today_ok.id, JobState.SUCCEEDED, clock.now, group_id="new")
    await store.finish_job(
        today_failed.id, JobState.FAILED, clock.now, error_kind=FailureKind.SERVER_ERROR
    )
    queued = await enqueue(store, clock, new_job(), limits)
    await store.record_refused(new_job(), "cooldown", clock.now)
    await store.record_consent(1)
    other = await enqueue(store, clock, new_job(user_id=2), limits)

    removed = await store.forget_user(1, clock.now)
    assert removed == 4  # old, today's failed, the refusal deleted; today's success scrubbed
    assert [j.id for j in await store.recent_jobs(1, GUILD)] == [queued.id]
    assert not await store.has_consented(1)
    assert await store.get_job(today_failed.id) is None
    scrubbed = await store.get_job(today_ok.id)
    assert scrubbed is not None
    assert scrubbed.options == {}
    assert scrubbed.group_id is None
    # Forgetting does not hand back today's quota.
    assert (await store.quota_status(GUILD, 1, limits, clock.now)).user_used == 2
    assert (
        await store.enqueue_job(new_job(), limits, clock.now)
    ).refusal is RefusalReason.USER_DAILY
    assert await store.get_job(other.id) is not None
    # The next day's pruning removes the scrubbed row for good.
    clock.now += timedelta(days=1)
    await store.recover("w1", clock.now)
    assert await store.get_job(today_ok.id) is None


async def test_usage_stats(store: SqlStore, clock: Clock) -> None:
    await store.enqueue_job(new_job(user_id=9), NO_LIMITS, clock.now - timedelta(days=8))
    older = await store.enqueue_job(new_job(user_id=2), NO_LIMITS, clock.now - timedelta(days=3))
    today = [await enqueue(store, clock, new_job(user_id=u)) for u in (1, 1, 1, 2, 3)]
    await store.record_refused(new_job(user_id=4), "blocked", clock.now)
    await enqueue(store, clock, new_job(user_id=5, guild_id=OTHER_GUILD))
    await claim_all(store, clock)
    assert older.job is not None
    for job in (older.job, today[0], today[1]):
        await store.finish_job(job.id, JobState.SUCCEEDED, clock.now, group_id="g")
    await store.finish_job(
        today[3].id, JobState.FAILED, clock.now, error_kind=FailureKind.SERVER_ERROR
    )

    stats = await store.usage_stats(GUILD, clock.now)
    assert (stats.jobs_today, stats.succeeded_today, stats.failed_today) == (5, 2, 1)
    assert stats.refused_today == 1
    assert (stats.jobs_7d, stats.succeeded_7d, stats.failed_7d) == (6, 3, 1)
    assert stats.top_members_7d == ((1, 3), (2, 2), (3, 1))
    assert stats.guild_used_today == 4


# --- leaving a server -----------------------------------------------------------------
async def test_fail_queued_jobs_ends_only_that_servers_waiting_jobs(
    store: SqlStore, clock: Clock
) -> None:
    running = await enqueue(store, clock, new_job(1))
    (claimed,) = [j for j in await claim_all(store, clock) if j.id == running.id]
    waiting = await enqueue(store, clock, new_job(2))
    elsewhere = await enqueue(store, clock, new_job(3, OTHER_GUILD))

    failed = await store.fail_queued_jobs(
        GUILD, clock.now, error_kind=FailureKind.SERVER_LEFT, error_message="left"
    )

    assert [j.id for j in failed] == [waiting.id]
    assert failed[0].state is JobState.FAILED
    assert failed[0].error_kind == FailureKind.SERVER_LEFT
    assert not failed[0].notified
    assert (await store.get_job(claimed.id)).state is JobState.RUNNING
    assert (await store.get_job(elsewhere.id)).state is JobState.QUEUED
    assert (
        await store.fail_queued_jobs(
            GUILD, clock.now, error_kind=FailureKind.INTERNAL, error_message="y"
        )
        == []
    )


# --- retries share the budget -------------------------------------------------------------
async def test_a_retry_takes_a_slot_of_the_shared_budget(store: SqlStore, clock: Clock) -> None:
    budget = Budget(per_minute=2, per_day=100)
    await enqueue(store, clock, new_job(1))
    await enqueue(store, clock, new_job(2))
    claimed = await store.claim_next_job("w1", budget, clock.now)
    assert claimed is not None
    first = store.acquire_send_permit("w1", claimed.id, budget, first=True)
    assert await first is None, "the first attempt uses the slot its claim holds"

    assert await store.acquire_send_permit("w1", claimed.id, budget, first=False) is None
    wait = await store.acquire_send_permit("w1", claimed.id, budget, first=False)
    assert wait is not None
    assert wait > 0
    assert await store.claim_next_job("w1", budget, clock.now) is None, "the window is full"

    clock.advance(wait + 0.001)
    assert await store.claim_next_job("w1", budget, clock.now) is not None


async def test_the_slot_moves_to_the_send_so_a_late_send_delays_the_next_window(
    store: SqlStore, clock: Clock
) -> None:
    """Counted when sent, not when claimed: a send 30 s after its claim holds its slot
    for a full window from the send."""
    budget = Budget(per_minute=1, per_day=100, margin=timedelta(0))
    for user in (1, 2):
        await enqueue(store, clock, new_job(user))
    claimed = await store.claim_next_job("w1", budget, clock.now)
    assert claimed is not None
    clock.advance(30)  # e.g. a slow Discord edit between the claim and the send
    assert await store.acquire_send_permit("w1", claimed.id, budget, first=True) is None
    clock.advance(31)  # 61 s after the claim, 31 s after the send
    assert await store.claim_next_job("w1", budget, clock.now) is None
    assert await store.next_claim_at(budget) == clock.now + timedelta(seconds=29)
    clock.advance(29.001)
    assert await store.claim_next_job("w1", budget, clock.now) is not None


async def test_a_retry_waits_out_a_pause(store: SqlStore, clock: Clock) -> None:
    until = clock.now + timedelta(seconds=30)
    await store.pause_dispatch(until)
    assert await store.acquire_send_permit("w1", 1, Budget(), first=False) == 30.0


async def test_concurrent_senders_keep_the_window_on_the_database_clock(
    store_factory: StoreFactory, clock: Clock
) -> None:
    """Four "processes" claim and send as fast as they can for a few short windows; the
    send times, on the database's clock, never put more than the limit in one window."""
    budget = Budget(per_minute=4, per_day=1000, window=timedelta(seconds=0.5), margin=timedelta(0))
    stores = [await store_factory.open(database_clock=True) for _ in range(4)]
    for user in range(40):
        await enqueue(stores[0], clock, new_job(user_id=user), step=0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.6

    async def send_all(store: SqlStore, worker: str) -> None:
        while loop.time() < deadline:
            job = await store.claim_next_job(worker, budget, clock.now)
            if job is None:
                await asyncio.sleep(0.005)
                continue
            await asyncio.sleep(0.02)  # a Discord edit between the claim and the send
            await send_when_permitted(store, worker, job.id)

    async def send_when_permitted(store: SqlStore, worker: str, job_id: int) -> None:
        for _ in range(100):
            wait = await store.acquire_send_permit(worker, job_id, budget, first=True)
            if wait is None:
                return
            await asyncio.sleep(wait)
        raise AssertionError("no permit in 100 tries")

    await asyncio.gather(*(send_all(s, f"w{i}") for i, s in enumerate(stores)))
    async with stores[0]._transaction(write=False) as conn:
        sent = sorted((await conn.execute(select(claims.c.claimed_at))).scalars())
    assert len(sent) >= 8, "several windows were filled"
    for start in sent:
        assert sum(start <= t < start + budget.window for t in sent) <= budget.per_minute


# --- start-up in a fleet ------------------------------------------------------------------
async def test_one_process_syncs_each_version_of_the_command_tree(
    store_factory: StoreFactory,
) -> None:
    stores = [await store_factory.open() for _ in range(4)]

    async def sync(store: SqlStore, fingerprint: str) -> bool:
        async with store.command_sync("global", fingerprint) as mine:
            await asyncio.sleep(0.05)  # the HTTP call to Discord
            return mine

    assert sorted(await asyncio.gather(*(sync(s, "v1") for s in stores))) == [
        False,
        False,
        False,
        True,
    ]
    assert not await sync(stores[0], "v1"), "a restart of the same version does not sync"
    assert await sync(stores[1], "v2"), "a new version syncs"
    assert await sync(stores[1], "v1"), "so does going back"
    assert await sync(stores[2], "v1") is False


async def test_a_failed_sync_is_not_recorded(store: SqlStore) -> None:
    async def failing_sync() -> None:
        async with store.command_sync("global", "v1") as mine:
            assert mine
            raise RuntimeError("discord said 500")

    with pytest.raises(RuntimeError, match="discord"):
        await failing_sync()
    async with store.command_sync("global", "v1") as mine:
        assert mine, "tried again at the next start"


async def test_an_interaction_makes_one_job_whatever_the_timing(
    store_factory: StoreFactory, clock: Clock
) -> None:
    """Two processes that both received an interaction race to queue it: one job."""
    from dataclasses import replace

    from avatarbot.store.base import InteractionRef

    stores = [await store_factory.open() for _ in range(3)]
    ref = InteractionRef(777, 888, "sealed", clock.now + timedelta(minutes=14))
    job = replace(new_job(user_id=9), interaction=ref)
    results = await asyncio.gather(*(s.enqueue_job(job, NO_LIMITS, clock.now) for s in stores))
    queued = [r.job for r in results if r.job is not None]
    assert len(queued) == 1
    assert sum(r.duplicate for r in results) == 2
    assert queued[0].interaction == ref
    await stores[0].mark_notified(queued[0].id)
    told = await stores[0].get_job(queued[0].id)
    assert told is not None
    assert told.interaction is None, "the token is gone once the member was told"


async def test_an_interaction_token_is_kept_only_for_its_window(
    store: SqlStore, clock: Clock
) -> None:
    from dataclasses import replace

    from avatarbot.store.base import InteractionRef

    ref = InteractionRef(1, 2, "sealed", clock.now + timedelta(minutes=14))
    queued = await enqueue(store, clock, replace(new_job(user_id=3), interaction=ref))
    await store.recover("me", clock.now + timedelta(minutes=13))
    kept = await store.get_job(queued.id)
    assert kept is not None
    assert kept.interaction == ref
    await store.recover("me", clock.now + timedelta(minutes=15))
    gone = await store.get_job(queued.id)
    assert gone is not None
    assert gone.interaction is None

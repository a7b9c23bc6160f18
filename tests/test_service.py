"""Admission on a real SQLite store: policy, words and atomic quota, refusals recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avatar_api import AvatarClient, AvatarRequest, ValidationError
from avatarbot.failures import FailureKind
from avatarbot.jobs import JobRelay
from avatarbot.policy import RefusalReason, Requester
from avatarbot.queue import Dispatcher
from avatarbot.service import AvatarService, UploadDraft
from avatarbot.store import open_store
from avatarbot.store.base import (
    CancelOutcome,
    JobRecord,
    JobState,
    NewJob,
    SourceType,
    Store,
)
from tests.bot_world import face_photo

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'service.db'}")
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def dispatcher(store: Store, clock: Clock) -> AsyncIterator[Dispatcher]:
    """Never started: it only takes the jobs in, as it does between two polls."""
    client = AvatarClient("token", base_url="http://127.0.0.1:9")
    dispatcher = Dispatcher(store, client, worker_id="w1", listener=JobRelay(), clock=clock)
    yield dispatcher
    await dispatcher.stop(timeout=1)


@pytest.fixture
def service(store: Store, dispatcher: Dispatcher, clock: Clock) -> AvatarService:
    return AvatarService(store, dispatcher, owner="w1", clock=clock)


def generate(**options: str) -> AvatarRequest:
    return AvatarRequest.generate(**options)


def upload_draft(fetched: list[int]) -> UploadDraft:
    async def fetch() -> list[bytes]:
        fetched.append(1)
        return [face_photo("JPEG")]

    return UploadDraft.create(None, 1, fetch)


def member(user_id: int = 1, guild_id: int = 10) -> Requester:
    return Requester(user_id=user_id, guild_id=guild_id, channel_id=100)


async def test_an_accepted_request_is_a_queued_job(service: AvatarService) -> None:
    admission = await service.generate(member(), generate(name="A"))

    assert admission.refusal is None
    assert admission.job is not None
    assert admission.job.state is JobState.QUEUED
    assert admission.job.options == generate(name="A").options()
    assert admission.job.owner == "w1"


async def test_a_refusal_is_recorded_without_the_offending_text(
    service: AvatarService, store: Store
) -> None:
    await store.update_guild_settings(10, blocked_words=("rude",))

    admission = await service.generate(member(), generate(name="so rude", age="Senior"))

    assert admission.refusal is not None
    assert admission.refusal.reason is RefusalReason.BLOCKED_WORD
    (record,) = await store.recent_jobs(1, 10)
    assert record.state is JobState.REFUSED
    assert record.refusal == "blocked_word"
    assert "name" not in record.options
    assert record.options == {
        k: v for k, v in generate(age="Senior").options().items() if k != "name"
    }


async def test_cooldown_then_quota_then_reset(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    await store.update_guild_settings(10, cooldown_seconds=60, user_daily_quota=2)

    first = await service.generate(member(), generate())
    assert first.job is not None
    await store.finish_job(first.job.id, JobState.SUCCEEDED, clock.now, group_id="g1")
    cooling = await service.generate(member(), generate())
    assert cooling.refusal is not None
    assert cooling.refusal.reason is RefusalReason.COOLDOWN

    clock.now += timedelta(seconds=61)
    second = await service.generate(member(), generate())
    assert second.job is not None
    await store.finish_job(second.job.id, JobState.SUCCEEDED, clock.now, group_id="g2")
    clock.now += timedelta(seconds=61)
    spent = await service.generate(member(), generate())
    assert spent.refusal is not None
    assert spent.refusal.reason is RefusalReason.USER_DAILY

    await store.reset_user_quota(10, 1, clock.now)
    clock.now += timedelta(seconds=1)
    assert (await service.generate(member(), generate())).job is not None
    status = await service.quota(member())
    assert (status.user_used, status.user_limit) == (1, 2)


async def test_a_failed_job_gives_its_quota_back(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    await store.update_guild_settings(10, cooldown_seconds=0, user_daily_quota=1)
    admission = await service.generate(member(), generate())
    assert admission.job is not None

    await store.finish_job(
        admission.job.id, JobState.FAILED, clock.now, error_kind=FailureKind.SERVER_ERROR
    )

    assert (await service.quota(member())).user_used == 0
    assert (await service.generate(member(), generate())).job is not None


async def test_concurrent_requests_never_share_the_last_slot(
    service: AvatarService, store: Store
) -> None:
    await store.update_guild_settings(10, cooldown_seconds=0, guild_daily_quota=1)

    admissions = await asyncio.gather(
        *(service.generate(member(user_id=u), generate()) for u in range(20))
    )

    accepted = [a for a in admissions if a.job is not None]
    assert len(accepted) == 1
    assert all(a.refusal.reason is RefusalReason.GUILD_DAILY for a in admissions if a.refusal)


async def test_settings_changed_between_check_and_submit_are_honoured(
    service: AvatarService, store: Store
) -> None:
    fetched: list[int] = []
    first = await service.upload(member(), upload_draft(fetched))
    assert first.consent_needed
    await store.update_guild_settings(10, uploads_allowed=False)

    admission = await service.upload(member(), upload_draft(fetched), consent_given=True)

    assert admission.refusal is not None
    assert admission.refusal.reason is RefusalReason.UPLOADS_OFF
    assert fetched == []


async def test_an_upload_is_queued_with_its_photos(
    service: AvatarService, store: Store, dispatcher: Dispatcher
) -> None:
    fetched: list[int] = []
    admission = await service.upload(member(), upload_draft(fetched), consent_given=True)

    assert admission.job is not None, admission
    assert admission.job.options == {"name": "My Avatar", "photos": "1"}
    assert dispatcher.held_photo_jobs == {admission.job.id}
    assert fetched == [1]
    assert await store.has_consented(1)


# --- re-roll, edit and cancel -----------------------------------------------------------------
OPTIONS = {
    "name": "Nova",
    "age": "Senior",
    "gender": "Female",
    "ethnicity": "Mixed",
    "orientation": "portrait",
    "pose": "close_up",
    "style": "Artistic",
    "appearance": "red scarf",
}


async def finished_job(service: AvatarService, store: Store, clock: Clock) -> JobRecord:
    admission = await service.generate(member(), generate(**OPTIONS))
    assert admission.job is not None
    await store.finish_job(admission.job.id, JobState.SUCCEEDED, clock.now, group_id="g1")
    clock.now += timedelta(seconds=31)
    return admission.job


async def test_a_reroll_is_a_new_job_with_the_same_options(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    past = await finished_job(service, store, clock)

    admission = await service.remake(member(), past.id)

    assert admission.job is not None
    assert admission.job.id != past.id
    assert admission.job.options == OPTIONS
    assert admission.job.state is JobState.QUEUED


async def test_an_edit_replaces_the_texts_and_keeps_the_choices(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    past = await finished_job(service, store, clock)

    admission = await service.remake(member(), past.id, {"name": " Nova II ", "appearance": ""})

    assert admission.job is not None
    expected = {k: v for k, v in OPTIONS.items() if k != "appearance"} | {"name": "Nova II"}
    assert admission.job.options == expected


async def test_an_edit_with_a_bad_name_raises_a_validation_error(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    past = await finished_job(service, store, clock)
    with pytest.raises(ValidationError):
        await service.remake(member(), past.id, {"name": "x" * 101})


async def test_a_reroll_is_refused_by_every_rule(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    past = await finished_job(service, store, clock)
    await store.update_guild_settings(10, cooldown_seconds=3600)
    cooling = await service.remake(member(), past.id)
    await store.update_guild_settings(10, cooldown_seconds=0, blocked_words=("scarf",))
    word = await service.remake(member(), past.id)
    edited_word = await service.remake(member(), past.id, {"appearance": "a SCARF"})
    await store.update_guild_settings(10, blocked_words=(), user_daily_quota=1)
    quota = await service.remake(member(), past.id)
    await store.block_user(10, 1, "spam", blocked_by=99)
    blocked = await service.remake(member(), past.id)

    reasons = [a.refusal.reason for a in (cooling, word, edited_word, quota, blocked) if a.refusal]
    assert reasons == [
        RefusalReason.COOLDOWN,
        RefusalReason.BLOCKED_WORD,
        RefusalReason.BLOCKED_WORD,
        RefusalReason.USER_DAILY,
        RefusalReason.BLOCKED,
    ]
    assert len(await store.recent_jobs(1, 10)) == 6  # the first job and five refusals


async def test_only_the_requesters_own_kept_generate_job_can_be_made_again(
    service: AvatarService, store: Store, clock: Clock
) -> None:
    past = await finished_job(service, store, clock)
    # Any record of one of the member's uploads will do: its photos were never kept.
    upload = await store.record_refused(
        NewJob(10, 100, 1, SourceType.UPLOAD, {"name": "Me", "photos": "1"}, "w1", (10,)),
        "busy",
        clock.now,
    )

    someone_else = await service.remake(member(user_id=2), past.id)
    other_server = await service.remake(member(guild_id=11), past.id)
    photos_gone = await service.remake(member(), upload.id)
    await store.forget_user(1, clock.now)
    forgotten = await service.remake(member(), past.id)

    assert [a.refusal.reason for a in (someone_else, other_server, forgotten) if a.refusal] == [
        RefusalReason.JOB_GONE
    ] * 3
    assert photos_gone.refusal is not None
    assert photos_gone.refusal.reason is RefusalReason.NOT_REPEATABLE
    assert await store.recent_jobs(2, 10) == []


async def test_cancel_withdraws_a_queued_job_and_frees_the_member(
    service: AvatarService, store: Store
) -> None:
    await store.update_guild_settings(10, user_daily_quota=1)
    admission = await service.generate(member(), generate())
    assert admission.job is not None

    assert (await service.cancel(2, admission.job.id)).outcome is CancelOutcome.NOT_FOUND
    assert (await service.cancel(1, admission.job.id)).outcome is CancelOutcome.CANCELLED

    assert (await service.quota(member())).user_used == 0
    assert (await service.generate(member(), generate())).job is not None

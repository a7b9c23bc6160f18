"""/avatar history, quota and forget; the queue's progress; durability across restarts."""

from __future__ import annotations

from datetime import timedelta

from avatarbot.failures import FailureKind
from avatarbot.store.base import JobState, NewJob, SourceType
from tests.bot_world import World, face_photo, outcome, restart


async def test_history_lists_own_jobs_with_group_ids(world: World) -> None:
    await world.bot.store.update_guild_settings(world.guild.id, cooldown_seconds=0)
    await world.alice.slash(world.channel, "avatar generate", name="One")
    await world.alice.slash(world.channel, "avatar generate", name="Two")
    bob = world.member("bob")
    await bob.slash(world.channel, "avatar generate", name="Bob's")

    result = await world.alice.slash(world.channel, "avatar history")

    assert result.ephemeral
    values = [f.value for f in outcome(result).embeds[0].fields]
    assert values == ["Group ID: `grp_000002`", "Group ID: `grp_000001`"]


async def test_history_when_empty(world: World) -> None:
    result = await world.alice.slash(world.channel, "avatar history")
    assert "no avatar jobs" in outcome(result).embeds[0].description


async def test_quota_shows_what_is_left(world: World) -> None:
    await world.alice.slash(world.channel, "avatar generate")

    result = await world.alice.slash(world.channel, "avatar quota")

    text = result.response.content
    assert result.ephemeral
    assert "You: 9 of 10 left today." in text
    assert "This server: 199 of 200 left today." in text
    assert "Next request possible" in text


async def test_forget_deletes_records_and_consent_after_confirming(world: World) -> None:
    await world.bot.store.record_consent(world.alice.id)
    await world.alice.slash(world.channel, "avatar generate")
    await world.env.advance_time(31)

    asked = await world.alice.slash(world.channel, "avatar forget")
    kept = await world.alice.click(asked.response, label="Keep them")
    assert "Nothing was deleted" in kept.response.content
    assert await world.bot.store.has_consented(world.alice.id)

    await world.env.advance_time(11)  # /avatar forget has a 10 s per-member cooldown
    asked = await world.alice.slash(world.channel, "avatar forget")
    done = await world.alice.click(asked.response, label="Delete my records")

    assert "were deleted" in done.response.content
    assert not await world.bot.store.has_consented(world.alice.id)
    history = await world.alice.slash(world.channel, "avatar history")
    assert "no avatar jobs" in outcome(history).embeds[0].description


async def test_a_member_has_one_job_in_the_works_at_a_time(world: World) -> None:
    await world.bot.store.update_guild_settings(world.guild.id, cooldown_seconds=0)
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(minutes=5))

    first = await world.alice.slash(world.channel, "avatar generate")
    assert "You are #1 in line" in first.response.content
    second = await world.alice.slash(world.channel, "avatar generate")
    assert "already have an avatar in the works" in second.response.content
    assert second.ephemeral
    assert world.fake.calls == 0


async def test_place_in_line_is_shown_and_the_queue_drains_after_a_pause(world: World) -> None:
    await world.bot.store.pause_dispatch(world.bot.clock() + timedelta(seconds=90))
    bob = world.member("bob")

    alice_job = await world.alice.slash(world.channel, "avatar generate")
    bob_job = await bob.slash(world.channel, "avatar generate")

    assert "#1 in line" in alice_job.response.content
    assert "#2 in line" in bob_job.response.content
    await world.env.advance_time(120)
    assert world.fake.calls == 2
    assert "grp_" in outcome(alice_job).embeds[0].fields[0].value
    assert "grp_" in outcome(bob_job).embeds[0].fields[0].value


async def test_restart_carries_on_queued_generate_jobs_and_fails_uploads(world: World) -> None:
    """Jobs queued when the bot stops: generate ones run after the restart, uploads cannot."""
    store = world.bot.store
    now = world.bot.clock()
    await store.pause_dispatch(now + timedelta(minutes=2))
    await world.alice.slash(world.channel, "avatar generate", name="Kept")
    bob = world.member("bob")
    await store.record_consent(bob.id)
    upload_reply = await bob.slash(
        world.channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
    )
    assert world.fake.calls == 0

    await restart(world)
    await world.env.advance_time(180)

    jobs = {j.user_id: j for j in await world.bot.store.recent_jobs(world.alice.id, world.guild.id)}
    kept = jobs[world.alice.id]
    assert kept.state is JobState.SUCCEEDED
    (upload,) = await world.bot.store.recent_jobs(bob.id, world.guild.id)
    assert upload.state is JobState.FAILED
    assert upload.error_kind == FailureKind.INTERRUPTED
    assert world.fake.calls == 1
    assert world.fake.requests[0].body["name"] == "Kept"
    # Both interactions are still open: the restarted process answers in them.
    told = outcome(upload_reply).embeds
    assert told, "the upload's requester was told, in their own interaction"
    assert "did not count against your quota" in str(told[0].to_dict())
    assert not list(bob.user.dm_channel.history())
    alice_told = alice_dm_or_channel(world)
    assert any("grp_000001" in str(m.embeds[0].to_dict()) for m in alice_told if m.embeds)


def alice_dm_or_channel(world: World) -> list:
    return [*world.alice.user.dm_channel.history(), *world.channel.history()]


async def test_a_job_mid_call_at_a_crash_is_failed_not_sent_again(world: World) -> None:
    """A record left "running" by a dead worker is failed at start-up and its requester told."""
    store = world.bot.store
    stale = world.bot.clock() - timedelta(minutes=5)
    job = NewJob(
        guild_id=world.guild.id,
        channel_id=world.channel.id,
        user_id=world.alice.id,
        mode=SourceType.GENERATE,
        options={"name": "Lost"},
        owner="crashed-worker",
    )
    result = await store.enqueue_job(job, _no_limits(), stale)
    assert result.job is not None
    await store.heartbeat("crashed-worker", stale)
    from avatarbot.store.base import Budget

    claimed = await store.claim_next_job("crashed-worker", Budget(), stale)
    assert claimed is not None

    await restart(world)
    await world.env.advance_time(60)

    final = await world.bot.store.get_job(result.job.id)
    assert final.state is JobState.FAILED
    assert final.error_kind == FailureKind.INTERRUPTED
    assert world.fake.calls == 0
    assert final.notified
    told = alice_dm_or_channel(world)
    assert any("restarted" in str(m.embeds[0].to_dict()) for m in told if m.embeds)


def _no_limits():
    from avatarbot.store.base import Limits

    return Limits(user_daily_quota=0, guild_daily_quota=0, cooldown_seconds=0)

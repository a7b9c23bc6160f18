"""Discord misbehaving around a job: the interaction expired, edits and follow-ups failing,
DMs closed, the log channel gone or muted, the bot removed from a server.

In each case the job ends in the right state, its requester is told some other way (or
it stays undelivered and is told once Discord recovers), nothing escapes as an uncaught
error (SimCord fails the test on those), and other members are still served.
"""

from __future__ import annotations

from datetime import timedelta

import discord
import simcord
from simcord.backend.models import Overwrite
from simcord.enums import OverwriteType

from avatarbot.failures import FailureKind
from avatarbot.store.base import JobState
from tests.bot_world import QUEUE_POLL_SECONDS, World, outcome
from tests.fake_agent_ai import Reply
from tests.fault_helpers import (
    assert_another_member_is_served,
    fields_of,
    only_job_of,
    quota_of,
)

INTERACTION_MINUTES = 15
CANNOT_DM = {"status": 403, "code": 50007, "message": "Cannot send messages to this user"}


async def pause_queue(world: World, minutes: float) -> None:
    await world.bot.store.pause_dispatch(world.env.now() + timedelta(minutes=minutes))


async def past_the_pause(world: World, minutes: float) -> None:
    await world.env.advance_time(minutes * 60 + QUEUE_POLL_SECONDS + 1)


def dms_of(member: simcord.MemberActor) -> list[discord.Message]:
    return member.user.dm_channel.history()


def close_dms(world: World, member: simcord.MemberActor) -> None:
    dm = member.user.dm_channel
    world.env.inject_error("POST", f"/channels/{dm.id}/messages", times=None, **CANNOT_DM)


def discord_recovers(world: World) -> None:
    world.env.backend.faults.clear()


# --- the interaction expired ---------------------------------------------------------


async def test_an_outcome_after_the_interaction_expired_comes_as_a_dm(world: World) -> None:
    await pause_queue(world, INTERACTION_MINUTES + 1)
    result = await world.alice.slash(world.channel, "avatar generate", name="Late")
    assert "in line" in result.response.content

    await past_the_pause(world, INTERACTION_MINUTES + 1)

    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.SUCCEEDED, True)
    (dm,) = dms_of(world.alice)
    assert job.group_id is not None
    assert job.group_id in fields_of(dm)["Group ID"]
    assert world.fake.calls == 1
    await assert_another_member_is_served(world)


async def test_expired_with_dms_closed_a_success_is_posted_in_the_channel(world: World) -> None:
    close_dms(world, world.alice)
    await pause_queue(world, INTERACTION_MINUTES + 1)
    await world.alice.slash(world.channel, "avatar generate", name="Late")

    await past_the_pause(world, INTERACTION_MINUTES + 1)

    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.SUCCEEDED, True)
    assert dms_of(world.alice) == []
    posted = world.channel.last_message
    assert posted is not None
    assert str(world.alice.id) in posted.content
    assert job.group_id is not None
    assert job.group_id in fields_of(posted)["Group ID"]
    assert not posted.mention_everyone
    assert posted.role_mentions == []
    await assert_another_member_is_served(world)


async def test_expired_with_dms_closed_a_failure_is_not_shown_publicly(world: World) -> None:
    close_dms(world, world.alice)
    world.fake.script(Reply(status=400, body={"error": "private reason"}))
    await pause_queue(world, INTERACTION_MINUTES + 1)
    await world.alice.slash(world.channel, "avatar generate")

    await past_the_pause(world, INTERACTION_MINUTES + 1)

    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.FAILED, True)
    posted = world.channel.last_message
    assert posted is not None
    assert "/avatar history" in posted.content
    assert posted.embeds == []
    assert "private reason" not in posted.content
    assert (await quota_of(world, world.alice)).user_used == 0
    await assert_another_member_is_served(world)


# --- edits and follow-ups failing ------------------------------------------------------


async def test_edits_failing_with_5xx_still_tell_the_member_by_dm(world: World) -> None:
    world.env.inject_error("PATCH", "/webhooks/*/messages/@original", status=503, times=None)

    result = await world.alice.slash(world.channel, "avatar generate", name="Edits fail")

    assert result.acknowledged
    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.SUCCEEDED, True)
    (dm,) = dms_of(world.alice)
    assert job.group_id is not None
    assert job.group_id in fields_of(dm)["Group ID"]
    assert world.fake.calls == 1
    discord_recovers(world)
    await assert_another_member_is_served(world)


async def test_a_failing_public_follow_up_still_tells_the_member(world: World) -> None:
    """The generated avatar is posted as a follow-up; when that fails, a DM carries it."""
    world.env.inject_error("POST", "/webhooks/*", status=502, times=None)

    await world.alice.slash(world.channel, "avatar generate")

    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.SUCCEEDED, True)
    (dm,) = dms_of(world.alice)
    assert job.group_id in str(dm.embeds[0].to_dict())
    assert (await quota_of(world, world.alice)).user_used == 1
    discord_recovers(world)
    await assert_another_member_is_served(world)


async def test_when_discord_refuses_everything_the_outcome_is_delivered_once_later(
    world: World,
) -> None:
    close_dms(world, world.alice)
    world.env.inject_error("PATCH", "/webhooks/*", status=503, times=None)
    world.env.inject_error("POST", "/webhooks/*", status=503, times=None)
    world.env.inject_error("DELETE", "/webhooks/*", status=503, times=None)
    world.env.inject_error("POST", f"/channels/{world.channel.id}/messages", status=503, times=None)

    await world.alice.slash(world.channel, "avatar generate")
    job = await only_job_of(world, world.alice)
    assert (job.state, job.notified) == (JobState.SUCCEEDED, False)
    await world.env.advance_time(QUEUE_POLL_SECONDS + 1)  # a retry, still refused
    assert not (await only_job_of(world, world.alice)).notified

    discord_recovers(world)
    await world.env.advance_time(QUEUE_POLL_SECONDS + 1)
    await world.env.advance_time(QUEUE_POLL_SECONDS + 1)

    assert (await only_job_of(world, world.alice)).notified
    # Told exactly once: in the interaction, which is still open (no DM, nothing else).
    assert dms_of(world.alice) == []
    done = [r for r in world.env.http_requests if "Done" in str(r)]
    assert len(done) == 1
    assert world.fake.calls == 1


# --- the log channel -----------------------------------------------------------------


async def use_log_channel(world: World) -> simcord.ChannelHandle:
    log_channel = world.guild.create_text_channel("avatar-log")
    await world.env.settle()
    shown = await world.admin.slash(world.channel, "avatar-admin log-channel", channel=log_channel)
    assert "logged in" in shown.response.content
    return log_channel


async def admin_sees_log_problem(world: World) -> str:
    shown = await world.admin.slash(world.channel, "avatar-admin show")
    return fields_of(outcome(shown))["Log channel"]


async def test_a_deleted_log_channel_does_not_stop_jobs_and_show_reports_it(
    world: World,
) -> None:
    log_channel = await use_log_channel(world)
    world.env.backend.delete_channel(log_channel.id)
    await world.env.settle()

    result = await world.alice.slash(world.channel, "avatar generate")

    assert "grp_" in fields_of(outcome(result))["Group ID"]
    assert (await only_job_of(world, world.alice)).notified
    assert "no longer exists" in await admin_sees_log_problem(world)
    await assert_another_member_is_served(world)


async def test_a_log_channel_the_bot_may_not_post_in_does_not_stop_jobs(world: World) -> None:
    log_channel = await use_log_channel(world)
    await world.alice.slash(world.channel, "avatar generate")
    assert len(log_channel.history()) == 1  # logging worked before
    denied = discord.Permissions(send_messages=True, embed_links=True).value
    world.env.backend.set_overwrite(
        log_channel.id,
        Overwrite(target_id=world.env.bot.user.id, type=OverwriteType.MEMBER, deny=denied),
    )
    await world.env.settle()
    bob = world.member("bob")

    result = await bob.slash(world.channel, "avatar generate")

    assert "grp_" in fields_of(outcome(result))["Group ID"]
    assert len(log_channel.history()) == 1
    assert "lacks Send Messages" in await admin_sees_log_problem(world)
    await assert_another_member_is_served(world)


# --- the bot removed from a server -----------------------------------------------------


async def test_jobs_of_a_server_the_bot_left_end_and_others_are_served(world: World) -> None:
    other = world.env.create_guild(name="Other Club")
    other_channel = other.create_text_channel("avatars")
    carol = other.add_member(world.env.create_user("carol"))
    bob = world.member("bob")
    await pause_queue(world, 2)
    await world.alice.slash(world.channel, "avatar generate")
    await bob.slash(world.channel, "avatar generate")

    world.env.backend.remove_guild(world.guild.id)
    await world.env.settle()
    await past_the_pause(world, 2)

    for member in (world.alice, bob):
        job = await only_job_of(world, member)
        assert job.state is JobState.FAILED, job
        assert job.error_kind == FailureKind.SERVER_LEFT
    assert world.fake.calls == 0, "no credits spent for a server the bot left"
    result = await carol.slash(other_channel, "avatar generate", name="Elsewhere")
    assert "grp_" in fields_of(outcome(result))["Group ID"]
    assert world.fake.requests[-1].body["name"] == "Elsewhere"

"""/avatar-admin through SimCord: every setting, every refusal it causes, and the log channel."""

from __future__ import annotations

import discord
import pytest
from simcord.backend.errors import SetupError

from avatarbot.policy import Requester
from cogs.errors import AvatarError
from tests.bot_world import World, face_photo, outcome, restart


def requester(world: World, member=None) -> Requester:
    who = member or world.alice
    return Requester(user_id=who.id, guild_id=world.guild.id, channel_id=world.channel.id)


async def settings(world: World):
    return await world.bot.store.get_guild_settings(world.guild.id)


async def admin(world: World, command: str, **options: object):
    result = await world.admin.slash(world.channel, f"avatar-admin {command}", **options)
    assert result.ephemeral
    return result


def refusal_text(result) -> str:
    assert result.ephemeral
    return outcome(result).content


async def test_defaults_for_a_new_server(world: World) -> None:
    result = await admin(world, "show")

    fields = {f.name: f.value for f in outcome(result).embeds[0].fields}
    assert fields["Enabled"] == "yes"
    assert fields["Uploads"] == "allowed"
    assert fields["Cooldown"] == "30 s"
    assert fields["Per member per day"] == "10"
    assert fields["Per server per day"] == "200"
    assert fields["Log channel"] == "none"


async def test_admin_commands_are_hidden_from_members_without_manage_server(world: World) -> None:
    with pytest.raises(SetupError, match="default-member-permissions"):
        await world.alice.slash(world.channel, "avatar-admin disable")
    assert (await settings(world)).enabled


async def test_the_bot_checks_manage_server_itself(world: World) -> None:
    (command,) = [c for c in await world.bot.tree.fetch_commands() if c.name == "avatar-admin"]
    world.guild.set_command_permissions(command, {world.alice: True})

    result = await world.alice.slash(world.channel, "avatar-admin disable")

    assert "Manage Server" in refusal_text(result)
    assert (await settings(world)).enabled
    assert any(isinstance(e, discord.app_commands.MissingPermissions) for e in world.env.errors)


async def test_disable_refuses_requests_at_no_cost_and_enable_restores(world: World) -> None:
    await admin(world, "disable")
    refused = await world.alice.slash(world.channel, "avatar generate")

    assert "turned off" in refusal_text(refused)
    assert world.fake.calls == 0
    await admin(world, "enable")
    done = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(done).embeds[0].fields[0].name == "Group ID"


async def test_cooldown_is_enforced_and_zero_turns_it_off(world: World) -> None:
    await admin(world, "cooldown", seconds=120)
    await world.alice.slash(world.channel, "avatar generate")

    second = await world.alice.slash(world.channel, "avatar generate")
    assert "Please wait 120 s" in refusal_text(second)
    await world.env.advance_time(121)
    third = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(third).embeds

    await admin(world, "cooldown", seconds=0)
    fourth = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(fourth).embeds
    assert world.fake.calls == 3


async def test_quota_options_change_only_what_is_given(world: World) -> None:
    await admin(world, "quota", user_daily=1)
    assert (
        (await settings(world)).user_daily_quota,
        (await settings(world)).guild_daily_quota,
    ) == (
        1,
        200,
    )
    await admin(world, "quota", guild_daily=0)
    assert (
        (await settings(world)).user_daily_quota,
        (await settings(world)).guild_daily_quota,
    ) == (
        1,
        0,
    )

    empty = await world.admin.slash(world.channel, "avatar-admin quota")
    assert "Give `user_daily`" in refusal_text(empty)
    assert any(isinstance(getattr(e, "original", e), AvatarError) for e in world.env.errors)


async def test_user_daily_quota_refuses_and_a_failed_call_gives_it_back(world: World) -> None:
    await admin(world, "cooldown", seconds=0)
    await admin(world, "quota", user_daily=1)
    from tests.fake_agent_ai import Reply

    world.fake.script(Reply(status=400, body={"error": "nope"}))
    failed = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(failed).ephemeral
    assert (await world.bot.service.quota(requester(world))).user_used == 0

    ok = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(ok).embeds
    over = await world.alice.slash(world.channel, "avatar generate")
    assert "used all 1 of your avatars" in refusal_text(over)
    assert world.fake.calls == 2

    await admin(world, "reset-quota", user=world.alice)
    again = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(again).embeds


async def test_guild_daily_quota_is_shared_by_members(world: World) -> None:
    await admin(world, "quota", guild_daily=1)
    bob = world.member("bob")
    await world.alice.slash(world.channel, "avatar generate")

    refused = await bob.slash(world.channel, "avatar generate")

    assert "This server has used all 1" in refusal_text(refused)


async def test_channel_allow_list_and_its_threads(world: World) -> None:
    other = world.guild.create_text_channel("general")
    await admin(world, "channels", action="add", channel=world.channel)

    refused = await world.alice.slash(other, "avatar generate")
    assert "only works in these channels" in refusal_text(refused)
    assert f"<#{world.channel.id}>" in refusal_text(refused)
    allowed = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(allowed).embeds

    await admin(world, "channels", action="clear")
    assert not (await settings(world)).allowed_channel_ids


async def test_required_roles(world: World) -> None:
    artists = world.guild.create_role("Artists")
    await admin(world, "roles", action="add", role=artists)

    refused = await world.alice.slash(world.channel, "avatar generate")
    assert "You need one of these roles" in refusal_text(refused)

    carol = world.guild.add_member(world.env.create_user("carol"), roles=[artists])
    allowed = await carol.slash(world.channel, "avatar generate")
    assert outcome(allowed).embeds


async def test_uploads_can_be_turned_off(world: World) -> None:
    await admin(world, "uploads", allowed=False)

    refused = await world.alice.slash(
        world.channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
    )

    assert "uploads are turned off" in refusal_text(refused).lower()
    assert world.fake.calls == 0


async def test_block_and_unblock(world: World) -> None:
    await admin(world, "block", user=world.alice, reason="spamming avatars")

    refused = await world.alice.slash(world.channel, "avatar generate")
    assert "blocked you" in refusal_text(refused)
    assert "spamming avatars" in refusal_text(refused)
    assert world.fake.calls == 0

    await admin(world, "unblock", user=world.alice)
    allowed = await world.alice.slash(world.channel, "avatar generate")
    assert outcome(allowed).embeds


async def test_blocked_words_in_name_and_appearance(world: World) -> None:
    await admin(world, "words", action="add", words="Badword, other thing")
    await admin(world, "cooldown", seconds=0)

    name = await world.alice.slash(world.channel, "avatar generate", name="my BADWORD avatar")
    assert "contains a word this server does not allow" in refusal_text(name)
    sneaky = await world.alice.slash(
        world.channel, "avatar generate", appearance="b\u200bad\u200bword hair"
    )
    assert "does not allow" in refusal_text(sneaky)
    assert world.fake.calls == 0

    await admin(world, "words", action="remove", words="badword")
    allowed = await world.alice.slash(world.channel, "avatar generate", name="my badword avatar")
    assert outcome(allowed).embeds
    assert (await settings(world)).blocked_words == ("other thing",)


async def test_photo_checks_can_be_turned_off(world: World) -> None:
    from tests.photo_factory import make_jpeg

    await world.bot.store.record_consent(world.alice.id)
    no_face = ("plain.jpg", make_jpeg(800, 800))
    refused = await world.alice.slash(world.channel, "avatar upload", photo1=no_face)
    assert "nothing was sent" in refused.response.content

    for check in ("face", "sharpness"):
        await admin(world, "photo-checks", check=check, enabled=False)
    await world.env.advance_time(31)
    sent = await world.alice.slash(world.channel, "avatar upload", photo1=no_face)

    assert outcome(sent).embeds
    assert world.fake.calls == 1
    assert (await settings(world)).disabled_checks == frozenset({"face", "sharpness"})


async def test_log_channel_gets_one_entry_per_job_without_pinging(world: World) -> None:
    logs = world.guild.create_text_channel("avatar-log")
    await admin(world, "log-channel", channel=logs)

    await world.alice.slash(world.channel, "avatar generate", name="Nova")

    entries = logs.history()
    assert len(entries) == 1
    entry = entries[0]
    fields = {f.name: f.value for f in entry.embeds[0].fields}
    assert fields["Member"] == world.alice.mention
    assert fields["Mode"] == "generate"
    assert "Nova" in fields["Options"]
    assert fields["Group ID"] == "`grp_000001`"
    assert entry.mentions == []


async def test_usage_reports_the_day_and_the_week(world: World) -> None:
    await admin(world, "cooldown", seconds=0)
    from tests.fake_agent_ai import Reply

    await world.alice.slash(world.channel, "avatar generate")
    world.fake.script(
        Reply(status=500, body={}), Reply(status=500, body={}), Reply(status=500, body={})
    )
    await world.alice.slash(world.channel, "avatar generate")

    result = await admin(world, "usage")

    fields = {f.name: f.value for f in outcome(result).embeds[0].fields}
    assert fields["Today (UTC)"].startswith("2 jobs: 1 succeeded, 1 failed")
    assert world.alice.mention in fields["Top members (7 days)"]
    assert fields["Server budget"] == "199 of 200 left today"


async def test_settings_survive_a_restart(world: World) -> None:
    await admin(world, "cooldown", seconds=5)
    await admin(world, "quota", user_daily=3)

    await restart(world)

    result = await admin(world, "show")
    fields = {f.name: f.value for f in outcome(result).embeds[0].fields}
    assert fields["Cooldown"] == "5 s"
    assert fields["Per member per day"] == "3"


@pytest.mark.parametrize("seconds", [-1, 86_401])
async def test_out_of_range_numbers_are_refused_by_discord(world: World, seconds: int) -> None:
    with pytest.raises(Exception, match=r"must be [≥≤]"):
        await world.admin.slash(world.channel, "avatar-admin cooldown", seconds=seconds)
    assert (await settings(world)).cooldown_seconds == 30


async def test_photo_strictness_is_per_server_shown_and_applied_to_uploads(world: World) -> None:
    from PIL import ImageFilter

    from tests.preflight_set import astronaut, jpeg, scaled

    await world.bot.store.record_consent(world.alice.id)
    soft_photo = jpeg(scaled(astronaut(), 2).filter(ImageFilter.GaussianBlur(2)))
    soft = ("soft.jpg", soft_photo.data)

    set_strict = await admin(world, "photo-checks", strictness="strict")
    assert "Photo checks are strict." in outcome(set_strict).content
    fields = {f.name: f.value for f in outcome(await admin(world, "show")).embeds[0].fields}
    assert fields["Photo check strictness"] == "strict"
    refused = await world.alice.slash(world.channel, "avatar upload", photo1=soft)
    assert "blurry" in refused.response.content
    assert world.fake.calls == 0

    await admin(world, "photo-checks", strictness="standard")
    await world.env.advance_time(31)
    sent = await world.alice.slash(world.channel, "avatar upload", photo1=soft)
    assert outcome(sent).embeds
    assert world.fake.calls == 1

    await admin(world, "photo-checks", check="exposure", enabled=False, strictness="relaxed")
    await restart(world)
    kept = await settings(world)
    assert (kept.photo_strictness, kept.disabled_checks) == ("relaxed", frozenset({"exposure"}))


@pytest.mark.parametrize(
    "options",
    [{}, {"check": "face"}, {"enabled": False}, {"enabled": True, "strictness": "strict"}],
)
async def test_photo_checks_needs_a_check_with_its_state_or_a_strictness(
    world: World, options: dict[str, object]
) -> None:
    before = await settings(world)
    result = await admin(world, "photo-checks", **options)
    assert "Give a check and whether it is on, a strictness, or both." in refusal_text(result)
    assert await settings(world) == before
    assert any(isinstance(getattr(e, "original", e), AvatarError) for e in world.env.errors)

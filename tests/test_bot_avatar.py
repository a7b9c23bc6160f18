"""/avatar end to end: the real discord.py bot in SimCord, agent.ai faked over loopback HTTP."""

from __future__ import annotations

import io

import discord
import pytest
from PIL import Image

from tests.bot_world import World, face_photo, outcome
from tests.fake_agent_ai import Reply
from tests.photo_factory import make_jpeg, make_text


async def consent(world: World, member=None) -> None:
    await world.bot.store.record_consent((member or world.alice).id)


# --- the synced schema ----------------------------------------------------------------


async def test_synced_commands_have_the_contract_names_and_choices(world: World) -> None:
    commands = {c.name: c for c in await world.bot.tree.fetch_commands()}
    assert set(commands) == {"avatar", "avatar-admin"}

    avatar = {o.name: o for o in commands["avatar"].options}
    assert set(avatar) == {"generate", "upload", "history", "quota", "forget"}
    generate = {o.name: o for o in avatar["generate"].options}
    assert list(generate) == [
        "name",
        "age",
        "gender",
        "ethnicity",
        "orientation",
        "pose",
        "style",
        "appearance",
    ]
    assert not any(o.required for o in generate.values())
    assert [(c.name, c.value) for c in generate["age"].choices] == [
        ("Young adult", "Young Adult"),
        ("Middle-aged", "Middle-Aged"),
        ("Senior", "Senior"),
    ]
    assert [(c.name, c.value) for c in generate["pose"].choices] == [
        ("Half body", "half_body"),
        ("Close up", "close_up"),
        ("Full body", "full_body"),
    ]
    assert {c.value for c in generate["ethnicity"].choices} >= {"Middle Eastern", "Mixed"}
    assert generate["appearance"].max_length == 1000
    assert generate["name"].max_length == 100
    assert all(o.description for o in generate.values())

    upload = {o.name: o for o in avatar["upload"].options}
    assert list(upload) == ["photo1", "photo2", "photo3", "photo4", "name"]
    assert [upload[n].required for n in upload] == [True, False, False, False, False]
    assert upload["photo1"].type is discord.AppCommandOptionType.attachment

    admin = commands["avatar-admin"]
    assert admin.default_member_permissions == discord.Permissions(manage_guild=True)
    assert {o.name for o in admin.options} >= {
        "show",
        "enable",
        "disable",
        "cooldown",
        "quota",
        "channels",
        "roles",
        "uploads",
        "log-channel",
        "block",
        "unblock",
        "words",
        "usage",
        "reset-quota",
    }


# --- /avatar generate ------------------------------------------------------------------


async def test_generate_sends_every_option_and_shows_the_group_id(world: World) -> None:
    result = await world.alice.slash(
        world.channel,
        "avatar generate",
        name="Nova",
        age="Middle-Aged",
        gender="Female",
        ethnicity="Middle Eastern",
        orientation="portrait",
        pose="close_up",
        style="Artistic",
        appearance="short silver hair, green jacket",
    )

    assert result.acknowledged
    assert result.ephemeral  # progress is private; the avatar itself is shown publicly
    assert not outcome(result).ephemeral
    assert world.alice.mention in outcome(result).content
    assert world.fake.requests[0].body == {
        "source_type": "generate",
        "output_variable_name": "avatar_result",
        "name": "Nova",
        "age": "Middle-Aged",
        "gender": "Female",
        "ethnicity": "Middle Eastern",
        "orientation": "portrait",
        "pose": "close_up",
        "style": "Artistic",
        "appearance": "short silver hair, green jacket",
    }
    embed = outcome(result).embeds[0]
    fields = {f.name: f.value for f in embed.fields}
    assert "grp_000001" in fields["Group ID"]
    assert fields["Status"] == "pending"
    assert "Middle-aged" in fields["Options"]
    assert "Took" in fields


async def test_generate_with_no_options_uses_the_api_defaults(world: World) -> None:
    await world.alice.slash(world.channel, "avatar generate")

    body = world.fake.requests[0].body
    assert body["name"] == "My Avatar"
    assert (body["age"], body["pose"], body["style"]) == ("Young Adult", "half_body", "Realistic")


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (Reply(status=401, body={}), "token was rejected"),
        (Reply(status=403, body={}), "may not use this action"),
        (Reply(status=404, body={}), "AGENT_AI_BASE_URL"),
        (Reply(status=400, body={"error": "name taken"}), "rejected the request"),
        (Reply(status=429, body={}, headers={"Retry-After": "0"}), "rate limit"),
        (Reply(status=503, body={}), "failed on their side"),
        (Reply(body={"status": 500, "response": {}}), "failed on their side"),
        (Reply(kind="raw", raw=b"<html>gateway</html>"), "does not understand"),
    ],
)
async def test_each_api_error_is_an_ephemeral_explanation(
    world: World, reply: Reply, fragment: str
) -> None:
    world.fake.script(*[reply] * 3)

    result = await world.alice.slash(world.channel, "avatar generate")

    failure = outcome(result)
    assert failure.ephemeral
    text = failure.embeds[0].description
    assert fragment in text
    assert "did not count against your quota" in text
    assert "Traceback" not in text
    status = await world.bot.service.quota(_requester(world))
    assert status.user_used == 0


async def test_replies_never_ping_anyone(world: World) -> None:
    result = await world.alice.slash(
        world.channel,
        "avatar generate",
        name="@everyone",
        appearance=f"<@{world.admin.id}> and <@&{world.guild.id}> @here",
    )

    message = result.response.message
    assert message.mentions == []
    assert message.role_mentions == []
    assert not message.mention_everyone
    rendered = str(outcome(result).embeds[0].to_dict())
    assert "@everyone" not in rendered.replace("@\u200beveryone", "")


# --- /avatar upload ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "filename"),
    [("JPEG", "selfie.jpg"), ("PNG", "selfie.png"), ("HEIC", "IMG_0001.HEIC"), ("WEBP", "me.webp")],
)
async def test_upload_sends_clean_jpegs_without_gps(world: World, fmt: str, filename: str) -> None:
    await consent(world)

    result = await world.alice.slash(
        world.channel, "avatar upload", photo1=(filename, face_photo(fmt)), name="Me"
    )

    assert result.ephemeral
    fields = {f.name: f.value for f in outcome(result).embeds[0].fields}
    assert "grp_000001" in fields["Group ID"]
    request = world.fake.requests[0]
    assert request.body["source_type"] == "upload"
    assert request.body["name"] == "Me"
    (sent,) = request.photo_bytes()
    assert sent[:3] == b"\xff\xd8\xff"
    assert b"Exif" not in sent
    with Image.open(io.BytesIO(sent)) as image:
        assert not image.getexif()
        assert image.size == face_photo_size()


def face_photo_size() -> tuple[int, int]:
    from tests.bot_world import face_image

    return face_image().size


async def test_first_upload_asks_for_consent_once(world: World) -> None:
    photo = ("me.jpg", face_photo("JPEG"))

    asked = await world.alice.slash(world.channel, "avatar upload", photo1=photo)

    assert asked.ephemeral
    assert "photos are of you" in asked.response.content
    assert world.fake.calls == 0
    accepted = await world.alice.click(asked.response, label="These are my photos / I have consent")
    assert world.fake.calls == 1
    fields = {f.name: f.value for f in outcome(accepted).embeds[0].fields}
    assert "grp_000001" in fields["Group ID"]
    assert await world.bot.store.has_consented(world.alice.id)

    await world.env.advance_time(60)
    again = await world.alice.slash(world.channel, "avatar upload", photo1=photo)
    assert "photos are of you" not in (again.response.content or "")
    assert "grp_000002" in outcome(again).embeds[0].fields[0].value
    assert world.fake.calls == 2


async def test_declining_consent_sends_nothing(world: World) -> None:
    asked = await world.alice.slash(
        world.channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
    )
    declined = await world.alice.click(asked.response, label="Cancel")

    assert "nothing was sent" in declined.response.content
    assert world.fake.calls == 0
    assert not await world.bot.store.has_consented(world.alice.id)


@pytest.mark.parametrize(
    ("photo", "fragment"),
    [
        (("notes.txt", make_text()), "not a photo"),
        (("renamed.jpg", make_text()), "photo 1"),
        (("tiny.jpg", make_jpeg(300, 280)), "512"),
        (("huge.jpg", b"\xff\xd8\xff" + bytes(11 * 1024 * 1024)), "at most 10 MB"),
    ],
    ids=["text-file", "text-renamed-jpg", "too-small", "too-big"],
)
async def test_bad_photos_are_refused_and_cost_nothing(
    world: World, photo: tuple[str, bytes], fragment: str
) -> None:
    await consent(world)

    result = await world.alice.slash(world.channel, "avatar upload", photo1=photo)

    text = result.response.content if result.response else result.followups[-1].content
    assert fragment in text
    assert result.ephemeral
    assert world.fake.calls == 0
    status = await world.bot.service.quota(_requester(world))
    assert status.user_used == 0


async def test_an_oversized_photo_is_refused_before_any_download(world: World) -> None:
    await consent(world)
    big = ("big.jpg", b"\xff\xd8\xff" + bytes(11 * 1024 * 1024))

    result = await world.alice.slash(world.channel, "avatar upload", photo1=big)

    assert not result.deferred  # refused in the first response, nothing downloaded
    cdn_reads = [r for r in world.env.http_requests if "cdn" in str(getattr(r, "path", r))]
    assert cdn_reads == []


async def test_preflight_lists_every_problem_at_once(world: World) -> None:
    await consent(world)
    no_face = make_jpeg(800, 800)

    result = await world.alice.slash(
        world.channel,
        "avatar upload",
        photo1=("a.jpg", no_face),
        photo2=("b.jpg", no_face),
    )

    text = result.response.content
    assert "nothing was sent" in text
    assert "photo 1" in text.lower()
    assert "photo 2" in text.lower()
    assert world.fake.calls == 0


def _requester(world: World):
    from avatarbot.policy import Requester

    return Requester(user_id=world.alice.id, guild_id=world.guild.id, channel_id=world.channel.id)

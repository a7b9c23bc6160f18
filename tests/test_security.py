"""Security: no secret or photo byte escapes, admin powers are the bot's own check, blocks hold.

Blocks are per server: a moderator of server A can block a member from using the bot
*in A*. The same person in server B (which shares the bot) is B's business; B sees
nothing of A's block and the request is paid from B's budget, never from A's.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
import simcord
from simcord.backend.errors import SetupError

from avatarbot.logs import setup_logging
from avatarbot.policy import Requester
from tests.bot_world import DISCORD_TOKEN, World, face_photo, outcome
from tests.fake_agent_ai import TOKEN, Reply
from tests.leak_scan import (
    Haystack,
    Needle,
    RawRecords,
    discord_haystacks,
    file_haystacks,
    find_leaks,
    log_haystacks,
    photo_needles,
    result_haystacks,
    sqlite_rows,
    sqlite_tables,
    text,
    token_needles,
)

REPO = Path(__file__).resolve().parent.parent
REPO_DATA = REPO / "data"
ACCEPT = "These are my photos / I have consent"


# --- logging as bot.main() sets it up, with a raw tap in front of the filter -------------


class BotLogging:
    def __init__(self, raw: RawRecords, handler: logging.Handler, stream: io.StringIO) -> None:
        self.raw = raw
        self.handler = handler
        self.stream = stream

    def filter_last(self) -> None:
        """Put the filtering handler after every other one (caplog's call-phase handler is
        added after fixtures ran), so the others see records as the code logged them."""
        logging.getLogger().handlers.sort(key=lambda h: h is self.handler)

    def filtered_lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def bot_logging(caplog: pytest.LogCaptureFixture) -> Iterator[BotLogging]:
    """``setup_logging`` with both known secrets, DEBUG, plus caplog and a raw tap first.

    ``setup_logging`` replaces the root handlers; the raw tap and caplog's handler
    must come *before* the secret-filtering handler (see :meth:`BotLogging.filter_last`),
    so they see every record as the code logged it: if they are clean, the filter was
    not what kept them clean.
    """
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("discord.http").level)
    caplog.set_level(logging.DEBUG)
    handler = setup_logging(logging.DEBUG, secrets=(DISCORD_TOKEN, TOKEN))
    stream = io.StringIO()
    handler.setStream(stream)
    raw = RawRecords()
    root.handlers[:] = [raw, handler]
    try:
        yield BotLogging(raw, handler, stream)
    finally:
        root.handlers[:], level, http_level = saved
        root.setLevel(level)
        logging.getLogger("discord.http").setLevel(http_level)


async def synced(world: World, name: str) -> discord.app_commands.AppCommand:
    (command,) = [c for c in await world.bot.tree.fetch_commands() if c.name == name]
    return command


def requester(
    member: simcord.MemberActor, guild: simcord.GuildHandle, channel: simcord.ChannelHandle
) -> Requester:
    return Requester(user_id=member.id, guild_id=guild.id, channel_id=channel.id)


# --- 1. nothing secret anywhere -----------------------------------------------------------


async def run_every_kind_of_scenario(world: World) -> tuple[list[simcord.InteractionResult], bytes]:
    """Admin changes, a generate, a consented upload, an API error, history, forget.

    Returns the interaction results and the JPEG the bot actually sent to agent.ai.
    """
    results: list[simcord.InteractionResult] = []
    logs = world.guild.create_text_channel("avatar-log")
    for command, options in (
        ("log-channel", {"channel": logs}),
        ("cooldown", {"seconds": 0}),
        ("words", {"action": "add", "words": "forbidden"}),
        ("show", {}),
    ):
        results.append(await world.admin.slash(world.channel, f"avatar-admin {command}", **options))

    results.append(await world.alice.slash(world.channel, "avatar generate", name="Nova"))

    photo = face_photo("JPEG")
    asked = await world.alice.slash(world.channel, "avatar upload", photo1=("me.jpg", photo))
    results += [asked, await world.alice.click(asked.response, label=ACCEPT)]
    assert world.fake.calls == 2, "the upload did not reach agent.ai"
    (sent_jpeg,) = world.fake.requests[-1].photo_bytes()

    world.fake.script(Reply(status=401, body={"error": "invalid credentials"}))
    results.append(await world.alice.slash(world.channel, "avatar generate", name="Fails"))
    world.fake.script(*[Reply(status=500, body={"detail": "boom"})] * 3)
    results.append(await world.alice.slash(world.channel, "avatar generate", name="Fails too"))

    results.append(await world.alice.slash(world.channel, "avatar history"))
    results.append(await world.alice.slash(world.channel, "avatar quota"))
    await world.env.advance_time(11)
    forget = await world.alice.slash(world.channel, "avatar forget")
    results += [forget, await world.alice.click(forget.response, label="Delete my records")]
    return results, sent_jpeg


async def test_no_token_or_photo_byte_anywhere_after_every_scenario(
    world: World, bot_logging: BotLogging, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    bot_logging.filter_last()
    results, sent_jpeg = await run_every_kind_of_scenario(world)
    database = Path(world.bot.settings.database_url.removeprefix("sqlite:///"))
    await world.bots.close(world.bot)

    needles: list[Needle] = [
        *token_needles("DISCORD_TOKEN", DISCORD_TOKEN),
        *token_needles("AGENT_AI_TOKEN", TOKEN),
        *photo_needles("uploaded photo", face_photo("JPEG")),
        *photo_needles("prepared JPEG", sent_jpeg),
    ]
    haystacks: list[Haystack] = [
        *log_haystacks("raw record", bot_logging.raw.lines),
        *log_haystacks("caplog", caplog.text.splitlines()),
        *log_haystacks("filtered handler", bot_logging.filtered_lines()),
        *discord_haystacks(world.env, results),
        *sqlite_rows(database),
        *file_haystacks(tmp_path, REPO_DATA),
    ]

    # The scan looked at real material: otherwise "nothing found" proves nothing.
    assert len(bot_logging.raw.lines) > 10
    assert bot_logging.filtered_lines()
    assert any("grp_000001" in h.data.decode("utf-8", "replace") for h in haystacks)
    assert {"jobs", "guild_settings"} <= sqlite_tables(database)
    assert find_leaks(needles, haystacks) == []
    assert_scan_would_have_seen_leaks(world, bot_logging, caplog, needles)


def assert_scan_would_have_seen_leaks(
    world: World, bot_logging: BotLogging, caplog: pytest.LogCaptureFixture, needles: list[Needle]
) -> None:
    """Positive controls: the needles match what agent.ai got, and the taps are upstream."""
    sent = Haystack(
        "the request agent.ai received", json.dumps(world.fake.requests[1].body).encode()
    )
    assert "prepared JPEG base64 found in the request agent.ai received" in find_leaks(
        needles, [sent]
    )
    logging.getLogger("tests.probe").warning("probe %s", TOKEN)
    assert TOKEN in bot_logging.raw.lines[-1]
    assert TOKEN in caplog.text.splitlines()[-1]
    assert TOKEN not in bot_logging.filtered_lines()[-1]


async def test_an_error_body_echoing_the_token_does_not_spread_it(
    world: World, bot_logging: BotLogging
) -> None:
    bot_logging.filter_last()
    world.fake.script(Reply(status=400, body={"error": f"unknown token {TOKEN} for this action"}))

    result = await world.alice.slash(world.channel, "avatar generate")

    database = Path(world.bot.settings.database_url.removeprefix("sqlite:///"))
    haystacks = [
        *discord_haystacks(world.env, [result]),
        *sqlite_rows(database),
        *log_haystacks("raw record", bot_logging.raw.lines),
    ]
    assert "rejected the request" in outcome(result).embeds[0].description
    assert find_leaks(token_needles("AGENT_AI_TOKEN", TOKEN), haystacks) == []


# --- 2. admin powers are checked by the bot, whatever the command permissions say --------


ADMIN_ATTEMPTS: list[tuple[str, dict[str, object]]] = [
    ("disable", {}),
    ("cooldown", {"seconds": 0}),
    ("quota", {"user_daily": 1000}),
    ("uploads", {"allowed": False}),
    ("words", {"action": "clear"}),
]


@pytest.mark.parametrize("grant", ["member", "role"])
async def test_admin_commands_refused_without_manage_server_despite_command_permissions(
    world: World, grant: str
) -> None:
    helpers = world.guild.create_role("Helpers")
    eve = world.guild.add_member(world.env.create_user("eve"), roles=[helpers])
    target = eve if grant == "member" else helpers
    world.guild.set_command_permissions(await synced(world, "avatar-admin"), {target: True})
    before = await world.bot.store.get_guild_settings(world.guild.id)

    for command, options in [*ADMIN_ATTEMPTS, ("block", {"user": world.alice, "reason": "x"})]:
        result = await eve.slash(world.channel, f"avatar-admin {command}", **options)
        assert result.ephemeral
        assert "Manage Server" in result.response.content, command

    assert await world.bot.store.get_guild_settings(world.guild.id) == before
    assert await world.bot.store.get_block(world.guild.id, world.alice.id) is None
    errors = world.env.errors
    assert len(errors) == len(ADMIN_ATTEMPTS) + 1
    assert all(isinstance(e, discord.app_commands.MissingPermissions) for e in errors)


# --- 3. a block holds in every channel, thread and DM, and stays in its server ----------


def thread_in(world: World, parent: simcord.ChannelHandle, owner: simcord.MemberActor):
    """A public thread (SimCord has no builder for one; its backend makes it)."""
    thread = world.env.backend.create_thread(parent.id, "side-chat", owner.id)
    return simcord.ChannelHandle(world.env, world.guild, thread)


async def block_alice(world: World, reason: str = "spamming avatars") -> None:
    result = await world.admin.slash(
        world.channel, "avatar-admin block", user=world.alice, reason=reason
    )
    assert "is blocked" in result.response.content


def synced_contexts(world: World) -> dict[str, list[int] | None]:
    """The interaction contexts of each command as the bot's last sync sent them to Discord.

    (SimCord's ``fetch_commands`` does not echo ``contexts`` back, so read the request.)
    """
    (sync, *_) = [
        r
        for r in reversed(world.env.http_requests)
        if r.method == "PUT" and r.path.endswith("/commands")
    ]
    return {command["name"]: command.get("contexts") for command in sync.json}


def refusal(result: simcord.InteractionResult) -> str:
    assert result.ephemeral
    return outcome(result).content


async def test_a_block_holds_in_another_channel_and_in_a_thread(world: World) -> None:
    elsewhere = world.guild.create_text_channel("general")
    thread = thread_in(world, elsewhere, world.alice)
    await block_alice(world)

    for channel in (world.channel, elsewhere, thread):
        result = await world.alice.slash(channel, "avatar generate", name="Sneaky")
        assert "blocked you" in refusal(result), channel
        upload = await world.alice.slash(
            channel, "avatar upload", photo1=("me.jpg", face_photo("JPEG"))
        )
        assert "blocked you" in refusal(upload), channel

    assert world.fake.calls == 0
    status = await world.bot.service.quota(requester(world.alice, world.guild, elsewhere))
    assert (status.user_used, status.guild_used) == (0, 0)


async def test_the_commands_are_guild_only_so_a_dm_cannot_get_around_a_block(world: World) -> None:
    await block_alice(world)

    assert synced_contexts(world) == {"avatar": [0], "avatar-admin": [0]}  # 0: GUILD only
    assert not world.alice.user.available_commands()
    with pytest.raises(SetupError):
        await world.alice.user.slash("avatar generate", name="From a DM")
    assert world.fake.calls == 0


async def test_a_block_in_one_server_neither_leaks_nor_spends_that_server_budget(
    world: World,
) -> None:
    """Blocks are per server (see the module docstring)."""
    first = await world.alice.slash(world.channel, "avatar generate", name="Made in A")
    assert outcome(first).embeds
    await block_alice(world, reason="reason-known-only-to-server-A")
    other = world.env.create_guild(name="Server B")
    b_channel = other.create_text_channel("b-avatars")
    alice_in_b = other.add_member(world.alice.user)

    refused_in_a = await world.alice.slash(world.channel, "avatar generate")
    made_in_b = await alice_in_b.slash(b_channel, "avatar generate", name="Made in B")
    history_in_b = await alice_in_b.slash(b_channel, "avatar history")
    quota_in_b = await alice_in_b.slash(b_channel, "avatar quota")

    assert "blocked you" in refusal(refused_in_a)
    assert outcome(made_in_b).embeds, "a block in A must not refuse B"
    shown_in_b = [
        *result_haystacks([made_in_b, history_in_b, quota_in_b]),
        *(text("B's channel", m.content) for m in b_channel.history()),
    ]
    secret = Needle("A's block reason", b"reason-known-only-to-server-A")
    assert find_leaks([secret], shown_in_b) == []
    assert find_leaks([secret], result_haystacks([refused_in_a])), "the control failed"
    b_job = outcome(made_in_b).embeds[0].footer.text.removeprefix("Job ")
    (only_b_job,) = [f.name for f in outcome(history_in_b).embeds[0].fields]
    assert only_b_job.startswith(f"{b_job} "), "B's history shows A's jobs"
    assert world.fake.calls == 2
    in_a = await world.bot.service.quota(requester(world.alice, world.guild, world.channel))
    in_b = await world.bot.service.quota(requester(alice_in_b, other, b_channel))
    assert (in_a.user_used, in_a.guild_used) == (1, 1)
    assert (in_b.user_used, in_b.guild_used) == (1, 1)

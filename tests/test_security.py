"""Security: no secret or photo byte escapes, admin powers are the bot's own check, blocks hold.

Blocks are per server: a moderator of server A can block a member from using the bot
*in A*. The same person in server B (which shares the bot) is B's business; B sees
nothing of A's block and the request is paid from B's budget, never from A's.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
import simcord
from simcord.backend.errors import SetupError

from avatarbot.logs import setup_logging
from avatarbot.policy import Requester
from tests.bot_world import DISCORD_TOKEN, World, face_photo
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
    sqlite_rows,
    sqlite_tables,
    token_needles,
)

REPO = Path(__file__).resolve().parent.parent
REPO_DATA = REPO / "data"
ACCEPT = "These are my photos / I have consent"


# --- logging as bot.main() sets it up, with a raw tap in front of the filter -------------


class BotLogging:
    def __init__(self, raw: RawRecords, stream: io.StringIO) -> None:
        self.raw = raw
        self.stream = stream

    def filtered_lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def bot_logging(caplog: pytest.LogCaptureFixture) -> Iterator[BotLogging]:
    """``setup_logging`` with both known secrets, DEBUG, plus caplog and a raw tap first.

    ``setup_logging`` replaces the root handlers; the raw tap and caplog's handler
    are put back *before* the secret-filtering handler, so they see every record
    as the code logged it: if they are clean, the filter was not what kept it clean.
    """
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("discord.http").level)
    caplog.set_level(logging.DEBUG)
    handler = setup_logging(logging.DEBUG, secrets=(DISCORD_TOKEN, TOKEN))
    stream = io.StringIO()
    handler.setStream(stream)
    raw = RawRecords()
    root.handlers[:] = [raw, caplog.handler, handler]
    try:
        yield BotLogging(raw, stream)
    finally:
        root.handlers[:], level, http_level = saved
        root.setLevel(level)
        logging.getLogger("discord.http").setLevel(http_level)


def admin_command_id(world: World) -> int:
    return world.bot.tree.get_command("avatar-admin") and _synced_id(world, "avatar-admin")


def _synced_id(world: World, name: str) -> int:
    raise NotImplementedError


async def synced(world: World, name: str) -> discord.app_commands.AppCommand:
    (command,) = [c for c in await world.bot.tree.fetch_commands() if c.name == name]
    return command


def requester(world: World, member: simcord.MemberActor, guild: simcord.GuildHandle, channel):
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

    world.fake.script(*[Reply(status=401, body={"error": f"bad token {TOKEN}"})] * 3)
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
    results, sent_jpeg = await run_every_kind_of_scenario(world)
    database = Path(world.bot.settings.database_url.removeprefix("sqlite:///"))
    await world.bot.close_services()

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
    leaks = find_leaks(needles, haystacks)
    import sys; [print("LEAK", l, [h.data[:3000] for h in haystacks if h.source == l.split(" found in ")[1]], file=sys.__stderr__) for l in leaks]
    assert leaks == []

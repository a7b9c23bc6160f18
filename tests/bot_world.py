"""The real bot, driven through SimCord's simulated Discord, talking to the fake agent.ai."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pillow_heif
import simcord
from PIL import Image

from avatarbot.settings import Settings
from bot import SHUTDOWN_GRACE_SECONDS, AvatarBot, open_services, serving_metrics
from tests.fake_agent_ai import TOKEN, FakeAgentAI
from tests.photo_factory import exif_bytes

# The dispatcher's idle poll must outlast SimCord's settle window (5 s), so that a
# sleeping queue counts as parked; tests move time on with env.advance_time().
QUEUE_POLL_SECONDS = 30.0

# Shaped like a bot token, never a real one.
DISCORD_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.GabCdE.simulated-discord-token-for-tests-0000"


def settings_for(fake: FakeAgentAI, database_url: str) -> Settings:
    return Settings(
        discord_token=DISCORD_TOKEN,
        agent_ai_token=TOKEN,
        agent_ai_base_url=fake.base_url,
        database_url=database_url,
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings, **options: Any) -> AsyncIterator[AvatarBot]:
    """A bot handed its services, as :func:`bot.run_bot` makes it.

    SimCord never calls ``close()``, so leaving stops the dispatcher (as close() does).
    """
    async with open_services(settings, **options) as services:
        bot = AvatarBot(services)
        try:
            async with serving_metrics(bot):
                yield bot
        finally:
            await bot.dispatcher.stop(timeout=SHUTDOWN_GRACE_SECONDS)


class Bots:
    """The bots one test starts, each closed (safely more than once) or at the end."""

    def __init__(self) -> None:
        self._open: dict[int, contextlib.AsyncExitStack] = {}

    async def open(self, settings: Settings, **options: Any) -> AvatarBot:
        stack = contextlib.AsyncExitStack()
        bot = await stack.enter_async_context(serving(settings, **options))
        self._open[id(bot)] = stack
        return bot

    async def make(
        self, fake: FakeAgentAI, database_url: str, *, worker_id: str = "test-worker"
    ) -> AvatarBot:
        """The bot with SimCord's virtual clock, so ``env.advance_time`` moves cooldowns too."""
        return await self.open(
            settings_for(fake, database_url),
            worker_id=worker_id,
            queue_poll_seconds=QUEUE_POLL_SECONDS,
            clock=discord.utils.utcnow,
            budget_clock=discord.utils.utcnow,
        )

    async def close(self, bot: AvatarBot) -> None:
        stack = self._open.pop(id(bot), None)
        if stack is not None:
            await stack.aclose()

    async def close_all(self) -> None:
        while self._open:
            _, stack = self._open.popitem()
            await stack.aclose()


@dataclass
class World:
    env: simcord.Env
    bot: AvatarBot
    fake: FakeAgentAI
    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    alice: simcord.MemberActor
    admin: simcord.MemberActor
    bots: Bots

    def member(self, name: str) -> simcord.MemberActor:
        return self.guild.add_member(self.env.create_user(name))


def sqlite_url(tmp_path: Path, name: str = "bot.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def populate(env: simcord.Env, bot: AvatarBot, fake: FakeAgentAI, bots: Bots) -> World:
    guild = env.create_guild(name="Avatar Club")
    channel = guild.create_text_channel("avatars")
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    admin = guild.add_member(env.create_user("mod"), roles=[mods])
    alice = guild.add_member(env.create_user("alice"))
    return World(env, bot, fake, guild, channel, alice, admin, bots)


def face_image() -> Image.Image:
    from tests.preflight_set import astronaut

    return astronaut()


def face_photo(fmt: str, *, gps: bool = True) -> bytes:
    """A real single-face photo in ``fmt`` (JPEG carries EXIF with GPS, as phones write it)."""
    image = face_image()
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=92, exif=exif_bytes(orientation=1, gps=gps))
    elif fmt == "HEIC":
        pillow_heif.from_pillow(image).save(buffer, quality=90, exif=exif_bytes(gps=gps))
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


async def restart(world: World) -> AvatarBot:
    """Stop the bot and start a new process's worth of bot on the same database."""
    old = world.bot
    await world.bots.close(old)
    new = await world.bots.make(
        world.fake, old.settings.database_url, worker_id=f"{old.worker_id}+"
    )
    await world.env.restart_bot(new)
    world.bot = new
    return new


def outcome(result: Any) -> Any:
    """The message that carries a command's outcome.

    A generated avatar is a public follow-up; everything else (progress, refusals,
    failures, uploads) is the private, ephemeral reply.
    """
    public = [message for message in result.followups if not message.ephemeral]
    if public:
        return public[-1]
    return result.followups[-1] if result.followups else result.response


def outcome_fields(result: Any) -> dict[str, str]:
    return {field.name: field.value for field in outcome(result).embeds[0].fields}

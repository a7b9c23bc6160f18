"""The baseline: a bare discord.py bot with Avatar Bot's commands that only acknowledges.

``/avatar generate`` and ``/avatar upload`` take the same options as the real
cog; each answers with ``defer(ephemeral=True, thinking=True)`` and nothing
else. ``/avatar upload`` then shows the same consent button the real bot shows
on a member's first upload, and pressing it only acknowledges (it edits the
message, as the real button does first): this is the floor the real bot's
acknowledgements are measured against, on the same stack.

Run it as a process (``python -m benchmarks.bare_bot``) with ``DISCORD_TOKEN``
and, for the loopback fake Discord, ``FAKE_DISCORD_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from enum import StrEnum

import discord
from discord import app_commands
from discord.ext import commands

from avatar_api.models import Age, Ethnicity, Gender, Orientation, Pose, Style
from tests.fake_discord.client import use_fake_discord_from_env

log = logging.getLogger(__name__)

CONSENT_LABEL = "These are my photos / I have consent"
CONSENT_TEXT = "**Before your first upload** (bare bot: pressing only acknowledges)"

discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False


def choices(enum: type[StrEnum]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=m.value, value=m.value) for m in enum]


class ConsentView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=300)

    @discord.ui.button(label=CONSENT_LABEL, style=discord.ButtonStyle.success)
    async def accept(
        self, interaction: discord.Interaction, _: discord.ui.Button[ConsentView]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(content="Thanks.", view=None)


@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
class BareAvatarCog(
    commands.GroupCog, group_name="avatar", group_description="Create HeyGen avatars"
):
    @app_commands.command(description="Generate an avatar from a few options")
    @app_commands.choices(
        age=choices(Age),
        gender=choices(Gender),
        ethnicity=choices(Ethnicity),
        orientation=choices(Orientation),
        pose=choices(Pose),
        style=choices(Style),
    )
    async def generate(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100] | None = None,
        age: app_commands.Choice[str] | None = None,
        gender: app_commands.Choice[str] | None = None,
        ethnicity: app_commands.Choice[str] | None = None,
        orientation: app_commands.Choice[str] | None = None,
        pose: app_commands.Choice[str] | None = None,
        style: app_commands.Choice[str] | None = None,
        appearance: app_commands.Range[str, 1, 1000] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

    @app_commands.command(description="Create an avatar from 1 to 4 photos of yourself")
    async def upload(
        self,
        interaction: discord.Interaction,
        photo1: discord.Attachment,
        photo2: discord.Attachment | None = None,
        photo3: discord.Attachment | None = None,
        photo4: discord.Attachment | None = None,
        name: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content=CONSENT_TEXT, view=ConsentView())


class BareBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # as Avatar Bot
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
        )

    async def setup_hook(self) -> None:
        await self.add_cog(BareAvatarCog())
        await self.tree.sync()
        log.info("bare bot ready")


async def run(token: str) -> None:
    bot = BareBot()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: loop.create_task(bot.close()))
    async with bot:
        await bot.start(token)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    use_fake_discord_from_env()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(os.environ["DISCORD_TOKEN"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

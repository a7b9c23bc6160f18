"""Every error and refusal becomes one ephemeral message; never a trace, never a ping.

A plain module (not an extension), so both cogs and the tests share one class of each.
"""

from __future__ import annotations

import logging
import uuid

import discord
from discord import app_commands

from avatar_api import ValidationError

from .ui import NO_MENTIONS, safe

log = logging.getLogger(__name__)


class AvatarError(app_commands.AppCommandError):
    """A refusal decided in a command body, shown to the member as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def refuse(interaction: discord.Interaction, message: str) -> None:
    """An expected refusal: an ephemeral reply, not an error."""
    await send_ephemeral(interaction, f"⚠️ {message}")


async def reply_to_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    """Every error becomes one ephemeral message; unexpected ones get an id to quote."""
    original = getattr(error, "original", error)
    if isinstance(original, AvatarError):
        message = f"⚠️ {original.message}"
    elif isinstance(original, ValidationError):
        message = f"⚠️ {safe(str(original))}"
    elif isinstance(error, app_commands.CommandOnCooldown):
        message = f"⏳ Slow down: try again in {error.retry_after:.0f} s."
    elif isinstance(error, app_commands.MissingPermissions):
        message = "🔒 You need the **Manage Server** permission for this command."
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = "Avatar Bot works inside servers only."
    elif isinstance(error, app_commands.CheckFailure):
        message = "🔒 You cannot use this command here."
    else:
        await report_unexpected(interaction, original)
        return
    await send_ephemeral(interaction, message)


async def report_unexpected(interaction: discord.Interaction, error: BaseException) -> None:
    """Log the trace under a short id and give the member only that id."""
    error_id = uuid.uuid4().hex[:8]
    log.error("interaction failed (error id %s)", error_id, exc_info=error)
    await send_ephemeral(
        interaction,
        f"Something went wrong on our side. Quote error id `{error_id}` to a server admin.",
    )


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                message, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException as error:
        log.info("could not send an error reply: %s", error)
